"""Worker contextualisation: the user-data a VM boots with, rendered from its cloud's template.

The template is cloud-init user-data with `${VAR}` placeholders (Python's string.Template). It
travels in the cloud's record, so every provisioner renders the same text; the pool credential
does not: each provisioner reads it from its own `[worker] token_file`, so it never crosses
the bus, and rendered user-data is never logged.
"""

from __future__ import annotations

import base64
import shlex
import string
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bus.errors import ConfigError, PermanentError, TemporaryError
from bus.schemas import VmRecord
from siteconfig import SiteConfig
from siteconfig.textfile import read_text

DEFAULT_USER_DATA = """\
#cloud-config
# cloudscheduler's built-in worker user-data: make the VM's HTCondor a worker of the pool
# (one partitionable slot, reached through the central manager's CCB: workers on clouds
# often have private addresses), advertise our VM id and v1's VMType from its startd,
# install the pool token and the credentials that let the poller's retire command through
# (its master accepts ADMINISTRATOR commands from the poller's certificate only), restart
# HTCondor.
write_files:
  - path: /etc/condor/config.d/50-cloudscheduler.conf
    permissions: "0644"
    content: |
      use ROLE : Execute
      use FEATURE : PartitionableSlot
      CONDOR_HOST = ${CENTRAL_MANAGER}
      CCB_ADDRESS = $$(COLLECTOR_HOST)
      CS_VM_ID = "${CS_VM_ID}"
      CS_VM_TYPE = "${CS_VM_TYPE}"
      VMType = "${CS_VM_TYPE}"
      STARTD_ATTRS = $$(STARTD_ATTRS) CS_VM_ID CS_VM_TYPE VMType
      MASTER_ATTRS = $$(MASTER_ATTRS) CS_VM_ID
      SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS
      SEC_ADMINISTRATOR_AUTHENTICATION_METHODS = FS, SSL
      AUTH_SSL_SERVER_CERTFILE = /etc/condor/cloudscheduler/worker.crt
      AUTH_SSL_SERVER_KEYFILE = /etc/condor/cloudscheduler/worker.key
      AUTH_SSL_SERVER_CAFILE = /etc/condor/cloudscheduler/ca.crt
      AUTH_SSL_REQUIRE_CLIENT_CERTIFICATE = True
      CERTIFICATE_MAPFILE = /etc/condor/cloudscheduler/mapfile
      ALLOW_ADMINISTRATOR = $$(ALLOW_ADMINISTRATOR) poller@cloudscheduler
  - path: /etc/condor/tokens.d/cloudscheduler.token
    permissions: "0600"
    content: |
      ${CS_POOL_TOKEN}
  - path: /etc/condor/cloudscheduler/ca.crt
    permissions: "0644"
    encoding: b64
    content: ${CS_SSL_CA}
  - path: /etc/condor/cloudscheduler/worker.crt
    permissions: "0644"
    encoding: b64
    content: ${CS_SSL_CERT}
  - path: /etc/condor/cloudscheduler/worker.key
    permissions: "0600"
    encoding: b64
    content: ${CS_SSL_KEY}
  - path: /etc/condor/cloudscheduler/mapfile
    permissions: "0644"
    content: |
      SSL "^/O=cloudscheduler/CN=cloudscheduler-poller$$" poller@cloudscheduler
runcmd:
  - [systemctl, restart, condor]
"""
"""The worker's user-data when its cloud names no template. v1's jobs ask for a VM type with
`Requirements = VMType =?= "..."`, which looks the attribute up in the machine's ad, so the
startd advertises VMType as v1's workers did. A worker cannot check the poller's IDTOKEN (it
holds no pool signing key, and must not: with it a VM could mint any identity), so the
poller's DaemonsOffPeaceful authenticates with SSL: the site CA's certificate, the workers'
certificate and key (all workers share it; it maps to no one) and a map that names only the
poller's certificate."""


