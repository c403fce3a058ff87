"""What else ran on the machine while a case was timed: a figure measured beside another job is not the
device's.

CPU: the machine's busy time from /proc/stat (every CPU, user + nice + system + irq + softirq) less this
process tree's own CPU time (psutil: this process, its live children and the children it has waited for),
the steal time a hypervisor took, the load average and the clock where cpufreq says it; and, where a probe
is given, what a neighbour on the host takes that none of these show (``hwcal.machine.host_share``: how
much of separate cores the run's CPUs deliver at once, and one thread's read speed from the LLC). GPU: the
compute processes NVML lists on the device other than ours, and their SM utilisation (NVML's per-process
samples); and, where a probe is given, how fast the host launches a tiny call (``hwcal.machine.launch_share``:
the pace of a short call's figure, which moves in episodes nothing else shows). A CPU run whose framework
splits calls over threads has the same kind of look on a short split call (the threads' wake-up).

Readings never raise: a source that cannot be read leaves its field None and says so in ``sources``.
"""

from __future__ import annotations

import glob
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hwcal.machine.host_share import HostShareProbe
from hwcal.machine.launch_share import LaunchProbe
from hwcal.machine.sources import LOCAL, Sources

# /proc/stat's cpu line: user nice system idle iowait irq softirq steal guest guest_nice (guest is in user).
_BUSY_FIELDS = (0, 1, 2, 5, 6)
_STEAL_FIELD = 7


@dataclass(frozen=True)
class Thresholds:
    """When a case counts as disturbed: other processes' CPU time above ``other_cpu_pct`` of all CPUs (and
    above ``other_cpu_min_s`` seconds, below which a 100 Hz tick count cannot tell), steal time above
    ``steal_pct``, a host-share look below ``host_share_fraction`` of the run's reference (two vCPUs on one
    core read 0.5 of separate cores; a taken LLC 0.3-0.7 of the best read), a launch look below
    ``launch_share_fraction`` of the run's best for a case of short calls (the GPU hosts' slow episodes read
    0.65-0.75, the development VM's slow wake-ups 0.6-0.65; quick ones 0.9-1), or another compute process on
    the GPU."""

    other_cpu_pct: float = 10.0
    other_cpu_min_s: float = 0.05
    steal_pct: float = 5.0
    host_share_fraction: float = 0.7
    launch_share_fraction: float = 0.8
    gpu_other_processes: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"other_cpu_pct": self.other_cpu_pct, "other_cpu_min_s": self.other_cpu_min_s,
                "steal_pct": self.steal_pct, "host_share_fraction": self.host_share_fraction,
                "launch_share_fraction": self.launch_share_fraction, "gpu_other_processes": self.gpu_other_processes}


@dataclass(frozen=True)
class Snapshot:
    t: float
    busy_s: float | None  # all CPUs' busy seconds since boot
    steal_s: float | None
    own_cpu_s: float | None  # this process tree's CPU seconds
    gpu_other_pids: tuple[int, ...] = ()
    core_share: float | None = None  # all-CPU FMA rate / (CPUs x one CPU's), where a probe looked
    cache_share: float | None = None  # one thread's LLC read / the run's best
    launch_share: float | None = None  # the run's best time of a tiny call / this look's
    call_share: float | None = None  # the same of a CPU's own one-thread call (the call look)


