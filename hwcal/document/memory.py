"""STREAM results and what the calibration says about them: pure functions, no I/O, no clocks.

The benchmark body (``hwcal.measure.stream``) fills a ``MemorySweep``; the builder turns it into the
calibration's ``memory`` section with ``memory_section``: per-size bandwidths per kernel, the
sustained DRAM figure (triad plateau at STREAM-sized arrays, never an in-cache peak), per-level
figures where the cache steps are clear, and the roofline's ridge points.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from hwcal.document.memory_system import blas_ceiling, dram_triad, memory_system_parts
from hwcal.document.precision import share
from hwcal.document.sections import bounded_efficiency, flag_of
from hwcal.machine.caches import CacheInfo
from hwcal.measure.memsys import MemorySystem
from hwcal.measure.records import (
    KERNELS,
    MemorySweep,
    StreamRecord,
)
from hwcal.measure.stream import DRAM_CI_TARGET, DRAM_METHOD, DramEstimate, dram_estimate

PLATEAU_TOLERANCE = 0.10  # sizes within 10% of each other belong to one plateau
CLEAR_STEP = 1.15  # a cache level is reported only where it is >= 15% faster than the level behind it


@dataclass(frozen=True)
class Plateau:
    """The largest sizes whose bandwidths agree: the sustained figure is their median."""

    array_bytes: tuple[int, ...]
    gbps: float
    spread: float  # (max - min) / median over the plateau


def find_plateau(points: list[tuple[int, float]], min_array_bytes: int,
                 tolerance: float = PLATEAU_TOLERANCE) -> Plateau | None:
    """The plateau among (array_bytes, GB/s) points with arrays >= ``min_array_bytes``.

    Walks down from the largest size and keeps each next-smaller size while it stays within
    ``tolerance`` of the median so far; None when no size is large enough (no DRAM figure then).
    """
    valid = sorted((p for p in points if p[0] >= min_array_bytes), reverse=True)
    if not valid:
        return None
    kept = [valid[0]]
    for size, gbps in valid[1:]:
        ref = statistics.median(g for _, g in kept)
        if abs(gbps - ref) > tolerance * ref:
            break
        kept.append((size, gbps))
    values = [g for _, g in kept]
    median = statistics.median(values)
    return Plateau(tuple(sorted(s for s, _ in kept)), median, (max(values) - min(values)) / median if median else 0.0)


def level_of(working_set_bytes: int, caches: CacheInfo, threads: int | None) -> str:
    """The innermost cache level that holds the working set with ``threads`` threads, else ``dram``."""
    for cache in sorted(caches.levels, key=lambda c: c.level):
        if working_set_bytes <= cache.capacity_bytes(threads or 1):
            return cache.name
    return "dram"


def level_figures(records: list[StreamRecord], caches: CacheInfo, threads: int | None,
                  sustained_gbps: float | None, kernel: str = "triad") -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per-level bandwidth where the steps are clear, and a note for each level that is not.

    A cache level's figure is the best ``kernel`` bandwidth among sizes well inside it (working set at
    most half its capacity, beyond the level before it). It is kept only where it beats the next kept
    level behind it by ``CLEAR_STEP``: a level that is not faster than what lies behind it (small
    arrays bound by call overhead, a victim cache) is no step, and is left out with the reason.
    """
    levels = sorted(caches.levels, key=lambda c: c.level)
    figures: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    previous_capacity = 0
    for cache in levels:
        capacity = cache.capacity_bytes(threads or 1)
        inside = [r for r in records if r.kernel == kernel and previous_capacity < r.working_set_bytes <= capacity / 2]
        if inside:
            best = max(inside, key=lambda r: r.gbps_best)
            figures[cache.name] = {
                "gbps": best.gbps_best,
                "kernel": kernel,
                "capacity_bytes": capacity,
                "working_set_bytes": best.working_set_bytes,
                "sizes": len(inside),
            }
        else:
            notes.append(f"{cache.name}: no {kernel} size well inside it ({previous_capacity:,} < working set <= "
                         f"{capacity // 2:,} bytes)")
        previous_capacity = capacity
    if sustained_gbps is not None:
        figures["dram"] = {"gbps": sustained_gbps, "kernel": kernel}
    kept: dict[str, dict[str, Any]] = {}
    behind: tuple[str, float] | None = ("dram", sustained_gbps) if sustained_gbps is not None else None
    for cache in reversed(levels):
        fig = figures.get(cache.name)
        if fig is None:
            continue
        if behind is not None and fig["gbps"] < CLEAR_STEP * behind[1]:
            notes.append(f"{cache.name}: {fig['gbps']:.3g} GB/s is not clearly above {behind[0]}'s {behind[1]:.3g} "
                         f"GB/s (no clear step; small arrays are often bound by per-call overhead)")
            continue
        kept[cache.name] = fig
        behind = (cache.name, fig["gbps"])
    if "dram" in figures:
        kept["dram"] = figures["dram"]
    return {name: kept[name] for name in [c.name for c in levels] + ["dram"] if name in kept}, notes


