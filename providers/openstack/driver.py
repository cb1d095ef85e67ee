"""The only module that imports openstacksdk: worker VMs as Nova servers.

One connection per cloud, from clouds.yaml (`os_cloud`; password or application-credential
auth, whatever the entry says; secrets stay in that file and are never logged). SDK calls
block, so they run on a small thread pool under a timeout of ours; SDK and HTTP errors are
translated here, once, into TemporaryError / OutOfResources / PermanentError.

Servers carry our metadata (site, cloud, intent, VM type); listing is one paginated call per
cloud per reconcile, filtered on that metadata, never one call per VM.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import openstack
import openstack.config.loader
import openstack.connection
from keystoneauth1 import exceptions as ksa
from openstack import exceptions as sdk

from bus.errors import OutOfResources, PermanentError, TemporaryError
from bus.schemas import (
    CloudCapacity,
    CloudRecord,
    Instance,
    InstanceState,
    VmRecord,
)
from providers.openstack.clouds_yaml import clouds_yaml_problem
from providers.openstack.options import PROVIDER, OpenstackOptions
from provisioning.blocking import BlockingCalls
from provisioning.driver import DriverContext
from runtime.logs import fields

T = TypeVar("T")
log = logging.getLogger("provisioner.openstack")

META_SITE = "cs_site"
META_CLOUD = "cs_cloud"
META_INTENT = "cs_intent"
META_TYPE = "cs_vmtype"
DELETE_LOOKS = 3
"""Times a delete looks for the server before it calls it gone."""
DELETE_LOOK_S = 1.0
"""Seconds between those looks."""

STATES: dict[str, InstanceState] = {
    "BUILD": "creating", "REBUILD": "creating",
    "ACTIVE": "running", "REBOOT": "running", "HARD_REBOOT": "running",
    "RESIZE": "running", "VERIFY_RESIZE": "running", "REVERT_RESIZE": "running",
    "MIGRATING": "running", "PASSWORD": "running",
    "ERROR": "error",
    "SHUTOFF": "stopped", "PAUSED": "stopped", "SUSPENDED": "stopped", "RESCUE": "stopped",
    "SHELVED": "stopped", "SHELVED_OFFLOADED": "stopped",
    "DELETED": "deleting", "SOFT_DELETED": "deleting",
    "UNKNOWN": "unknown",
}
"""Nova server status -> our instance state."""

_QUOTA = re.compile(r"quota|exceed|over limit", re.IGNORECASE)


def translate(exc: Exception, doing: str) -> Exception:
    """The one place SDK, HTTP and auth errors become our error kinds."""
    if isinstance(exc, sdk.HttpException):
        status = exc.status_code or 0
        detail = exc.details or exc.message or str(exc)
        message = f"{doing}: {detail}"
        if status in (403, 413) and _QUOTA.search(detail):
            return OutOfResources(message)
        if status == 429 or status == 409 or status >= 500 or status == 0:
            return TemporaryError(message, delay=15.0)
        return PermanentError(message)
    if isinstance(exc, sdk.ConfigException):
        return PermanentError(f"{doing}: clouds.yaml: {exc}")
    if isinstance(exc, ksa.Unauthorized):
        return PermanentError(f"{doing}: authentication refused: check the credentials of "
                              "this cloud in clouds.yaml")
    if isinstance(exc, ksa.ConnectionError | ksa.http.ServiceUnavailable |
                  ksa.http.GatewayTimeout | ksa.http.BadGateway):
        return TemporaryError(f"{doing}: {exc}", delay=15.0)
    if isinstance(exc, ksa.EndpointNotFound | ksa.MissingAuthPlugin | ksa.NoMatchingPlugin):
        return PermanentError(f"{doing}: {exc}")
    if isinstance(exc, sdk.SDKException | ksa.ClientException):
        return TemporaryError(f"{doing}: {exc}", delay=15.0)
    return exc


def security_groups(asked: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """The job's groups (VMSecurityGroup) that the cloud lists too, in the job's order; none
    of them (or none asked): the cloud's own. As v1 chose (openstackcluster.py, dev e1673dd,
    126-136): a job cannot open a group the site did not name for the cloud."""
    return tuple(g for g in asked if g in allowed) or tuple(allowed)


def options_of(record: CloudRecord) -> OpenstackOptions:
    """The cloud's boot settings, read back through the options model."""
    return OpenstackOptions.read(dict(record.options))


