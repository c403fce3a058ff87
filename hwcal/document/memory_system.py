"""The memory system in the calibration: ``memory.levels`` (per tier: read, write, triad and in-place update on
one core,
triad on all cores, latency in ns and cycles, the working set, huge pages), ``memory.multicore`` (all-core
STREAM, its per-worker figures and scaling) and ``memory.memory_system`` (every point measured, the tier
sizes sysfs reports beside the edges the measured curves show, and what could not be measured). Pure.

``levels_view`` reads ``memory.levels`` of any file in the new shape: files written before issue 24 hold
``{gbps, kernel, ...}`` per level (the STREAM sweep's best triad inside the level, on the sweep's
threads); the schema still accepts that shape for them, and this maps it (``gbps`` to ``triad_gbps`` for
one thread, else to ``allcore_triad_gbps``) so readers need one code path.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

from hwcal.document.precision import share
from hwcal.measure.memsys import BW_KERNELS, IN_PLACE_KERNELS, BandwidthPoint, LatencyPoint, MemorySystem, TierPlan

LEVEL_FIELDS = ("read_gbps", "write_gbps", "triad_gbps", "allcore_triad_gbps", "latency_ns", "latency_cycles",
                "working_set_bytes", "huge_pages", "update_gbps")
_FIGURES = ("read_gbps", "write_gbps", "triad_gbps", "allcore_triad_gbps", "latency_ns", "latency_cycles",
            "update_gbps")
HUGE_ENOUGH = 0.9  # a chase counts as on huge pages when the kernel backed at least this share of it


def _r(x: float | None, digits: int = 4) -> float | None:
    return float(f"{x:.{digits}g}") if x is not None and math.isfinite(x) else None


def _bw(points: list[BandwidthPoint], kernel: str, ws: int, threads: int) -> BandwidthPoint | None:
    return next((p for p in points if p.kernel == kernel and p.working_set_bytes == ws and p.threads == threads),
                None)


HUGE_SLOWER = 1.25  # huge pages only take TLB walks away: a huge-page chase slower than this is disturbed


def _huge_slower(at: list[LatencyPoint]) -> tuple[LatencyPoint, LatencyPoint] | None:
    """(huge, 4k) of one working set where the huge-page chase was slower than the 4 KiB one: disturbed."""
    huge = next((p for p in at if p.pages == "huge"), None)
    small = next((p for p in at if p.pages == "4k"), None)
    return (huge, small) if huge and small and huge.ns_best > HUGE_SLOWER * small.ns_best else None


def _chase(points: list[LatencyPoint], ws: int) -> LatencyPoint | None:
    """The chase at ``ws``: on huge pages where the kernel granted them, else on 4 KiB pages; the 4 KiB one
    where the huge-page chase was slower than it (``latency_warnings`` says so)."""
    at = [p for p in points if p.working_set_bytes == ws]
    huge = [p for p in at if p.pages == "huge" and (p.huge_page_fraction or 0) >= HUGE_ENOUGH]
    small = [p for p in at if p.pages == "4k"]
    if huge and _huge_slower(at):
        return small[0]
    chosen = huge or small or at
    return chosen[0] if chosen else None


def latency_warnings(points: list[LatencyPoint]) -> list[str]:
    """A chase on huge pages slower than the same working set's on 4 KiB pages: disturbed, not the memory."""
    out = []
    for ws in sorted({p.working_set_bytes for p in points}):
        pair = _huge_slower([p for p in points if p.working_set_bytes == ws])
        if pair:
            huge, small = pair
            out.append(f"memory: latency at {ws:,} bytes: {huge.ns_best:.4g} ns on huge pages, slower than "
                       f"{small.ns_best:.4g} ns on 4 KiB pages (huge pages only take TLB walks away): the huge-page "
                       "chase was disturbed; the level files the 4 KiB figure")
    return out


def _cycles(point: LatencyPoint | None, fallback_mhz: float | None) -> float | None:
    if point is None:
        return None
    mhz = point.clock_mhz or fallback_mhz
    return point.ns_best * mhz / 1e3 if mhz else None


