"""The single container's image, built here as a site builds it, and run with podman.

No image registry is reachable from the project's machines, so the Dockerfile's base
(`docker.io/library/debian:trixie-slim`) is made from `debootstrap --variant=minbase trixie`,
slimmed as Debian's own slim images are (no docs, man pages or locales, in the root and in
every package installed on it later), and imported under that name with `podman import`. The
Dockerfile stays the standard one: `podman build --pull=never` uses the local base. podman's
store is the cache: the base is made once per machine, and the build's layers are reused (a
code change rebuilds only the project's layers).

podman runs with `--runtime runc`: crun, podman's default on Debian 12, cannot run containers
on hosts whose cgroups are in hybrid mode (these machines'); runc can, on both Debian 12 and 13.

    python -m tests.container_image build    # base if missing, then the image; prints figures
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.condor_pool import ROOT, SUITE, _mirror

BASE = "docker.io/library/debian:trixie-slim"
"""The Dockerfile's base, as a site pulls it; here made by `base()`."""
IMAGE = "localhost/cloudscheduler:test"
"""The image the tests build from container/Dockerfile."""
RUNTIME = ("--runtime", "runc")
"""The OCI runtime every podman command here uses (see the module's docstring)."""
SLIM = """\
# As Debian's slim images: no documentation or translations in installed packages.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
"""dpkg's excludes in the base (/etc/dpkg/dpkg.cfg.d/slim)."""


class ContainerError(RuntimeError):
    """podman could not build or run the image; the message says which step and why."""


