"""The registry at scale, on a real nats-server: the admin service pages through it (no reply
holds it whole; pages by key neither repeat nor skip a VM while others are written), says
which VMs need attention in a status of bounded size, and a read of one cloud's VMs out of a
bucket of more than 100,000 keys (past what the server lists in one answer) is whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bus import subjects
from bus.connection import Bus
from bus.errors import AdminError
from bus.kv import TypedKv
from bus.mirror import KvMirror
from bus.schemas import ATTENTION_MAX, VmListRequest, VmRecord, VmSpec
from services.admin.service import STARTING_TOO_LONG_S, AdminService
from tests.natsserver import NatsServer

SPEC = VmSpec(vm_type="w", cores=1, memory_mb=1024)


def record(cloud: str, i: int, state: str = "running", age_s: float = 0.0) -> VmRecord:
    now = time.time()
    return VmRecord(vm_id=f"vm-{i:06d}", cloud=cloud, intent_id=f"boot-{i}", class_key="k",
                    spec=SPEC, state=state, created_at=now - age_s,  # type: ignore[arg-type]
                    updated_at=now)


async def fill(kv: TypedKv[VmRecord], records: list[VmRecord], batch: int = 500) -> None:
    for start in range(0, len(records), batch):
        await asyncio.gather(*(kv.put(subjects.vm_key(r.cloud, r.vm_id), r)
                               for r in records[start:start + batch]))


@pytest.fixture
async def own_bus(fresh_nats: NatsServer) -> AsyncIterator[Bus]:
    """A bus on a NATS of the test's own: the registry holds only what the test writes."""
    bus = await Bus.connect(fresh_nats.url, "test", wait_s=10)
    await bus.ensure_infra()
    yield bus
    await bus.close()


@pytest.fixture
async def admin(own_bus: Bus) -> AsyncIterator[AdminService]:
    service = AdminService(own_bus)
    yield service
    await service.close()


async def test_pages_cover_the_registry_once_in_key_order_and_by_cloud(
    admin: AdminService,
) -> None:
    await fill(admin.vms, [record("pa", i) for i in range(1500)]
               + [record("pb", i) for i in range(1000)])
    keys: list[str] = []
    after = ""
    while True:
        page = await admin.vm_list(VmListRequest(after=after, limit=700))
        assert page.total == 2500 and len(page.vms) <= 700
        keys += [subjects.vm_key(v.cloud, v.vm_id) for v in page.vms]
        if not page.next_after:
            break
        after = page.next_after
    assert keys == sorted(keys) and len(keys) == len(set(keys)) == 2500
    only_b = await admin.vm_list(VmListRequest(cloud="pb", limit=5000))
    assert {v.cloud for v in only_b.vms} == {"pb"} and len(only_b.vms) == only_b.total == 1000
    assert only_b.next_after == ""
    with pytest.raises(AdminError, match="a page of 0 VMs: ask for 1 to 5000"):
        await admin.vm_list(VmListRequest(limit=0))


async def test_paging_while_vms_come_and_go_skips_and_repeats_none_that_stayed(
    admin: AdminService,
) -> None:
    await fill(admin.vms, [record("pa", i) for i in range(0, 3000, 2)])  # even numbers
    seen: list[str] = []
    after = ""
    odd = iter(range(1, 3000, 2))
    while True:
        page = await admin.vm_list(VmListRequest(after=after, limit=200))
        seen += [v.vm_id for v in page.vms]
        # Meanwhile new VMs are booked everywhere in the key space, and the registry is
        # read afresh for the next page (as after REGISTRY_REUSE_S).
        await fill(admin.vms, [record("pa", next(odd)) for _ in range(50)])
        admin._read_at = -1e9
        if not page.next_after:
            break
        after = page.next_after
    stayed = {f"vm-{i:06d}" for i in range(0, 3000, 2)}
    assert stayed <= set(seen) and len(seen) == len(set(seen))
    assert seen == sorted(seen)


async def test_the_status_holds_counts_and_the_vms_needing_attention(
    admin: AdminService,
) -> None:
    records = [record("pa", i) for i in range(2000)]
    records += [record("pa", 2000 + i, "error") for i in range(ATTENTION_MAX + 10)]
    records += [record("pa", 3000, "booting", age_s=STARTING_TOO_LONG_S + 60),
                record("pa", 3001, "booting", age_s=5), record("pa", 3002, "retiring")]
    await fill(admin.vms, records)
    status = await admin.status()
    assert status.vm_total == len(records)
    assert status.attention_total == ATTENTION_MAX + 10 + 2  # errors, the stuck one, retiring
    assert len(status.vms) == ATTENTION_MAX
    assert all(v.state in ("error", "booting", "retiring") for v in status.vms)
    shown = {v.vm_id for v in status.vms}
    assert "vm-003001" not in shown  # booting for 5 s: nothing to look at yet


