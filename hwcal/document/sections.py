"""The per-case sections of a calibration: ``gemm`` (square sweep), ``blas``, ``gemm_shapes`` and
``launch_floors``, each entry a record's figures with its method, each efficiency against the right peak
or bandwidth. Pure functions of the records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hwcal.document.memory_system import Ceiling
from hwcal.document.precision import r4 as _r
from hwcal.document.precision import share
from hwcal.measure.records import BlasRecord, GemmRecord, LaunchFloor, ShapeRecord
from hwcal.precisions import PRECISIONS, canonical_sorted


def flag_of(case: str, flagged: frozenset[str]) -> dict[str, bool]:
    """``{"flagged": True}`` for a figure whose case the interference watch left flagged, else nothing: a
    reader (``Profile.predict``) can then prefer the unflagged figures beside it."""
    return {"flagged": True} if case and case in flagged else {}


def gemm_entry(rec: GemmRecord, theoretical: dict[str, float], flagged: frozenset[str] = frozenset()
               ) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "precision": rec.precision,
        "n": rec.n,
        "flops_per_round": rec.flops_per_round,
        "launches_per_round": rec.launches_per_round,
        "rounds": rec.rounds,
        "warmup_rounds": rec.warmup_rounds,
        "time_s": {k: float(f"{v:.6g}") for k, v in rec.time_s.items()},
        "gflops_best": _r(rec.gflops_best, 5),
        "gflops_median": _r(rec.gflops_median, 5),
        "cv": _r(rec.cv, 3),
        "verified": True,
        "max_error": float(f"{rec.max_error:.3g}"),
        "tolerance": float(f"{rec.tolerance:.3g}"),
        "verify_method": rec.verify_method,
        "kernel": rec.kernel,
        "layout": rec.layout,
        **flag_of(rec.case, flagged),
    }
    if rec.precision in theoretical:
        ratio = rec.gflops_best / theoretical[rec.precision]
        efficiency = share(ratio)
        if efficiency is not None:
            entry["efficiency"] = efficiency
        else:  # the precision's warning (``precision_views``) says the same of its best
            entry["efficiency_note"] = (f"{ratio:.4g}x the peak {theoretical[rec.precision]:g} GFLOPS: the peak is "
                                        "wrong, not the measurement; no efficiency filed")
    if rec.modes:
        entry["modes"] = rec.modes
    if rec.operand_range is not None:
        entry["operand_range"] = rec.operand_range
        entry["accumulator_wraps"] = rec.accumulator_wraps
    if rec.device_event_ratio is not None:
        entry["device_event_ratio"] = _r(rec.device_event_ratio)
    if rec.throttled is not None:
        entry["throttled"] = rec.throttled
    return entry


_BLAS_ORDER = ("dot", "axpy", "scal", "gemv")
_FAMILY_ORDER = ("small_m", "proj_up", "proj_down", "batched", "pow2_n")
_FLOOR_ORDER = (*_BLAS_ORDER, "gemm", "batched_gemm", "add")


def _times(time_s: dict[str, float]) -> dict[str, float]:
    return {k: float(f"{v:.6g}") for k, v in time_s.items()}


CeilingOf = Callable[[int, int | None, bool], Ceiling | None]  # (working-set bytes, threads, in place)


def bounded_efficiency(gbps: float, working_set_bytes: int, threads: int | None, in_place: bool,
                       ceiling_of: CeilingOf) -> tuple[float | None, Ceiling | None, str | None]:
    """(efficiency, the ceiling it is against, why) for a memory-bound figure: an efficiency is a share of a
    ceiling, so it is filed only in (0, 1]. Above the roof of the tier its whole working set lives in (sysfs
    sizes, which a VM often understates), it is set against the faster tier part of the working set is served
    from (``why`` says so); above that one's roof too (at its thread count, for its access pattern) it is not
    filed (``why`` explains, for the warnings)."""
    ceiling = ceiling_of(working_set_bytes, threads, in_place)
    if ceiling is None or ceiling.gbps <= 0:
        return None, None, None
    efficiency = _r(gbps / ceiling.gbps)
    if share(efficiency) is not None:
        return efficiency, ceiling, None
    ws = working_set_bytes
    while ws > 1:  # the next faster tier only: a figure above that one's roof too is not a share of either
        ws //= 4
        inner = ceiling_of(max(1, ws), threads, in_place)
        if inner is None or inner.tier == ceiling.tier or inner.gbps <= 0:
            continue
        inner_share = share(gbps / inner.gbps)
        if inner_share is None:
            break
        return inner_share, inner, (f"{efficiency:.3g}x the {ceiling.tier} roof ({ceiling.kernel}, {ceiling.gbps:.4g} "
                              f"GB/s): part of its {working_set_bytes:,}-byte working set is served from "
                              f"{inner.tier}, whose roof ({inner.kernel}, {inner.gbps:.4g} GB/s) it is set "
                              f"against (sysfs sizes put the whole working set in {ceiling.tier})")
    return None, ceiling, (f"{efficiency:.3g}x the {ceiling.tier} roof ({ceiling.kernel}, {ceiling.threads} "
                           f"thread{'s' if ceiling.threads > 1 else ''}, {ceiling.gbps:.4g} GB/s) and above the next "
                           "faster tier's: the roof's rounds were disturbed (a busy machine) or the library reached "
                           "a faster path than the compiled kernels; no efficiency filed")


def blas_section(records: list[BlasRecord], sustained_gbps: float | None, spec_gbps: float | None,
                 ceiling_of: CeilingOf | None = None, flagged: frozenset[str] = frozenset()
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``blas`` section: per (operation, precision, size), and the warnings it raises.

    ``efficiency`` is against the right ceiling: the bandwidth of the tier the call's working set lives
    in (sysfs sizes, for the threads it ran on; the distinct bytes it touches, ``working_set_bytes``),
    measured by the memory system with that many threads (``ceiling_of(working set, threads, in place)``:
    the fastest of read, write and triad there, and for scal and axpy, which write back what they read, the
    in-place update too). An efficiency is in (0, 1] (``bounded_efficiency``): above its tier's roof a figure
    is set against the faster tier part of its working set is served from, above that one's roof too none is filed,
    and a warning says which. A size of at least 4x the last-level cache is also set against the same run's
    single-thread triad (``efficiency_vs_measured_dram``, kept for older readers; a multi-threaded BLAS above
    it files none) and the spec's bandwidth (none above it: the spec is wrong then).
    """
    order = canonical_sorted(PRECISIONS)
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    for rec in sorted(records, key=lambda r: (_BLAS_ORDER.index(r.operation), order.index(r.precision), r.bytes)):
        vs_measured = share(rec.gbps_best / sustained_gbps) if rec.at_dram and sustained_gbps else None
        raw_theoretical = _r(rec.gbps_best / spec_gbps) if rec.at_dram and spec_gbps else None
        vs_theoretical = share(raw_theoretical)
        ceiling = ceiling_of(rec.working_set_bytes, rec.threads, rec.in_place) if ceiling_of is not None else None
        other = ceiling_of(rec.working_set_bytes, rec.threads, False) if ceiling_of and rec.in_place and not ceiling \
            else None
        if other is not None:  # no figure rather than one against read, write or triad, which reads high
            warnings.append(f"blas: {rec.operation} {rec.precision} n={rec.n}: no in-place update was measured in "
                            f"{other.tier} on {other.threads} thread(s) (see memory_system.notes), the roof of an "
                            "operation that writes back what it reads: efficiency not filed")
        why = None
        if ceiling is not None and ceiling_of is not None:
            efficiency, ceiling, why = bounded_efficiency(rec.gbps_best, rec.working_set_bytes, rec.threads,
                                                          rec.in_place, ceiling_of)
        else:
            efficiency = None
        entry: dict[str, Any] = {
            "operation": rec.operation,
            "precision": rec.precision,
            "n": rec.n,
            **({"m": rec.m} if rec.m is not None else {}),
            "flops": rec.flops,
            "bytes": rec.bytes,
            "element_bytes": rec.element_bytes,
            "gflops_best": _r(rec.gflops_best, 5),
            "gflops_median": _r(rec.gflops_median, 5),
            "gbps_best": _r(rec.gbps_best, 5),
            "gbps_median": _r(rec.gbps_median, 5),
            "arithmetic_intensity": _r(rec.flops / rec.bytes),
            "time_s": _times(rec.time_s),
            "time_per": "call",
            "launches_per_round": rec.launches_per_round,
            "rounds": rec.rounds,
            "warmup_rounds": rec.warmup_rounds,
            "cv": _r(rec.cv, 3),
            "verified": True,
            "max_error": float(f"{rec.max_error:.3g}"),
            "tolerance": float(f"{rec.tolerance:.3g}"),
            "verify_method": rec.verify_method,
            "kernel": rec.kernel,
            "threads": rec.threads,
            "at_dram": rec.at_dram,
            "efficiency_vs_measured_dram": vs_measured,
            "efficiency_vs_theoretical": vs_theoretical,
            **flag_of(rec.case, flagged),
        }
        if ceiling_of is not None:
            entry["efficiency"] = efficiency
            entry["efficiency_ceiling"] = ceiling.as_dict() if ceiling is not None else None
        if rec.device_event_ratio is not None:
            entry["device_event_ratio"] = _r(rec.device_event_ratio)
        if rec.cpu_busy is not None:
            entry["cpu_busy"] = _r(rec.cpu_busy, 3)
        if why is not None:
            warnings.append(f"blas: {rec.operation} {rec.precision} n={rec.n}: {rec.gbps_best:.4g} GB/s is {why}")
        if raw_theoretical is not None and raw_theoretical > 1.0:
            warnings.append(f"blas: {rec.operation} {rec.precision} n={rec.n}: {rec.gbps_best:.4g} GB/s is "
                            f"{raw_theoretical:.3g}x the spec's {spec_gbps:g} GB/s; the spec's bandwidth is wrong, "
                            "not the measurement (efficiency_vs_theoretical not filed)")
        entries.append(entry)
    return entries, warnings