@dataclass(frozen=True)
class Evidence:
    """What the monitor saw over one window; ``reasons`` is empty when nothing else ran."""

    seconds: float
    other_cpu_pct: float | None
    other_cpu_s: float | None
    steal_pct: float | None
    load_1m: float | None
    cpu_freq_mhz: float | None
    gpu_other_pids: tuple[int, ...] = ()
    gpu_other_sm_pct: float | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)
    core_share: float | None = None  # the lower of the window's two looks
    cache_share: float | None = None
    launch_share: float | None = None
    pace_slow: bool = False  # a pace look (launch or call) gave a reason (with others or alone)
    call_share: float | None = None
    pace_reasons: int = 0  # how many of ``reasons`` the pace looks gave

    @property
    def disturbed(self) -> bool:
        return bool(self.reasons)

    @property
    def pace_only(self) -> bool:
        """Every reason is a pace look's (launch, call): a pace that flips within milliseconds to tenths of a
        second, and on the lent GPU hosts and this VM stays slow for most of some runs. No wait outlasts it
        (hwcal.measure.watch)."""
        return self.pace_slow and self.pace_reasons == len(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None, nd: int = 1) -> float | None:
            return round(x, nd) if x is not None else None

        out: dict[str, Any] = {"seconds": round(self.seconds, 3), "other_cpu_pct": r(self.other_cpu_pct),
                               "steal_pct": r(self.steal_pct), "load_1m": r(self.load_1m, 2),
                               "cpu_freq_mhz": r(self.cpu_freq_mhz, 0)}
        if self.core_share is not None:
            out["core_share"] = r(self.core_share, 2)
        if self.cache_share is not None:
            out["cache_share"] = r(self.cache_share, 2)
        if self.launch_share is not None:
            out["launch_share"] = r(self.launch_share, 2)
        if self.call_share is not None:
            out["call_share"] = r(self.call_share, 2)
        if self.gpu_other_pids or self.gpu_other_sm_pct is not None:
            out["gpu_other_pids"] = list(self.gpu_other_pids)
            out["gpu_other_sm_pct"] = r(self.gpu_other_sm_pct)
        return out


