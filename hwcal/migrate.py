"""Import the original system's registry into format version 1, keeping what it measured.

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
to write without writing; ``execute`` writes through ``hwcal.writer``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import Timeout

from hwcal import __version__
from hwcal.builder import status_lists
from hwcal.errors import HwcalError
from hwcal.naming import (
    CalibrationKey,
    calibration_path,
    check_hardware_id,
    check_power_mode,
    hardware_id_token,
    history_dir,
    history_path,
    history_stamp,
    normalise_framework,
    spec_path,
)
from hwcal.precisions import PRECISIONS, canonical_sorted
from hwcal.registry import BadRegistryFile, parse_date, read_calibration, read_json
from hwcal.schema import CALIBRATION_FORMAT_VERSION, SPEC_FORMAT_VERSION, schema_errors
from hwcal.writer import atomic_write_text, dumps, lock_for, write_calibration

LEGACY_TYPE_FOLDERS = {"cpu": "cpu", "cpus": "cpu", "gpu": "gpu", "gpus": "gpu", "board": "board",
                       "boards": "board"}
LEGACY_DEVICE_TYPES = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "board": "board"}
_LEGACY_NAME_RE = re.compile(r"^(?P<mode>.+)_(?P<freq>\d+)MHz_(?P<framework>[A-Za-z]+)\.json$")
_UNSUPPORTED_WORDS = ("not support", "not implemented", "unsupported", "no kernel")
# Dense tensor-core peaks reach at most about these multiples of the FP32 peak (A100, H100 datasheets);
# above them a figure is almost certainly the 2:4-sparsity one the datasheets print next to it.
_DENSE_RATIO_CEILING = {"tf32": 10.0, "fp16": 20.0, "bf16": 20.0, "fp8": 40.0, "int8": 40.0}


class LegacyFormatError(HwcalError):
    """An original-registry file that cannot be converted; the message says what is missing."""


def _pos(value: object) -> float | None:
    """A positive finite number, else None (the original tool wrote 0.0 for "unknown")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _r(x: float, digits: int = 5) -> float:
    return float(f"{x:.{digits}g}")


def _utc_iso(value: object, what: str, notes: list[str]) -> str:
    try:
        date = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise LegacyFormatError(f"{what} {value!r} is not an ISO 8601 date") from None
    if date.tzinfo is None:
        notes.append(f"{what} {value!r} has no time zone; read as UTC (the original tool did not record one)")
        date = date.replace(tzinfo=timezone.utc)
    return date.astimezone(timezone.utc).isoformat()


# ---- finding the files -------------------------------------------------------------------------

@dataclass(frozen=True)
class LegacyFile:
    """One file of an original registry and the folders that say what it belongs to."""

    path: Path
    kind: str  # "spec" | "calibration"
    rel: str  # relative to the original registry's root, for the record
    type_folder: str | None
    hardware_folder: str | None


def find_legacy_files(source: Path) -> list[LegacyFile]:
    """spec.json, calibration.json and calibrations/*.json under ``source`` (a registry, a hardware
    folder, or one file); history folders and hidden files are left alone."""
    source = Path(source)
    if not source.exists():
        raise HwcalError(f"source {source} does not exist; give the original registry's folder")
    paths: list[Path] = []
    if source.is_file():
        paths = [source]
    else:
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "history")
            folder = Path(dirpath)
            for name in sorted(filenames):
                if name.startswith(".") or not name.endswith(".json"):
                    continue
                if name in ("spec.json", "calibration.json") or folder.name == "calibrations":
                    paths.append(folder / name)
    found = []
    for path in paths:
        kind = "spec" if path.name == "spec.json" else "calibration"
        hw = path.parent.parent if path.parent.name == "calibrations" else path.parent
        type_folder = hw.parent.name if hw.parent.name in LEGACY_TYPE_FOLDERS else None
        root = hw.parent.parent if type_folder else hw.parent
        try:
            rel = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = path.name
        in_layout = bool(type_folder) or path.name in ("spec.json", "calibration.json") or \
            path.parent.name == "calibrations"
        found.append(LegacyFile(path, kind, rel, type_folder, hw.name if in_layout else None))
    return found


# ---- specs -------------------------------------------------------------------------------------