def ridge_points(gflops: dict[str, float], gbps: float | None) -> dict[str, float]:
    """Arithmetic intensity (FLOPs, or integer ops, per DRAM byte) where a kernel turns compute-bound."""
    if not gbps:
        return {}
    return {p: _r(v / gbps) for p, v in gflops.items() if v}


def _r(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def _record_entry(rec: StreamRecord, sweep: MemorySweep, system: MemorySystem | None, flagged: frozenset[str]
                  ) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kernel": rec.kernel,
        "n": rec.n,
        "array_bytes": rec.array_bytes,
        "working_set_bytes": rec.working_set_bytes,
        "level": level_of(rec.working_set_bytes, sweep.caches, sweep.threads),
        "stream_valid": rec.array_bytes >= sweep.stream_min_array_bytes,
        "bytes_per_pass": rec.bytes_per_pass,
        "bytes_moved_per_pass": rec.arrays_moved * rec.array_bytes,
        "passes_per_round": rec.passes_per_round,
        "rounds": rec.rounds,
        "warmup_rounds": rec.warmup_rounds,
        "time_s": {k: float(f"{v:.6g}") for k, v in rec.time_s.items()},
        "gbps_best": _r(rec.gbps_best, 5),
        "gbps_median": _r(rec.gbps_median, 5),
        "cv": _r(rec.cv, 3),
        "verified": True,
        "max_rel_error": float(f"{rec.max_rel_error:.3g}"),
    }
    if rec.device_event_ratio is not None:
        entry["device_event_ratio"] = _r(rec.device_event_ratio)
    entry.update(flag_of(rec.case, flagged))
    # The right ceiling: the memory system's best kernel in the tier this working set lives in, on as many
    # threads as the sweep ran (as for BLAS); in (0, 1] only (``bounded_efficiency``: the faster tier part of
    # the working set is served from, else none), the reason in ``efficiency_note`` for the warnings.
    efficiency, ceiling, why = bounded_efficiency(
        rec.gbps_best, rec.working_set_bytes, sweep.threads, False,
        lambda ws, threads, in_place: blas_ceiling(system, ws, threads, in_place))
    if ceiling is not None:
        entry["efficiency"] = efficiency
        entry["efficiency_ceiling"] = ceiling.as_dict()
        if why is not None:
            entry["efficiency_note"] = why
    return entry


def _over_roof(sweep: list[dict[str, Any]]) -> list[str]:
    """Sweep points above the roof of the tier their arrays were put in: set against a faster tier, or no
    efficiency filed (``efficiency_note`` says which)."""
    return [f"memory: {e['kernel']} at {e['array_bytes']:,}-byte arrays: {e['gbps_best']:.4g} GB/s is "
            f"{e['efficiency_note']}" for e in sweep if e.get("efficiency_note")]