async def test_an_answer_holds_every_write_made_before_it_was_asked(
    admin: AdminService,
) -> None:
    """The registry is answered from memory, kept by a watch: an answer waits until the
    watch has brought every write that finished before the question, deletes included."""
    await fill(admin.vms, [record("pa", i) for i in range(1000)])
    assert (await admin.status()).vm_total == 1000  # the mirror is loaded
    for round_ in range(5):
        base = 1000 + 400 * round_
        await fill(admin.vms, [record("pa", base + i) for i in range(400)])
        for i in range(round_ * 50, round_ * 50 + 50):
            assert await admin.vms.delete(subjects.vm_key("pa", f"vm-{i:06d}"))
        status = await admin.status()
        assert status.vm_total == 1000 + 400 * (round_ + 1) - 50 * (round_ + 1)
        page = await admin.vm_list(VmListRequest(cloud="pa", limit=5000))
        assert f"vm-{base + 399:06d}" in {v.vm_id for v in page.vms}
        assert f"vm-{round_ * 50:06d}" not in {v.vm_id for v in page.vms}


@pytest.mark.slow
async def test_one_clouds_vms_out_of_more_than_100000_keys(own_bus: Bus) -> None:
    """Past 100,000 keys under a prefix the server pages its subject list; the read falls
    back to the whole bucket and must still return exactly that cloud's VMs."""
    kv: TypedKv[VmRecord] = own_bus.kv(subjects.VMS_BUCKET, VmRecord)
    big = 100_010
    await fill(kv, [record("big", i) for i in range(big)], batch=2000)
    await fill(kv, [record("small", i) for i in range(30)])

    async def nothing(key: str, op: str | None, data: bytes | None, revision: int) -> None:
        return None

    # The listing path gives up here (the server lists 100,000 subjects in one answer)...
    assert await kv._read_under("big.", 60.0, nothing) is False
    assert await kv._read_under("small.", 60.0, nothing) is True
    started = time.monotonic()  # ...and items() reads the whole bucket instead.
    under_big = await kv.items(prefix="big.", timeout=60)
    took = time.monotonic() - started
    assert len(under_big) == big and all(k.startswith("big.") for k in under_big)
    assert under_big[subjects.vm_key("big", "vm-100009")].value.vm_id == "vm-100009"
    under_small = await kv.items(prefix="small.")
    assert sorted(under_small) == sorted(subjects.vm_key("small", f"vm-{i:06d}")
                                         for i in range(30))
    print(f"read of {big} keys through the whole-bucket path: {took:.1f} s")


async def test_reads_leave_no_consumer_behind(own_bus: Bus) -> None:
    """A provisioner of 200 clouds reads the registry 40 times a second: consumers left to
    expire piled up past what nats-server allows a stream (1,000), and every read failed."""
    kv: TypedKv[VmRecord] = own_bus.kv(subjects.VMS_BUCKET, VmRecord)
    await fill(kv, [record(f"c{i}", i) for i in range(20)])
    for i in range(20):
        assert len(await kv.items(prefix=f"c{i}.")) == 1
        assert len(await kv.items()) == 20
    await own_bus.read_since(subjects.HISTORY_STREAM, subjects.history(), 0.0, VmRecord)
    for stream in (f"KV_{subjects.VMS_BUCKET}", subjects.HISTORY_STREAM):
        assert (await own_bus.js.stream_info(stream)).state.consumer_count == 0, stream


async def test_a_grouped_mirror_holds_each_clouds_vms_as_written(own_bus: Bus) -> None:
    """The provisioner's mirror: one cloud's VMs by their key's first token, kept by the
    watch through bookings and deletes, never another cloud's."""
    kv: TypedKv[VmRecord] = own_bus.kv(subjects.VMS_BUCKET, VmRecord)
    await fill(kv, [record("ga", i) for i in range(300)] + [record("gb", i) for i in range(5)])
    mirror = KvMirror(kv, grouped=True)
    assert not mirror.loaded and await mirror.current(1.0) is False  # nothing to go by yet
    await mirror.load()
    try:
        await fill(kv, [record("ga", 300 + i) for i in range(100)])
        for i in range(50):
            assert await kv.delete(subjects.vm_key("ga", f"vm-{i:06d}"))
        assert await mirror.current(5.0)
        assert sorted(mirror.group("ga")) == [subjects.vm_key("ga", f"vm-{i:06d}")
                                              for i in range(50, 400)]
        assert len(mirror.group("gb")) == 5 and mirror.group("nowhere") == {}
    finally:
        await mirror.close()


async def test_a_mirror_whose_watch_stopped_reads_afresh_once_a_reader_waits_in_vain(
    own_bus: Bus,
) -> None:
    kv: TypedKv[VmRecord] = own_bus.kv(subjects.VMS_BUCKET, VmRecord)
    await fill(kv, [record("ha", i) for i in range(10)])
    mirror = KvMirror(kv, grouped=True)
    await mirror.load()
    try:
        watch = mirror._watch  # ended, as after a failure it has not survived (not a close:
        assert watch is not None  # a closed mirror's reads start no watch)
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        await kv.put(subjects.vm_key("ha", "vm-000100"), record("ha", 100))
        assert await mirror.current(0.5) is False  # nothing brings the write...
        deadline = time.monotonic() + 20
        while not await mirror.current(0.5):  # ... but the read afresh it started does
            assert time.monotonic() < deadline, "the mirror never caught up"
        assert len(mirror.group("ha")) == 11
        await kv.delete(subjects.vm_key("ha", "vm-000001"))
        assert await mirror.current(5.0) and len(mirror.group("ha")) == 10  # watching again
    finally:
        await mirror.close()