def _device_type(type_folder: str | None, legacy_value: object, notes: list[str]) -> str:
    from_folder = LEGACY_TYPE_FOLDERS.get(type_folder or "")
    from_doc = LEGACY_DEVICE_TYPES.get(str(legacy_value).lower()) if legacy_value is not None else None
    if from_folder and from_doc and from_folder != from_doc:
        notes.append(f"device type {legacy_value!r} in the file disagrees with the folder {type_folder!r}; "
                     f"the folder's {from_folder!r} is used")
    device_type = from_folder or from_doc
    if device_type is None:
        raise LegacyFormatError(f"cannot tell the device type: folder {type_folder!r}, "
                                f"device_type {legacy_value!r} (expected cpu, cuda/gpu or board)")
    return device_type


def _hardware_id(folder: str | None, fallback: object, notes: list[str]) -> str:
    candidate = folder or hardware_id_token(str(fallback or ""))
    try:
        return check_hardware_id(candidate)
    except HwcalError:
        token = hardware_id_token(candidate)
        if not token:
            raise LegacyFormatError(f"cannot make a hardware id from {candidate!r}") from None
        notes.append(f"hardware id {candidate!r} is not [a-z0-9_]; filed as {token!r}")
        return token


def legacy_spec_to_v1(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None,
                      imported_at: datetime) -> tuple[dict[str, Any], list[str], list[str]]:
    """An original spec.json as a format-1 spec, with the corrections made and the faults found."""
    if not isinstance(legacy, dict) or "schema_version" in legacy:
        raise LegacyFormatError("not an original-registry spec.json (has schema_version or is not an object)")
    notes: list[str] = []
    faults: list[str] = []
    hardware_id = _hardware_id(hardware_folder, legacy.get("id"), notes)
    if legacy.get("id") not in (None, hardware_id):
        notes.append(f"id {legacy.get('id')!r} disagrees with the folder; filed as {hardware_id!r}")
    spec: dict[str, Any] = {
        "schema_version": SPEC_FORMAT_VERSION,
        "id": hardware_id,
        "model": str(legacy.get("model") or hardware_id),
        "device_type": _device_type(type_folder, legacy.get("device_type"), notes),
    }
    for name in ("vendor", "architecture", "platform"):
        if isinstance(legacy.get(name), str) and legacy[name]:
            spec[name] = legacy[name]
    if isinstance(legacy.get("compute_units"), int) and legacy["compute_units"] >= 1:
        spec["compute_units"] = legacy["compute_units"]
    for name in ("memory_gb", "base_clock_mhz", "boost_clock_mhz"):
        if _pos(legacy.get(name)) is not None:
            spec[name] = legacy[name]
    raw_peaks = legacy.get("theoretical_peaks") if isinstance(legacy.get("theoretical_peaks"), dict) else {}
    peaks = {p: float(v) for p, v in raw_peaks.items() if p in PRECISIONS and _pos(v) is not None}
    zero = [p for p, v in raw_peaks.items() if p in PRECISIONS and _pos(v) is None]
    unknown = [p for p in raw_peaks if p not in PRECISIONS]
    if zero:
        faults.append(f"theoretical peak 0 for {', '.join(zero)} meant unknown; left out")
    if unknown:
        notes.append(f"peaks for {', '.join(unknown)} left out: not a precision this format knows")
    legacy_notes = str(legacy.get("notes") or "")
    spec["peaks_source"] = "derived" if "auto-detected" in legacy_notes.lower() else "datasheet"
    fp32 = peaks.get("fp32")
    for p, ceiling in _DENSE_RATIO_CEILING.items():
        if fp32 and p in peaks and peaks[p] / fp32 > ceiling:
            faults.append(f"{p} peak {peaks[p]:g} GFLOPS is {peaks[p] / fp32:.3g}x the fp32 peak; dense tensor-core "
                          f"peaks stay below {ceiling:g}x, so it is almost certainly the 2:4-sparsity figure; left "
                          "out (unknown) rather than halved: check the datasheet's dense figure")
            del peaks[p]
    spec["theoretical_peaks"] = {p: peaks[p] for p in canonical_sorted(peaks)}
    spec["peaks_note"] = (f"imported from the original registry ({rel}), which did not record where its peaks "
                          f"came from; peaks_source {spec['peaks_source']!r} is inferred from its notes")
    bandwidth = _pos(legacy.get("peak_bandwidth_gbps"))
    spec["peak_bandwidth_gbps"] = bandwidth
    if bandwidth is None and "peak_bandwidth_gbps" in legacy:
        faults.append(f"peak_bandwidth_gbps {legacy['peak_bandwidth_gbps']!r} meant unknown; stored as null")
    if legacy.get("calibration_date"):
        spec["created"] = _utc_iso(legacy["calibration_date"], "calibration_date", notes)
    extra = sorted(set(legacy) - {"id", "model", "device_type", "vendor", "architecture", "platform",
                                  "compute_units", "memory_gb", "base_clock_mhz", "boost_clock_mhz",
                                  "theoretical_peaks", "peak_bandwidth_gbps", "notes", "calibration_date"})
    if extra:
        notes.append(f"fields {', '.join(extra)} have no place in format 1; left out")
    record = f"Imported from the original registry ({rel}) on {imported_at.date().isoformat()} by hwcal " \
             f"{__version__}" + (": " + "; ".join(faults + notes) if faults or notes else "")
    spec["notes"] = f"{legacy_notes} | {record}" if legacy_notes else record
    return spec, notes, faults


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


