"""The GEMM results of an original calibration and the precision matrix they decide: status per precision
(native, emulated, unsupported, not run) and peaks from GEMM results alone, from the fastest round."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hwcal.document.precision import share, status_lists
from hwcal.interop import legacy_memory as mem
from hwcal.interop.legacy_common import pos, rounded
from hwcal.interop.legacy_source import Source, old_matrix
from hwcal.precisions import PRECISIONS, canonical_sorted

_UNSUPPORTED_WORDS = ("not support", "not implemented", "unsupported", "no kernel")


def _gemm_entry(name: str, prof: dict[str, Any], p: str, r: dict[str, Any], warmup: int | None,
                faults: list[str]) -> dict[str, Any] | None:
    times = mem.time_s(r)
    params = prof.get("extra_params") or {}
    n = int(r.get("test_size") or params.get("size") or 0)
    shape = prof.get("input_shape")
    if times is None:
        return None
    if n <= 0 or (isinstance(shape, list) and any(s != n for s in shape)):
        faults.append(f"{name} {p}: GEMM shape {shape} is not square n={n}; left out")
        return None
    flops = 2 * n**3  # one square GEMM per timed call: measured_gops == 2n^3 / mean latency
    entry: dict[str, Any] = {
        "precision": p, "n": n, "flops_per_round": flops, "launches_per_round": 1,
        "rounds": int(r.get("num_trials") or 0) or None, "warmup_rounds": warmup, "time_s": times,
        "gflops_best": rounded(flops / times["min"] / 1e9),
        "gflops_mean": rounded(float(r["measured_gops"])) if pos(r.get("measured_gops")) else None,
        "cv": rounded(times["stddev"] / times["mean"], 3) if "stddev" in times else None,
        "verified": False, "legacy_efficiency": r.get("efficiency"), "legacy_profile": name,
    }
    return {k: v for k, v in entry.items() if v is not None}


def legacy_gemm(src: Source) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Every measured square GEMM of the original file, and each precision's reasons it did not run."""
    warmup = src.meta.get("num_warmup_runs") if isinstance(src.meta.get("num_warmup_runs"), int) else None
    results: list[dict[str, Any]] = []
    reasons: dict[str, list[str]] = defaultdict(list)
    for name, prof in mem.profiles(src.legacy):
        if prof.get("operation_type") != "blas3_gemm":
            continue
        for p, r in (prof.get("precision_results") or {}).items():
            if not isinstance(r, dict) or p not in PRECISIONS:
                continue
            entry = _gemm_entry(name, prof, p, r, warmup, src.faults) if r.get("supported") else None
            if entry is not None:
                results.append(entry)
            elif not r.get("supported") or mem.time_s(r) is None:
                reasons[p].append(str(r.get("failure_reason") or "no timing recorded"))
    order = {p: i for i, p in enumerate(PRECISIONS)}
    results.sort(key=lambda e: (order[e["precision"]], e["n"]))
    return results, reasons


def _status(p: str, best: dict[str, dict[str, Any]], reasons: dict[str, list[str]], framework: str,
            fp32: float | None) -> dict[str, Any]:
    if p in best:
        entry: dict[str, Any] = {"status": "native", "kernel": f"{framework} (original tool; kernel not recorded)"}
        if fp32:
            ratio = best[p]["gflops_best"] / fp32
            entry["ratio_vs_fp32"] = rounded(ratio, 4)
            floor = PRECISIONS[p].emulated_below_fp32_ratio
            if ratio < floor:
                entry["status"] = "emulated"
                entry["reason"] = f"runs at {ratio:.3g}x fp32, below the {floor:g}x a native {p} GEMM reaches"
        return entry
    if reasons.get(p):
        reason = next((r for r in reasons[p] if any(w in r.lower() for w in _UNSUPPORTED_WORDS)), None)
        return {"status": "unsupported", "reason": reason} if reason else {"status": "not_run", "reason": reasons[p][0]}
    return {"status": "not_run", "reason": "no GEMM result in the original file"}


def _peak_origin(legacy: dict[str, Any], precision: str, value: float) -> str | None:
    for _, prof in mem.profiles(legacy):
        r = (prof.get("precision_results") or {}).get(precision)
        if isinstance(r, dict) and r.get("measured_gops") == value:
            return f"{prof.get('operation_type')} n={r.get('test_size')}"
    return None


