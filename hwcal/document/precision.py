"""Per precision: its status (native, emulated, unsupported, not run, each with the reason), its peak and
where the peak comes from, its speedup over fp32 and its efficiency against the right peak.

Two views of one computation, both filed: the original loader's ``precision_matrix`` (exactly its legacy
keys; ``supported_precisions`` = every precision that runs, native or emulated) and hwcal's
``precision_detail`` (status with reasons, the emulated list, peak sizes and sources, efficiencies and
the peaks they are against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hwcal.backends import Support
from hwcal.measure.records import GemmRecord, MaxAchievableRecord
from hwcal.precisions import PRECISIONS, canonical_sorted


def r4(x: float, digits: int = 4) -> float:
    """Round to significant digits: the files stay readable, the noise is far above this."""
    return float(f"{x:.{digits}g}")


def share(x: float | None) -> float | None:
    """An efficiency as filed: ``x`` rounded (``r4``) where that is a share of its ceiling, in (0, 1]; None
    otherwise (above 1 the ceiling is not this figure's, and the caller says why)."""
    value = r4(x) if x is not None and math.isfinite(x) else None
    return value if value is not None and 0 < value <= 1.0 else None


def spec_peaks(spec: dict[str, Any]) -> dict[str, float]:
    return {p: float(v) for p, v in (spec.get("theoretical_peaks") or {}).items() if v}


def best_by_precision(records: list[GemmRecord]) -> dict[str, GemmRecord]:
    best: dict[str, GemmRecord] = {}
    for rec in records:
        if rec.precision not in best or rec.gflops_best > best[rec.precision].gflops_best:
            best[rec.precision] = rec
    return best


@dataclass(frozen=True)
class PrecisionInput:
    """What the precision views are computed from."""

    records: list[GemmRecord]
    supports: dict[str, Support]
    precisions: list[str]
    skips: dict[str, list[str]]
    layouts: dict[str, dict[str, Any]]
    max_achievable: dict[str, MaxAchievableRecord]
    spec: dict[str, Any]  # the spec's own peaks are filed as they are
    efficiency_spec: dict[str, Any]  # its peaks scaled to the clock run at: efficiency is against these


def _measured_status(p: str, best: GemmRecord, fp32: float | None, inp: PrecisionInput) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": "native", "kernel": best.kernel, "layout": best.layout}
    if p in inp.layouts:
        entry["layouts"] = inp.layouts[p]
    if fp32:
        ratio = best.gflops_best / fp32
        entry["ratio_vs_fp32"] = r4(ratio)
        floor = PRECISIONS[p].emulated_below_fp32_ratio
        if ratio < floor:
            entry["status"] = "emulated"
            entry["reason"] = (f"runs at {ratio:.3g}x fp32, below the {floor:g}x a native {p} GEMM reaches; "
                               f"kernel: {best.kernel}")
    sup = inp.supports.get(p)
    if sup is not None and sup.emulation_evidence:
        entry["status"] = "emulated"
        entry["reason"] = "; ".join(filter(None, [sup.emulation_evidence, entry.get("reason")]))
    if inp.skips.get(p):
        entry["sizes_skipped"] = list(dict.fromkeys(inp.skips[p]))
    return entry


def statuses(inp: PrecisionInput, best: dict[str, GemmRecord]) -> dict[str, dict[str, Any]]:
    """One status per precision, canonical order: measured ones by their speed and the ISA evidence."""
    fp32 = best["fp32"].gflops_best if "fp32" in best else None
    status: dict[str, dict[str, Any]] = {}
    for p in canonical_sorted(set(inp.precisions) | set(best)):
        sup = inp.supports.get(p)
        if p in best:
            status[p] = _measured_status(p, best[p], fp32, inp)
        elif sup is not None and not sup.runnable:
            status[p] = {"status": "unsupported", "reason": sup.reason}
        else:
            reasons = inp.skips.get(p)
            status[p] = {"status": "not_run", "reason": reasons[0] if reasons else "not selected in this run"}
    return status


def _shape(result: MaxAchievableRecord) -> str:
    return f"{result.m}x{result.n}x{result.k}"


def _peak_sources(best: dict[str, GemmRecord], peaks: dict[str, float],
                  searched: dict[str, MaxAchievableRecord]) -> dict[str, str]:
    return {p: (f"max_achievable: {searched[p].peak} at {_shape(searched[p])} ({searched[p].layout})"
                if p in searched else f"square sweep: fastest round at n={best[p].n} ({best[p].layout})")
            for p in peaks}


def _over_peak_warnings(ratios: dict[str, float], peaks: dict[str, float], reference: dict[str, float],
                        eff_spec: dict[str, Any]) -> list[str]:
    """A warning per precision whose best GEMM beat its reference peak: a peak set too low, no efficiency."""
    warnings = []
    for p, eff in ratios.items():
        if eff > 1.0:
            clock = (eff_spec.get("peaks_reference_clocks_mhz") or {}).get(p) or eff_spec.get(
                "peaks_reference_clock_mhz", "?")
            warnings.append(
                f"{p}: measured {peaks[p]:g} GFLOPS is {eff:.3g}x the theoretical peak {reference[p]:g} GFLOPS; "
                f"the peak is wrong (clock under load above the {clock} MHz "
                "it assumes, or a wrong FLOPs/cycle), not the measurement; no efficiency filed")
    return warnings


def precision_views(inp: PrecisionInput, hardware_name: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(the legacy ``precision_matrix``, hwcal's ``precision_detail``, the warnings they raise).

    ``theoretical_peaks`` stay the spec's own figures (consumers compare them across files); the
    efficiency is against those peaks scaled to the clock really run at, filed beside them."""
    best = best_by_precision(inp.records)
    theoretical = spec_peaks(inp.spec)
    reference = spec_peaks(inp.efficiency_spec)
    status = statuses(inp, best)
    peaks = {p: r4(best[p].gflops_best) for p in canonical_sorted(best)}
    # Where the max-achievable search ran (GPUs), its burst best mean is the peak; the square curve stays.
    searched = {p: r for p, r in inp.max_achievable.items() if p in peaks}
    peaks.update({p: r4(r.peak_gflops) for p, r in searched.items()})
    ratios = {p: r4(peaks[p] / reference[p]) for p in peaks if p in reference}
    # A share of its peak, in (0, 1]: above it the peak is wrong (a warning says so), and no efficiency is filed.
    efficiency = {p: v for p, v in ratios.items() if share(v) is not None}
    native = [p for p, s in status.items() if s["status"] == "native"]
    emulated = [p for p, s in status.items() if s["status"] == "emulated"]
    unsupported = [p for p, s in status.items() if s["status"] == "unsupported"]
    matrix = {
        "hardware_name": hardware_name,
        "supported_precisions": canonical_sorted(set(native) | set(emulated)),
        "unsupported_precisions": unsupported,
        "peak_gflops_by_precision": peaks,
        "speedup_vs_fp32": {p: r4(peaks[p] / peaks["fp32"]) for p in peaks} if "fp32" in peaks else {},
        "theoretical_peaks": {p: r4(v) for p, v in theoretical.items()},
    }
    detail: dict[str, Any] = {
        "emulated_precisions": emulated,
        "status": status,
        "peak_size_by_precision": {p: best[p].n for p in peaks},
        "peak_source_by_precision": _peak_sources(best, peaks, searched),
        "efficiency_by_precision": efficiency,
    }
    if inp.efficiency_spec is not inp.spec and reference != theoretical:
        detail["efficiency_reference_gflops"] = {p: r4(v) for p, v in reference.items()}
        clocks = inp.efficiency_spec.get("peaks_reference_clocks_mhz") or {}
        if clocks:
            detail["efficiency_reference_clocks_mhz"] = {p: float(v) for p, v in clocks.items()}
    return matrix, detail, _over_peak_warnings(ratios, peaks, reference, inp.efficiency_spec)


def status_lists(status: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The seed-compatible lists, disjoint by construction: each precision has one status."""
    return {
        "supported_precisions": [p for p, s in status.items() if s["status"] == "native"],
        "emulated_precisions": [p for p, s in status.items() if s["status"] == "emulated"],
        "unsupported_precisions": [p for p, s in status.items() if s["status"] == "unsupported"],
    }