def podman(*argv: str, timeout: float = 600.0,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """`podman ARGV`, its output as text; a failure raises with podman's own words."""
    done = subprocess.run(["podman", *argv], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-8:]
        raise ContainerError(f"podman {' '.join(argv[:3])}... exited with {done.returncode}: "
                             + " | ".join(tail))
    return done


def _say(started: float, what: str) -> None:
    print(f"container image: {what} ({time.monotonic() - started:.0f}s)", file=sys.stderr,
          flush=True)


def ensure_host() -> None:
    """podman, runc and debootstrap installed (scripts/container-host.sh)."""
    if shutil.which("podman") and shutil.which("runc") and shutil.which("debootstrap"):
        return
    done = subprocess.run([str(ROOT / "scripts" / "container-host.sh")], capture_output=True,
                          text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise ContainerError(f"scripts/container-host.sh failed: {done.stderr.strip()[-800:]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _slim(root: Path) -> None:
    """What Debian's slim images leave out, out of the debootstrapped root; SLIM keeps it
    out of every package installed later."""
    (root / "etc" / "dpkg" / "dpkg.cfg.d" / "slim").write_text(SLIM)
    share = root / "usr" / "share"
    for folder in (share / "man", share / "info", root / "var" / "lib" / "apt" / "lists"):
        for path in folder.glob("*"):
            _remove(path)
    for path in share.glob("doc/*/*"):
        if path.name != "copyright":  # a package's licence travels with it
            _remove(path)
    for path in share.glob("locale/*"):
        if path.name != "locale.alias":
            _remove(path)
    for path in [*root.glob("var/cache/apt/*.bin"), *root.glob("var/cache/apt/archives/*.deb"),
                 *root.glob("var/log/*.log")]:
        _remove(path)


def base() -> None:
    """The base image, made from debootstrap if podman has none under BASE's name."""
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cs-base-", dir=ROOT / ".cache") as tmp:
        root = Path(tmp) / "root"
        _say(started, f"debootstrap --variant=minbase {SUITE} (no registry: the base is made)")
        done = subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(root), *_mirror()],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise ContainerError(f"debootstrap exited with {done.returncode}: "
                                 f"{done.stdout.strip()[-800:]}")
        _slim(root)
        (root / "etc" / "resolv.conf").unlink(missing_ok=True)  # the runtime writes its own
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."],
                               stdout=subprocess.PIPE)
        imported = subprocess.run(["podman", "import", "--change", 'CMD ["bash"]', "-", BASE],
                                  stdin=tar.stdout, capture_output=True, text=True,
                                  timeout=600, check=False)
        tar.wait(timeout=60)
        if imported.returncode != 0 or tar.returncode != 0:
            raise ContainerError(f"podman import of the base failed: {imported.stderr[-800:]}")
    _say(started, f"base {BASE} imported")


def _trust(workdir: Path) -> list[str]:
    """Build-time mounts for a host behind a TLS-inspecting proxy: when pip here trusts a CA
    bundle of the host's (PIP_CERT), pip in the build does too. Nothing is left in the image."""
    bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or ""
    if not bundle or not Path(bundle).is_file():
        return []
    conf = workdir / "pip.conf"
    conf.write_text("[global]\ncert = /run/build-ca.crt\n")
    return ["--volume", f"{bundle}:/run/build-ca.crt:ro", "--volume", f"{conf}:/etc/pip.conf:ro"]


@dataclass(frozen=True)
class Built:
    """An image built by `build`, with the figures `make bench` prints."""

    seconds: float
    megabytes: float


def build(tag: str = IMAGE, fresh: bool = False) -> Built:
    """container/Dockerfile built as `tag` (the base made first if missing); `fresh`: with
    none of the build's cached layers (the base stays)."""
    ensure_host()
    base()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cs-build-") as tmp:
        podman("build", *RUNTIME, "--pull=never", *(["--no-cache"] if fresh else []),
               *_trust(Path(tmp)),
               "--file", str(ROOT / "container" / "Dockerfile"), "--tag", tag, str(ROOT),
               timeout=1800)
    seconds = time.monotonic() - started
    size = json.loads(podman("image", "inspect", tag).stdout)[0]["Size"]
    return Built(seconds=seconds, megabytes=size / 1e6)


def main(argv: list[str]) -> int:
    """`python -m tests.container_image build`: build, print the figures."""
    if argv != ["build"]:
        print(__doc__, file=sys.stderr)
        return 2
    built = build()
    print(f"container_build_s={built.seconds:.1f}")
    print(f"container_image_mb={built.megabytes:.0f}")
    return 0


class Container:
    """One container of the image, driven with the podman commands a site types."""

    def __init__(self, name: str, image: str = IMAGE) -> None:
        self.name = name
        self.image = image

    def run(self, *options: str) -> None:
        """`podman run -d --privileged` with `options` (volumes, -e, --ip, ...)."""
        podman("rm", "--force", "--volumes", "--time", "0", self.name, check=False)
        podman("run", *RUNTIME, "--detach", "--privileged", "--name", self.name, *options,
               self.image)

    def exec(self, *argv: str, user: str = "", stdin: str | None = None,
             check: bool = True, timeout: float = 120.0) -> str:
        """`podman exec` (as `user`, from their home); stdout, or raise with the output."""
        who = ["--user", user, "--workdir", f"/home/{user}"] if user else []
        done = subprocess.run(["podman", "exec", *(["--interactive"] if stdin else []), *who,
                               self.name, *argv], input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise ContainerError(f"podman exec {self.name} {' '.join(argv)} exited with "
                                 f"{done.returncode}: {done.stdout[-1500:]}{done.stderr[-1500:]}")
        return done.stdout

    def programs(self) -> dict[str, str]:
        """supervisord's programs and their states (empty while it is not answering)."""
        out = self.exec("supervisorctl", "-c", "/etc/cloudscheduler/supervisord.conf",
                        "status", check=False, timeout=30)
        return {fields[0]: fields[1] for fields in map(str.split, out.splitlines())
                if len(fields) >= 2}

    def logs(self) -> str:
        """What the container printed (the entrypoint's and supervisord's lines)."""
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def state(self) -> str:
        """podman's state of the container: running, exited, ..."""
        done = podman("inspect", "--format", "{{.State.Status}}", self.name, check=False)
        return done.stdout.strip() or "absent"

    def remove(self) -> None:
        """Gone, whatever it was doing, with its anonymous volumes (the image's VOLUME when
        no volume was named); a named volume stays."""
        podman("rm", "--force", "--volumes", "--time", "0", self.name, check=False)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