def _statuses(src: Source, best: dict[str, dict[str, Any]], reasons: dict[str, list[str]]) -> dict[str, Any]:
    old = old_matrix(src)
    listed_sup = [p for p in old.get("supported_precisions") or [] if isinstance(p, str)]
    listed_unsup = [p for p in old.get("unsupported_precisions") or [] if isinstance(p, str)]
    dropped = sorted({p for p in listed_sup + listed_unsup if p not in PRECISIONS})
    if dropped:
        src.corrections.append(f"precisions {', '.join(dropped)} left out: not precisions this format knows")
    known = set(best) | set(reasons) | {p for p in listed_sup + listed_unsup if p in PRECISIONS}
    fp32 = best["fp32"]["gflops_best"] if "fp32" in best else None
    status = {p: _status(p, best, reasons, src.framework, fp32) for p in canonical_sorted(known)}
    both = [p for p in listed_sup if p in listed_unsup]
    if both:
        src.faults.append(f"{', '.join(both)} listed as both supported and unsupported; the GEMM results decide: "
                          + ", ".join(f"{p} {status[p]['status']}" for p in both if p in status))
    return status


def _peak_notes(src: Source, best: dict[str, dict[str, Any]], status: dict[str, Any], gemm: list[dict[str, Any]]
                ) -> None:
    old_peaks = old_matrix(src).get("peak_gflops_by_precision")
    for p, value in (old_peaks if isinstance(old_peaks, dict) else {}).items():
        origin = _peak_origin(src.legacy, p, value) if pos(value) else None
        if origin and not origin.startswith("blas3_gemm"):
            src.corrections.append(f"{p}: the original peak {value:.4g} came from {origin}, not a GEMM; "
                                   + (f"the GEMM peak is {best[p]['gflops_best']:g}" if p in best
                                      else "no GEMM peak (" + status.get(p, {}).get("reason", "not measured") + ")"))
    if best:
        src.corrections.append("GEMM peaks are from the fastest round (2n^3 / min latency), as hwcal defines them; "
                               "the original used the mean latency (kept as gflops_mean in metadata.imported.gemm)")
    if best and max(e["n"] for e in gemm) < 256:
        src.warnings.append(f"GEMM was measured only up to n={max(e['n'] for e in gemm)} by the original tool: these "
                            "peaks are overhead-bound, far below what the device reaches")


def _theoretical(src: Source) -> dict[str, float]:
    raw = old_matrix(src).get("theoretical_peaks")
    raw = raw if isinstance(raw, dict) else {}
    zero = [p for p, v in raw.items() if p in PRECISIONS and not pos(v)]
    if zero:
        src.faults.append(f"theoretical peak 0 for {', '.join(zero)} meant unknown; left out")
    theoretical = {p: float(v) for p, v in raw.items() if p in PRECISIONS and pos(v)}
    return {p: theoretical[p] for p in canonical_sorted(theoretical)}


def precision_matrix(src: Source, gemm: list[dict[str, Any]], reasons: dict[str, list[str]]) -> dict[str, Any]:
    """Status, peaks and efficiencies per precision, from the GEMM results alone."""
    best: dict[str, dict[str, Any]] = {}
    for e in gemm:
        if e["precision"] not in best or e["gflops_best"] > best[e["precision"]]["gflops_best"]:
            best[e["precision"]] = e
    status = _statuses(src, best, reasons)
    _peak_notes(src, best, status, gemm)
    peaks = {p: best[p]["gflops_best"] for p in canonical_sorted(best)}
    theoretical = _theoretical(src)
    ratios = {p: rounded(peaks[p] / theoretical[p], 4) for p in peaks if p in theoretical}
    efficiency = {p: eff for p, eff in ratios.items() if share(eff) is not None}  # a share of the peak, as hwcal files
    for p, eff in ratios.items():
        if eff > 1.0:
            src.warnings.append(f"{p}: measured {peaks[p]:g} GFLOPS is {eff:.3g}x the theoretical peak "
                                f"{theoretical[p]:g} GFLOPS the original tool assumed; the peak is wrong, not the "
                                "measurement; no efficiency filed")
    legacy_effs = [src.legacy.get("best_efficiency")] + [e.get("legacy_efficiency") for e in gemm]
    over = max((x for x in legacy_effs if isinstance(x, (int, float)) and not isinstance(x, bool)), default=0.0)
    if over > 1.0:
        src.faults.append(f"efficiency above 1.0 in the original file (up to {over:.3g}): its theoretical peaks are "
                          "too low; flagged in the warnings")
    fp32 = peaks.get("fp32")
    return {**status_lists(status), "status": status, "peak_gflops_by_precision": peaks,
            "peak_size_by_precision": {p: best[p]["n"] for p in peaks},
            "speedup_vs_fp32": {p: rounded(v / fp32, 4) for p, v in peaks.items()} if fp32 else {},
            "theoretical_peaks": theoretical, "efficiency_by_precision": efficiency}
