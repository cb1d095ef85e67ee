"""The VM's shape, declared once: VmSpec is VmShape resolved for one cloud."""

from __future__ import annotations

from typing import get_origin

from bus.schemas import DemandClass, VmShape, VmSpec


def test_the_spec_holds_the_shapes_fields_with_maps_resolved() -> None:
    """A field added to one of the two and not the other would be lost between the demand
    and the driver."""
    shape, spec = VmShape.model_fields, VmSpec.model_fields
    assert set(shape) == set(spec), sorted(set(shape) ^ set(spec))
    for name, field in shape.items():
        wanted = str if get_origin(field.annotation) is dict else field.annotation
        assert spec[name].annotation == wanted, name
    assert set(shape) <= set(DemandClass.model_fields)  # a demand class is a shape


def test_a_shape_resolves_per_cloud_as_v1_read_its_maps() -> None:
    shape = VmShape(vm_type="w", image={"": "base.img", "cc-west": "west.img"},
                    flavor={"otter": "t1"}, cores=2, memory_mb=4096, network={"": "net0"},
                    key_name={"cc-west": "mykey"}, security_groups=("default", "condor"))
    assert shape.spec_for("CC-West") == VmSpec(
        vm_type="w", image="west.img", flavor="", cores=2, memory_mb=4096, network="net0",
        key_name="mykey", security_groups=("default", "condor"))
    assert shape.spec_for("otter") == VmSpec(
        vm_type="w", image="base.img", flavor="t1", cores=2, memory_mb=4096, network="net0",
        security_groups=("default", "condor"))
