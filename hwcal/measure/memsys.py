"""What the memory-system case records (cache tiers, latency, all-core STREAM), and its plan: the
working sets that lie inside each tier for one core and for all cores, and the DRAM size. Plain data,
read by ``hwcal.document.memory_system``.

A tier's point lies well inside it: past the tier before it by at least 4x (and by the geometric mean
of the two sizes, where that is larger) and at most half its own capacity, rounded down to a power of
two. Half of a shared 480 MiB L3 of a VM is where other tenants' lines live too; 4x past the L2 is
inside it on any machine. DRAM is STREAM's size: all arrays together at least 4x the last-level caches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hwcal.machine.caches import CacheInfo, HugePages
from hwcal.machine.cpuset import CpuSet

BW_KERNELS = ("read", "write", "triad", "update")
# update (a = q a in place) moves each line in and back out, with no write-allocate: the pattern of scal and
# of axpy's y, which the other three do not share (on the Zen 4 guest it ran 1.2x the read roof in L3 and
# 2x at DRAM on one core). It is measured at the tier points only (the curve keeps the three), and is a roof
# for in-place operations only (``document.memory_system.blas_ceiling``): a read-only dot cannot write.
CURVE_KERNELS = ("read", "write", "triad")
IN_PLACE_KERNELS = ("update",)


def counted_bytes(kernel: str, array_bytes: int) -> int:
    """Bytes one pass counts, as STREAM counts them, over arrays of ``array_bytes`` in all (triad's a, b and c
    together): each array's bytes once, and an in-place update's twice (read, then written back)."""
    return 2 * array_bytes if kernel in IN_PLACE_KERNELS else array_bytes


DRAM_FACTOR = 4  # all arrays together >= 4x the last-level caches
MIN_DRAM_BYTES = 64 * 2**20  # SoCs have system caches sysfs does not list
SMALLEST_WS = 4 * 2**10
POOL_GRAIN = 16 * 2**20


def pow2_floor(x: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(1.0, x))))


def pow2_ceil(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1.0, x))))


def inside(previous_bytes: int, capacity_bytes: int) -> int:
    """A working set well inside a tier of ``capacity_bytes`` whose inner neighbour holds ``previous_bytes``."""
    if previous_bytes <= 0:
        return max(SMALLEST_WS, pow2_floor(capacity_bytes / 2))
    target = min(max(math.sqrt(previous_bytes * capacity_bytes), 4.0 * previous_bytes), capacity_bytes / 2)
    return pow2_floor(target)


@dataclass(frozen=True)
class TierPlan:
    """One tier's working sets: for one core, and for all workers together (each worker a 1/W share)."""

    name: str  # l1, l2, l3 ... or dram
    one_core_bytes: int
    all_core_bytes: int
    sysfs_bytes: int | None  # what one core's share of the tier holds (sysfs); None for dram
    sysfs_all_bytes: int | None  # ... what all workers' shares hold


