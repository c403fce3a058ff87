"""What a neighbour on the same host takes without a trace in /proc/stat: the cores under this VM's CPUs
and the last-level cache. Both slow this run's figures while other processes, steal time and the load
all read zero, so the interference monitor looks at them directly, between cases.

Seen on this project's 2-vCPU Zen 5 guest (2026-12-05), a (16,256,64) @ (16,64,256) fp32 numpy matmul
as the witness (600-670 us when nothing shares):

- **Shared cores.** For 1 to 10 s at a time the matmul took 1,080-1,240 us while a pinned FMA run on both
  vCPUs at once delivered 0.98-1.00x one vCPU's rate instead of 1.81-1.94x; one thread alone kept its
  134-142 GFLOPS fp64 (342 looks over 3 minutes). A canary run on each CPU in turn had missed it: the
  loss shows only when both CPUs work at once.
- **A taken cache.** For tens of seconds the matmul took 1,020-1,340 us with the cores whole, while one
  thread's read of a quarter of the LLC (8 MiB) fell from ~60 GB/s to 19-48. Of 596 looks, the read
  below 0.7 of its best caught 84 of the 91 slow matmuls and rang falsely on 21 of the other 505.

A look: (1) the fp64 FMA kernel of ``hwcal.machine.fma_probe`` (hand-encoded, verified lane by lane) on
one pinned thread, then on every allowed CPU at once, best of a few ~0.5 ms runs each; the core share is
all-CPU GFLOPS / (CPUs x one CPU's GFLOPS): about 1 on separate idle cores, 1 / CPUs on one. (2) One
thread sums a quarter of one LLC instance (at most 32 MiB), best of eight; the cache share is that rate
over the run's best. Each is judged against the run's best (the core share against at least 0.9 where
sysfs shows every CPU as a core of its own, so a run that starts on shared cores is caught from its first
case). Never raises.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hwcal.machine.caches import detect_cpu_caches
from hwcal.machine.cpuset import detect_cpuset
from hwcal.machine.fma_probe import affinity_cpus, all_cores_gflops, per_iteration_s, probe_kernel
from hwcal.machine.sources import LOCAL, Sources

RUN_S = 0.0005  # one FMA run per thread: long enough that a thread starting late costs a few per cent
REPS = 3  # best of: one run spoiled by a late start or a tick does not make the look
MAX_AGE_S = 0.2  # a look younger than this answers again: either state lasts seconds
SEPARATE_CORES_SHARE = 0.9  # what separate cores deliver at least (all-core clocks sit a little lower)
CACHE_FRACTION = 4  # the cache look reads LLC / 4: resident when the cache is this run's, not when taken
CACHE_MIN_BYTES, CACHE_MAX_BYTES = 1 << 20, 32 << 20  # the max bounds a look's cost on a very large LLC
# Best of 8 reads: after a case that swept DRAM, the Zen 5 LLC took 5-6 reads of the buffer to hold it again
# (18, 20, 24, 38, 48, 56, 60 GB/s read by read); best of 3 read a taken cache after every DRAM-sized case.
CACHE_READS = 8
# ... but a look stops at its first read within 5 % of the run's best: judged at 0.7, the look is then certain.
# On the AMX Xeon guest a look (the FMA pair and 8 reads of 32 MiB) took 19 ms, 118 looks 2.2 s of a torch run.
ENOUGH = 0.95
# What the cache look can see: one thread's read of 4x the LLC (16x the look's buffer, at most 512 MiB), best
# of 3, over the look's read, once a run. On the Zen 5 guest DRAM read at 0.5-0.6 of the look's best, on the
# Zen 4 guest at 0.74 (38 of 51 GB/s): above the 0.7 judged at, a taken LLC shows there only when the memory
# bus is loaded too.
DRAM_FACTOR, DRAM_MAX_BYTES, DRAM_READS = 16, 512 << 20, 3


class HostShareProbe:
    """Looks at how much of separate cores this run's CPUs deliver and how fast one thread reads from the
    LLC; remembers the run's best and lowest of each."""

    def __init__(self, kernel: Any, cpus: list[int], separate_cores: bool, llc_bytes: int | None,
                 private_bytes: int = 0) -> None:
        self.kernel = kernel
        # A case whose data fits the cores' private caches (every level below the LLC) cannot feel a taken
        # LLC: the cache look does not judge it.
        self.private_bytes = private_bytes
        self.cpus = cpus
        self.separate_cores = separate_cores
        self.n = max(100, int(RUN_S / per_iteration_s(kernel))) if kernel is not None else 0
        size = min(CACHE_MAX_BYTES, max(CACHE_MIN_BYTES, llc_bytes // CACHE_FRACTION)) if llc_bytes else 0
        self.buffer = np.ones(size // 8) if size else None
        self.best = {"core": 0.0, "cache_gbps": 0.0}
        self.lowest: dict[str, float] = {}
        self.looks = 0
        self._last: tuple[float, float | None, float | None] | None = None
        self._dram_ratio: float | None = None

    @classmethod
    def for_this_machine(cls, src: Sources = LOCAL) -> tuple[HostShareProbe | None, str]:
        """A probe of this process's CPUs and LLC, or None and why not (not this machine, nothing to look at)."""
        if not src.is_local:
            return None, "not the local machine"
        cpus = affinity_cpus()
        kernel, why = probe_kernel(src) if len(cpus) > 1 else (None, "one CPU: no cores to share")
        caches = detect_cpu_caches(src)
        # One LLC instance: a thread reads from its own (a CCD's L3 on a many-CCD EPYC), not the sum of all.
        llc = caches.last_level.size_bytes if caches.last_level is not None else None
        if kernel is None and llc is None:
            return None, f"{why}; no LLC size"
        private = sum(c.total_bytes for c in caches.levels if c is not caches.last_level)
        cpuset = detect_cpuset(src, set(cpus))
        return cls(kernel, cpus, len(cpuset.cores) == len(cpus), llc, private), why

    @property
    def description(self) -> str:
        parts = []
        if self.kernel is not None:
            parts.append(f"a concurrent FMA look on the {len(self.cpus)} allowed CPUs ({self.kernel.form.instruction}"
                         f", fp64, best of {REPS} runs of ~{RUN_S * 1e3:.1f} ms) against one of them alone")
        if self.buffer is not None:
            parts.append(f"one thread's read of {self.buffer.nbytes / 2**20:.0f} MiB (a quarter of the LLC), best "
                         f"of up to {CACHE_READS} (until one is within {1 - ENOUGH:.0%} of the run's best), against "
                         "the run's best, judging cases whose data outgrows the private "
                         f"caches ({self.private_bytes / 2**20:.2f} MiB)")
        return "; ".join(parts) + f", at most every {MAX_AGE_S:g} s"

    def reference(self) -> tuple[float, float]:
        """(core share, cache GB/s) when nothing shares: the run's best, the core share at least 0.9 where
        sysfs shows separate cores and at most 1 (a lucky look above 1 must not make every later one low)."""
        core = min(1.0, max(self.best["core"], SEPARATE_CORES_SHARE if self.separate_cores else 0.0))
        return core, self.best["cache_gbps"]

    def _core(self) -> float | None:
        if self.kernel is None:
            return None
        deadline = time.perf_counter() + 0.05
        one = all_cores_gflops(self.kernel, self.cpus[:1], self.n, REPS, deadline)
        every = all_cores_gflops(self.kernel, self.cpus, self.n, REPS, deadline)
        return every / (len(self.cpus) * one) if one > 0 else None

    def _cache_gbps(self) -> float | None:
        # A read at ENOUGH of the run's best ends the look: no later read can make it judge the cache taken.
        enough = ENOUGH * self.best["cache_gbps"] or None
        return _read_gbps(self.buffer, CACHE_READS, enough) if self.buffer is not None else None

    def dram_ratio(self) -> float | None:
        """One thread's read of 4x the LLC (DRAM) over the run's best read of the look's buffer (or one made
        now), once a run: the cache share a taken LLC brings when the memory bus is quiet. None without a
        cache look, or when the read could not be made."""
        if self.buffer is None:
            return None
        if self._dram_ratio is None:
            try:
                dram = _read_gbps(np.ones(min(DRAM_MAX_BYTES, DRAM_FACTOR * self.buffer.nbytes) // 8), DRAM_READS)
                cache = self._cache_gbps()
            except (MemoryError, ValueError):
                return None
            # Against the run's best, as the look judges: a taken LLC with a quiet bus reads at the DRAM rate.
            reference = max(self.best["cache_gbps"], cache or 0.0)
            self._dram_ratio = dram / reference if reference > 0 else None
        return self._dram_ratio

    def cache_matters(self, footprint_bytes: int | None) -> bool:
        """Whether a taken LLC can slow a case of this many bytes (unknown: assume it can)."""
        return footprint_bytes is None or footprint_bytes > self.private_bytes

    def look(self) -> tuple[float | None, float | None]:
        """(core share, cache share) now, or from a look under MAX_AGE_S old; None where not looked at."""
        now = time.perf_counter()
        if self._last is not None and now - self._last[0] < MAX_AGE_S:
            return self._last[1], self._last[2]
        try:
            core, gbps = self._core(), self._cache_gbps()
        except Exception:
            return None, None
        self.looks += 1
        for key, value in (("core", core), ("cache_gbps", gbps)):
            if value is not None:
                self.best[key] = max(self.best[key], value)
                self.lowest[key] = min(self.lowest.get(key, value), value)
        cache = gbps / self.best["cache_gbps"] if gbps is not None and self.best["cache_gbps"] > 0 else None
        self._last = (time.perf_counter(), core, cache)
        return core, cache

    def summary(self, final: bool = True) -> dict[str, Any]:
        """For ``metadata.interference.host_share``: what was looked at, how often, the run's extremes; the DRAM
        ratio only in the ``final`` one (its read of 16x the look's buffer first-touches up to 512 MiB: 0.6-1.5 s
        on the AMX Xeon guest as a run's first case, about 0.1 s at its end, once the run's arrays were)."""
        core_ref, cache_ref = self.reference()
        out: dict[str, Any] = {"method": self.description, "cpus": len(self.cpus),
                               "separate_cores": self.separate_cores, "looks": self.looks}
        if self.kernel is not None:
            out.update(core_share_reference=round(core_ref, 3), core_share_best=round(self.best["core"], 3),
                       core_share_lowest=_rounded(self.lowest.get("core")))
        if self.buffer is not None:
            out.update(cache_bytes=int(self.buffer.nbytes), private_bytes=int(self.private_bytes),
                       cache_gbps_best=round(cache_ref, 2),
                       cache_gbps_lowest=_rounded(self.lowest.get("cache_gbps"), 2))
            ratio = self.dram_ratio() if final else self._dram_ratio
            if ratio is not None and ratio > 0:
                out["cache_dram_ratio"] = round(ratio, 3)
        return out


def _read_gbps(buffer: np.ndarray, reads: int, enough: float | None = None) -> float:
    """One thread's best rate summing ``buffer``, over at most ``reads`` reads (fewer once one reaches ``enough``
    GB/s), in GB/s."""
    best = float("inf")
    for _ in range(reads):
        t0 = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - t0)
        if enough is not None and buffer.nbytes / max(best, 1e-9) / 1e9 >= enough:
            break
    return buffer.nbytes / max(best, 1e-9) / 1e9


def _rounded(x: float | None, nd: int = 3) -> float | None:
    return round(x, nd) if x is not None else None
