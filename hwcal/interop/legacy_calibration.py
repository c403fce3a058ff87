"""Convert one calibration of the original system to hwcal's format, keeping what it measured.

The original tool wrote ``<type>/<id>/calibration.json`` (one per hardware) and later
``calibrations/{mode}_{freq}MHz_{framework}.json``, with a ``spec.json`` beside them. Its files carry
known faults; this module keeps the measurements, corrects what can be corrected from the file
itself, and records every correction and fault under ``metadata.imported``:

- peaks per precision were the best of *any* operation (a dot product or GEMV could be a "GEMM peak");
  here a peak comes only from GEMM results, from the fastest round like every hwcal peak;
- the key's frequency was an instantaneous (often idle) clock sample; here it is the mode's ceiling;
- ``nvpmodel_mode`` was parsed from the mode *name* ("7W" -> 7), not the nvpmodel id;
- a precision could be listed as both supported and unsupported; the GEMM results decide;
- a theoretical peak of 0 meant "unknown"; here an unknown peak is absent;
- efficiencies above 1.0 (a wrong theoretical peak) are flagged in the warnings, never hidden.

The original GEMM results were not verified against a reference and have no median or IQR, so they
cannot be ``gemm[]`` entries of format 1 (``verified`` must be true); they are kept, with every timing
the file had, under ``metadata.imported.gemm``.

Conversion is pure (``legacy_calibration_to_v1``, ``legacy_spec_to_v1``); ``plan_migration`` decides what
to write without writing; ``execute`` writes through ``hwcal.registry.writer``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.document.precision import status_lists
from hwcal.interop.legacy_files import (
    _LEGACY_NAME_RE,
    _UNSUPPORTED_WORDS,
    LegacyFormatError,
    _device_type,
    _hardware_id,
    _pos,
    _power_mode_and_freq,
    _preflight,
    _r,
    _utc_iso,
)
from hwcal.naming import (
    CalibrationKey,
    check_power_mode,
    normalise_framework,
)
from hwcal.precisions import PRECISIONS, canonical_sorted
from hwcal.registry.reader import parse_date
from hwcal.version import __version__

# ---- calibrations ------------------------------------------------------------------------------

@dataclass
class Converted:
    """A legacy calibration as a format-1 document, with its key and what was found on the way."""

    key: CalibrationKey
    doc: dict[str, Any]
    corrections: list[str]
    faults: list[str]

    @property
    def calibration_date(self) -> datetime:
        return parse_date(self.doc["metadata"]["calibration_date"])


def _time_s(r: dict[str, Any]) -> dict[str, float] | None:
    """Round times in seconds from the legacy milliseconds (no median or IQR were recorded)."""
    t = {"min": _pos(r.get("min_latency_ms")), "max": _pos(r.get("max_latency_ms")),
         "mean": _pos(r.get("mean_latency_ms"))}
    if t["min"] is None or t["mean"] is None:
        return None
    out = {k: v / 1e3 for k, v in t.items() if v is not None}
    std = r.get("std_latency_ms")
    if isinstance(std, (int, float)) and math.isfinite(std) and std >= 0:
        out["stddev"] = std / 1e3
    return {k: float(f"{v:.6g}") for k, v in out.items()}


def _profiles(legacy: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    ops = legacy.get("operation_profiles")
    return sorted((k, v) for k, v in ops.items() if isinstance(v, dict)) if isinstance(ops, dict) else []


def _legacy_gemm(legacy: dict[str, Any], warmup: int | None, faults: list[str]
                 ) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Every measured square GEMM of the original file, and each precision's reasons it did not run."""
    results: list[dict[str, Any]] = []
    reasons: dict[str, list[str]] = defaultdict(list)
    for name, prof in _profiles(legacy):
        if prof.get("operation_type") != "blas3_gemm":
            continue
        params = prof.get("extra_params") or {}
        for p, r in (prof.get("precision_results") or {}).items():
            if not isinstance(r, dict) or p not in PRECISIONS:
                continue
            times = _time_s(r)
            if not r.get("supported") or times is None:
                reasons[p].append(str(r.get("failure_reason") or "no timing recorded"))
                continue
            n = int(r.get("test_size") or params.get("size") or 0)
            shape = prof.get("input_shape")
            if n <= 0 or (isinstance(shape, list) and any(s != n for s in shape)):
                faults.append(f"{name} {p}: GEMM shape {shape} is not square n={n}; left out")
                continue
            flops = 2 * n**3  # one square GEMM per timed call: measured_gops == 2n^3 / mean latency
            entry: dict[str, Any] = {
                "precision": p, "n": n, "flops_per_round": flops, "launches_per_round": 1,
                "rounds": int(r.get("num_trials") or 0) or None, "warmup_rounds": warmup,
                "time_s": times,
                "gflops_best": _r(flops / times["min"] / 1e9),
                "gflops_mean": _r(float(r["measured_gops"])) if _pos(r.get("measured_gops")) else None,
                "cv": _r(times["stddev"] / times["mean"], 3) if "stddev" in times else None,
                "verified": False,
                "legacy_efficiency": r.get("efficiency"),
                "legacy_profile": name,
            }
            results.append({k: v for k, v in entry.items() if v is not None})
    order = {p: i for i, p in enumerate(PRECISIONS)}
    results.sort(key=lambda e: (order[e["precision"]], e["n"]))
    return results, reasons


