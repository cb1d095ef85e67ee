"""A real worker image, built here from Debian packages alone: trixie with `condor`,
`cloud-init` (NoCloud) and a kernel, as a raw ext4 disk plus the kernel and initrd to boot it.

The root is a cached debootstrap root (tests/condor_pool.py `build`), the disk is made from it
with `mke2fs -d` (no loop mount, no image download), and both are cached under
`.cache/worker-image-<hash of the recipe and the files below>`. What the image itself holds
beyond the packages is what any cloud image holds: where its root is, DHCP on its NIC,
cloud-init told to look for a NoCloud seed only (no network metadata service is probed), and
HTCondor off until contextualised (our user-data's runcmd starts it).

One piece belongs to the test network only. Here the central manager runs on the host's
loopback and advertises 127.0.0.1; a VM on QEMU's user network reaches the host at 10.0.2.2,
so every reverse connection HTCondor's CCB asks of the VM (to the schedd, a shadow, the
poller's retire command: all behind the pool's one shared port) would go to the VM itself.
`cs-testnet-forward` makes 127.0.0.1:PORT in the VM the host's 10.0.2.2:PORT when the kernel
command line says `cs_testnet_forward=PORT`. On a cloud the central manager advertises an
address its VMs reach, and the command line names no port.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.condor_pool import ROOT, Recipe, build

VM_ROOT = Recipe("condor-vm-root", (
    "condor", "cloud-init", "linux-image-amd64", "initramfs-tools", "systemd-sysv", "udev",
    "dbus", "e2fsprogs", "iproute2", "socat"))
"""The worker VM's system: HTCondor, cloud-init, a kernel, systemd (init, networkd)."""
LABEL = "cs-worker"
"""The root file system's label."""
DISK_SIZE = "4G"
"""The disk's size (a sparse file; jobs' scratch space lives there)."""
IMAGE_DIR = Path("/var/lib/cloudscheduler-test/worker")
"""Where kernel and initrd are put for QEMU (the libvirt-qemu user must read them)."""
FORWARD_PARAMETER = "cs_testnet_forward"
"""The kernel command line parameter naming the port 127.0.0.1 forwards to the host."""

FILES: dict[str, str] = {
    "etc/fstab": f"LABEL={LABEL} / ext4 defaults,errors=remount-ro 0 1\n",
    "etc/systemd/network/20-dhcp.network": """\
[Match]
Name=en* eth*

[Network]
DHCP=ipv4

[DHCPv4]
# No resolver: nothing in a test VM looks a name up outside (its own is in /etc/hosts).
UseDNS=no
""",
    "etc/cloud/cloud.cfg.d/90-cs-worker-image.cfg": """\
# cloudscheduler's test worker image: the seed is a NoCloud disk (label cidata); never probe
# a network metadata service. The network is the image's own (DHCP by networkd).
datasource_list: [NoCloud, None]
network: {config: disabled}
manage_etc_hosts: true
""",
    "etc/systemd/system/cs-testnet-forward.service": f"""\
[Unit]
Description=Test network only: 127.0.0.1:PORT is the central manager on the host
Before=condor.service
After=network.target

[Service]
ExecStart=/bin/sh -c 'for arg in $(cat /proc/cmdline); do case $arg in \\
  {FORWARD_PARAMETER}=*) port=$${{arg#*=}}; \\
  exec socat TCP-LISTEN:$$port,bind=127.0.0.1,fork,reuseaddr TCP:10.0.2.2:$$port;; \\
  esac; done'
Restart=on-failure

[Install]
WantedBy=multi-user.target
""",
}
"""The image's own files (root-relative path: text)."""
ENABLED = ("systemd-networkd.service", "cs-testnet-forward.service")
DISABLED = ("condor.service",)
"""HTCondor starts when our user-data's runcmd restarts it, configured."""


@dataclass(frozen=True)
class WorkerImage:
    """A built worker image."""

    disk: Path
    """The raw ext4 disk in the cache (qemu_host.add_base puts it in the storage pool)."""
    kernel: Path
    initrd: Path

    def cmdline(self, forward_port: int | None = None) -> str:
        """The kernel command line that boots this disk (with the test network's forward)."""
        line = f"root=LABEL={LABEL} rw console=ttyS0 panic=-1"
        return f"{line} {FORWARD_PARAMETER}={forward_port}" if forward_port else line

    def volume(self) -> str:
        """The disk's volume name in a storage pool (named for its recipe)."""
        return f"worker-{self.disk.parent.name.removeprefix('worker-image-')}.raw"


def _digest() -> str:
    recipe = repr((VM_ROOT.directory().name, sorted(FILES.items()), ENABLED, DISABLED, LABEL,
                   DISK_SIZE))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _say(started: float, what: str) -> None:
    print(f"worker image: {what} ({time.monotonic() - started:.0f}s)", file=sys.stderr,
          flush=True)


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... exited with {done.returncode}: "
                           f"{done.stderr.strip()[-1500:]}")


def _only(root: Path, pattern: str) -> Path:
    found = sorted((root / "boot").glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one {pattern} in {root / 'boot'}, found {found}")
    return found[0]


def build_image() -> WorkerImage:
    """The worker image, built if the cache has none for this recipe (needs root)."""
    started = time.monotonic()
    root = build(VM_ROOT)
    cache = ROOT / ".cache" / f"worker-image-{_digest()}"
    disk = cache / "disk.raw"
    if not disk.exists():
        for rel, text in FILES.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        for unit in ENABLED:
            _run("chroot", str(root), "systemctl", "enable", unit)
        for unit in DISABLED:
            _run("chroot", str(root), "systemctl", "disable", unit)
        for left in ("etc/hostname", "etc/resolv.conf"):
            (root / left).unlink(missing_ok=True)
        (root / "etc" / "machine-id").write_text("")  # made anew at each VM's first boot
        cache.mkdir(parents=True, exist_ok=True)
        building = disk.with_suffix(".building")
        building.unlink(missing_ok=True)
        _say(started, f"mke2fs -d {root} ({DISK_SIZE})")
        _run("mke2fs", "-q", "-F", "-t", "ext4", "-L", LABEL, "-d", str(root), str(building),
             DISK_SIZE)
        building.rename(disk)
        _say(started, f"disk ready: {disk}")
    IMAGE_DIR.mkdir(parents=True, exist_ok=True)
    for folder in (IMAGE_DIR.parent, IMAGE_DIR):
        folder.chmod(0o755)
    kernel, initrd = IMAGE_DIR / f"vmlinuz-{_digest()}", IMAGE_DIR / f"initrd-{_digest()}"
    for source, target in ((_only(root, "vmlinuz-*"), kernel), (_only(root, "initrd.img-*"),
                                                                initrd)):
        if not target.exists():
            shutil.copy(source, target)
            target.chmod(0o644)
    return WorkerImage(disk=disk, kernel=kernel, initrd=initrd)