def _plateaus(records: list[StreamRecord], min_array: int) -> dict[str, Plateau]:
    by_kernel: dict[str, Plateau] = {}
    for kernel in KERNELS:
        plateau = find_plateau([(r.array_bytes, r.gbps_best) for r in records if r.kernel == kernel], min_array)
        if plateau is not None:
            by_kernel[kernel] = plateau
    return by_kernel


def _plateau_warnings(memory: MemorySweep, records: list[StreamRecord], triad: Plateau | None,
                      fallback: bool = False) -> list[str]:
    """No DRAM-sized triad at all, or DRAM-sized triads left out of the plateau (a noisy run?)."""
    min_array = memory.stream_min_array_bytes
    if triad is None:
        largest = max((r.array_bytes for r in records if r.kernel == "triad"), default=0)
        then = ("measured_bandwidth_gbps is the memory system's one-core DRAM triad (sustained_source)" if fallback
                else "sustained DRAM bandwidth not measured, measured_bandwidth_gbps is null")
        return [
            f"memory: no triad run with arrays >= {min_array:,} bytes (4x the {memory.caches.llc_total_bytes:,}-byte "
            f"last-level cache{'s' if memory.caches.last_level and memory.caches.last_level.instances > 1 else ''}; "
            f"largest run: {largest:,}): {then}"]
    left_out = sorted(r.array_bytes for r in records if r.kernel == "triad"
                      and r.array_bytes >= min_array and r.array_bytes not in triad.array_bytes)
    if not left_out:
        return []
    return [f"memory: triad at STREAM-sized arrays of {', '.join(f'{b:,}' for b in left_out)} bytes "
            f"differs by more than {PLATEAU_TOLERANCE:.0%} from the larger sizes' plateau and was "
            "left out of the sustained figure (a noisy run?)"]


def _dram_fields(section: dict[str, Any], dram: DramEstimate | None) -> list[str]:
    """The pooled DRAM estimate's interval, rounds and method into ``section``; a warning when wide."""
    if dram is None:
        return []
    if math.isfinite(dram.hi):
        section["sustained_ci95_gbps"] = [_r(max(dram.lo, 0.0)), _r(dram.hi)]
    section["sustained_rounds"] = dram.rounds
    section["sustained_method"] = DRAM_METHOD
    if math.isfinite(dram.hi) and not dram.converged:
        return [f"memory: the sustained DRAM figure's 95% interval is +-{dram.relative_half_width:.1%} "
                f"after {dram.rounds} rounds, wider than the +-{DRAM_CI_TARGET:.0%} aimed at (time budget "
                "ended; a busy machine?)"]
    return []


def _efficiency_and_ridge(section: dict[str, Any], sustained: float | None, spec_gbps: float | None,
                          peak_gflops: dict[str, float], theoretical_gflops: dict[str, float]) -> list[str]:
    warnings = []
    if sustained and spec_gbps:
        eff = sustained / spec_gbps
        section["efficiency"] = share(eff)  # a share of the spec's only
        if eff > 1.0:
            warnings.append(f"memory: sustained {sustained:g} GB/s is {eff:.3g}x the spec's {spec_gbps:g} GB/s; "
                            "the spec's bandwidth is wrong, not the measurement (no efficiency filed)")
    ridge: dict[str, dict[str, float]] = {}
    if sustained:
        ridge["measured"] = ridge_points(peak_gflops, sustained)
    if spec_gbps:
        ridge["theoretical"] = ridge_points(theoretical_gflops, spec_gbps)
    section["ridge_point_flops_per_byte"] = ridge
    return warnings


