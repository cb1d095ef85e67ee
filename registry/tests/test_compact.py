"""Compacted records: equal parts shared, values unchanged, memory at least halved."""

from __future__ import annotations

import gc
import time
import tracemalloc

from bus import codec
from bus.schemas import DemandClass, Message, VmRecord, VmSpec
from registry.compact import Compactor


def records(n: int) -> list[VmRecord]:
    """`n` VM records as a mirror gets them: each decoded from its own bytes."""
    now = time.time()
    spec = VmSpec(vm_type="worker", image="worker.qcow2", cores=1, memory_mb=512)
    return [codec.decode_body(codec.encode_body(VmRecord(
        vm_id=f"cs-site-cloud-k1abcdef-{i}", cloud="cloud", intent_id=f"boot-{i}-{now}",
        class_key="k1abcdef0123", spec=spec, state="running", created_at=now,
        updated_at=now, trace=f"{i:016x}")), VmRecord, "test") for i in range(n)]


def test_equal_parts_are_shared_and_values_do_not_change() -> None:
    a, b = records(2)
    assert a.spec is not b.spec
    before = (a.model_dump(), b.model_dump(), hash(a), a.model_dump(exclude_unset=True))
    compact = Compactor()
    assert compact(a) is a and compact(b) is b
    assert a.spec is b.spec
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert a.cloud is b.cloud and a.state is b.state  # shared text, decoded apart
    assert (a.model_dump(), b.model_dump(), hash(a), a.model_dump(exclude_unset=True)) == before
    assert codec.decode_body(codec.encode_body(a), VmRecord, "test") == a
    other = b.model_copy(update={"spec": VmSpec(vm_type="big", cores=8)})
    assert compact(other).spec is not a.spec  # a different spec stays its own


def test_a_part_that_cannot_be_hashed_is_kept_as_it_is() -> None:
    class Holder(Message):
        part: DemandClass  # holds dicts: no hash

    holder = Holder(part=DemandClass(key="k", vm_type="w", image={"": "x"}))
    assert Compactor()(holder).part == DemandClass(key="k", vm_type="w", image={"": "x"})


def test_compacted_records_take_less_than_half_the_memory() -> None:
    def held(compact: Compactor | None) -> float:
        gc.collect()
        tracemalloc.start()
        kept = records(2000)
        if compact is not None:
            kept = [compact(r) for r in kept]
        gc.collect()
        size = tracemalloc.get_traced_memory()[0] / len(kept)
        tracemalloc.stop()
        return size

    plain, compacted = held(None), held(Compactor())
    assert compacted < plain / 2, (plain, compacted)
