"""The only module that imports libvirt: worker VMs as libvirt domains on one host.

Per VM: a copy-on-write qcow2 overlay on the cloud's base image and a NoCloud seed ISO, both
volumes of the cloud's storage pool (so a remote `qemu+ssh://` host works the same), and a
domain tagged with our site, cloud and intent in a namespaced <metadata>. Every libvirt call
runs on one worker thread per cloud under a timeout of ours; libvirt errors are translated
here, once, into TemporaryError / OutOfResources / PermanentError.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TypeVar
from xml.sax.saxutils import escape, quoteattr

import libvirt

from bus.errors import OutOfResources, PermanentError, TemporaryError
from bus.schemas import CloudCapacity, CloudRecord, Instance, InstanceState, VmRecord
from providers.libvirt import seed
from providers.libvirt.options import LibvirtOptions
from provisioning.blocking import BlockingCalls
from provisioning.driver import DriverContext

NAMESPACE = "https://cloudscheduler.dev/xmlns/vm/1"
"""Our <metadata> namespace: its presence marks a domain as ours."""
PREFIX = "cs"
OVERLAY_SUFFIX = ".qcow2"
SEED_SUFFIX = "-seed.iso"
_UPLOAD_CHUNK = 256 * 1024

log = logging.getLogger("provisioner.libvirt")
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
_NO_ROOM_WORDS = ("insufficient", "cannot allocate memory", "no space left", "out of memory",
                  "not enough free space")


def translate(exc: Exception, doing: str) -> Exception:
    """The one place libvirt errors become our error kinds (others are returned as they
    are)."""
    if not isinstance(exc, libvirt.libvirtError):
        return exc
    code = exc.get_error_code()
    message = f"{doing}: {exc.get_error_message() or exc}"
    if code in _NO_ROOM_CODES or any(w in message.lower() for w in _NO_ROOM_WORDS):
        return OutOfResources(message)
    if code in _TEMPORARY_CODES:
        return TemporaryError(message, delay=10.0)
    return PermanentError(message)


_events_lock = threading.Lock()
_events_started = False


def _start_event_loop() -> None:
    """Run libvirt's default event loop on a daemon thread (once per process: libvirt's event
    implementation is process-wide and must be registered before connections are opened)."""
    global _events_started
    with _events_lock:
        if _events_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _events_started = True


def options_of(record: CloudRecord) -> LibvirtOptions:
    """The cloud's libvirt settings, read back through the options model."""
    return LibvirtOptions.read(dict(record.options))


def domain_xml(vm: VmRecord, site: str, opts: LibvirtOptions, overlay: str, seed_volume: str
               ) -> str:
    """Domain XML for `vm`: capacity from its spec, disks from the pool, console to a log,
    our tag and intent id in <metadata>."""
    spec = vm.spec
    boot = (f"<kernel>{escape(opts.kernel)}</kernel>"
            + (f"<initrd>{escape(opts.initrd)}</initrd>" if opts.initrd else "")
            + (f"<cmdline>{escape(opts.cmdline)}</cmdline>" if opts.cmdline else "")
            if opts.kernel else "<boot dev='hd'/>")
    pool = quoteattr(opts.storage_pool)
    # The job's VMNetwork names a libvirt network of this host; else the cloud's NIC.
    network = spec.network or opts.network
    nic = (f"<interface type='network'><source network={quoteattr(network)}/>"
           "<model type='virtio'/></interface>" if network
           else "<interface type='user'><model type='virtio'/></interface>" if opts.user_network
           else "")
    console_log = quoteattr(f"{opts.console_log_dir.rstrip('/')}/{vm.vm_id}-console.log")
    return f"""<domain type='{escape(opts.domain_type)}'>
  <name>{escape(vm.vm_id)}</name>
  <memory unit='MiB'>{spec.memory_mb}</memory>
  <vcpu>{spec.cores}</vcpu>
  <os><type arch='x86_64'>hvm</type>{boot}</os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool={pool} volume={quoteattr(overlay)}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool={pool} volume={quoteattr(seed_volume)}/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    {nic}
    <serial type='pty'><log file={console_log} append='off'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
  <metadata>
    <{PREFIX}:vm xmlns:{PREFIX}='{NAMESPACE}'>
      <{PREFIX}:site>{escape(site)}</{PREFIX}:site>
      <{PREFIX}:cloud>{escape(vm.cloud)}</{PREFIX}:cloud>
      <{PREFIX}:intent>{escape(vm.intent_id)}</{PREFIX}:intent>
      <{PREFIX}:vmtype>{escape(spec.vm_type)}</{PREFIX}:vmtype>
      <{PREFIX}:image>{escape(spec.image)}</{PREFIX}:image>
    </{PREFIX}:vm>
  </metadata>
</domain>"""