def _flavor_size(server: Any) -> tuple[int, int]:
    flavor = server.flavor or {}
    get = flavor.get if isinstance(flavor, dict) else (lambda k, d=None: getattr(flavor, k, d))
    return int(get("vcpus", 0) or 0), int(get("ram", 0) or 0)


class OpenstackDriver:
    """A CloudDriver over one OpenStack project (one clouds.yaml entry)."""

    def __init__(self, record: CloudRecord, context: DriverContext,
                 clouds_yaml: Path | None = None) -> None:
        self.cloud = record.name
        self.opts = options_of(record)
        self.os_cloud = self.opts.os_cloud or record.name
        self.site = context.site
        self.record = record
        self.context = context
        self.clouds_yaml = clouds_yaml
        self.timeout_s = context.call_timeout_s
        """Seconds one HTTP call may take (the SDK's api_timeout); a whole call, which may
        make several, gets twice that."""
        self._calls = BlockingCalls(f"openstack-{record.name}", 8, self.timeout_s * 2,
                                    translate, "OpenStack")
        self._conn: openstack.connection.Connection | None = None
        self._conn_lock = threading.Lock()

    # ---- plumbing ----------------------------------------------------------------------

    def _connection(self) -> openstack.connection.Connection:
        # One connection (one token) for every worker thread: without the lock, the first
        # calls of a busy cloud each built and authenticated their own (8 password or
        # application-credential checks at once, seconds of Keystone's time).
        with self._conn_lock:
            return self._connect()

    def _connect(self) -> openstack.connection.Connection:
        if self._conn is None:
            if self.clouds_yaml:
                # openstacksdk skips a file it cannot read or parse and then says only that
                # the cloud "was not found": say what is wrong with the file itself.
                problem = clouds_yaml_problem(self.clouds_yaml, self.os_cloud)
                if problem:
                    raise PermanentError(f"cloud {self.cloud}: {problem}")
                # The configured file, alone: OS_CLIENT_CONFIG_FILE in the environment would
                # otherwise be read first and win (seen in the tests).
                config = openstack.config.loader.OpenStackConfig(
                    config_files=[str(self.clouds_yaml)], load_envvars=False)
            else:
                config = openstack.config.loader.OpenStackConfig()
            try:
                region = config.get_one(cloud=self.os_cloud, api_timeout=self.timeout_s)
            except sdk.ConfigException as exc:
                where = self.clouds_yaml or "clouds.yaml (OS_CLIENT_CONFIG_FILE, ./, "\
                    "~/.config/openstack/, /etc/openstack/)"
                raise PermanentError(f"cloud {self.cloud}: no usable entry {self.os_cloud!r} "
                                     f"in {where}: {exc}") from None
            conn = openstack.connection.Connection(config=region)
            # Authenticate here, under the lock: left to the first calls, every worker thread
            # would fetch its own token at once (seen: 8 application-credential checks queued
            # in Keystone, 8 s before the first boot).
            conn.authorize()
            self._conn = conn
        return self._conn

    async def _call(self, doing: str, fn: Callable[[openstack.connection.Connection], T]) -> T:
        return await self._calls.call(doing, lambda: fn(self._connection()))

    def _ours(self, server: Any) -> bool:
        meta = server.metadata or {}
        return bool(meta.get(META_SITE) == self.site and meta.get(META_CLOUD) == self.cloud)

    def _instance(self, server: Any) -> Instance:
        status = (server.status or "UNKNOWN").upper()
        state = STATES.get(status, "unknown")
        if (server.task_state or "") == "deleting":
            state = "deleting"
        fault = server.fault or {}
        detail = fault.get("message", "") if isinstance(fault, dict) else str(fault)
        return Instance(name=server.name, cloud=self.cloud, state=state, vm_id=server.name,
                        intent_id=(server.metadata or {}).get(META_INTENT, ""),
                        detail=detail or "", instance_id=server.id or "")

    def _servers(self, conn: openstack.connection.Connection, name: str | None = None
                 ) -> list[Any]:
        query: dict[str, Any] = {"details": True}
        if name is not None:
            query["name"] = f"^{re.escape(name)}$"  # Nova filters names by regex
        return [s for s in conn.compute.servers(**query) if self._ours(s)]

    # ---- the CloudDriver protocol ----------------------------------------------------

    async def list(self) -> list[Instance]:
        """Servers of this project carrying our site's and cloud's metadata (one call)."""
        return await self._call(f"list servers of {self.cloud}",
                                lambda conn: [self._instance(s) for s in self._servers(conn)])

    def _image(self, conn: openstack.connection.Connection, vm: VmRecord) -> Any:
        name = vm.spec.image or self.opts.image
        if not name:
            raise PermanentError(f"no image: the jobs name none for cloud {self.cloud} (VMAMI) "
                                 "and the cloud sets no default image")
        try:
            return conn.image.find_image(name, ignore_missing=False)
        except sdk.NotFoundException:
            raise PermanentError(f"image {name!r} not found on cloud {self.cloud}") from None

    def _flavor(self, conn: openstack.connection.Connection, vm: VmRecord) -> Any:
        name = vm.spec.flavor or self.opts.flavor
        if name:
            try:
                return conn.compute.find_flavor(name, ignore_missing=False)
            except sdk.NotFoundException:
                raise PermanentError(f"flavor {name!r} not found on cloud {self.cloud}") \
                    from None
        spec = vm.spec
        fits = [f for f in conn.compute.flavors(details=True)
                if f.vcpus >= spec.cores and f.ram >= spec.memory_mb
                and (f.disk or 0) >= spec.disk_gb]
        if not fits:
            raise PermanentError(f"no flavor on cloud {self.cloud} has {spec.cores} cores, "
                                 f"{spec.memory_mb} MB and {spec.disk_gb} GB of disk")
        return min(fits, key=lambda f: (f.vcpus, f.ram, f.disk or 0, f.name))

    def _networks(self, conn: openstack.connection.Connection, vm: VmRecord) -> Any:
        wanted = vm.spec.network or self.opts.network
        if wanted in ("auto", "none"):
            return wanted
        try:
            network = conn.network.find_network(wanted, ignore_missing=False)
        except sdk.NotFoundException:
            raise PermanentError(f"network {wanted!r} not found on cloud {self.cloud}") \
                from None
        return [{"uuid": network.id}]

    def _key_name(self, conn: openstack.connection.Connection, vm: VmRecord) -> str:
        """The job's keypair (VMKeyName) where the project has it, else the cloud's: v1 booted
        a job whose keypair the cloud lacked too (with none; the cloud's, here), said in the
        log rather than failing the boot."""
        asked = vm.spec.key_name
        if not asked or asked == self.opts.key_name:
            return self.opts.key_name
        try:
            conn.compute.find_keypair(asked, ignore_missing=False)
        except sdk.NotFoundException:
            log.warning("%s", fields(event="the job's keypair is not on the cloud; using the "
                                     "cloud's", cloud=self.cloud, vm=vm.vm_id, asked=asked,
                                     used=self.opts.key_name or "-"))
            return self.opts.key_name
        return asked

    async def create(self, vm: VmRecord, fresh: bool = False) -> Instance:
        """Boot the server, or return the one of ours that already has this name (looked up
        unless `fresh`: Nova's names are not unique, and the look-up is a list call)."""
        user_data = await self.context.user_data(self.record, vm)

        def run(conn: openstack.connection.Connection) -> Instance:
            existing = [] if fresh else self._servers(conn, vm.vm_id)
            if existing:
                return self._instance(existing[0])
            args: dict[str, Any] = {
                "name": vm.vm_id,
                "image_id": self._image(conn, vm).id,
                "flavor_id": self._flavor(conn, vm).id,
                "networks": self._networks(conn, vm),
                "user_data": base64.b64encode(user_data).decode(),
                "metadata": {META_SITE: self.site, META_CLOUD: self.cloud,
                             META_INTENT: vm.intent_id, META_TYPE: vm.spec.vm_type[:255]},
            }
            key_name = self._key_name(conn, vm)
            if key_name:
                args["key_name"] = key_name
            groups = security_groups(vm.spec.security_groups, self.opts.security_groups)
            if groups:
                args["security_groups"] = [{"name": g} for g in groups]
            if self.opts.availability_zone:
                args["availability_zone"] = self.opts.availability_zone
            server = conn.compute.create_server(**args)
            # Nova answers a create with the id only: the server is being built.
            return self._instance(server).model_copy(update={"state": "creating"})
        return await self._call(f"create {vm.vm_id}", run)

    def _delete_and_wait(self, conn: openstack.connection.Connection, servers: Sequence[Any],
                         what: str) -> None:
        for server in servers:
            conn.compute.delete_server(server, ignore_missing=True)
        for server in servers:
            try:
                conn.compute.wait_for_delete(server, interval=0.5, wait=self.timeout_s)
            except sdk.ResourceTimeout:
                raise TemporaryError(f"delete {what}: the server is still there after "
                                     f"{self.timeout_s:.0f}s; retrying", delay=15.0) from None

    async def delete(self, vm_id: str) -> None:
        """Delete every server of ours with this name and wait until Nova no longer lists
        them (the registry entry goes only then); none left is success."""
        def run(conn: openstack.connection.Connection) -> None:
            servers = self._servers(conn, vm_id)
            for _ in range(DELETE_LOOKS - 1):
                if servers:
                    break
                # A server created a moment ago can be missing from Nova's list while it
                # moves from a build request into its cell: look again before calling it
                # gone, or it would outlive its registry entry (seen in the contract test).
                time.sleep(DELETE_LOOK_S)
                servers = self._servers(conn, vm_id)
            self._delete_and_wait(conn, servers, vm_id)
        await self._call(f"delete {vm_id}", run)

    async def delete_instance(self, instance_id: str) -> None:
        """Delete the server with this id, if it is ours, and wait until it is gone."""
        def run(conn: openstack.connection.Connection) -> None:
            try:
                # ignore_missing=True is deprecated: its default flips in SDK 6.0.
                server = conn.compute.find_server(instance_id, ignore_missing=False)
            except sdk.NotFoundException:
                return
            if self._ours(server):
                self._delete_and_wait(conn, [server], instance_id)
        await self._call(f"delete server {instance_id}", run)

    async def state(self, vm_id: str) -> Instance | None:
        """The server of ours with this name, or None."""
        def run(conn: openstack.connection.Connection) -> Instance | None:
            found = self._servers(conn, vm_id)
            return self._instance(found[0]) if found else None
        return await self._call(f"look up {vm_id}", run)

    async def capacity(self) -> CloudCapacity:
        """The project's absolute limits, and what servers that are not ours use of them."""
        def run(conn: openstack.connection.Connection) -> CloudCapacity:
            limits = conn.compute.get_limits().absolute
            ours = self._servers(conn)
            cores = sum(_flavor_size(s)[0] for s in ours)
            ram = sum(_flavor_size(s)[1] for s in ours)

            def limit(value: Any) -> int:
                return max(0, int(value or 0))  # -1 is unlimited: 0 here

            return CloudCapacity(
                cloud=self.cloud, source=f"nova absolute limits of {self.os_cloud}",
                max_instances=limit(limits.instances), max_cores=limit(limits.total_cores),
                max_memory_mb=limit(limits.total_ram),
                others_instances=max(0, int(limits.instances_used or 0) - len(ours)),
                others_cores=max(0, int(limits.total_cores_used or 0) - cores),
                others_memory_mb=max(0, int(limits.total_ram_used or 0) - ram),
                reported_at=time.time())
        return await self._call(f"read the limits of {self.cloud}", run)

    def watch(self, changed: Callable[[str], None]) -> None:
        """Nova sends no events we can subscribe to here: reconcile polls (one list call)."""

    async def close(self) -> None:
        """Close the connection and stop the worker threads."""
        def run() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        await self._calls.close(run)


def make_driver(record: CloudRecord, context: DriverContext) -> OpenstackDriver:
    """The OpenStack driver of one cloud, with the `[provisioner]` table's clouds_yaml
    (None = openstacksdk's own search)."""
    default = str(PROVIDER.provisioner_keys["clouds_yaml"])
    return OpenstackDriver(record, context,
                           context.provisioner.path_value("clouds_yaml", default))
