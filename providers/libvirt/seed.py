"""The NoCloud seed of a VM: an ISO 9660 image labelled `cidata` holding user-data and
meta-data, which cloud-init (or any init that looks for the label) reads at boot.

Built in memory with pycdlib: no genisoimage/xorriso on the host, and the image is uploaded
through libvirt's storage API, so it works the same on a remote `qemu+ssh://` host.
"""

from __future__ import annotations

import io

import pycdlib

LABEL = "cidata"


def meta_data(vm_id: str) -> bytes:
    """cloud-init's meta-data: the instance id (a new id reruns per-instance modules)."""
    return f"instance-id: {vm_id}\nlocal-hostname: {vm_id}\n".encode()


def build(vm_id: str, user_data: bytes) -> bytes:
    """The seed ISO for `vm_id`, with Rock Ridge and Joliet names (`user-data`, `meta-data`)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    for name, iso_name, data in (("user-data", "USERDATA.;1", user_data),
                                 ("meta-data", "METADATA.;1", meta_data(vm_id))):
        iso.add_fp(io.BytesIO(data), len(data), f"/{iso_name}", rr_name=name,
                   joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def volume_label(image: bytes) -> str:
    """The volume identifier of an ISO 9660 image (what blkid calls LABEL)."""
    # The primary volume descriptor sits at sector 16; its identifier at byte 40, 32 bytes.
    return image[0x8000 + 40:0x8000 + 72].decode("ascii").rstrip()


def read(image: bytes) -> dict[str, bytes]:
    """The files of a seed image by Rock Ridge name (to check what a VM will see)."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        files: dict[str, bytes] = {}
        for name in ("user-data", "meta-data"):
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
            files[name] = buf.getvalue()
        return files
    finally:
        iso.close()
