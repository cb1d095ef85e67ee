"""The contract every CloudDriver must keep, as a test class to subclass per driver.

A subclass provides the `driver` fixture (and `other_site_driver`, a driver of the same cloud
for another installation); every test then runs against that real driver.
"""

from __future__ import annotations

import uuid

from bus.schemas import VmRecord, VmSpec
from provisioning.driver import CloudDriver


def make_vm(cloud: str, site: str = "contract", image: str = "img.qcow2") -> VmRecord:
    """A registry record for a fresh, uniquely named VM (named as the planner names them)."""
    vm_id = f"cs-{site}-{cloud}-{uuid.uuid4().hex[:8]}-0"
    return VmRecord(vm_id=vm_id, cloud=cloud, intent_id=f"boot-{vm_id}-1", class_key="k",
                    spec=VmSpec(vm_type="worker", image=image, cores=2, memory_mb=1024),
                    state="requested", created_at=0.0, updated_at=0.0)


class DriverContract:
    """Tests shared by every driver."""

    cloud = "contract"
    site = "site-a"
    """The installation of the `driver` fixture."""
    other_site = "site-b"
    """The installation of the `other_site_driver` fixture."""
    image = "img.qcow2"
    """The image the contract's VMs ask for (the cloud must have it)."""

    async def test_create_then_list_and_state(self, driver: CloudDriver) -> None:
        vm = make_vm(self.cloud, self.site, self.image)
        instance = await driver.create(vm)
        assert (instance.vm_id, instance.intent_id, instance.cloud) == (
            vm.vm_id, vm.intent_id, self.cloud)
        assert instance.state in ("creating", "running")
        listed = {i.vm_id: i for i in await driver.list()}
        assert listed[vm.vm_id].intent_id == vm.intent_id
        state = await driver.state(vm.vm_id)
        assert state is not None and state.vm_id == vm.vm_id
        await driver.delete(vm.vm_id)

    async def test_create_is_idempotent(self, driver: CloudDriver) -> None:
        vm = make_vm(self.cloud, self.site, self.image)
        first = await driver.create(vm, fresh=True)  # the first try: no look-up needed
        again = await driver.create(vm)  # a redelivery: must find the first
        assert again.vm_id == first.vm_id
        assert [i.vm_id for i in await driver.list()].count(vm.vm_id) == 1
        await driver.delete(vm.vm_id)

    async def test_delete_removes_and_is_idempotent(self, driver: CloudDriver) -> None:
        vm = make_vm(self.cloud, self.site, self.image)
        await driver.create(vm)
        await driver.delete(vm.vm_id)
        assert await driver.state(vm.vm_id) is None
        assert vm.vm_id not in {i.vm_id for i in await driver.list()}
        await driver.delete(vm.vm_id)  # deleting what is gone is success
        await driver.delete("cs-never-existed")

    async def test_other_installations_vms_are_not_listed(
        self, driver: CloudDriver, other_site_driver: CloudDriver
    ) -> None:
        vm = make_vm(self.cloud, self.other_site, self.image)
        await other_site_driver.create(vm)
        assert vm.vm_id not in {i.vm_id for i in await driver.list()}
        assert vm.vm_id in {i.vm_id for i in await other_site_driver.list()}
        await other_site_driver.delete(vm.vm_id)

    async def test_delete_instance_by_the_clouds_id(
        self, driver: CloudDriver, other_site_driver: CloudDriver
    ) -> None:
        """An instance goes by the cloud's own id; an absent id is success; another
        installation's instance is left alone."""
        vm = make_vm(self.cloud, self.site, self.image)
        theirs = make_vm(self.cloud, self.other_site, self.image)
        created = await driver.create(vm)
        other = await other_site_driver.create(theirs)
        try:
            assert created.instance_id and other.instance_id
            await driver.delete_instance(other.instance_id)
            assert await other_site_driver.state(theirs.vm_id) is not None
            await driver.delete_instance(created.instance_id)
            assert await driver.state(vm.vm_id) is None
            await driver.delete_instance(created.instance_id)  # gone already: success
        finally:
            await driver.delete(vm.vm_id)  # its disks too, where the cloud keeps them apart
            await other_site_driver.delete(theirs.vm_id)

    async def test_capacity_is_reported_for_this_cloud(self, driver: CloudDriver) -> None:
        """None (no limits) or figures of this cloud, none negative, taken now."""
        capacity = await driver.capacity()
        if capacity is None:
            return
        assert capacity.cloud == self.cloud and capacity.source
        assert min(capacity.max_instances, capacity.max_cores, capacity.max_memory_mb,
                   capacity.others_instances, capacity.others_cores,
                   capacity.others_memory_mb) >= 0
        assert capacity.reported_at > 0

    async def test_watch_reports_only_our_vms(
        self, driver: CloudDriver, other_site_driver: CloudDriver
    ) -> None:
        """Change events, where the cloud has them, name only this installation's VMs."""
        seen: list[str] = []
        driver.watch(seen.append)
        vm = make_vm(self.cloud, self.site, self.image)
        theirs = make_vm(self.cloud, self.other_site, self.image)
        await driver.create(vm)
        await other_site_driver.create(theirs)
        await driver.delete(vm.vm_id)
        await other_site_driver.delete(theirs.vm_id)
        assert set(seen) <= {vm.vm_id}, seen

    async def test_close_twice(self, driver: CloudDriver) -> None:
        """Closing releases the driver; a second close does nothing."""
        await driver.list()  # connected
        await driver.close()
        await driver.close()

