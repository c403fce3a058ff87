"""The original system's registry: finding its files, and converting its spec.json to hwcal's format.

Its known faults are corrected where the file itself allows and recorded (see ``legacy_calibration``).
"""


from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.document.schema import SPEC_FORMAT_VERSION
from hwcal.errors import HwcalError
from hwcal.naming import (
    check_hardware_id,
    hardware_id_token,
)
from hwcal.precisions import PRECISIONS, canonical_sorted
from hwcal.version import __version__

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


def legacy_spec_to_v1(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None,  # noqa: C901 -- TODO(issue 21): split
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
    raw_peaks: dict[str, Any] = legacy["theoretical_peaks"] if isinstance(legacy.get("theoretical_peaks"), dict) else {}
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


def _power_mode_and_freq(meta: dict[str, Any], device_type: str, legacy_name: re.Match[str] | None,
                         corrections: list[str], faults: list[str]) -> tuple[str, str, int, str]:
    gpu: dict[str, Any] = meta["gpu_clock"] if isinstance(meta.get("gpu_clock"), dict) else {}
    cpu: dict[str, Any] = meta["cpu_clock"] if isinstance(meta.get("cpu_clock"), dict) else {}
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