def _level(system: MemorySystem, tier: TierPlan, ws1: int, wsn: int, fallback_mhz: float | None) -> dict[str, Any]:
    bw, workers = system.bandwidth, system.cpuset.workers if system.cpuset else 1
    chase = _chase(system.latency, ws1)

    def gbps(kernel: str, ws: int, threads: int) -> float | None:
        point = _bw(bw, kernel, ws, threads)
        return _r(point.gbps_best) if point else None

    return {
        "read_gbps": gbps("read", ws1, 1),
        "write_gbps": gbps("write", ws1, 1),
        "triad_gbps": gbps("triad", ws1, 1),
        "allcore_triad_gbps": gbps("triad", wsn, workers) if workers > 1 else gbps("triad", ws1, 1),
        "latency_ns": _r(chase.ns_best) if chase else None,
        "latency_cycles": _r(_cycles(chase, fallback_mhz)),
        "working_set_bytes": ws1,
        "huge_pages": (chase.pages == "huge" and (chase.huge_page_fraction or 0) >= HUGE_ENOUGH) if chase else None,
        "update_gbps": gbps("update", ws1, 1),
    }


def _cpu_levels(system: MemorySystem, fallback_mhz: float | None) -> tuple[dict[str, Any], list[str]]:
    levels: dict[str, Any] = {}
    notes: list[str] = []
    for tier in system.tiers:
        if tier.name == "dram":
            if not system.dram_rule_met:
                notes.append(f"dram: not measured (the pool of {system.pool_bytes:,} bytes is below 4x the "
                              f"{system.caches.llc_total_bytes:,}-byte last-level caches; see memory_system.notes)")
                levels["dram"] = dict.fromkeys(LEVEL_FIELDS)
                continue
            levels["dram"] = _level(system, tier, system.pool_bytes, system.pool_bytes, fallback_mhz)
        else:
            levels[tier.name] = _level(system, tier, tier.one_core_bytes, tier.all_core_bytes, fallback_mhz)
    return levels, notes


def _gpu_levels(system: MemorySystem) -> dict[str, Any]:
    levels: dict[str, Any] = {}
    for tier in ("l2", "dram"):
        points = {p.kernel: p for p in system.gpu if p.tier == tier}
        if not points:
            continue
        triad = points.get("triad")
        levels[tier] = {**dict.fromkeys(LEVEL_FIELDS),
                        **{f"{k}_gbps": _r(p.gbps_best) for k, p in points.items()},
                        # one kernel runs on every SM: the device's triad is its all-core triad
                        "allcore_triad_gbps": _r(triad.gbps_best) if triad else None,
                        "working_set_bytes": next(iter(points.values())).working_set_bytes}
    return levels


def multicore_section(system: MemorySystem) -> tuple[dict[str, Any] | None, list[str]]:
    """``memory.multicore`` and the warning a scaling efficiency above 1 raises."""
    mc = system.multicore
    if mc is None or not mc.scaling:
        return None, []
    top = mc.all_cores
    one = next((p for p in mc.scaling if p.threads == 1), None)
    eff = top.gbps / (top.threads * one.gbps) if one and one.gbps > 0 else None
    warnings = []
    if eff is not None and one is not None and eff > 1.0:
        warnings.append(f"memory: all-core STREAM scales super-linearly ({top.threads} workers give {eff:.3g}x "
                        f"{top.threads} x the one-worker {one.gbps:.4g} GB/s): the one-worker round was slowed "
                        "(a busy machine?) or each worker's share stayed in a cache; not a real speed-up")
    return {
        "threads": top.threads,
        "aggregate_gbps": _r(top.gbps),
        "per_thread_gbps": [_r(g) for g in top.per_thread_gbps] if top.per_thread_gbps else None,
        "scaling": [{"threads": p.threads, "gbps": _r(p.gbps)} for p in mc.scaling],
        "scaling_efficiency": share(eff),  # above 1: the warning
        "method": mc.method,
    }, warnings


def _edge(curve: list[tuple[int, float]], inner: float, outer: float, rising: bool) -> int | None:
    """Working set where ``curve`` crosses the geometric midpoint between two tiers' values (log-log)."""
    mid = math.sqrt(inner * outer)
    for (w1, v1), (w2, v2) in itertools.pairwise(curve):
        crossed = (v1 < mid <= v2) if rising else (v1 > mid >= v2)
        if crossed and v1 > 0 and v2 > 0 and v1 != v2:
            frac = (math.log(mid) - math.log(v1)) / (math.log(v2) - math.log(v1))
            return round(math.exp(math.log(w1) + frac * (math.log(w2) - math.log(w1))))
    return None