def _power_mode_and_freq(meta: dict[str, Any], device_type: str, legacy_name: re.Match[str] | None,
                         corrections: list[str], faults: list[str]) -> tuple[str, str, int, str]:
    gpu = meta.get("gpu_clock") if isinstance(meta.get("gpu_clock"), dict) else {}
    cpu = meta.get("cpu_clock") if isinstance(meta.get("cpu_clock"), dict) else {}
    if device_type == "gpu" and gpu.get("power_mode_name"):
        power_mode, pm_source = str(gpu["power_mode_name"]), "original file: gpu_clock.power_mode_name (nvpmodel)"
    elif device_type != "gpu" and cpu.get("governor"):
        power_mode, pm_source = str(cpu["governor"]), "original file: cpu_clock.governor (cpufreq scaling_governor)"
    elif legacy_name:
        power_mode, pm_source = legacy_name["mode"], "original file name"
    else:
        power_mode, pm_source = "default", "none recorded in the original file"
    mode_id = gpu.get("nvpmodel_mode")
    digits = re.match(r"\d+", power_mode)
    if isinstance(mode_id, int) and digits and int(digits.group()) == mode_id:
        faults.append(f"gpu_clock.nvpmodel_mode {mode_id} is the number in the mode name {power_mode!r}, "
                      "not the nvpmodel mode id (the original tool parsed the name); the id is not kept, "
                      "the name is")
    ceiling, freq_source = None, ""
    if device_type == "gpu" and _pos(gpu.get("max_sm_clock_mhz")):
        ceiling, freq_source = gpu["max_sm_clock_mhz"], "original file: gpu_clock.max_sm_clock_mhz (mode ceiling)"
    elif device_type != "gpu" and _pos(cpu.get("max_freq_mhz")):
        ceiling, freq_source = cpu["max_freq_mhz"], "original file: cpu_clock.max_freq_mhz (cpufreq ceiling)"
    if ceiling is None and legacy_name:
        ceiling, freq_source = int(legacy_name["freq"]), "original file name (a clock sample; no ceiling recorded)"
        faults.append(f"no clock ceiling recorded; the key keeps the original sampled {ceiling} MHz")
    if ceiling is None:
        raise LegacyFormatError("no clock recorded (gpu_clock.max_sm_clock_mhz / cpu_clock.max_freq_mhz) "
                                "and no {mode}_{freq}MHz_{framework}.json file name to take it from")
    freq = round(float(ceiling))
    if legacy_name and int(legacy_name["freq"]) != freq:
        sampled = gpu.get("sm_clock_mhz") if device_type == "gpu" else cpu.get("current_freq_mhz")
        corrections.append(f"key frequency: the original file name's {legacy_name['freq']} MHz was an instantaneous "
                           f"clock sample (sampled {sampled} MHz); keyed at the mode's ceiling {freq} MHz")
    return power_mode, pm_source, freq, freq_source


def _preflight(meta: dict[str, Any]) -> dict[str, Any] | None:
    pre = meta.get("preflight")
    if not isinstance(pre, dict):
        return None
    checks = []
    for c in pre.get("checks") or []:
        if not isinstance(c, dict):
            continue
        status = str(c.get("status", "")).lower()
        check: dict[str, Any] = {"name": str(c.get("name", "?")),
                                 "status": status if status in ("passed", "warning", "failed", "skipped")
                                 else "warning",
                                 "message": str(c.get("message", ""))}
        if c.get("expected_value") is not None:
            check["advice"] = f"expected {c['expected_value']}"
        if c.get("current_value") is not None:
            check["value"] = c["current_value"]
        checks.append(check)
    out: dict[str, Any] = {"passed": bool(pre.get("passed")), "forced": bool(pre.get("forced")), "checks": checks}
    if pre.get("timestamp"):
        out["timestamp"] = str(pre["timestamp"])
    return out