TOKEN_TIMEOUT_S = 30.0
"""The default of `[worker] token_timeout_s`."""


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker VM is told at boot (the `[worker]` table), read by provisioners."""

    central_manager: str
    """Host (and optional :port) of the pool's collector; default: this machine's name."""
    token_file: Path | None
    """File holding the pool credential (an IDTOKEN) for the VMs; None = VMs get none."""
    token_command: tuple[str, ...] = ()
    """A command (argv, no shell) whose standard output is the credential, run for every boot,
    e.g. `condor_token_create -identity worker@pool`; () = use token_file."""
    token_timeout_s: float = TOKEN_TIMEOUT_S
    """How long token_command may take before the boot fails as temporary (seconds)."""
    ssl_dir: Path | None = None
    """Folder with the site CA's ca.crt and the workers' worker.crt and worker.key (the
    container's entrypoint makes them): handed to every VM so that its master accepts the
    poller's retire command; None = VMs get none, and their masters refuse it."""

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"central_manager", "token_file", "token_command", "token_timeout_s", "ssl_dir"})
    SSL_FILES: ClassVar[tuple[str, ...]] = ("ca.crt", "worker.crt", "worker.key")
    """What ssl_dir holds, in the order of the CS_SSL_CA, CS_SSL_CERT, CS_SSL_KEY values."""
    """The keys of the `[worker]` table."""

    @classmethod
    def from_site(cls, site: SiteConfig) -> WorkerSettings:
        """Read and validate the `[worker]` table."""
        sec = site.section("worker")
        sec.check_keys(cls.KEYS)
        raw = sec.string("token_command", "")
        try:
            command = tuple(shlex.split(raw))
        except ValueError as exc:
            raise ConfigError(f"{site.path}: [worker] token_command: {exc}") from None
        token_file = sec.path_value("token_file", "")
        if command and token_file is not None:
            raise ConfigError(f"{site.path}: [worker] has both token_file and token_command; "
                              "the VMs' token comes from one of them")
        return cls(central_manager=sec.string("central_manager", "localhost"),
                   token_file=token_file, token_command=command,
                   token_timeout_s=sec.number("token_timeout_s", TOKEN_TIMEOUT_S, minimum=1.0),
                   ssl_dir=sec.path_value("ssl_dir", ""))

    def ssl_files(self) -> tuple[str, str, str]:
        """ca.crt, worker.crt and worker.key of ssl_dir, base64 (one line each, for
        cloud-init's `encoding: b64`); empty without ssl_dir. Errors never quote a file."""
        if self.ssl_dir is None:
            return ("", "", "")
        found: list[str] = []
        for name in self.SSL_FILES:
            try:
                found.append(base64.b64encode((self.ssl_dir / name).read_bytes()).decode())
            except OSError as exc:
                raise PermanentError(f"cannot read {self.ssl_dir / name} ([worker] ssl_dir): "
                                     f"{exc.strerror}") from None
        return (found[0], found[1], found[2])

    def token(self) -> str:
        """The pool credential, fresh for every boot (tokens are rotated on disk, or minted
        per VM by the command). Errors never quote the command's output: it may be a token."""
        if self.token_command:
            return self._run_token_command()
        if self.token_file is None:
            return ""
        try:
            return read_text(self.token_file, "the pool token ([worker] token_file)").strip()
        except ConfigError as exc:
            raise PermanentError(f"cannot read the pool token: {exc}") from None

    def _run_token_command(self) -> str:
        name = self.token_command[0]
        try:
            done = subprocess.run(self.token_command, capture_output=True, text=True,
                                  timeout=self.token_timeout_s, check=False)
        except FileNotFoundError:
            raise PermanentError(f"[worker] token_command: {name} not found") from None
        except subprocess.TimeoutExpired:
            raise TemporaryError(f"[worker] token_command {name} took longer than "
                                 f"{self.token_timeout_s:.0f}s") from None
        token = done.stdout.strip()
        if done.returncode != 0 or not token:
            # stderr's last line says why (condor_token_create: "Failed to ..."); it never
            # holds the token, which goes to stdout.
            why = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise TemporaryError(f"[worker] token_command {name} exited with "
                                 f"{done.returncode}: {why}")
        return token


def render(template: str, vm: VmRecord, site: str, worker: WorkerSettings,
           default: str = "", extra: Mapping[str, str] | None = None) -> bytes:
    """The user-data of `vm`: its cloud's template (or `default`, the provider's built-in
    one, or else the built-in cloud-init worker) filled in; `extra` are the provider's own
    placeholders."""
    ca, cert, key = worker.ssl_files()
    values = {
        **(extra or {}),
        "CENTRAL_MANAGER": worker.central_manager,
        "CS_VM_ID": vm.vm_id,
        "CS_SITE": site,
        "CS_CLOUD": vm.cloud,
        "CS_VM_TYPE": vm.spec.vm_type,
        "CS_INTENT_ID": vm.intent_id,
        "CS_CORES": str(vm.spec.cores),
        "CS_MEMORY_MB": str(vm.spec.memory_mb),
        "CS_POOL_TOKEN": worker.token(),
        "CS_SSL_CA": ca,
        "CS_SSL_CERT": cert,
        "CS_SSL_KEY": key,
    }
    try:
        return string.Template(template or default or DEFAULT_USER_DATA).substitute(values).encode()
    except (KeyError, ValueError) as exc:
        # Config load checks templates; this catches a record written by something else.
        raise PermanentError(f"user-data template of cloud {vm.cloud} is invalid: {exc}") \
            from None