def volume_xml(name: str, capacity: int, fmt: str, backing: tuple[str, str] | None = None
               ) -> str:
    """Storage volume XML; `backing` = (path, format) makes a copy-on-write overlay."""
    back = (f"<backingStore><path>{escape(backing[0])}</path>"
            f"<format type='{escape(backing[1])}'/></backingStore>" if backing else "")
    return (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{capacity}</capacity>"
            f"<target><format type='{escape(fmt)}'/>"
            "<permissions><mode>0600</mode></permissions></target>"
            f"{back}</volume>")


def tag_of(dom: libvirt.virDomain) -> dict[str, str] | None:
    """The domain's tag in our <metadata> (site, cloud, intent, ...); None: not ours."""
    try:
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, 0)
    except libvirt.libvirtError:
        return None
    root = ET.fromstring(text)
    return {child.tag.split("}")[-1]: child.text or "" for child in root}


def _no(code: int, exc: libvirt.libvirtError) -> bool:
    return bool(exc.get_error_code() == code)


def _or_none(missing: int, lookup: Callable[[str], T], key: str) -> T | None:
    """`lookup(key)`, or None when libvirt answers with the `missing` error code."""
    try:
        return lookup(key)
    except libvirt.libvirtError as exc:
        if _no(missing, exc):
            return None
        raise


