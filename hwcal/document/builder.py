"""The calibration builder: a pure function from a session's results and the machine's facts to the
calibration document (and, for hardware seen the first time, its spec). No I/O, no clocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hwcal.backends import Support
from hwcal.document.format2 import to_format_2
from hwcal.document.memory import memory_section
from hwcal.document.peaks import with_ceiling_efficiency
from hwcal.measure.records import BlasRecord, GemmRecord, LaunchFloor, MemorySweep, ShapeRecord
from hwcal.naming import CalibrationKey
from hwcal.precisions import PRECISIONS, canonical_sorted


@dataclass
class BuildInput:
    key: CalibrationKey
    hardware_name: str
    device: str
    power_mode: str
    power_mode_source: str
    freq_source: str
    calibration_date: datetime
    tool_version: str
    framework_facts: dict[str, Any]
    records: list[GemmRecord]
    supports: dict[str, Support]
    precisions: list[str]
    spec: dict[str, Any]
    host: dict[str, Any] = field(default_factory=dict)
    blas: list[dict[str, Any]] = field(default_factory=list)
    command_line: list[str] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0
    skips: dict[str, list[str]] = field(default_factory=dict)
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    memory: MemorySweep | dict[str, Any] | None = None  # STREAM results, or a section built elsewhere
    # Per precision, the operand layout chosen and what each layout reached (LayoutChoice.as_dict()).
    layouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per precision, the max-achievable search's result (hwcal.measure.max_achievable), GPUs.
    max_achievable: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The spec with its peaks scaled to the clock measured under load; efficiency is against it.
    efficiency_spec: dict[str, Any] | None = None
    # BLAS1/BLAS2, GEMM shapes and launch floors (sections ``blas``, ``gemm_shapes``, ``launch_floors``)
    blas_records: list[BlasRecord] = field(default_factory=list)
    shape_records: list[ShapeRecord] = field(default_factory=list)
    launch_floors: dict[str, LaunchFloor] = field(default_factory=dict)


def _r(x: float, digits: int = 4) -> float:
    """Round to significant digits: the files stay readable, the noise is far above this."""
    return float(f"{x:.{digits}g}")


def _shape(result: dict[str, Any]) -> str:
    shape = result["shape"]
    return f"{shape['m']}x{shape['n']}x{shape['k']}"


def _peaks(records: list[GemmRecord]) -> dict[str, GemmRecord]:
    best: dict[str, GemmRecord] = {}
    for rec in records:
        if rec.precision not in best or rec.gflops_best > best[rec.precision].gflops_best:
            best[rec.precision] = rec
    return best


def _spec_peaks(spec: dict[str, Any]) -> dict[str, float]:
    return {p: float(v) for p, v in (spec.get("theoretical_peaks") or {}).items() if v}


def _efficiency_spec(inp: BuildInput) -> dict[str, Any]:
    """The spec efficiency is computed against: its peaks scaled to the clock measured, where known."""
    return inp.efficiency_spec if inp.efficiency_spec is not None else inp.spec


def status_lists(status: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The seed-compatible lists, disjoint by construction: each precision has one status."""
    return {
        "supported_precisions": [p for p, s in status.items() if s["status"] == "native"],
        "emulated_precisions": [p for p, s in status.items() if s["status"] == "emulated"],
        "unsupported_precisions": [p for p, s in status.items() if s["status"] == "unsupported"],
    }


