"""The only module that imports libvirt: domains for VMs, tagged in a namespaced <metadata>.

Every libvirt call runs on one worker thread per cloud (a libvirt connection is used from one
thread at a time) under a timeout of ours; libvirt errors are translated here, once, into
TemporaryError / OutOfResources / PermanentError.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TypeVar
from xml.sax.saxutils import escape

import libvirt

from bus.errors import OutOfResources, PermanentError, TemporaryError
from bus.schemas import Instance, InstanceState, VmRecord

NAMESPACE = "https://cloudscheduler.dev/xmlns/vm/1"
"""Our <metadata> namespace: its presence marks a domain as ours."""
PREFIX = "cs"

T = TypeVar("T")

_STATES: dict[int, InstanceState] = {
    libvirt.VIR_DOMAIN_NOSTATE: "unknown",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "running",
    libvirt.VIR_DOMAIN_SHUTDOWN: "deleting",
    libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
    libvirt.VIR_DOMAIN_CRASHED: "error",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "stopped",
}

def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; we translate and log them instead."""


libvirt.registerErrorHandler(_quiet, None)

_TEMPORARY_CODES = frozenset({
    libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_OPERATION_TIMEOUT,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
})
_NO_ROOM_CODES = frozenset({libvirt.VIR_ERR_NO_MEMORY, libvirt.VIR_ERR_RESOURCE_BUSY})


def translate(exc: libvirt.libvirtError, doing: str) -> Exception:
    """The one place libvirt errors become our error kinds."""
    code = exc.get_error_code()
    message = f"{doing}: {exc.get_error_message() or exc}"
    if code in _TEMPORARY_CODES:
        return TemporaryError(message, delay=10.0)
    if code in _NO_ROOM_CODES or "insufficient" in message.lower():
        return OutOfResources(message)
    return PermanentError(message)


def domain_xml(vm: VmRecord, site: str, domain_type: str) -> str:
    """Domain XML for `vm`: capacity from its spec, our tag and intent id in <metadata>."""
    spec = vm.spec
    return f"""<domain type='{escape(domain_type)}'>
  <name>{escape(vm.vm_id)}</name>
  <memory unit='MiB'>{spec.memory_mb}</memory>
  <vcpu>{spec.cores}</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <features><acpi/></features>
  <metadata>
    <{PREFIX}:vm xmlns:{PREFIX}='{NAMESPACE}'>
      <{PREFIX}:site>{escape(site)}</{PREFIX}:site>
      <{PREFIX}:intent>{escape(vm.intent_id)}</{PREFIX}:intent>
      <{PREFIX}:vmtype>{escape(spec.vm_type)}</{PREFIX}:vmtype>
      <{PREFIX}:image>{escape(spec.image)}</{PREFIX}:image>
    </{PREFIX}:vm>
  </metadata>
</domain>"""


def _tag(dom: libvirt.virDomain) -> dict[str, str] | None:
    try:
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, 0)
    except libvirt.libvirtError:
        return None
    root = ET.fromstring(text)
    return {child.tag.split("}")[-1]: child.text or "" for child in root}


class LibvirtDriver:
    """A CloudDriver over one libvirt connection URI."""

    def __init__(self, cloud: str, uri: str, site: str, timeout_s: float = 30.0) -> None:
        self.cloud = cloud
        self.uri = uri
        self.site = site
        self.timeout_s = timeout_s
        self.domain_type = "test" if uri.startswith("test") else "qemu"
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"libvirt-{cloud}")
        self._conn: libvirt.virConnect | None = None

    def _connection(self) -> libvirt.virConnect:
        if self._conn is None or not self._conn.isAlive():
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                self._conn = None
                raise TemporaryError(f"cannot connect to {self.uri}: {exc}", delay=10.0) from exc
        return self._conn

    async def _call(self, doing: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        def run() -> T:
            try:
                return fn(self._connection())
            except libvirt.libvirtError as exc:
                raise translate(exc, doing) from exc

        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, run), self.timeout_s)
        except TimeoutError:
            raise TemporaryError(
                f"{doing}: libvirt did not answer within {self.timeout_s:.0f}s") from None

    def _instance(self, dom: libvirt.virDomain, tag: dict[str, str]) -> Instance:
        state = _STATES.get(dom.state()[0], "unknown")
        return Instance(name=dom.name(), cloud=self.cloud, state=state, vm_id=dom.name(),
                        intent_id=tag.get("intent", ""))

    async def list(self) -> list[Instance]:
        """Domains carrying our tag for this site."""
        def run(conn: libvirt.virConnect) -> list[Instance]:
            out = []
            for dom in conn.listAllDomains():
                tag = _tag(dom)
                if tag is not None and tag.get("site") == self.site:
                    out.append(self._instance(dom, tag))
            return out
        return await self._call(f"list domains of {self.uri}", run)

    def _lookup(self, conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
        try:
            return conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    async def create(self, vm: VmRecord) -> Instance:
        """Define and start the domain, or return the one that already has this name."""
        def run(conn: libvirt.virConnect) -> Instance:
            dom = self._lookup(conn, vm.vm_id)
            if dom is None:
                dom = conn.defineXML(domain_xml(vm, self.site, self.domain_type))
            if not dom.isActive():
                dom.create()
            return self._instance(dom, _tag(dom) or {})
        return await self._call(f"create {vm.vm_id}", run)

    async def delete(self, vm_id: str) -> None:
        """Destroy and undefine the domain; a missing domain is success."""
        def run(conn: libvirt.virConnect) -> None:
            dom = self._lookup(conn, vm_id)
            if dom is None:
                return
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        await self._call(f"delete {vm_id}", run)

    async def state(self, vm_id: str) -> Instance | None:
        """The domain named `vm_id`, or None."""
        def run(conn: libvirt.virConnect) -> Instance | None:
            dom = self._lookup(conn, vm_id)
            return None if dom is None else self._instance(dom, _tag(dom) or {})
        return await self._call(f"look up {vm_id}", run)

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        def run() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        await asyncio.get_running_loop().run_in_executor(self._pool, run)
        self._pool.shutdown(wait=False)