class LibvirtDriver:
    """A CloudDriver over one libvirt connection URI (one host)."""

    def __init__(self, record: CloudRecord, context: DriverContext) -> None:
        self.cloud = record.name
        self.opts = options_of(record)
        self.uri = self.opts.uri
        self.site = context.site
        self.record = record
        self.context = context
        self._vm_prefix = f"cs-{self.site}-{record.name}-"
        # One thread: libvirt calls on one connection are serialised anyway.
        self._calls = BlockingCalls(f"libvirt-{record.name}", 1, context.call_timeout_s,
                                    translate, "libvirt")
        self._conn: libvirt.virConnect | None = None
        self._changed: Callable[[str], None] | None = None
        self._callback_id = -1
        _start_event_loop()

    # ---- connection ------------------------------------------------------------------

    def _connection(self) -> libvirt.virConnect:
        if self._conn is None or not self._conn.isAlive():
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                self._conn = None
                raise TemporaryError(f"cannot connect to {self.uri}: {exc}", delay=10.0) from exc
            self._callback_id = self._conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_event, None)
        return self._conn

    def _on_event(self, _conn: libvirt.virConnect, dom: libvirt.virDomain, _event: int,
                  _detail: int, _opaque: object) -> None:
        if self._changed is not None and dom.name().startswith(self._vm_prefix):
            self._changed(dom.name())

    def watch(self, changed: Callable[[str], None]) -> None:
        """Call `changed(vm_id)` (from libvirt's event thread) on every lifecycle event of
        one of our domains: started, stopped, crashed, undefined."""
        self._changed = changed

    async def _call(self, doing: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        return await self._calls.call(doing, lambda: fn(self._connection()))

    # ---- helpers (on the worker thread) ------------------------------------------------

    def _ours(self, tag: dict[str, str] | None) -> bool:
        return (tag is not None and tag.get("site") == self.site
                and tag.get("cloud", self.cloud) == self.cloud)

    def _instance(self, dom: libvirt.virDomain, tag: dict[str, str]) -> Instance:
        state = _STATES.get(dom.state()[0], "unknown")
        return Instance(name=dom.name(), cloud=self.cloud, state=state, vm_id=dom.name(),
                        intent_id=tag.get("intent", ""), instance_id=dom.UUIDString())

    def _lookup(self, conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
        return _or_none(libvirt.VIR_ERR_NO_DOMAIN, conn.lookupByName, name)

    def _storage(self, conn: libvirt.virConnect) -> libvirt.virStoragePool:
        try:
            pool = conn.storagePoolLookupByName(self.opts.storage_pool)
        except libvirt.libvirtError as exc:
            if _no(libvirt.VIR_ERR_NO_STORAGE_POOL, exc):
                raise PermanentError(
                    f"storage pool {self.opts.storage_pool!r} does not exist on {self.uri}; "
                    "define it (virsh pool-define-as NAME dir --target DIR) or set "
                    f"storage_pool in the config of cloud {self.cloud}") from None
            raise
        if not pool.isActive():
            pool.create()
        return pool

    def _volume(self, pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
        return _or_none(libvirt.VIR_ERR_NO_STORAGE_VOL, pool.storageVolLookupByName, name)

    def _base(self, conn: libvirt.virConnect, pool: libvirt.virStoragePool, vm: VmRecord
              ) -> tuple[str, int]:
        """Path and size (bytes) of the VM's base image."""
        name = vm.spec.image or self.opts.base_image
        if not name:
            raise PermanentError(f"no base image: set base_image for cloud {self.cloud} or "
                                 "VMAMI in the jobs")
        try:
            vol = (conn.storageVolLookupByPath(name) if name.startswith("/")
                   else pool.storageVolLookupByName(name))
        except libvirt.libvirtError as exc:
            if _no(libvirt.VIR_ERR_NO_STORAGE_VOL, exc):
                where = ("is not in any libvirt storage pool; define a pool for its folder"
                         if name.startswith("/") else
                         f"is not a volume of storage pool {self.opts.storage_pool!r}")
                raise PermanentError(f"base image {name!r} of cloud {self.cloud} {where}") \
                    from None
            raise
        return str(vol.path()), int(vol.info()[1])

    def _fresh_volume(self, pool: libvirt.virStoragePool, xml: str, name: str
                      ) -> libvirt.virStorageVol:
        # A volume left by a create that crashed before its domain was defined is never
        # reused: its content may be half written.
        old = self._volume(pool, name)
        if old is not None:
            old.delete(0)
        return pool.createXML(xml, 0)

    def _upload(self, conn: libvirt.virConnect, vol: libvirt.virStorageVol, data: bytes) -> None:
        if self.opts.domain_type == "test":
            return  # the test driver has no storage I/O: the volume exists, empty
        stream = conn.newStream(0)
        try:
            vol.upload(stream, 0, len(data), 0)
            sent = 0
            while sent < len(data):
                n = stream.send(data[sent:sent + _UPLOAD_CHUNK])
                if n <= 0:
                    raise libvirt.libvirtError(f"upload of {vol.name()} stalled at {sent} bytes")
                sent += n
            stream.finish()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise

    def _delete_volumes(self, conn: libvirt.virConnect, vm_id: str) -> None:
        pool = self._storage(conn)
        for name in (vm_id + OVERLAY_SUFFIX, vm_id + SEED_SUFFIX):
            vol = self._volume(pool, name)
            if vol is not None:
                vol.delete(0)

    # ---- the CloudDriver protocol ----------------------------------------------------

    async def list(self) -> list[Instance]:
        """Domains carrying our tag for this site and cloud, and volumes of ours whose domain
        is missing (a create that crashed half-way), listed so reconcile removes them."""
        def run(conn: libvirt.virConnect) -> list[Instance]:
            out = []
            for dom in conn.listAllDomains():
                tag = tag_of(dom)
                if self._ours(tag):
                    assert tag is not None
                    out.append(self._instance(dom, tag))
            names = {i.vm_id for i in out}
            for vol in self._storage(conn).listVolumes():
                for suffix in (OVERLAY_SUFFIX, SEED_SUFFIX):
                    vm_id = vol.removesuffix(suffix)
                    if (vol.endswith(suffix) and vol.startswith(self._vm_prefix)
                            and vm_id not in names):
                        names.add(vm_id)
                        out.append(Instance(name=vol, cloud=self.cloud, state="unknown",
                                            vm_id=vm_id, intent_id=""))
            return out
        return await self._call(f"list domains of {self.uri}", run)

    async def create(self, vm: VmRecord, fresh: bool = False) -> Instance:
        """Define and start the domain with fresh disks, or return the one of that name
        (always looked up, `fresh` or not: the look-up is local, and a domain of that name
        that is not ours must be refused)."""
        # In a thread: a [worker] token_command may take seconds.
        user_data = await self.context.user_data(self.record, vm)

        def run(conn: libvirt.virConnect) -> Instance:
            dom = self._lookup(conn, vm.vm_id)
            if dom is not None:
                tag = tag_of(dom)
                if not self._ours(tag):
                    raise PermanentError(f"a domain named {vm.vm_id} exists on {self.uri} and "
                                         "is not ours; not touching it")
                if not dom.isActive():
                    dom.create()
                return self._instance(dom, tag or {})
            pool = self._storage(conn)
            base_path, base_size = self._base(conn, pool, vm)
            size = max(base_size, vm.spec.disk_gb * 1024 ** 3)
            overlay = vm.vm_id + OVERLAY_SUFFIX
            seed_name = vm.vm_id + SEED_SUFFIX
            image = seed.build(vm.vm_id, user_data)
            try:
                self._fresh_volume(pool, volume_xml(
                    overlay, size, "qcow2", (base_path, self.opts.base_format)), overlay)
                seed_vol = self._fresh_volume(
                    pool, volume_xml(seed_name, len(image), "raw"), seed_name)
                self._upload(conn, seed_vol, image)
                dom = conn.defineXML(domain_xml(vm, self.site, self.opts, overlay, seed_name))
                dom.create()
            except BaseException:
                self._cleanup(conn, vm.vm_id)
                raise
            return self._instance(dom, tag_of(dom) or {})
        return await self._call(f"create {vm.vm_id}", run)

    def _cleanup(self, conn: libvirt.virConnect, vm_id: str) -> None:
        """Best-effort removal after a failed create; reconcile catches what this misses."""
        try:
            self._remove(conn, vm_id)
        except libvirt.libvirtError as exc:
            log.warning("cleanup of %s after a failed create: %s", vm_id, exc)

    def _remove(self, conn: libvirt.virConnect, vm_id: str) -> None:
        dom = self._lookup(conn, vm_id)
        if dom is not None:
            if dom.isActive():
                try:
                    dom.destroy()
                except libvirt.libvirtError as exc:
                    if not _no(libvirt.VIR_ERR_OPERATION_INVALID, exc):  # stopped meanwhile
                        raise
            dom.undefine()
        self._delete_volumes(conn, vm_id)

    async def delete(self, vm_id: str) -> None:
        """Destroy and undefine the domain, then delete its overlay and seed; what is
        already missing is success."""
        await self._call(f"delete {vm_id}", lambda conn: self._remove(conn, vm_id))

    async def delete_instance(self, instance_id: str) -> None:
        """Delete the domain with this UUID if it is ours (libvirt names are unique per host,
        so this is the domain of that name, disks included); absent is success."""
        def run(conn: libvirt.virConnect) -> None:
            dom = _or_none(libvirt.VIR_ERR_NO_DOMAIN, conn.lookupByUUIDString, instance_id)
            if dom is not None and self._ours(tag_of(dom)):
                self._remove(conn, dom.name())
        await self._call(f"delete domain {instance_id}", run)

    async def state(self, vm_id: str) -> Instance | None:
        """The domain named `vm_id`, or None."""
        def run(conn: libvirt.virConnect) -> Instance | None:
            dom = self._lookup(conn, vm_id)
            return None if dom is None else self._instance(dom, tag_of(dom) or {})
        return await self._call(f"look up {vm_id}", run)

    async def capacity(self) -> CloudCapacity:
        """The host's cores and memory (less the reserve, times the overcommit), and what
        running domains that are not ours use of them."""
        def run(conn: libvirt.virConnect) -> CloudCapacity:
            _model, memory_mb, cpus, *_ = conn.getInfo()
            others = cores = memory = 0
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                if self._ours(tag_of(dom)):
                    continue
                _state, max_kib, _mem, vcpus, _cpu_time = dom.info()
                others += 1
                cores += vcpus
                memory += max_kib // 1024
            return CloudCapacity(
                cloud=self.cloud, source=f"libvirt host {conn.getHostname()}",
                max_cores=int(cpus * self.opts.cpu_overcommit),
                max_memory_mb=max(0, memory_mb - self.opts.reserved_memory_mb),
                others_instances=others, others_cores=cores, others_memory_mb=memory,
                reported_at=time.time())
        return await self._call(f"read the capacity of {self.uri}", run)

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        def run() -> None:
            if self._conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.domainEventDeregisterAny(self._callback_id)
                self._conn.close()
                self._conn = None
        await self._calls.close(run)


def make_driver(record: CloudRecord, context: DriverContext) -> LibvirtDriver:
    """The libvirt driver of one cloud (what the provisioner finds through the table)."""
    return LibvirtDriver(record, context)