def plan_tiers(caches: CacheInfo, workers: int) -> tuple[list[TierPlan], list[str]]:
    """Working sets inside each cache tier and at DRAM, and notes where a tier has no room inside it."""
    notes: list[str] = []
    plans: list[TierPlan] = []
    prev1 = prev_w = 0
    for cache in sorted(caches.levels, key=lambda c: c.level):
        cap1, cap_w = cache.capacity_bytes(1), cache.capacity_bytes(workers)
        one, allw = inside(prev1, cap1), inside(prev_w, cap_w)
        if one <= prev1 or allw <= prev_w:
            notes.append(f"{cache.name}: no working set lies inside it ({cap1:,} bytes, the tier before holds "
                         f"{prev1:,}): not measured")
        else:
            plans.append(TierPlan(cache.name, one, max(allw, workers * 8 * 64), cap1, cap_w))
        prev1, prev_w = max(prev1, cap1), max(prev_w, cap_w)
    # Not rounded up to a power of two: 4x a 480 MiB L3 is 1.9 GiB, and every byte of it is faulted in.
    dram = max(-(-DRAM_FACTOR * caches.llc_total_bytes // POOL_GRAIN) * POOL_GRAIN, MIN_DRAM_BYTES)
    plans.append(TierPlan("dram", dram, dram, None, None))
    return plans, notes


def curve_sizes(plans: list[TierPlan]) -> list[int]:
    """Powers of two from 4 KiB to the DRAM size: the working sets of the bandwidth and latency curves."""
    top = plans[-1].one_core_bytes
    sizes = []
    ws = SMALLEST_WS
    while ws < top:
        sizes.append(ws)
        ws *= 2
    return sizes


def gaps_first(sizes: list[int], measured: list[int]) -> list[int]:
    """``sizes`` in the order a budget should meet them: each next the one farthest (in log2) from every working
    set measured so far (``measured``: the tiers' points), the larger of a tie first. In ascending order the curve's
    budget ran out at 0.5 MiB on the AMX Xeon guest (54 steps left out), with nothing between its 16 MiB L3 point
    and the 1.9 GiB DRAM pool, where a VM's share of a large L3 ends; this way that gap is met first."""
    seen = [math.log2(ws) for ws in measured if ws > 0]
    left, order = list(sizes), []
    while left:
        def gap(ws: int) -> tuple[float, int]:
            return (min((abs(math.log2(ws) - m) for m in seen), default=math.inf), ws)

        best = max(left, key=gap)
        order.append(best)
        left.remove(best)
        seen.append(math.log2(best))
    return order


@dataclass(frozen=True)
class BandwidthPoint:
    """Best and median GB/s of ``kernel`` over ``rounds`` rounds at a working set, on ``threads`` workers;
    bytes as STREAM counts them (read and write one array, triad three, update one twice). A round's figure
    is all its bytes over the common wall time of its workers; ``per_thread_gbps`` are the workers' own in the
    best round."""

    kernel: str
    working_set_bytes: int
    threads: int
    gbps_best: float
    gbps_median: float
    rounds: int
    passes_per_round: int
    windowed: bool = False  # DRAM: each round runs over the next window of a pool of working_set_bytes
    per_thread_gbps: tuple[float, ...] = ()


@dataclass(frozen=True)
class LatencyPoint:
    """Nanoseconds a dependent load waits, at a working set, on huge or 4 KiB pages."""

    working_set_bytes: int
    pages: str  # "huge" or "4k"
    huge_page_fraction: float | None  # of the chased bytes, as the kernel reports (smaps)
    ns_best: float
    ns_median: float
    hops: int  # per round
    rounds: int
    clock_mhz: float | None  # measured on the same core right after the chase, where a probe exists


@dataclass(frozen=True)
class ScalingPoint:
    threads: int
    gbps: float  # best round: all workers' bytes / common wall time
    per_thread_gbps: tuple[float, ...]
    rounds: int


@dataclass
class MulticoreResult:
    """The framework's STREAM triad on 1, 2, 4 ... all workers at once (``scaling``), as a user runs it."""

    form: str
    scaling: list[ScalingPoint]
    array_bytes_total: int  # a, b and c of all workers together
    rule_met: bool
    method: str
    max_rel_error: float
    other_forms: dict[str, float] = field(default_factory=dict)  # torch: its intra-op threads, GB/s

    @property
    def all_cores(self) -> ScalingPoint:
        return max(self.scaling, key=lambda p: p.threads)


@dataclass(frozen=True)
class GpuTierPoint:
    """A GPU kernel's GB/s at a working set that fits the L2 (``tier`` l2) or is far past it (dram)."""

    tier: str
    kernel: str
    working_set_bytes: int
    gbps_best: float
    gbps_median: float
    launches: int
    rounds: int


@dataclass
class MemorySystem:
    """Everything the memory-system case measured, and what it could not (``notes``: lines for the file)."""

    device: str
    caches: CacheInfo
    cpuset: CpuSet | None = None
    huge_pages: HugePages | None = None
    tiers: list[TierPlan] = field(default_factory=list)
    bandwidth: list[BandwidthPoint] = field(default_factory=list)
    latency: list[LatencyPoint] = field(default_factory=list)
    multicore: MulticoreResult | None = None
    gpu: list[GpuTierPoint] = field(default_factory=list)
    kernels_method: str = ""
    gpu_method: str = ""
    clock_method: str | None = None
    notes: list[str] = field(default_factory=list)
    budget_s: float = 0.0
    spent_s: float = 0.0
    compile_s: float = 0.0
    pool_bytes: int = 0  # the DRAM pool (4 KiB pages): bandwidth at DRAM and the 4 KiB chase
    huge_pool_bytes: int = 0
    first_touch_gbps: float | None = None

    @property
    def dram_rule_met(self) -> bool:
        return self.pool_bytes >= DRAM_FACTOR * self.caches.llc_total_bytes
