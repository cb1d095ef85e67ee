"""A tiny real guest for the QEMU tests, built here from Debian's packages (no image download).

Kernel: Debian's `linux-image-amd64` (its versioned package, fetched with `apt-get download`
and unpacked with `dpkg-deb -x`). Initramfs: busybox-static plus the virtio and isofs modules,
written as a newc cpio in Python. Its /init finds the disk labelled `cidata` (our NoCloud
seed), mounts it, and prints the user-data's CS_VM_ID lines to the serial console, which is
what the test reads back from the console log.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "guest"
GUEST_DIR = Path("/var/lib/cloudscheduler-test/guest")
"""Where kernel and initrd are put for QEMU: outside the repo, so the unprivileged QEMU user
(libvirt-qemu) can reach them whatever the permissions of the checkout's folders."""
MODULES = ("virtio_pci", "virtio_blk", "isofs")
"""What /init loads (with their dependencies, in order): the seed is a virtio disk."""
MARK = "cs-guest:"
"""Every line /init prints starts with this."""

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /mnt
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m.ko; done
echo "{MARK} up"
dev=""
for i in $(seq 1 300); do
  for d in /dev/vd?; do
    # The ISO 9660 volume label sits at byte 32808 (Debian's busybox has no blkid).
    [ -b "$d" ] && [ "$(dd if=$d bs=1 skip=32808 count=6 2>/dev/null)" = cidata ] && dev=$d
  done
  [ -n "$dev" ] && break
  sleep 0.1
done
if [ -z "$dev" ]; then
  echo "{MARK} no disk labelled cidata"
elif mount -t iso9660 -o ro "$dev" /mnt; then
  grep CS_VM_ID /mnt/user-data | sed 's/^/{MARK} /'
else
  echo "{MARK} cannot mount $dev"
fi
echo "{MARK} done"
while true; do sleep 3600; done
"""


@dataclass(frozen=True)
class Guest:
    """Paths of the built guest."""

    kernel: Path
    initrd: Path


def _run(*cmd: str, cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): "
                           f"{result.stderr.strip()[-2000:]}")
    return result.stdout


def _kernel_package() -> str:
    """The versioned kernel package that linux-image-amd64 points at today."""
    for _ in range(2):
        out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Depends: linux-image-"):
                return line.removeprefix("Depends: ")
        _run("apt-get", "update", "-qq")  # a fresh machine has no package lists yet
    raise RuntimeError("apt-cache knows no linux-image-amd64; is this Debian?")


def _unpack(package: str) -> Path:
    """`package` downloaded and unpacked under the cache (once)."""
    target = CACHE / package
    if (target / ".done").exists():
        return target
    download = CACHE / "debs"
    download.mkdir(parents=True, exist_ok=True)
    for old in download.glob(f"{package}_*.deb"):
        old.unlink()
    _run("apt-get", "download", package, cwd=download)
    deb = next(download.glob(f"{package}_*.deb"))
    shutil.rmtree(target, ignore_errors=True)
    _run("dpkg-deb", "-x", str(deb), str(target))
    (target / ".done").touch()
    return target


def _depends(ko: Path) -> list[str]:
    """A module's dependencies, from its .modinfo `depends=` entry."""
    for field in ko.read_bytes().split(b"\0"):
        if field.startswith(b"depends="):
            return [d for d in field[len(b"depends="):].decode().split(",") if d]
    return []


def _module_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[tuple[str, Path]]:
    """`wanted` with their dependencies, each after what it depends on."""
    files = {ko.stem.replace("-", "_"): ko for ko in modules_dir.rglob("*.ko")}
    order: list[tuple[str, Path]] = []

    def visit(name: str) -> None:
        if name in (n for n, _ in order):
            return
        ko = files.get(name)
        if ko is None:
            raise RuntimeError(f"module {name} is not in {modules_dir} (built in?)")
        for dep in _depends(ko):
            visit(dep)
        order.append((name, ko))

    for name in wanted:
        visit(name)
    return order


def _cpio_entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
                ino: int = 0) -> bytes:
    """One newc cpio record."""
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
    pad_name = (-(len(header) + len(encoded))) % 4
    return header + encoded + b"\0" * pad_name + data + b"\0" * ((-len(data)) % 4)


def initramfs(busybox: bytes, modules: list[tuple[str, Path]]) -> bytes:
    """The gzip'd newc initramfs: busybox, the modules, a load order and /init."""
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [
        ("bin", 0o040755, b"", (0, 0)), ("dev", 0o040755, b"", (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)), ("lib", 0o040755, b"", (0, 0)),
        ("lib/modules", 0o040755, b"", (0, 0)),
        ("bin/busybox", 0o100755, busybox, (0, 0)),
        ("init", 0o100755, INIT.encode(), (0, 0)),
        ("modules.order", 0o100644, "\n".join(n for n, _ in modules).encode() + b"\n", (0, 0)),
    ]
    entries += [(f"lib/modules/{name}.ko", 0o100644, ko.read_bytes(), (0, 0))
                for name, ko in modules]
    body = b"".join(_cpio_entry(n, m, d, r, ino=i + 1) for i, (n, m, d, r) in enumerate(entries))
    return gzip.compress(body + _cpio_entry("TRAILER!!!", 0), mtime=0)


def build() -> Guest:
    """Kernel and initrd under GUEST_DIR, built once per kernel package."""
    package = _kernel_package()
    kernel_root = _unpack(package)
    busybox_root = _unpack("busybox-static")
    version = package.removeprefix("linux-image-")
    GUEST_DIR.mkdir(parents=True, exist_ok=True)
    GUEST_DIR.parent.chmod(0o755)
    GUEST_DIR.chmod(0o755)
    kernel = GUEST_DIR / f"vmlinuz-{version}"
    initrd = GUEST_DIR / f"initrd-{version}.gz"
    if not kernel.exists():
        shutil.copy(kernel_root / "boot" / f"vmlinuz-{version}", kernel)
    modules = _module_order(kernel_root / "lib" / "modules" / version, MODULES)
    initrd.write_bytes(initramfs((busybox_root / "bin" / "busybox").read_bytes(), modules))
    for path in (kernel, initrd):
        path.chmod(0o644)
    return Guest(kernel=kernel, initrd=initrd)
