"""Comparing two calibrations: per precision the peak of each, the ratio B/A, and whether the noise the
files themselves report (cv / sqrt(rounds) of the result a peak came from) can explain the difference.
Shared by ``hwcal-compare`` and the site's compare view.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from hwcal.document.format2 import precision_detail
from hwcal.precisions import canonical_sorted, rate_unit

NOISE_FLOOR = 0.01  # files round peaks to 4-5 significant digits; below 1 % nothing is claimed


def _gemm_entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    imported = doc["metadata"].get("imported")
    legacy = imported.get("gemm", []) if isinstance(imported, dict) else []
    return list(doc.get("gemm", [])) + [g for g in legacy if isinstance(g, dict)]


def _standard_error(cv: object, rounds: object) -> float | None:
    if not isinstance(cv, (int, float)) or isinstance(cv, bool) or cv < 0:
        return None
    n = rounds if isinstance(rounds, int) and rounds > 0 else 1
    return float(cv) / math.sqrt(n)


def _burst_noise(doc: dict[str, Any], precision: str) -> float | None:
    """Where the peak is the median of repeated max-achievable bursts: their relative standard error."""
    result = (doc.get("max_achievable") or {}).get(precision)
    bursts = ((result or {}).get("burst") or {}).get("bursts") or []
    means = [b["mean_gflops"] for b in bursts if isinstance(b, dict) and isinstance(b.get("mean_gflops"), (int, float))]
    if len(means) < 2 or not statistics.fmean(means):
        return None
    return statistics.stdev(means) / statistics.fmean(means) / math.sqrt(len(means))


def peak_noise(doc: dict[str, Any], precision: str) -> float | None:
    """Relative standard error of the figure a precision's peak came from: the max-achievable bursts' where
    the peak is their median, else cv / sqrt(rounds) of the square-sweep result."""
    burst = _burst_noise(doc, precision)
    if burst is not None:
        return burst
    size = precision_detail(doc).get("peak_size_by_precision", {}).get(precision)
    candidates = [g for g in _gemm_entries(doc) if g.get("precision") == precision and "cv" in g
                  and (size is None or g.get("n") == size)]
    if not candidates:
        return None
    best = max(candidates, key=lambda g: g.get("gflops_best", 0.0))
    return _standard_error(best["cv"], best.get("rounds"))


def bandwidth_noise(doc: dict[str, Any]) -> float | None:
    """Relative standard error of the sustained bandwidth, where the file carries a cv for it."""
    memory = doc.get("memory")
    if isinstance(memory, dict):
        for name in ("sustained_cv", "cv"):
            if isinstance(memory.get(name), (int, float)):
                return _standard_error(memory[name], memory.get("rounds"))
    imported = doc["metadata"].get("imported")
    triads = [s for s in (imported or {}).get("stream", []) if s.get("kernel") == "triad" and s.get("time_s")]
    if triads:
        best = max(triads, key=lambda s: s.get("size_mb") or 0)
        t = best["time_s"]
        if "stddev" in t and t.get("mean"):
            return _standard_error(t["stddev"] / t["mean"], best.get("rounds"))
    return None


@dataclass
class Row:
    metric: str
    unit: str
    a: float | None
    b: float | None
    ratio: float | None
    efficiency_a: float | None
    efficiency_b: float | None
    noise: float | None  # relative difference noise can explain (k sigma), None when a cv is missing
    verdict: str
    regression: bool = False


def _verdict(a: float | None, b: float | None, noise: float | None) -> tuple[float | None, str]:
    if a is None and b is None:
        return None, "-"
    if a is None:
        return None, "new in B"
    if b is None:
        return None, "missing in B"
    if a == 0:
        return None, "A is zero"
    ratio = b / a
    if ratio > 0 and noise is not None and abs(math.log(ratio)) <= noise:
        return ratio, "within noise"
    word = "faster" if ratio > 1 else "slower" if ratio < 1 else "same"
    return ratio, word + (" (noise unknown)" if noise is None and word != "same" else "")


def compare(a: dict[str, Any], b: dict[str, Any], sigmas: float = 3.0,
            fail_below: float | None = None) -> list[Row]:
    """One row per precision either measured (canonical order), then the bandwidth."""
    pa, pb = a["precision_matrix"], b["precision_matrix"]
    da, db = precision_detail(a), precision_detail(b)
    rows: list[Row] = []
    for p in canonical_sorted(set(pa["peak_gflops_by_precision"]) | set(pb["peak_gflops_by_precision"])):
        va, vb = pa["peak_gflops_by_precision"].get(p), pb["peak_gflops_by_precision"].get(p)
        cva, cvb = peak_noise(a, p), peak_noise(b, p)
        noise = max(NOISE_FLOOR, sigmas * math.hypot(cva, cvb)) if cva is not None and cvb is not None else None
        ratio, verdict = _verdict(va, vb, noise)
        unit = rate_unit(p)
        row = Row(p, unit, va, vb, ratio, da.get("efficiency_by_precision", {}).get(p),
                  db.get("efficiency_by_precision", {}).get(p), noise, verdict)
        if fail_below is not None:
            b_status = db.get("status", {}).get(p, {}).get("status")
            lost = verdict == "missing in B" and b_status == "unsupported"
            row.regression = lost or (ratio is not None and ratio < fail_below and verdict != "within noise")
            if verdict == "missing in B":
                row.verdict = "unsupported in B" if lost else "not run in B"
        rows.append(row)
    ba, bb = a.get("measured_bandwidth_gbps"), b.get("measured_bandwidth_gbps")
    if ba is not None or bb is not None:
        cva, cvb = bandwidth_noise(a), bandwidth_noise(b)
        noise = max(NOISE_FLOOR, sigmas * math.hypot(cva, cvb)) if cva is not None and cvb is not None else None
        ratio, verdict = _verdict(ba, bb, noise)
        row = Row("bandwidth", "GB/s", ba, bb, ratio, a.get("bandwidth_efficiency"), b.get("bandwidth_efficiency"),
                  noise, verdict)
        row.regression = bool(fail_below is not None and ratio is not None and ratio < fail_below
                              and verdict != "within noise")
        rows.append(row)
    return rows