def measured_edges(system: MemorySystem) -> dict[str, dict[str, int | None]]:
    """Per cache tier, where the measured curves leave it: latency (huge pages, else 4 KiB) and one-core read."""
    pages = "huge" if any(p.pages == "huge" for p in system.latency) else "4k"
    latency = sorted((p.working_set_bytes, p.ns_best) for p in system.latency if p.pages == pages)
    reads = sorted((p.working_set_bytes, p.gbps_best) for p in system.bandwidth
                   if p.kernel == "read" and p.threads == 1 and not p.windowed)
    tiers = system.tiers
    lat = {ws: v for ws, v in latency}
    rd = {ws: v for ws, v in reads}
    out: dict[str, dict[str, int | None]] = {}
    for tier, nxt in itertools.pairwise(tiers):
        ws_in, ws_out = tier.one_core_bytes, nxt.one_core_bytes if nxt.name != "dram" else system.pool_bytes
        edges: dict[str, int | None] = {}
        if ws_in in lat and ws_out in lat:
            edges["latency"] = _edge([p for p in latency if ws_in <= p[0] <= ws_out], lat[ws_in], lat[ws_out], True)
        if ws_in in rd and ws_out in rd:
            edges["read_bandwidth"] = _edge([p for p in reads if ws_in <= p[0] <= ws_out], rd[ws_in], rd[ws_out],
                                            False)
        out[tier.name] = edges
    return out