def precision_matrix(inp: BuildInput) -> tuple[dict[str, Any], list[str]]:  # noqa: C901 -- TODO(issue 21): split
    """Status, peaks, speedups and efficiencies per precision, and the warnings they raise.

    ``theoretical_peaks`` stay the spec's own figures (consumers compare them across files); the
    efficiency is against those peaks scaled to the clock really run at, filed beside them.
    """
    best = _peaks(inp.records)
    theoretical = _spec_peaks(inp.spec)
    eff_spec = _efficiency_spec(inp)
    reference = _spec_peaks(eff_spec)
    fp32 = best["fp32"].gflops_best if "fp32" in best else None
    status: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for p in canonical_sorted(set(inp.precisions) | set(best)):
        sup = inp.supports.get(p)
        if p in best:
            entry: dict[str, Any] = {"status": "native", "kernel": best[p].kernel, "layout": best[p].layout}
            if p in inp.layouts:
                entry["layouts"] = inp.layouts[p]
            if fp32:
                ratio = best[p].gflops_best / fp32
                entry["ratio_vs_fp32"] = _r(ratio)
                floor = PRECISIONS[p].emulated_below_fp32_ratio
                if ratio < floor:
                    entry["status"] = "emulated"
                    entry["reason"] = (f"runs at {ratio:.3g}x fp32, below the {floor:g}x a native {p} GEMM reaches; "
                                       f"kernel: {best[p].kernel}")
            if sup is not None and sup.emulation_evidence:
                entry["status"] = "emulated"
                entry["reason"] = "; ".join(filter(None, [sup.emulation_evidence, entry.get("reason")]))
            if inp.skips.get(p):
                entry["sizes_skipped"] = list(dict.fromkeys(inp.skips[p]))
            status[p] = entry
        elif sup is not None and not sup.runnable:
            status[p] = {"status": "unsupported", "reason": sup.reason}
        else:
            reasons = inp.skips.get(p)
            status[p] = {"status": "not_run", "reason": reasons[0] if reasons else "not selected in this run"}
    peaks = {p: _r(best[p].gflops_best) for p in canonical_sorted(best)}
    # Where the max-achievable search ran (GPUs), its burst best mean is the peak; the square curve stays.
    searched = {p: r for p, r in inp.max_achievable.items() if p in peaks}
    peaks.update({p: _r(r["peak_gflops"]) for p, r in searched.items()})
    efficiency = {p: _r(peaks[p] / reference[p]) for p in peaks if p in reference}
    for p, eff in efficiency.items():
        if eff > 1.0:
            clock = (eff_spec.get("peaks_reference_clocks_mhz") or {}).get(p) or eff_spec.get(
                "peaks_reference_clock_mhz", "?")
            warnings.append(
                f"{p}: measured {peaks[p]:g} GFLOPS is {eff:.3g}x the theoretical peak {reference[p]:g} GFLOPS; "
                f"the peak is wrong (clock under load above the {clock} MHz "
                "it assumes, or a wrong FLOPs/cycle), not the measurement"
            )
    matrix = {
        **status_lists(status),
        "status": status,
        "peak_gflops_by_precision": peaks,
        "peak_size_by_precision": {p: best[p].n for p in peaks},
        "speedup_vs_fp32": {p: _r(peaks[p] / peaks["fp32"]) for p in peaks} if "fp32" in peaks else {},
        "peak_source_by_precision": {
            p: (f"max_achievable: {searched[p]['peak']} at {_shape(searched[p])} ({searched[p]['layout']})"
                if p in searched else f"square sweep: fastest round at n={best[p].n} ({best[p].layout})")
            for p in peaks},
        "theoretical_peaks": {p: _r(v) for p, v in theoretical.items()},
        "efficiency_by_precision": efficiency,
    }
    if inp.efficiency_spec is not None and reference != theoretical:
        matrix["efficiency_reference_gflops"] = {p: _r(v) for p, v in reference.items()}
        clocks = eff_spec.get("peaks_reference_clocks_mhz") or {}
        if clocks:
            matrix["efficiency_reference_clocks_mhz"] = {p: float(v) for p, v in clocks.items()}
    return matrix, warnings


def _gemm_entry(rec: GemmRecord, theoretical: dict[str, float]) -> dict[str, Any]:
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
    }
    if rec.precision in theoretical:
        entry["efficiency"] = _r(rec.gflops_best / theoretical[rec.precision])
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
_FAMILY_ORDER = ("small_m", "proj_up", "proj_down", "batched")
_FLOOR_ORDER = (*_BLAS_ORDER, "gemm")


def _times(time_s: dict[str, float]) -> dict[str, float]:
    return {k: float(f"{v:.6g}") for k, v in time_s.items()}


def blas_section(records: list[BlasRecord], sustained_gbps: float | None, spec_gbps: float | None
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``blas`` section: per (operation, precision, size), and the warnings it raises.

    A size whose counted bytes are at least 4x the last-level cache is a DRAM figure: it is set against
    the same run's sustained triad (``efficiency_vs_measured_dram``; read-only dot has no write-allocate
    traffic and may exceed 1.0) and the spec's bandwidth. In-cache sizes get null for both.
    """
    order = canonical_sorted(PRECISIONS)
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    for rec in sorted(records, key=lambda r: (_BLAS_ORDER.index(r.operation), order.index(r.precision), r.bytes)):
        vs_measured = _r(rec.gbps_best / sustained_gbps) if rec.at_dram and sustained_gbps else None
        vs_theoretical = _r(rec.gbps_best / spec_gbps) if rec.at_dram and spec_gbps else None
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
        }
        if rec.device_event_ratio is not None:
            entry["device_event_ratio"] = _r(rec.device_event_ratio)
        if vs_theoretical is not None and vs_theoretical > 1.0:
            warnings.append(f"blas: {rec.operation} {rec.precision} n={rec.n}: {rec.gbps_best:.4g} GB/s is "
                            f"{vs_theoretical:.3g}x the spec's {spec_gbps:g} GB/s; the spec's bandwidth is wrong, "
                            "not the measurement")
        entries.append(entry)
    return entries, warnings


def gemm_shapes_section(records: list[ShapeRecord], reference: dict[str, float]
                        ) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``gemm_shapes`` section, efficiency against the same peaks as square GEMM."""
    order = canonical_sorted(PRECISIONS)
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    for rec in sorted(records, key=lambda r: (order.index(r.precision), _FAMILY_ORDER.index(r.family), r.flops)):
        eff = _r(rec.gflops_best / reference[rec.precision]) if reference.get(rec.precision) else None
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
        }
        if rec.modes:
            entry["modes"] = rec.modes
        if rec.device_event_ratio is not None:
            entry["device_event_ratio"] = _r(rec.device_event_ratio)
        if eff is not None and eff > 1.0:
            warnings.append(f"gemm_shapes: {rec.precision} {rec.m}x{rec.n}x{rec.k}: {rec.gflops_best:.4g} GFLOPS is "
                            f"{eff:.3g}x the peak {reference[rec.precision]:g} GFLOPS; the peak is wrong, not the "
                            "measurement")
        entries.append(entry)
    return entries, warnings