def legacy_calibration_to_v1(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None,
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

    # GEMM: status and peaks from the GEMM results alone.
    warmup = meta.get("num_warmup_runs") if isinstance(meta.get("num_warmup_runs"), int) else None
    gemm, reasons = _legacy_gemm(legacy, warmup, faults)
    best: dict[str, dict[str, Any]] = {}
    for e in gemm:
        if e["precision"] not in best or e["gflops_best"] > best[e["precision"]]["gflops_best"]:
            best[e["precision"]] = e
    old_pm = legacy.get("precision_matrix") if isinstance(legacy.get("precision_matrix"), dict) else {}
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
    old_peaks = old_pm.get("peak_gflops_by_precision") if isinstance(old_pm.get("peak_gflops_by_precision"),
                                                                      dict) else {}
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

    raw_theory = old_pm.get("theoretical_peaks") if isinstance(old_pm.get("theoretical_peaks"), dict) else {}
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
        "schema_version": CALIBRATION_FORMAT_VERSION,
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


# ---- planning and writing ----------------------------------------------------------------------

@dataclass
class Action:
    """One step of a migration: ``spec``/``write``/``history`` write a file, ``skip`` and ``error`` do not."""

    action: str
    source: Path
    rel: str
    target: Path | None = None
    message: str = ""
    key: CalibrationKey | None = None
    doc: dict[str, Any] | None = field(default=None, repr=False)
    calibration_date: datetime | None = None
    corrections: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "source": str(self.source), "target": str(self.target) if self.target
                else None, "key": self.key.filename if self.key else None, "message": self.message,
                "calibration_date": self.calibration_date.isoformat() if self.calibration_date else None,
                "corrections": self.corrections, "faults": self.faults}


def _history_target(registry: Path, key: CalibrationKey, date: datetime, taken: set[Path]) -> Path:
    target, n = history_path(registry, key, history_stamp(date)), 1
    while target in taken:
        target, n = history_path(registry, key, f"{history_stamp(date)}.{n}"), n + 1
    taken.add(target)
    return target


def _existing(registry: Path, key: CalibrationKey) -> tuple[tuple[Path, datetime] | None, str | None,
                                                          dict[tuple[str, str], Path]]:
    """The key's current calibration (path, date), why it cannot be read, and what is already imported."""
    imported: dict[tuple[str, str], Path] = {}
    current, problem = None, None
    path = calibration_path(registry, key)
    files = [path, *sorted(history_dir(registry, key).glob(f"{key.filename.removesuffix('.json')}.*.json"))]
    for f in files:
        if not f.exists():
            continue
        try:
            entry = read_calibration(f, registry)
        except BadRegistryFile as exc:
            if f == path:
                problem = exc.reason
            continue
        if f == path:
            current = (f, entry.calibration_date)
        source = entry.doc["metadata"].get("imported", {}).get("source_sha256")
        if source:
            imported[(entry.calibration_date.isoformat(), source)] = f
    return current, problem, imported


def plan_migration(source: Path, registry: Path, imported_at: datetime | None = None) -> list[Action]:
    """Decide, without writing, what importing ``source`` into ``registry`` does to each file."""
    imported_at = imported_at or datetime.now(timezone.utc)
    actions: list[Action] = []
    converted: list[tuple[LegacyFile, Converted]] = []
    spec_targets: set[Path] = set()
    for lf in find_legacy_files(source):
        try:
            raw = lf.path.read_bytes()
            legacy = read_json(lf.path)
        except (BadRegistryFile, OSError) as exc:
            reason = exc.reason if isinstance(exc, BadRegistryFile) else (exc.strerror or str(exc))
            actions.append(Action("error", lf.path, lf.rel, message=f"cannot read: {reason}"))
            continue
        try:
            if lf.kind == "spec":
                if isinstance(legacy, dict) and "schema_version" in legacy:
                    actions.append(Action("skip", lf.path, lf.rel, message="already an hwcal spec; not imported"))
                    continue
                spec, notes, spec_faults = legacy_spec_to_v1(legacy, rel=lf.rel, type_folder=lf.type_folder,
                                                hardware_folder=lf.hardware_folder, imported_at=imported_at)
                errors = schema_errors(spec, "spec")
                if errors:
                    raise LegacyFormatError("converted spec is not valid: " + "; ".join(errors))
                target = spec_path(registry, spec["device_type"], spec["id"])
                if target.exists() or target in spec_targets:
                    actions.append(Action("skip", lf.path, lf.rel, target, "spec.json already there; kept"))
                else:
                    spec_targets.add(target)
                    actions.append(Action("spec", lf.path, lf.rel, target, "imported spec", doc=spec,
                                          corrections=notes, faults=spec_faults))
                continue
            if isinstance(legacy, dict) and "schema_version" in legacy:
                actions.append(Action("skip", lf.path, lf.rel, message="already in hwcal format; not imported"))
                continue
            conv = legacy_calibration_to_v1(legacy, rel=lf.rel, type_folder=lf.type_folder,
                                            hardware_folder=lf.hardware_folder, imported_at=imported_at,
                                            source_sha256=hashlib.sha256(raw).hexdigest())
            errors = schema_errors(conv.doc, "calibration")
            if errors:
                raise LegacyFormatError("converted calibration is not valid: " + "; ".join(errors[:5]))
            converted.append((lf, conv))
        except HwcalError as exc:
            actions.append(Action("error", lf.path, lf.rel, message=str(exc)))
    by_key: dict[CalibrationKey, list[tuple[LegacyFile, Converted]]] = defaultdict(list)
    for lf, conv in converted:
        by_key[conv.key].append((lf, conv))
    taken: set[Path] = set()
    for key in sorted(by_key, key=lambda k: (k.hardware_id, k.filename)):
        actions += _plan_key(registry, key, by_key[key], taken)
    return actions


