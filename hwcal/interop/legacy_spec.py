"""An original spec.json as an hwcal spec (format 1), its known faults corrected where the file allows and
recorded: a peak of 0 meant unknown, sparsity figures were filed as dense peaks, and accelerators and DSPs
(``tpu``, ``kpu``, ``npu``, ``dsp``) are device types of their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hwcal.document.schema import SPEC_FORMAT_VERSION
from hwcal.errors import HwcalError
from hwcal.interop.legacy_common import LegacyFormatError, parse_legacy_date, pos
from hwcal.interop.legacy_files import LEGACY_TYPE_FOLDERS
from hwcal.naming import check_hardware_id, hardware_id_token
from hwcal.precisions import PRECISIONS, canonical_sorted
from hwcal.version import __version__

# The device_type values the original wrote, by the hwcal type they are.
LEGACY_DEVICE_TYPES = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "board": "board", "accelerator": "accelerator",
                       "tpu": "accelerator", "kpu": "accelerator", "npu": "accelerator", "dla": "accelerator",
                       "dsp": "dsp"}
# Dense tensor-core peaks reach at most about these multiples of the FP32 peak (A100, H100 datasheets);
# above them a figure is almost certainly the 2:4-sparsity one the datasheets print next to it.
_DENSE_RATIO_CEILING = {"tf32": 10.0, "fp16": 20.0, "bf16": 20.0, "fp8": 40.0, "int8": 40.0}
_KNOWN = {"id", "model", "device_type", "vendor", "architecture", "platform", "compute_units", "memory_gb",
          "base_clock_mhz", "boost_clock_mhz", "theoretical_peaks", "peak_bandwidth_gbps", "notes", "calibration_date"}


def device_type_of(type_folder: str | None, legacy_value: object, notes: list[str]) -> str:
    """hwcal's device type from the original folder and the file's own device_type (the folder wins)."""
    from_folder = LEGACY_TYPE_FOLDERS.get(type_folder or "")
    from_doc = LEGACY_DEVICE_TYPES.get(str(legacy_value).lower()) if legacy_value is not None else None
    if from_folder and from_doc and from_folder != from_doc:
        notes.append(f"device type {legacy_value!r} in the file disagrees with the folder {type_folder!r}; "
                     f"the folder's {from_folder!r} is used")
    elif from_doc and str(legacy_value).lower() not in (from_doc, "cuda"):
        notes.append(f"device type {legacy_value!r} filed as {from_doc!r}")
    device_type = from_folder or from_doc
    if device_type is None:
        raise LegacyFormatError(f"cannot tell the device type: folder {type_folder!r}, device_type {legacy_value!r} "
                                f"(expected one of {', '.join(sorted(set(LEGACY_DEVICE_TYPES)))})")
    return device_type


def hardware_id_of(folder: str | None, fallback: object, notes: list[str]) -> str:
    candidate = folder or hardware_id_token(str(fallback or ""))
    try:
        return check_hardware_id(candidate)
    except HwcalError:
        token = hardware_id_token(candidate)
        if not token:
            raise LegacyFormatError(f"cannot make a hardware id from {candidate!r}") from None
        notes.append(f"hardware id {candidate!r} is not [a-z0-9_]; filed as {token!r}")
        return token


def _peaks(legacy: dict[str, Any], notes: list[str], faults: list[str]) -> dict[str, float]:
    raw: dict[str, Any] = legacy["theoretical_peaks"] if isinstance(legacy.get("theoretical_peaks"), dict) else {}
    peaks = {p: float(v) for p, v in raw.items() if p in PRECISIONS and pos(v) is not None}
    zero = [p for p, v in raw.items() if p in PRECISIONS and pos(v) is None]
    unknown = [p for p in raw if p not in PRECISIONS]
    if zero:
        faults.append(f"theoretical peak 0 for {', '.join(zero)} meant unknown; left out")
    if unknown:
        notes.append(f"peaks for {', '.join(unknown)} left out: not a precision this format knows")
    fp32 = peaks.get("fp32")
    for p, ceiling in _DENSE_RATIO_CEILING.items():
        if fp32 and p in peaks and peaks[p] / fp32 > ceiling:
            faults.append(f"{p} peak {peaks[p]:g} GFLOPS is {peaks[p] / fp32:.3g}x the fp32 peak; dense tensor-core "
                          f"peaks stay below {ceiling:g}x, so it is almost certainly the 2:4-sparsity figure; left "
                          "out (unknown) rather than halved: check the datasheet's dense figure")
            del peaks[p]
    return {p: peaks[p] for p in canonical_sorted(peaks)}


def _facts(legacy: dict[str, Any], spec: dict[str, Any], notes: list[str]) -> None:
    for name in ("vendor", "architecture", "platform"):
        if isinstance(legacy.get(name), str) and legacy[name]:
            spec[name] = legacy[name]
    units = legacy.get("compute_units")
    if isinstance(units, int) and not isinstance(units, bool) and units >= 1:
        spec["compute_units"] = units
    elif isinstance(units, list):
        ids = [str(u.get("id")) for u in units if isinstance(u, dict) and u.get("id")]
        notes.append(f"compute_units lists the board's units ({', '.join(ids) or 'no ids'}), not a count; left out")
    for name in ("memory_gb", "base_clock_mhz", "boost_clock_mhz"):
        if pos(legacy.get(name)) is not None:
            spec[name] = legacy[name]


def legacy_spec_to_v1(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None,
                      imported_at: datetime, source_sha256: str = "") -> tuple[dict[str, Any], list[str], list[str]]:
    """An original spec.json as a format-1 spec, with the corrections made and the faults found."""
    if not isinstance(legacy, dict) or "schema_version" in legacy:
        raise LegacyFormatError("not an original-registry spec.json (has schema_version or is not an object)")
    notes: list[str] = []
    faults: list[str] = []
    hardware_id = hardware_id_of(hardware_folder, legacy.get("id"), notes)
    if legacy.get("id") not in (None, hardware_id):
        notes.append(f"id {legacy.get('id')!r} disagrees with the folder; filed as {hardware_id!r}")
    spec: dict[str, Any] = {"schema_version": SPEC_FORMAT_VERSION, "id": hardware_id,
                            "model": str(legacy.get("model") or hardware_id),
                            "device_type": device_type_of(type_folder, legacy.get("device_type"), notes)}
    _facts(legacy, spec, notes)
    legacy_notes = str(legacy.get("notes") or "")
    spec["theoretical_peaks"] = _peaks(legacy, notes, faults)
    spec["peaks_source"] = "derived" if "auto-detected" in legacy_notes.lower() else "datasheet"
    spec["peaks_note"] = (f"imported from the original registry ({rel}), which did not record where its peaks "
                          f"came from; peaks_source {spec['peaks_source']!r} is inferred from its notes")
    bandwidth = pos(legacy.get("peak_bandwidth_gbps"))
    spec["peak_bandwidth_gbps"] = bandwidth
    if bandwidth is None and "peak_bandwidth_gbps" in legacy:
        faults.append(f"peak_bandwidth_gbps {legacy['peak_bandwidth_gbps']!r} meant unknown; stored as null")
    if legacy.get("calibration_date"):
        date = parse_legacy_date(legacy["calibration_date"], "calibration_date")
        spec["created"] = date.iso()
        if not date.zone_known:
            notes.append(f"calibration_date {date.original!r} has no time zone; read as UTC")
    extra = sorted(set(legacy) - _KNOWN)
    if extra:
        notes.append(f"fields {', '.join(extra)} have no place in format 1; left out")
    record = f"Imported from the original registry ({rel}) on {imported_at.date().isoformat()} by hwcal " \
             f"{__version__}" + (": " + "; ".join(faults + notes) if faults or notes else "")
    spec["notes"] = f"{legacy_notes} | {record}" if legacy_notes else record
    spec["imported"] = {"source": rel, **({"source_sha256": source_sha256} if source_sha256 else {}),
                        "corrections": notes, "faults": faults}
    return spec, notes, faults


def board_units(legacy: Any) -> dict[str, str]:
    """A board spec's units by device type (``{"cpu": "jetson_orin_agx_cpu", "gpu": ...}``): how the original
    registry ties a board's CPU, GPU and accelerators together. The first unit of each type counts."""
    units: dict[str, str] = {}
    raw = legacy.get("compute_units") if isinstance(legacy, dict) else None
    for unit in raw if isinstance(raw, list) else []:
        if isinstance(unit, dict) and isinstance(unit.get("id"), str) and isinstance(unit.get("type"), str):
            kind = LEGACY_DEVICE_TYPES.get(unit["type"].lower())
            if kind and kind not in units:
                units[kind] = hardware_id_token(unit["id"])
    return units