def gemm_shapes_section(records: list[ShapeRecord], reference: dict[str, float], flagged: frozenset[str] = frozenset()
                        ) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``gemm_shapes`` section, efficiency against the same peaks as square GEMM."""
    order = canonical_sorted(PRECISIONS)
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    for rec in sorted(records, key=lambda r: (order.index(r.precision), _FAMILY_ORDER.index(r.family), r.flops)):
        ratio = rec.gflops_best / reference[rec.precision] if reference.get(rec.precision) else None
        eff = share(ratio)  # in (0, 1]: above its peak, none (the warning below says why)
        entry: dict[str, Any] = {
            "family": rec.family,
            "precision": rec.precision,
            "m": rec.m,
            "n": rec.n,
            "k": rec.k,
            "batch": rec.batch,
            "layout": rec.layout,
            "flops": rec.flops,
            "gflops_best": _r(rec.gflops_best, 5),
            "gflops_median": _r(rec.gflops_median, 5),
            "time_s": _times(rec.time_s),
            "time_per": "call",
            "launches_per_round": rec.launches_per_round,
            "rounds": rec.rounds,
            "warmup_rounds": rec.warmup_rounds,
            "cv": _r(rec.cv, 3),
            "efficiency": eff,
            "kernel": rec.kernel,
            "verified": True,
            "max_error": float(f"{rec.max_error:.3g}"),
            "tolerance": float(f"{rec.tolerance:.3g}"),
            "verify_method": rec.verify_method,
            "source": rec.source,
            **flag_of(rec.case, flagged),
        }
        if rec.modes:
            entry["modes"] = rec.modes
        if rec.device_event_ratio is not None:
            entry["device_event_ratio"] = _r(rec.device_event_ratio)
        if rec.operands is not None:
            entry["operands"] = rec.operands
        if rec.cpu_busy is not None:
            entry["cpu_busy"] = _r(rec.cpu_busy, 3)
        if ratio is not None and eff is None:
            warnings.append(f"gemm_shapes: {rec.precision} {rec.m}x{rec.n}x{rec.k}: {rec.gflops_best:.4g} GFLOPS is "
                            f"{ratio:.4g}x the peak {reference[rec.precision]:g} GFLOPS; the peak is wrong, not the "
                            "measurement; no efficiency filed")
        entries.append(entry)
    return entries, warnings


def _floor_fields(f: LaunchFloor, flagged: frozenset[str]) -> dict[str, Any]:
    return {"seconds_min": float(f"{f.seconds_min:.4g}"), "seconds_median": float(f"{f.seconds_median:.4g}"),
            "calls": f.calls, "rounds": f.rounds, "method": f.method, **flag_of(f.case, flagged)}


def launch_floors_section(floors: dict[str, LaunchFloor], isolated: dict[str, LaunchFloor] | None = None,
                          flagged: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Per operation, the time of its smallest call (seconds): back to back (the top-level figures, as
    format 1 filed them) and, where measured, ``isolated`` (each call synchronised)."""
    isolated = isolated or {}
    out: dict[str, dict[str, Any]] = {}
    for op in sorted(set(floors) | set(isolated), key=lambda o: (_FLOOR_ORDER.index(o) if o in _FLOOR_ORDER
                                                                else len(_FLOOR_ORDER), o)):
        first = floors.get(op) or isolated[op]
        entry: dict[str, Any] = _floor_fields(floors[op], flagged) if op in floors else {}
        entry.update({"framework": first.framework, "device": first.device, "precision": first.precision})
        if op in floors:
            entry["timing"] = "back_to_back"
        if op in isolated:
            entry["isolated"] = _floor_fields(isolated[op], flagged)
        out[op] = entry
    return out


def gemm_section(records: list[GemmRecord], reference: dict[str, float], flagged: frozenset[str] = frozenset()
                 ) -> list[dict[str, Any]]:
    """The ``gemm`` section: every square-sweep result, canonical precision order then size."""
    order = canonical_sorted(PRECISIONS)
    return [gemm_entry(r, reference, flagged)
            for r in sorted(records, key=lambda r: (order.index(r.precision), r.n))]