def _plan_key(registry: Path, key: CalibrationKey, items: list[tuple[LegacyFile, Converted]],
              taken: set[Path]) -> list[Action]:
    """The newest of (existing, imported) stays current; older imports go to history; nothing newer is lost."""
    current, problem, already = _existing(registry, key)
    out: list[Action] = []

    def act(kind: str, lf: LegacyFile, conv: Converted, target: Path | None, message: str) -> Action:
        return Action(kind, lf.path, lf.rel, target, message, conv.key, conv.doc, conv.calibration_date,
                      conv.corrections, conv.faults)

    fresh = []
    for lf, conv in items:
        sha = conv.doc["metadata"]["imported"]["source_sha256"]
        done = already.get((conv.calibration_date.isoformat(), sha))
        if done:
            out.append(act("skip", lf, conv, done, "already imported"))
        else:
            fresh.append((lf, conv))
    if problem and fresh:
        return out + [act("error", lf, conv, calibration_path(registry, key),
                          f"cannot compare dates with the unreadable {key.filename} there ({problem}); "
                          "fix or remove it first") for lf, conv in fresh]
    fresh.sort(key=lambda item: item[1].calibration_date)
    newest_date = current[1] if current else None
    winner = None
    if fresh and (newest_date is None or fresh[-1][1].calibration_date > newest_date):
        winner = fresh.pop()
    for lf, conv in fresh:
        newer = winner[1].calibration_date if winner else newest_date
        out.append(act("history", lf, conv, _history_target(registry, key, conv.calibration_date, taken),
                       f"older than the {newer:%Y-%m-%d %H:%M} calibration of {key.filename}; kept as history"
                       if newer else "kept as history"))
    if winner:
        lf, conv = winner
        note = "replaces an older calibration (kept in history)" if current else "new calibration"
        out.append(act("write", lf, conv, calibration_path(registry, key), note))
    return out


def execute(actions: list[Action], registry: Path) -> list[Action]:
    """Write what the plan says; a failed write turns its action into an ``error`` and the rest go on."""
    for a in actions:
        if a.action not in ("spec", "write", "history") or a.doc is None or a.target is None:
            continue
        try:
            if a.action == "write" and a.key is not None:
                write_calibration(registry, a.key, a.doc)
                continue
            kind = "spec" if a.action == "spec" else "calibration"
            errors = schema_errors(a.doc, kind)
            if errors:
                raise HwcalError(f"{kind} is not valid, nothing written: " + "; ".join(errors[:3]))
            device_type = a.doc["device_type"] if kind == "spec" else a.doc["key"]["device_type"]
            hardware_id = a.doc["id"] if kind == "spec" else a.doc["key"]["hardware_id"]
            with lock_for(registry, device_type, hardware_id):
                if a.target.exists():
                    raise HwcalError(f"{a.target} appeared meanwhile; not overwritten")
                atomic_write_text(a.target, dumps(a.doc))
        except Timeout:
            a.action, a.message = "error", f"lock on {a.target.parent} held by another writer; nothing written"
        except (HwcalError, OSError) as exc:
            a.action, a.message = "error", str(exc)
    return actions