def launch_floors_section(floors: dict[str, LaunchFloor]) -> dict[str, dict[str, Any]]:
    """Per operation, the time of its smallest call (seconds): a model adds it per kernel launched."""
    return {op: {"seconds_min": float(f"{f.seconds_min:.4g}"), "seconds_median": float(f"{f.seconds_median:.4g}"),
                 "calls": f.calls, "rounds": f.rounds, "method": f.method, "framework": f.framework,
                 "device": f.device, "precision": f.precision}
            for op, f in sorted(floors.items(), key=lambda kv: (_FLOOR_ORDER.index(kv[0]) if kv[0] in _FLOOR_ORDER
                                                                else len(_FLOOR_ORDER), kv[0]))}


def build_calibration(inp: BuildInput) -> dict[str, Any]:
    matrix, warnings = precision_matrix(inp)
    theoretical = _spec_peaks(inp.spec)
    peaks = matrix["peak_gflops_by_precision"]
    metadata: dict[str, Any] = {
        "hardware_id": inp.key.hardware_id,
        "hardware_name": inp.hardware_name,
        "device_type": inp.key.device_type,
        "device": inp.device,
        "calibration_date": inp.calibration_date.isoformat(),
        "tool_version": inp.tool_version,
        "power_mode": inp.power_mode,
        "power_mode_source": inp.power_mode_source,
        "freq_mhz": inp.key.freq_mhz,
        "freq_source": inp.freq_source,
        "framework": inp.key.framework,
        **inp.framework_facts,
        "host": inp.host,
        "blas": inp.blas,
        "command_line": inp.command_line,
        "selection": inp.selection,
        "options": inp.options,
        "wall_time_s": round(inp.wall_time_s, 2),
        **inp.extra_metadata,
    }
    ceiling = metadata.get("compute_ceiling")
    if isinstance(ceiling, dict) and ceiling.get("gflops"):
        # The measured FMA ceiling beside the derived peak: efficiency against both.
        metadata["compute_ceiling"], ceiling_warnings = with_ceiling_efficiency(
            ceiling, peaks, _spec_peaks(_efficiency_spec(inp)))
        warnings = [*warnings, *ceiling_warnings]
    bandwidth = inp.spec.get("peak_bandwidth_gbps")
    memory, memory_warnings = memory_section(inp.memory, peaks, theoretical, bandwidth)
    measured_bw = (memory or {}).get("sustained_gbps")
    doc: dict[str, Any] = {
        "schema_version": 1,  # hwcal's own sections; to_format_2 adds what the original loader reads
        "key": inp.key.as_dict(),
        "metadata": metadata,
        "theoretical_peak_gflops": theoretical.get("fp32"),
        "theoretical_bandwidth_gbps": bandwidth or None,
        "best_measured_gflops": peaks.get("fp32"),
        "measured_bandwidth_gbps": measured_bw,
        "bandwidth_efficiency": _r(measured_bw / bandwidth) if measured_bw and bandwidth else None,
        "precision_matrix": matrix,
        "gemm": [_gemm_entry(r, _spec_peaks(_efficiency_spec(inp))) for r in sorted(
            inp.records, key=lambda r: (canonical_sorted(PRECISIONS).index(r.precision), r.n))],
        "warnings": [*inp.warnings, *warnings, *memory_warnings],
    }
    if memory is not None:
        doc["memory"] = memory
    if inp.max_achievable:
        doc["max_achievable"] = {p: inp.max_achievable[p] for p in canonical_sorted(inp.max_achievable)}
    if inp.blas_records:
        doc["blas"], blas_warnings = blas_section(inp.blas_records, measured_bw, bandwidth or None)
        doc["warnings"] += blas_warnings
    if inp.shape_records:
        doc["gemm_shapes"], shape_warnings = gemm_shapes_section(inp.shape_records, _spec_peaks(_efficiency_spec(inp)))
        doc["warnings"] += shape_warnings
    if inp.launch_floors:
        doc["launch_floors"] = launch_floors_section(inp.launch_floors)
    return to_format_2(doc)