def _legacy_stream(legacy: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for _, prof in _profiles(legacy):
        kind = str(prof.get("operation_type", ""))
        if not kind.startswith("stream_"):
            continue
        params = prof.get("extra_params") or {}
        out.append({k: v for k, v in {
            "kernel": kind.removeprefix("stream_"), "size_mb": params.get("size_mb"),
            "arrays": params.get("num_arrays"), "gbps_mean": prof.get("achieved_bandwidth_gbps"),
            "rounds": prof.get("num_trials"), "time_s": _time_s(prof), "device": params.get("device"),
        }.items() if v is not None})
    return sorted(out, key=lambda e: (str(e["kernel"]), e.get("size_mb") or 0))


def _legacy_other_ops(legacy: dict[str, Any]) -> list[dict[str, Any]]:
    """BLAS-1/2 results (dot, axpy, gemv): kept as measured, never used as GEMM peaks."""
    out = []
    for _, prof in _profiles(legacy):
        kind = str(prof.get("operation_type", ""))
        if kind.startswith("stream_") or kind == "blas3_gemm":
            continue
        params = prof.get("extra_params") or {}
        for p, r in (prof.get("precision_results") or {}).items():
            if isinstance(r, dict) and r.get("supported") and _pos(r.get("measured_gops")):
                out.append({"operation": kind, "n": r.get("test_size") or params.get("size"), "precision": p,
                            "gops_mean": r["measured_gops"], "rounds": r.get("num_trials"),
                            "time_s": _time_s(r)})
    return out


def _peak_origin(legacy: dict[str, Any], precision: str, value: float) -> str | None:
    for _, prof in _profiles(legacy):
        r = (prof.get("precision_results") or {}).get(precision)
        if isinstance(r, dict) and r.get("measured_gops") == value:
            return f"{prof.get('operation_type')} n={r.get('test_size')}"
    return None


# Fields of the original format that hold a measured or derived magnitude: never negative. A negative value
# there is dropped by the conversion, and each one is recorded as a fault (nothing is dropped silently).
_MAGNITUDE_RE = re.compile(r"(latency|_ms$|gops|gflops|gbps|bandwidth|efficiency|peak|size_mb|time_s)")


def _negative_values(node: Any, where: str = "$") -> list[str]:
    """Every negative number under a magnitude field of ``node``, as ``json_path (value)``."""
    found: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{where}.{k}"
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if v < 0 and _MAGNITUDE_RE.search(str(k)):
                    found.append(f"{path} ({v:g})")
            else:
                found += _negative_values(v, path)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _negative_values(v, f"{where}[{i}]")
    return found


def legacy_calibration_to_v1(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None,  # noqa: C901 -- TODO(issue 21): split
                             imported_at: datetime, source_sha256: str = "") -> Converted:
    """An original calibration as a format-1 document (step 0 -> 1); raises LegacyFormatError."""
    if not isinstance(legacy, dict) or not isinstance(legacy.get("metadata"), dict):
        raise LegacyFormatError("not an original-registry calibration (no metadata object)")
    if "schema_version" in legacy:
        raise LegacyFormatError(f"already in hwcal format {legacy['schema_version']!r}; nothing to import")
    meta = legacy["metadata"]
    corrections: list[str] = []
    faults: list[str] = []
    warnings: list[str] = []
    device_type = _device_type(type_folder, meta.get("device_type"), corrections)
    hardware_id = _hardware_id(hardware_folder, meta.get("hardware_name"), corrections)
    if not meta.get("framework"):
        raise LegacyFormatError("metadata.framework missing")
    framework = normalise_framework(str(meta["framework"]))
    name = Path(rel).name
    legacy_name = _LEGACY_NAME_RE.match(name) if name != "calibration.json" else None
    power_mode, pm_source, freq, freq_source = _power_mode_and_freq(meta, device_type, legacy_name,
                                                                    corrections, faults)
    key = CalibrationKey(device_type, hardware_id, check_power_mode(power_mode), freq, framework)
    if not meta.get("calibration_date"):
        raise LegacyFormatError("metadata.calibration_date missing")
    date = _utc_iso(meta["calibration_date"], "calibration_date", corrections)

    negative = _negative_values({k: v for k, v in legacy.items() if k != "metadata"})
    if negative:
        faults.append(f"{len(negative)} negative measurement value(s) dropped (a magnitude is never negative): "
                      + ", ".join(negative))

    # GEMM: status and peaks from the GEMM results alone.
    warmup = meta.get("num_warmup_runs") if isinstance(meta.get("num_warmup_runs"), int) else None
    gemm, reasons = _legacy_gemm(legacy, warmup, faults)
    best: dict[str, dict[str, Any]] = {}
    for e in gemm:
        if e["precision"] not in best or e["gflops_best"] > best[e["precision"]]["gflops_best"]:
            best[e["precision"]] = e
    old_pm: dict[str, Any] = legacy["precision_matrix"] if isinstance(legacy.get("precision_matrix"), dict) else {}
    listed_sup = [p for p in old_pm.get("supported_precisions") or [] if isinstance(p, str)]
    listed_unsup = [p for p in old_pm.get("unsupported_precisions") or [] if isinstance(p, str)]
    both = [p for p in listed_sup if p in listed_unsup]
    known = set(best) | set(reasons) | {p for p in listed_sup + listed_unsup if p in PRECISIONS}
    dropped = sorted({p for p in listed_sup + listed_unsup if p not in PRECISIONS})
    if dropped:
        corrections.append(f"precisions {', '.join(dropped)} left out: not precisions this format knows")
    fp32 = best["fp32"]["gflops_best"] if "fp32" in best else None
    status: dict[str, dict[str, Any]] = {}
    for p in canonical_sorted(known):
        if p in best:
            entry: dict[str, Any] = {"status": "native", "kernel": f"{framework} (original tool; kernel not recorded)"}
            if fp32:
                ratio = best[p]["gflops_best"] / fp32
                entry["ratio_vs_fp32"] = _r(ratio, 4)
                floor = PRECISIONS[p].emulated_below_fp32_ratio
                if ratio < floor:
                    entry["status"] = "emulated"
                    entry["reason"] = f"runs at {ratio:.3g}x fp32, below the {floor:g}x a native {p} GEMM reaches"
            status[p] = entry
        elif reasons.get(p):
            reason = next((r for r in reasons[p] if any(w in r.lower() for w in _UNSUPPORTED_WORDS)), None)
            status[p] = {"status": "unsupported", "reason": reason} if reason else \
                {"status": "not_run", "reason": reasons[p][0]}
        else:
            status[p] = {"status": "not_run", "reason": "no GEMM result in the original file"}
    if both:
        faults.append(f"{', '.join(both)} listed as both supported and unsupported; the GEMM results decide: "
                      + ", ".join(f"{p} {status[p]['status']}" for p in both if p in status))
    old_peaks: dict[str, Any] = old_pm["peak_gflops_by_precision"] \
        if isinstance(old_pm.get("peak_gflops_by_precision"), dict) else {}
    for p, value in old_peaks.items():
        origin = _peak_origin(legacy, p, value) if _pos(value) else None
        if origin and not origin.startswith("blas3_gemm"):
            corrections.append(f"{p}: the original peak {value:.4g} came from {origin}, not a GEMM; "
                               + (f"the GEMM peak is {best[p]['gflops_best']:g}" if p in best
                                  else "no GEMM peak (" + status.get(p, {}).get("reason", "not measured") + ")"))
    if best:
        corrections.append("GEMM peaks are from the fastest round (2n^3 / min latency), as hwcal defines them; the "
                           "original used the mean latency (kept as gflops_mean in metadata.imported.gemm)")
    peaks = {p: best[p]["gflops_best"] for p in canonical_sorted(best)}
    if best and max(e["n"] for e in gemm) < 256:
        warnings.append(f"GEMM was measured only up to n={max(e['n'] for e in gemm)} by the original tool: these "
                        "peaks are overhead-bound, far below what the device reaches")

    raw_theory: dict[str, Any] = old_pm["theoretical_peaks"] \
        if isinstance(old_pm.get("theoretical_peaks"), dict) else {}
    theoretical = {p: float(v) for p, v in raw_theory.items() if p in PRECISIONS and _pos(v)}
    zero = [p for p, v in raw_theory.items() if p in PRECISIONS and not _pos(v)]
    if zero:
        faults.append(f"theoretical peak 0 for {', '.join(zero)} meant unknown; left out")
    efficiency = {p: _r(peaks[p] / theoretical[p], 4) for p in peaks if p in theoretical}
    for p, eff in efficiency.items():
        if eff > 1.0:
            warnings.append(f"{p}: measured {peaks[p]:g} GFLOPS is {eff:.3g}x the theoretical peak "
                            f"{theoretical[p]:g} GFLOPS the original tool assumed; the peak is wrong, not the "
                            "measurement")
    legacy_effs = [legacy.get("best_efficiency")] + [e.get("legacy_efficiency") for e in gemm]
    over = max((x for x in legacy_effs if isinstance(x, (int, float))), default=0.0)
    if over > 1.0:
        faults.append(f"efficiency above 1.0 in the original file (up to {over:.3g}): its theoretical peaks are "
                      "too low; flagged in the warnings")

    # Bandwidth: the STREAM triad of the largest array (beyond every cache), as this format defines it.
    stream = _legacy_stream(legacy)
    triads = [s for s in stream if s["kernel"] == "triad" and _pos(s.get("gbps_mean"))]
    measured_bw = _r(max(triads, key=lambda s: s.get("size_mb") or 0)["gbps_mean"], 4) if triads else None
    legacy_bw = _pos(legacy.get("measured_bandwidth_gbps"))
    if measured_bw is None and legacy_bw is not None:
        measured_bw = _r(legacy_bw, 4)
        corrections.append("measured_bandwidth_gbps kept from the original summary (no triad results found)")
    elif legacy_bw is not None and measured_bw is not None and abs(legacy_bw - measured_bw) > 1e-3 * legacy_bw:
        largest = max(triads, key=lambda s: s.get("size_mb") or 0)
        corrections.append(f"measured_bandwidth_gbps: the original {legacy_bw:.4g} GB/s was the best of any STREAM "
                           f"kernel and size (cache-resident included); this format's is the triad of the largest "
                           f"array ({largest.get('size_mb')} MB): {measured_bw:g} GB/s")
    theory_bw = _pos(legacy.get("theoretical_bandwidth_gbps"))
    if not gemm and measured_bw is None and not _legacy_other_ops(legacy):
        # Nothing was measured: filing it would make an empty calibration the key's current one.
        raise LegacyFormatError("no measurement in it (no timed GEMM, STREAM or BLAS result with a positive "
                                "figure); not imported")

    matrix = {
        **status_lists(status),
        "status": status,
        "peak_gflops_by_precision": peaks,
        "peak_size_by_precision": {p: best[p]["n"] for p in peaks},
        "speedup_vs_fp32": {p: _r(v / fp32, 4) for p, v in peaks.items()} if fp32 else {},
        "theoretical_peaks": {p: theoretical[p] for p in canonical_sorted(theoretical)},
        "efficiency_by_precision": efficiency,
    }
    gpu_clock = {k: v for k, v in (meta.get("gpu_clock") or {}).items() if k != "nvpmodel_mode"}
    clock: dict[str, Any] = {"ceiling_mhz": freq, "source": freq_source}
    if gpu_clock:
        clock["gpu"] = gpu_clock
    if isinstance(meta.get("cpu_clock"), dict):
        clock["cpu"] = meta["cpu_clock"]
    legacy_version = str(meta.get("calibration_tool_version") or "unknown")
    host = {k: v for k, v in {
        "cpu": {k: v for k, v in {"model": meta.get("cpu_model"), "logical_cores": meta.get("cpu_count"),
                                  "architecture": meta.get("platform_architecture")}.items() if v is not None},
        "total_memory_gb": meta.get("total_memory_gb"), "python_version": meta.get("python_version"),
    }.items() if v}
    framework_version = meta.get("pytorch_version") if framework == "pytorch" else meta.get("numpy_version")
    metadata: dict[str, Any] = {
        "hardware_id": hardware_id,
        "hardware_name": str(meta.get("hardware_name") or hardware_id),
        "device_type": device_type,
        "device": "cuda" if device_type == "gpu" else "cpu",
        "calibration_date": date,
        "tool_version": f"original tool {legacy_version}",
        "power_mode": power_mode,
        "power_mode_source": pm_source,
        "freq_mhz": freq,
        "freq_source": freq_source,
        "framework": framework,
        "framework_version": str(framework_version or "unknown"),
        "host": host,
        "clock": clock,
    }
    if meta.get("numpy_version"):
        metadata["numpy_version"] = str(meta["numpy_version"])
    if meta.get("pytorch_version"):
        metadata["torch_version"] = str(meta["pytorch_version"])
    preflight = _preflight(meta)
    if preflight is not None:
        metadata["preflight"] = preflight
    summary_keys = ("theoretical_peak_gflops", "theoretical_bandwidth_gbps", "best_measured_gflops",
                    "avg_measured_gflops", "worst_measured_gflops", "measured_bandwidth_gbps",
                    "bandwidth_efficiency", "best_efficiency", "avg_efficiency", "worst_efficiency")
    metadata["imported"] = {
        "source": rel,
        **({"source_sha256": source_sha256} if source_sha256 else {}),
        "source_format": f"original registry, calibration tool {legacy_version}",
        "legacy_key": name.removesuffix(".json"),
        "imported_at": imported_at.astimezone(timezone.utc).isoformat(),
        "hwcal_version": __version__,
        "corrections": corrections,
        "faults": faults,
        "gemm": gemm,
        "stream": stream,
        "other_operations": _legacy_other_ops(legacy),
        "legacy_summary": {k: legacy[k] for k in summary_keys if k in legacy},
        "legacy_precision_matrix": old_pm,
        "legacy_metadata": {k: v for k, v in meta.items() if k != "preflight"},
    }
    warnings.insert(0, f"imported from the original registry ({rel}): its GEMM results were not verified against "
                       "an fp64 reference; per-size results and every correction are in metadata.imported")
    doc: dict[str, Any] = {
        "schema_version": 1,  # then upgraded to the current format by the migration (update_to_2)
        "key": key.as_dict(),
        "metadata": metadata,
        "theoretical_peak_gflops": theoretical.get("fp32", _pos(legacy.get("theoretical_peak_gflops"))),
        "theoretical_bandwidth_gbps": theory_bw,
        "best_measured_gflops": peaks.get("fp32"),
        "measured_bandwidth_gbps": measured_bw,
        "bandwidth_efficiency": _r(measured_bw / theory_bw, 4) if measured_bw and theory_bw else None,
        "precision_matrix": matrix,
        "gemm": [],
        "warnings": warnings,
    }
    return Converted(key, doc, corrections, faults)


