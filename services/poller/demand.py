"""Pure demand logic: job ads in, demand classes and rejected jobs out.

A job ad here is a plain mapping from attribute name to a Python value (int, float, str,
bool) with `Requirements` as its expression text; `condor.py` produces it from ClassAds.
Attribute semantics follow cloudscheduler v1 (see shared/reference/v1-facts.md).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bus.schemas import DemandClass, DemandSnapshot, RejectedJob, VmShape

JobAd = Mapping[str, object]

JOB_IDLE = 1
JOB_RUNNING = 2

UNSUPPORTED = {
    "VMAMIConfig": "user-data comes from the cloud's user_data template",
    "VMUserData": "user-data comes from the cloud's user_data template",
    "VMInjectCA": "the site CA reaches every VM through [worker] ssl_dir",
    "VMJobPerCore": "a VM runs one partitionable slot of all its cores",
    "VMLoc": "images are named by VMAMI",
    "VMLocation": "images are named by VMAMI",
    "VMImageID": "images are named by VMAMI",
    "VMName": "VMs are named by cloudscheduler",
    "VMTypeLimit": "limits are per cloud (max_vms, max_cores, max_memory_mb)",
    "VMProxyNonBoot": "X.509 proxies are not supported",
    "VMImageProxyFile": "X.509 proxies are not supported",
    "CSMyProxyCredsName": "MyProxy renewal of the job's proxy is not supported",
    "CSMyProxyServer": "MyProxy renewal of the job's proxy is not supported",
    "CSMyProxyServerPort": "MyProxy renewal of the job's proxy is not supported",
    "CSMyProxyRenewalTime": "MyProxy renewal of the job's proxy is not supported",
}
"""v1's job attributes that this scheduler does not act on, and what it does instead: a
class whose jobs carry one says so (`cs status`, `cs plan`), never in silence."""

PROJECTION = (
    "ClusterId", "ProcId", "GlobalJobId", "Owner", "JobStatus", "Requirements",
    "VMType", "VMAMI", "VMInstanceType", "VMCPUCores", "VMMem", "VMStorage", "VMNetwork",
    "VMKeyName", "VMSecurityGroup",
    "VMKeepAlive", "VMHighPriority", "TargetClouds", "VMMaximumPrice",
    "RequestCpus", "RequestMemory", "RequestDisk", "RemoteHost", *UNSUPPORTED,
)
"""The attributes that decide a VM (and where a running job runs, and the v1 attributes
we say we ignore): the only ones queried from the schedd."""

# classad2 prints `=?=` as `is`; accept both spellings and `==`.
_VMTYPE_IN_REQUIREMENTS = re.compile(r'VMType\s*(?:=\?=|==|\bis\b)\s*"([^"]*)"', re.IGNORECASE)
DEFAULT_VM_TYPE = "default"
MAX_REJECTED_LISTED = 1000
"""Rejected jobs listed one by one in a snapshot; the rest are only counted."""
EVAL_ERROR = {"classad": "ERROR"}
"""An attribute whose expression evaluates to ERROR, as a job ad carries it (a plain value
that survives the bindings' JSON): the job is rejected naming the attribute."""


@dataclass(frozen=True)
class JobDefaults:
    """The VM a job gets where it does not say (v1's default_VMCPUCores, default_VMMem,
    default_VMStorage): no VMCPUCores/VMMem/VMStorage, no Request* of its own, nothing in
    its Requirements."""

    cores: int = 1
    """CPU cores."""
    memory_mb: int = 512
    """Memory in MB (v1's default_VMMem)."""
    disk_gb: int = 0
    """Disk in GB; 0 leaves it to the flavor or the image."""


DEFAULTS = JobDefaults()


class BadAttribute(ValueError):
    """One attribute of a job could not be understood."""


@dataclass(frozen=True)
class JobNeed:
    """The VM one job asks for, where and how it may run, and who asks."""

    job: str
    owner: str
    status: int
    shape: VmShape
    """The VM itself (per cloud where the job says so)."""
    target_clouds: tuple[str, ...] = ()
    high_priority: bool = False
    max_price: float = 0.0
    notes: tuple[str, ...] = ()
    """v1 attributes of the job that are not acted on (UNSUPPORTED), one line each; not
    part of what the job's VM is."""

    def class_fields(self) -> tuple[object, ...]:
        """What makes two jobs want the same VM. Written as it was before VmShape (a class's
        key names its VMs in the registry: an upgrade must not orphan them), the attributes
        read since appended only when a job sets them."""
        s = self.shape
        fields: tuple[object, ...] = (
            s.vm_type, _items(s.image), _items(s.flavor), s.cores, s.memory_mb, s.disk_gb,
            self.target_clouds, s.keep_alive_min, self.high_priority, _one_text(s.network),
            self.max_price)
        since = (_items(s.key_name), s.security_groups)
        return fields + since if any(since) else fields

    def demand_class(self, key: str, **counts: Any) -> DemandClass:
        """The class of this job's need, under `key`, with `counts` (idle, running, users,
        notes...)."""
        return DemandClass(**self.shape.model_dump(), key=key, target_clouds=self.target_clouds,
                           high_priority=self.high_priority, max_price=self.max_price,
                           **counts)


def _items(mapping: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(mapping.items()))


def _one_text(mapping: dict[str, str]) -> object:
    """VMNetwork as the class key held it when it was one text for every cloud."""
    if not mapping:
        return ""
    if set(mapping) == {""}:
        return mapping[""]
    return _items(mapping)


def job_id(ad: JobAd) -> str:
    """`cluster.proc`, or the GlobalJobId, or `?` for an ad with neither."""
    cluster, proc = ad.get("ClusterId"), ad.get("ProcId")
    if isinstance(cluster, int) and isinstance(proc, int):
        return f"{cluster}.{proc}"
    gid = ad.get("GlobalJobId")
    return gid if isinstance(gid, str) else "?"


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
"""An item that is a URL (scheme://...) as a whole."""


def parse_cloud_map(attr: str, value: object) -> tuple[tuple[str, str], ...]:
    """v1's per-cloud map `cloud:value,cloud:value`, a bare item being the default (""). Cloud
    names are lowercased, as v1 did (`_attr_list_to_dict`), and matched so. A bare URL
    (`http://host/img.gz`, `cloud:https://...` for one cloud) is a value, not a cloud named
    `http`: v1 split it there (and refused one with a port), but its images were URLs too."""
    if value is None:
        return ()
    if not isinstance(value, str):
        raise BadAttribute(f"{attr}: expected a string like 'cloud:value,...', got {value!r}")
    out: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        cloud, sep, name = item.partition(":")
        if not sep or _URL.match(item):
            cloud, name = "", item
        cloud, name = cloud.strip().lower(), name.strip()
        if not name:
            raise BadAttribute(f"{attr}: empty value for cloud {cloud!r} in {value!r}")
        if cloud in out:
            raise BadAttribute(f"{attr}: cloud {cloud or 'default'!r} given twice in {value!r}")
        out[cloud] = name
    return tuple(sorted(out.items()))


def _int(attr: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise BadAttribute(f"{attr}: expected an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise BadAttribute(f"{attr}: expected an integer, got {value!r}")
    if value < minimum:
        raise BadAttribute(f"{attr}: must be at least {minimum}, got {value}")
    return value


def _first(ad: JobAd, *attrs: str) -> tuple[str, object] | None:
    for attr in attrs:
        if ad.get(attr) is not None:
            return attr, ad[attr]
    return None


def _vm_type(ad: JobAd) -> str:
    req = ad.get("Requirements")
    if isinstance(req, str):
        match = _VMTYPE_IN_REQUIREMENTS.search(req)
        if match:
            return match.group(1)
    value = ad.get("VMType")
    if value is None:
        return DEFAULT_VM_TYPE
    if not isinstance(value, str) or not value:
        raise BadAttribute(f"VMType: expected a non-empty string, got {value!r}")
    return value


def _flag(attr: str, value: object) -> bool:
    """v1's int() flags: any integer, non-zero meaning yes; true/false accepted too."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
        if text.lstrip("-").isdigit():
            return int(text) != 0
    raise BadAttribute(f"{attr}: expected an integer (0 = no) or true/false, got {value!r}")


def _price(value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadAttribute(f"VMMaximumPrice: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadAttribute(f"VMMaximumPrice: expected a number of at least 0, got {value!r}")
    return float(value)


def _names(attr: str, value: object) -> tuple[str, ...]:
    """v1's comma-separated list (splitnstrip), each name once, in the job's order."""
    if value is None:
        return ()
    if not isinstance(value, str):
        raise BadAttribute(f"{attr}: expected names like 'a,b', got {value!r}")
    return tuple(dict.fromkeys(n for n in (i.strip() for i in value.split(",")) if n))


def _target_clouds(value: object) -> tuple[str, ...]:
    """v1's TargetClouds: `a,b` with each item stripped of spaces and quotes
    (job_management.py); a ClassAd list (`{"a","b"}`: its text, JSON's, or its items)
    alike."""
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        items: list[str] = value
    elif isinstance(value, str):
        text = value.strip()
        if text[:1] + text[-1:] in ("{}", "[]"):  # a list's text: ClassAd's, or JSON's
            text = text[1:-1]
        items = text.split(",")
    else:
        raise BadAttribute(f"TargetClouds: expected cloud names like 'a,b', got {value!r}")
    return tuple(sorted({n for n in (i.strip().strip('"').strip("'").strip() for i in items)
                         if n}))


_FROM_REQUIREMENTS = {
    attr: re.compile(rf"\b(?:TARGET\.)?{attr}\s*>=?\s*(\d+)\b", re.IGNORECASE)
    for attr in ("Cpus", "Memory", "Disk")
}


def _from_requirements(ad: JobAd, attr: str) -> int | None:
    """v1's vm_reqs_from_condor_reqs: a literal `Memory >= 2048` in Requirements."""
    req = ad.get("Requirements")
    if isinstance(req, str):
        match = _FROM_REQUIREMENTS[attr].search(req)
        if match:
            return int(match.group(1))
    return None


def parse_job(ad: JobAd, defaults: JobDefaults = DEFAULTS) -> JobNeed:
    """The VM a job asks for, `defaults` where it does not say; BadAttribute names the
    attribute that is wrong."""
    for attr, value in ad.items():
        if value == EVAL_ERROR:
            raise BadAttribute(f"{attr}: its expression evaluates to ERROR")
    status = _int("JobStatus", ad.get("JobStatus"), minimum=1)
    owner = ad.get("Owner")
    if not isinstance(owner, str) or not owner:
        raise BadAttribute(f"Owner: expected a user name, got {owner!r}")
    cores_attr = _first(ad, "VMCPUCores", "RequestCpus")
    cores = _int(*cores_attr, minimum=1) if cores_attr else (
        _from_requirements(ad, "Cpus") or defaults.cores)
    mem_attr = _first(ad, "VMMem", "RequestMemory")
    memory = _int(*mem_attr, minimum=1) if mem_attr else (
        _from_requirements(ad, "Memory") or defaults.memory_mb)
    disk_gb = defaults.disk_gb
    if ad.get("VMStorage") is not None:
        disk_gb = _int("VMStorage", ad["VMStorage"])
    elif ad.get("RequestDisk") is not None:
        disk_gb = math.ceil(_int("RequestDisk", ad["RequestDisk"]) / (1024 * 1024))
    elif (disk_kb := _from_requirements(ad, "Disk")) is not None:
        disk_gb = max(1, math.ceil(disk_kb / (1024 * 1024)))
    targets = _target_clouds(ad.get("TargetClouds"))
    keep_alive = ad.get("VMKeepAlive")
    return JobNeed(
        job=job_id(ad),
        owner=owner,
        status=status,
        shape=VmShape(
            vm_type=_vm_type(ad),
            image=dict(parse_cloud_map("VMAMI", ad.get("VMAMI"))),
            flavor=dict(parse_cloud_map("VMInstanceType", ad.get("VMInstanceType"))),
            cores=cores,
            memory_mb=memory,
            disk_gb=disk_gb,
            keep_alive_min=_int("VMKeepAlive", keep_alive) if keep_alive is not None else 0,
            network=dict(parse_cloud_map("VMNetwork", ad.get("VMNetwork"))),
            key_name=dict(parse_cloud_map("VMKeyName", ad.get("VMKeyName"))),
            security_groups=_names("VMSecurityGroup", ad.get("VMSecurityGroup")),
        ),
        target_clouds=targets,
        high_priority=_flag("VMHighPriority", ad.get("VMHighPriority")),
        max_price=_price(ad.get("VMMaximumPrice")),
        notes=tuple(f"{attr} is not supported: {why}" for attr, why in UNSUPPORTED.items()
                    if ad.get(attr) is not None),
    )


def class_key(need: JobNeed) -> str:
    """A short stable id of a demand class: the same need gives the same key everywhere."""
    return hashlib.sha1(repr(need.class_fields()).encode()).hexdigest()[:10]


_PER_JOB = frozenset({"ClusterId", "ProcId", "GlobalJobId", "Owner", "JobStatus",
                      "RemoteHost"})
"""Attributes that differ from job to job of one class: not part of what `_Needs` keys by."""
_NEEDS_MAX = 20_000
"""Distinct job shapes `_Needs` remembers (a queue where every job differs gains nothing)."""


class _Needs:
    """`parse_job` for many jobs: the jobs of one class differ only in their ids, owner and
    status, so the rest of an ad (its shape) is parsed once and its class key computed once.
    The result is parse_job's own, errors and their order included."""

    def __init__(self, defaults: JobDefaults) -> None:
        self._defaults = defaults
        self._shapes: dict[tuple[tuple[str, object], ...], tuple[JobNeed, str] | str] = {}

    def of(self, ad: JobAd) -> tuple[JobNeed, str]:
        """The job's need (its `job` field the class's first job's) and class key;
        BadAttribute as parse_job raises it."""
        status = _int("JobStatus", ad.get("JobStatus"), minimum=1)
        owner = ad.get("Owner")
        if not isinstance(owner, str) or not owner:
            raise BadAttribute(f"Owner: expected a user name, got {owner!r}")
        try:
            shape = tuple(item for item in ad.items() if item[0] not in _PER_JOB)
            known = self._shapes.get(shape)
        except TypeError:  # a value that is not hashable: no shortcut
            need = parse_job(ad, self._defaults)
            return need, class_key(need)
        if known is None:
            try:
                need = parse_job(ad, self._defaults)
                known = (need, class_key(need))
            except BadAttribute as exc:
                known = str(exc)
            if len(self._shapes) >= _NEEDS_MAX:
                self._shapes.clear()
            self._shapes[shape] = known
        if isinstance(known, str):
            raise BadAttribute(known)
        need, key = known
        if (need.status, need.owner) != (status, owner):
            need = replace(need, status=status, owner=owner)
        return need, key


def host_of(slot: object) -> str:
    """The machine part of a slot name (`slot1_1@host` -> `host`); "" for anything else."""
    return slot.rpartition("@")[2] if isinstance(slot, str) else ""


def build_demand(
    ads: Iterable[JobAd], source: str, now: float,
    stale: bool = False, stale_reason: str = "", defaults: JobDefaults = DEFAULTS,
    our_hosts: frozenset[str] | None = None,
) -> DemandSnapshot:
    """Group idle and running jobs into demand classes (`defaults` where a job does not
    say); bad jobs go to `rejected`. A running job counts as `running` when its RemoteHost
    is on one of `our_hosts` (the machines of our VMs' slots), else as `running_elsewhere`;
    `None` (the pool could not be seen) counts every running job. `ads` is read once, as it
    comes: 10 million jobs are never held at once."""
    classes: dict[str, tuple[JobNeed, int, int, int, dict[str, int]]] = {}
    notes: dict[str, set[str]] = {}
    rejected: list[RejectedJob] = []
    rejected_total = read = not_demand = 0
    needs = _Needs(defaults)
    for ad in ads:
        read += 1
        try:
            need, key = needs.of(ad)
        except BadAttribute as exc:
            rejected_total += 1
            if len(rejected) < MAX_REJECTED_LISTED:
                rejected.append(RejectedJob(job=job_id(ad), reason=str(exc)))
            continue
        if need.status not in (JOB_IDLE, JOB_RUNNING):
            not_demand += 1
            continue
        if need.notes:
            notes.setdefault(key, set()).update(need.notes)
        first, idle, running, elsewhere, users = classes.get(key, (need, 0, 0, 0, {}))
        if need.status == JOB_IDLE:
            idle += 1
            users[need.owner] = users.get(need.owner, 0) + 1
        elif our_hosts is None or host_of(ad.get("RemoteHost")) in our_hosts:
            running += 1
        else:
            elsewhere += 1
        classes[key] = (first, idle, running, elsewhere, users)
    return DemandSnapshot(
        source=source,
        taken_at=now,
        stale=stale,
        stale_reason=stale_reason,
        classes=tuple(
            n.demand_class(key, idle=idle, running=running, running_elsewhere=elsewhere,
                           users=users, notes=tuple(sorted(notes.get(key, ()))))
            for key, (n, idle, running, elsewhere, users) in sorted(classes.items())
        ),
        rejected=tuple(rejected),
        rejected_total=rejected_total,
        jobs_read=read,
        not_demand=not_demand,
    )