def memory_section(memory: MemorySweep | None, peak_gflops: dict[str, float],
                   theoretical_gflops: dict[str, float], spec_gbps: float | None,
                   system: MemorySystem | None = None, clock_mhz: float | None = None, clock_source: str = "",
                   flagged: frozenset[str] = frozenset()) -> tuple[dict[str, Any] | None, list[str]]:
    """The calibration's ``memory`` section and the warnings it raises (None: no memory benchmark ran).

    ``levels`` (cache tiers and DRAM: bandwidth, latency), ``multicore`` and ``memory_system`` come from the
    memory system (``hwcal.document.memory_system``); the STREAM sweep's best triad inside each level, which
    ``levels`` held before, is ``stream_levels``. ``clock_mhz`` turns latency into cycles where the chase had
    no clock probe of its own."""
    parts, system_warnings = memory_system_parts(system, clock_mhz, clock_source)
    if memory is None:
        return ({"sustained_gbps": None, "levels": {}, **parts}, system_warnings) if parts else (None, [])
    records = sorted(memory.records, key=lambda r: (r.array_bytes, KERNELS.index(r.kernel)))
    min_array = memory.stream_min_array_bytes
    by_kernel = _plateaus(records, min_array)
    triad = by_kernel.get("triad")
    # The filed DRAM figure: every triad round at every size >= 4x LLC, pooled, with its 95% interval
    # (a best-of at one plateau size moved 30% between two runs of one machine).
    dram = dram_estimate(records, min_array)
    sustained = _r(dram.gbps) if dram else (_r(triad.gbps) if triad else None)
    fallback = dram_triad(system) if sustained is None else None
    warnings = _plateau_warnings(memory, records, triad, fallback is not None)
    if fallback is not None:
        sustained = _r(fallback.gbps)
    levels, level_notes = level_figures(records, memory.caches, memory.threads, sustained)
    section: dict[str, Any] = {
        "sustained_gbps": sustained,
        "sustained_kernel": "triad",
        "dtype": memory.dtype,
        "element_bytes": memory.element_bytes,
        "threads": memory.threads,
        "device": memory.device,
        "methods": dict(sorted(memory.methods.items(), key=lambda kv: KERNELS.index(kv[0]))),
        "bytes_counting": ("STREAM's: copy and scale 2 arrays, add and triad 3 arrays, x n x element bytes per "
                           "pass; write-allocate traffic and extra passes of an implementation not counted "
                           "(bytes_moved_per_pass says what the implementation really traverses)"),
        "caches": memory.caches.as_dict(),
        "stream_rule": {
            "min_array_bytes": min_array,
            "largest_array_bytes": max((r.array_bytes for r in records), default=0),
            "met": any(r.array_bytes >= min_array for r in records if r.kernel == "triad"),
        },
        "plateau": {k: {"array_bytes": list(p.array_bytes), "gbps": _r(p.gbps), "spread": _r(p.spread, 3)}
                    for k, p in by_kernel.items()},
        "sustained_gbps_by_kernel": {k: _r(p.gbps) for k, p in by_kernel.items()},
        "levels": parts.pop("levels", {}),
        "stream_levels": {name: {k: (_r(v) if k == "gbps" else v) for k, v in fig.items()}
                          for name, fig in levels.items()},
        "budget": {"limit_s": round(memory.budget_s, 2), "spent_s": round(memory.spent_s, 2)},
        "sweep": [_record_entry(r, memory, system, flagged) for r in records],
    }
    if fallback is not None:
        section["sustained_source"] = (f"the memory system's one-core triad (compiled kernel) over a "
                                       f"{fallback.working_set_bytes:,}-byte pool (>= 4x the LLC); the "
                                       f"{memory.dtype} STREAM sweep's budget ended before 4x the LLC")
    warnings += _over_roof(section["sweep"])
    if level_notes:
        section["stream_levels_notes"] = level_notes
    section.update(parts)
    if memory.skips:
        section["skipped"] = list(memory.skips)
    if triad is not None:
        at = next(r for r in records if r.kernel == "triad" and r.array_bytes == triad.array_bytes[-1])
        section["sustained_cv"] = _r(at.cv, 3)
        section["rounds"] = at.rounds
    warnings += _dram_fields(section, dram)
    warnings += _efficiency_and_ridge(section, sustained, spec_gbps, peak_gflops, theoretical_gflops)
    return section, warnings + system_warnings