def _descendants(pid: int) -> list[int] | None:
    """Every live descendant of ``pid``, from its threads' /proc/PID/task/TID/children lists (a few small
    reads); None where the kernel has no such lists. psutil's ``children(recursive=True)`` reads the stat of
    every process on the machine instead: 2.9 ms a snapshot on a VM with 66 processes, 2.9 s of a CPU run's
    main thread (two snapshots a case)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        lists = glob.glob(f"/proc/{parent}/task/*/children")
        if not lists and parent == pid:
            return None
        for path in lists:
            try:
                with open(path) as f:
                    kids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):  # a thread or child gone since the listing
                continue
            found += kids
            todo += kids
    return found


class Monitor:
    """Snapshots of the machine, and the evidence between two of them."""

    def __init__(self, src: Sources = LOCAL, gpu_index: int | None = None, nvml: Any = None,
                 thresholds: Thresholds | None = None, pid: int | None = None,
                 own_cpu_s: Callable[[], float | None] | None = None, host_share: HostShareProbe | None = None,
                 host_share_why: str = "", launch: LaunchProbe | None = None,
                 call: LaunchProbe | None = None) -> None:
        self.src = src
        self.host_share = host_share
        self.launch = launch
        self.call = call
        self._host_share_why = host_share_why
        self._own = own_cpu_s or self._process_tree_cpu_s
        self.thresholds = thresholds or Thresholds()
        self.pid = pid if pid is not None else os.getpid()
        self._proc: Any = None  # psutil.Process of ``pid``, made on first use
        self._tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._cpus = max(1, sum(1 for line in (src.read("/proc/stat") or "").splitlines()
                                if line.startswith("cpu") and not line.startswith("cpu ")))
        self._gpu = _GpuProcesses(nvml, gpu_index, self.pid) if gpu_index is not None else None
        self.sources = self._describe()

    def _describe(self) -> list[str]:
        parts = [f"/proc/stat busy and steal time over {self._cpus} CPUs less this process tree's CPU time "
                 "(psutil)" if self._stat() is not None else "no /proc/stat: CPU interference not measured",
                 "/proc/loadavg", "cpufreq scaling_cur_freq"]
        if self.host_share is not None:
            parts.append(self.host_share.description)
            if self._host_share_why:
                parts.append(f"no core-share look ({self._host_share_why})")
        elif self._host_share_why:
            parts.append(f"no host-share look ({self._host_share_why})")
        for probe in (self.launch, self.call):
            if probe is not None:
                parts.append(probe.description)
        if self._gpu is not None:
            parts.append(self._gpu.source)
        return parts

    def _stat(self) -> tuple[float, float] | None:
        text = self.src.read("/proc/stat")
        for line in (text or "").splitlines():
            if line.startswith("cpu "):
                values = [float(v) for v in line.split()[1:] if v.isdigit()]
                if len(values) > _STEAL_FIELD:
                    busy = sum(values[i] for i in _BUSY_FIELDS)
                    return busy / self._tick, values[_STEAL_FIELD] / self._tick
        return None

    def _process_tree_cpu_s(self) -> float | None:
        if not self.src.is_local:
            return None
        try:
            import psutil

            if self._proc is None:  # psutil reads /proc/PID/stat to make one: once, not per snapshot
                self._proc = psutil.Process(self.pid)
            proc = self._proc
            times = proc.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            kids = _descendants(self.pid)
            children: list[Any] = kids if kids is not None else proc.children(recursive=True)
            for child in children:
                try:  # a child gone since the listing adds nothing (psutil.NoSuchProcess)
                    ct = (psutil.Process(child) if isinstance(child, int) else child).cpu_times()
                    total += ct.user + ct.system
                except psutil.Error:
                    continue
            return float(total)
        except Exception:
            return None

    def snapshot(self, split: bool | None = None) -> Snapshot:
        """The machine now. A thread-pool look is taken only for a case whose calls the pool splits (``split``):
        its own split calls leave OpenBLAS's idle threads spinning for a while, beside a one-thread case's rounds."""
        stat = self._stat()
        gpu = self._gpu.other_pids() if self._gpu is not None else ()
        core, cache = self.host_share.look() if self.host_share is not None else (None, None)
        launch = self.launch.look() if self.launch is not None and (split or not self.launch.pool) else None
        call = self.call.look() if self.call is not None else None
        return Snapshot(time.perf_counter(), stat[0] if stat else None, stat[1] if stat else None,
                        self._own(), gpu, core, cache, launch, call)

    def _freq_mhz(self) -> float | None:
        values = []
        for cpu in self.src.list_dir("/sys/devices/system/cpu"):
            if cpu.startswith("cpu") and cpu[3:].isdigit():
                khz = self.src.read_number(f"/sys/devices/system/cpu/{cpu}/cpufreq/scaling_cur_freq")
                if khz:
                    values.append(khz / 1000.0)
        return statistics.median(values) if values else None

    def _load(self) -> float | None:
        line = self.src.read_first_line("/proc/loadavg")
        try:
            return float(line.split()[0]) if line else None
        except ValueError:
            return None

    def evidence(self, start: Snapshot, end: Snapshot, footprint_bytes: int | None = None,
                 call_s: float | None = None, split: bool | None = None) -> Evidence:
        """What ran beside us between two snapshots, judged against the thresholds; ``footprint_bytes``, the
        case's data where known, decides whether a taken LLC could have slowed it, and with ``call_s`` (its
        per-call time where known) whether a slow launch or wake-up could; ``split`` (its calls go to the BLAS's
        thread pool) whether a slow pool thread could."""
        wall = max(end.t - start.t, 1e-6)
        capacity = wall * self._cpus
        other_s = other_pct = steal_pct = None
        if start.busy_s is not None and end.busy_s is not None and start.own_cpu_s is not None \
                and end.own_cpu_s is not None:
            other_s = max(0.0, (end.busy_s - start.busy_s) - (end.own_cpu_s - start.own_cpu_s))
            other_pct = min(100.0, 100.0 * other_s / capacity)
        if start.steal_s is not None and end.steal_s is not None:
            steal_pct = min(100.0, 100.0 * max(0.0, end.steal_s - start.steal_s) / capacity)
        gpu_pids = tuple(sorted(set(start.gpu_other_pids) | set(end.gpu_other_pids)))
        gpu_sm = self._gpu.other_sm_pct(start.t) if self._gpu is not None else None
        core = _lower(start.core_share, end.core_share)
        cache = _lower(start.cache_share, end.cache_share)
        launch = _lower(start.launch_share, end.launch_share)
        call = _lower(start.call_share, end.call_share)
        th = self.thresholds
        reasons = []
        paced = False
        pace_reasons = 0
        if other_pct is not None and other_s is not None and other_pct > th.other_cpu_pct \
                and other_s > th.other_cpu_min_s:
            reasons.append(f"other processes used {other_pct:.0f}% of the {self._cpus} CPUs")
        if steal_pct is not None and steal_pct > th.steal_pct:
            reasons.append(f"the hypervisor stole {steal_pct:.0f}% of the CPU time")
        if self.host_share is not None:
            core_ref, cache_ref = self.host_share.reference()
            cpus = len(self.host_share.cpus)
            if core is not None and core < th.host_share_fraction * core_ref:
                reasons.append(f"the {cpus} CPUs delivered {core * cpus:.1f} CPUs' worth of FMA work at once "
                               f"(share {core:.2f}, this run's reference {core_ref:.2f}): they were sharing cores")
            if cache is not None and cache < th.host_share_fraction \
                    and self.host_share.cache_matters(footprint_bytes):
                reasons.append(f"one thread read a quarter of the LLC at {cache:.0%} of this run's best "
                               f"({cache * cache_ref:.0f} of {cache_ref:.0f} GB/s): the shared cache was taken")
        if self.launch is not None and launch is not None and launch < th.launch_share_fraction \
                and self.launch.matters(footprint_bytes, call_s, split):
            reasons.append(self.launch.reason(launch))
            paced = True
            pace_reasons += 1
        if self.call is not None and call is not None and call < th.launch_share_fraction \
                and self.call.matters(footprint_bytes, call_s, split):
            reasons.append(self.call.reason(call))
            paced = True
            pace_reasons += 1
        if th.gpu_other_processes and (gpu_pids or (gpu_sm or 0.0) > 0):
            reasons.append(f"other compute processes on the GPU (pids {', '.join(map(str, gpu_pids)) or '?'}"
                           + (f", {gpu_sm:.0f}% SM" if gpu_sm else "") + ")")
        return Evidence(wall, other_pct, other_s, steal_pct, self._load(), self._freq_mhz(), gpu_pids, gpu_sm,
                        tuple(reasons), core, cache, launch, paced, call, pace_reasons)


def _lower(a: float | None, b: float | None) -> float | None:
    values = [x for x in (a, b) if x is not None]
    return min(values) if values else None


class _GpuProcesses:
    """NVML's view of the other compute processes on one GPU; unavailable -> empty answers, with the reason."""

    def __init__(self, nvml: Any, index: int, pid: int) -> None:
        self._nv = nvml
        self._h: Any = None
        self._pid = pid
        self.source = "NVML compute processes and per-process SM utilisation"
        try:
            if self._nv is None:
                from hwcal.machine.gpu import _nvml

                self._nv = _nvml()
            if self._nv is None:
                raise RuntimeError("NVML unavailable")
            self._h = self._nv.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:
            self._h = None
            self.source = f"no NVML ({type(exc).__name__}): other GPU processes not seen"

    def _ours(self) -> set[int]:
        ours = {self._pid}
        try:
            import psutil

            ours |= {c.pid for c in psutil.Process(self._pid).children(recursive=True)}
        except Exception:
            pass
        return ours

    def other_pids(self) -> tuple[int, ...]:
        if self._h is None:
            return ()
        try:
            procs = self._nv.nvmlDeviceGetComputeRunningProcesses(self._h)
        except Exception:
            return ()
        ours = self._ours()
        return tuple(sorted({int(p.pid) for p in procs} - ours))

    def other_sm_pct(self, since: float) -> float | None:
        """Largest SM utilisation sample of another process since ``since`` (perf_counter), or None."""
        if self._h is None:
            return None
        try:
            since_us = int((time.time() - (time.perf_counter() - since)) * 1e6)
            samples = self._nv.nvmlDeviceGetProcessUtilization(self._h, since_us)
        except Exception:
            return None
        ours = self._ours()
        values = [float(s.smUtil) for s in samples if int(s.pid) not in ours]
        return max(values) if values else 0.0
