"""The cores a calibration may use: the CPUs this process is allowed (``sched_getaffinity``, the cgroup's
cpuset), how many of them its CPU quota pays for (cgroup ``cpu.max`` / ``cfs_quota_us``), and one CPU per
physical core among them (SMT siblings share a core's caches and load ports, so STREAM puts one worker
per core, not per hardware thread).

A container limited to 2 CPUs on a 64-core host, a ``taskset`` run, or a cgroup quota of 1.5 CPUs each
gives fewer workers than ``nproc`` counts; the facts say why. Never raises.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from hwcal.machine.sources import LOCAL, Sources


@dataclass(frozen=True)
class CpuSet:
    """``cores``: one allowed CPU per physical core, the workers' CPUs, at most ``quota_cpus`` of them."""

    allowed: tuple[int, ...]
    cores: tuple[int, ...]
    online: int
    quota_cpus: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def workers(self) -> int:
        return len(self.cores)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"allowed_cpus": list(self.allowed), "worker_cpus": list(self.cores),
                                  "online_cpus": self.online, "quota_cpus": self.quota_cpus}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def parse_cpu_list(text: str | None) -> list[int]:
    """sysfs CPU lists: ``0-3,8,10-11`` -> [0, 1, 2, 3, 8, 10, 11]; [] for anything unreadable."""
    out: set[int] = set()
    for part in (text or "").strip().split(","):
        m = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", part)
        if not m:
            continue
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        out.update(range(lo, hi + 1))
    return sorted(out)


def _cgroup_paths(src: Sources) -> tuple[str | None, str | None]:
    """(cgroup v2 path, v1 cpu controller path) of this process, from /proc/self/cgroup."""
    v2 = v1 = None
    for line in (src.read("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "cpu" in parts[1].split(","):
            v1 = parts[2]
    return v2, v1


def cgroup_quota_cpus(src: Sources) -> tuple[float | None, str]:
    """CPUs the cgroup's quota pays for (``quota / period``), None without a limit, and where it was read."""
    v2, v1 = _cgroup_paths(src)
    if v2 is not None:
        for path in (f"/sys/fs/cgroup{v2.rstrip('/')}/cpu.max", "/sys/fs/cgroup/cpu.max"):
            text = src.read_first_line(path)
            if text:
                quota, _, period = text.partition(" ")
                if quota != "max" and quota.isdigit() and period.strip().isdigit() and int(period) > 0:
                    return int(quota) / int(period), path
                return None, path
    if v1 is not None:
        for base in ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"):
            cfs_quota = src.read_number(f"{base}{v1.rstrip('/')}/cpu.cfs_quota_us") or src.read_number(
                f"{base}/cpu.cfs_quota_us")
            cfs_period = src.read_number(f"{base}{v1.rstrip('/')}/cpu.cfs_period_us") or src.read_number(
                f"{base}/cpu.cfs_period_us")
            if cfs_quota is not None and cfs_period:
                return (cfs_quota / cfs_period if cfs_quota > 0 else None), f"{base}/cpu.cfs_quota_us"
    return None, ""


def _core_key(src: Sources, cpu: int) -> str:
    """A key shared by the hardware threads of one physical core (the sibling list, else package:core id)."""
    topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
    for name in ("core_cpus_list", "thread_siblings_list"):
        siblings = parse_cpu_list(src.read_first_line(f"{topo}/{name}"))
        if siblings:
            return ",".join(map(str, siblings))
    core, package = src.read_first_line(f"{topo}/core_id"), src.read_first_line(f"{topo}/physical_package_id")
    return f"{package}:{core}" if core is not None else f"cpu{cpu}"


def _allowed(src: Sources, affinity: set[int] | None) -> tuple[list[int], int]:
    online = parse_cpu_list(src.read_first_line("/sys/devices/system/cpu/online"))
    if affinity is None and src.is_local:
        try:
            affinity = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = None
    if affinity is None:
        affinity = set(online) or set(range(os.cpu_count() or 1))
    return sorted(affinity), len(online) or len(affinity)


def detect_cpuset(src: Sources = LOCAL, affinity: set[int] | None = None) -> CpuSet:
    """The CPUs this process may use and one worker CPU per physical core among them.

    ``affinity`` stands in for ``os.sched_getaffinity(0)`` when describing another machine (tests)."""
    allowed, online = _allowed(src, affinity)
    notes: list[str] = []
    if len(allowed) < online:
        notes.append(f"this process may use {len(allowed)} of the {online} online CPUs (affinity or cgroup cpuset)")
    by_core: dict[str, int] = {}
    topology_read = False
    for cpu in allowed:
        key = _core_key(src, cpu)
        topology_read = topology_read or not key.startswith("cpu")
        by_core.setdefault(key, cpu)
    if not topology_read:
        notes.append("no CPU topology in sysfs: every allowed CPU is taken as a core of its own")
    cores = sorted(by_core.values())
    if len(cores) < len(allowed):
        notes.append(f"{len(allowed)} allowed CPUs are {len(cores)} physical cores (SMT siblings share a core): "
                     "one worker per core")
    quota, where = cgroup_quota_cpus(src)
    if quota is not None and quota < len(cores):
        usable = max(1, math.floor(quota + 1e-9))
        notes.append(f"the cgroup's CPU quota ({where}) pays for {quota:g} CPUs: {usable} worker"
                     f"{'s' if usable != 1 else ''}, not {len(cores)}")
        cores = cores[:usable]
    if len(cores) == 1:
        notes.append("one core: the all-core figures are the one-core figures")
    return CpuSet(tuple(allowed), tuple(cores), online, quota, tuple(notes))