def _detail(system: MemorySystem, fallback_mhz: float | None, clock_source: str) -> dict[str, Any]:
    edges = measured_edges(system)
    clocks = [p.clock_mhz for p in system.latency if p.clock_mhz]
    detail: dict[str, Any] = {
        "device": system.device,
        "kernels": system.kernels_method or system.gpu_method,
        "tiers": [{"tier": t.name, "sysfs_bytes": t.sysfs_bytes, "sysfs_all_cores_bytes": t.sysfs_all_bytes,
                   "one_core_working_set_bytes": t.one_core_bytes, "all_core_working_set_bytes": t.all_core_bytes,
                   "measured_edge_bytes": edges.get(t.name, {})} for t in system.tiers],
        "bandwidth": [{**asdict(p), "gbps_best": _r(p.gbps_best, 5), "gbps_median": _r(p.gbps_median, 5),
                       "per_thread_gbps": list(p.per_thread_gbps)} for p in system.bandwidth],
        "latency": [{**asdict(p), "ns_best": _r(p.ns_best, 5), "ns_median": _r(p.ns_median, 5),
                     "cycles": _r(_cycles(p, fallback_mhz)), "clock_mhz": _r(p.clock_mhz, 5)}
                    for p in system.latency],
        "clock": {"median_mhz": _r(sorted(clocks)[len(clocks) // 2], 5) if clocks else _r(fallback_mhz, 5),
                  "source": system.clock_method if clocks else clock_source},
        "pools": {"dram_pool_bytes": system.pool_bytes, "huge_pool_bytes": system.huge_pool_bytes,
                  "first_touch_gbps": system.first_touch_gbps, "dram_rule_met": system.dram_rule_met},
        "budget": {"limit_s": system.budget_s, "spent_s": system.spent_s, "kernels_load_s": system.compile_s},
        "notes": list(system.notes),
    }
    if system.cpuset is not None:
        detail["cores"] = system.cpuset.as_dict()
    if system.huge_pages is not None:
        detail["huge_pages"] = system.huge_pages.as_dict()
    if system.multicore is not None:
        detail["multicore_other_forms_gbps"] = dict(system.multicore.other_forms)
        detail["multicore_form"] = system.multicore.form
    if system.gpu:
        detail["gpu"] = [{**asdict(p), "gbps_best": _r(p.gbps_best, 5), "gbps_median": _r(p.gbps_median, 5)}
                         for p in system.gpu]
    return detail


def memory_system_parts(system: MemorySystem | None, fallback_mhz: float | None, clock_source: str
                        ) -> tuple[dict[str, Any], list[str]]:
    """The keys the memory section gets from the memory system (``levels``, ``levels_notes``,
    ``multicore``, ``memory_system``) and the warnings; empty without a memory-system run."""
    if system is None:
        return {}, []
    notes: list[str] = []
    if system.gpu:
        levels = _gpu_levels(system)
    else:
        levels, notes = _cpu_levels(system, fallback_mhz)
    parts: dict[str, Any] = {"levels": levels, "memory_system": _detail(system, fallback_mhz, clock_source)}
    if notes:
        parts["levels_notes"] = notes
    multicore, warnings = multicore_section(system)
    if multicore is not None:
        parts["multicore"] = multicore
    return parts, [*warnings, *latency_warnings(system.latency)]


def levels_view(memory: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``memory.levels`` of any file in the new shape (legacy ``{gbps, kernel}`` entries mapped)."""
    if not isinstance(memory, dict):
        return {}
    threads = memory.get("threads") or 1
    out: dict[str, dict[str, Any]] = {}
    for name, level in (memory.get("levels") or {}).items():
        if not isinstance(level, dict):
            continue
        if "gbps" in level and not any(k in level for k in _FIGURES):
            legacy = dict.fromkeys(LEVEL_FIELDS)
            legacy["triad_gbps" if threads == 1 else "allcore_triad_gbps"] = level.get("gbps")
            legacy["working_set_bytes"] = level.get("working_set_bytes")
            out[name] = legacy
        else:
            out[name] = {**dict.fromkeys(LEVEL_FIELDS), **{k: level.get(k) for k in LEVEL_FIELDS if k in level}}
    return out


@dataclass(frozen=True)
class Ceiling:
    """The bandwidth a memory-bound operation is set against: the fastest kernel measured in the tier its
    working set lives in, with the thread count it ran on."""

    tier: str
    threads: int
    kernel: str
    gbps: float
    working_set_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "threads": self.threads, "kernel": self.kernel, "gbps": _r(self.gbps),
                "working_set_bytes": self.working_set_bytes}


def tier_of(system: MemorySystem, working_set_bytes: int, threads: int) -> str:
    """The innermost cache tier (sysfs sizes) holding ``working_set_bytes`` split over ``threads`` cores."""
    for cache in sorted(system.caches.levels, key=lambda c: c.level):
        if working_set_bytes <= cache.capacity_bytes(threads):
            return cache.name
    return "dram"


def blas_ceiling(system: MemorySystem | None, working_set_bytes: int, threads: int | None,
                 in_place: bool = False) -> Ceiling | None:
    """The roof of an operation of ``working_set_bytes`` (the distinct bytes it touches) on ``threads``
    threads (None on a GPU): the best kernel measured at its tier's point, on one core or on all; None where
    it was not measured. The in-place update is a roof only for an ``in_place`` operation (scal, axpy's y):
    it moves each line in and back out with no write-allocate, which a read-only or out-of-place operation
    cannot do; and an in-place operation gets None where the update was not measured there (the other
    kernels' best reads low for it: the update ran 2x the read roof at DRAM on one Zen 4 core)."""
    if system is None:
        return None
    kernels = set(BW_KERNELS) if in_place else set(BW_KERNELS) - set(IN_PLACE_KERNELS)
    if system.gpu:
        tier = tier_of(system, working_set_bytes, 1)
        tier = "l2" if tier != "dram" else "dram"
        points = [p for p in system.gpu if p.tier == tier and p.kernel in kernels]
        if in_place and not any(p.kernel in IN_PLACE_KERNELS for p in points):
            return None
        best_gpu = max(points, key=lambda q: q.gbps_best, default=None)
        return (Ceiling(tier, 1, best_gpu.kernel, best_gpu.gbps_best, best_gpu.working_set_bytes)
                if best_gpu else None)
    workers = system.cpuset.workers if system.cpuset else 1
    used = 1 if (threads or 1) <= 1 else workers
    tier = tier_of(system, working_set_bytes, used)
    plan = next((t for t in system.tiers if t.name == tier), None)
    if plan is None or (tier == "dram" and not system.dram_rule_met):
        return None
    ws = system.pool_bytes if tier == "dram" else plan.one_core_bytes if used == 1 else plan.all_core_bytes
    measured = [p for p in system.bandwidth if p.working_set_bytes == ws and p.threads == used and p.kernel in kernels]
    if in_place and not any(p.kernel in IN_PLACE_KERNELS for p in measured):
        return None
    best = max(measured, key=lambda p: p.gbps_best, default=None)
    return Ceiling(tier, used, best.kernel, best.gbps_best, ws) if best else None


def dram_triad(system: MemorySystem | None) -> Ceiling | None:
    """The compiled kernels' one-core triad over the DRAM pool, where the pool met STREAM's 4x LLC rule: the
    sustained figure of a machine whose framework sweep stopped (its time budget) before 4x the LLC."""
    if system is None or system.gpu or not system.dram_rule_met:
        return None
    point = _bw(system.bandwidth, "triad", system.pool_bytes, 1)  # the figure levels.dram.triad_gbps files
    return Ceiling("dram", 1, "triad", point.gbps_best, system.pool_bytes) if point else None
