"""The facts of one original CPU or GPU calibration that every part of its conversion reads (device,
hardware, framework, power mode, key frequency, date), and the parts of the document they make:
metadata, clock readings, the import record, the document's frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.interop.legacy_common import (
    LegacyDate,
    LegacyFormatError,
    LegacyName,
    parse_legacy_date,
    parse_legacy_name,
    pos,
)
from hwcal.interop.legacy_power import ModeFacts, clocks, mode_facts
from hwcal.interop.legacy_spec import device_type_of, hardware_id_of
from hwcal.naming import CalibrationKey, check_power_mode, normalise_framework
from hwcal.version import __version__

_SUMMARY_KEYS = ("theoretical_peak_gflops", "theoretical_bandwidth_gbps", "best_measured_gflops",
                 "avg_measured_gflops", "worst_measured_gflops", "measured_bandwidth_gbps",
                 "bandwidth_efficiency", "best_efficiency", "avg_efficiency", "worst_efficiency")


@dataclass
class Source:
    """One original calibration and the facts every part of its conversion reads."""

    legacy: dict[str, Any]
    meta: dict[str, Any]
    rel: str
    name: LegacyName | None
    device_type: str
    hardware_id: str
    framework: str
    mode: ModeFacts
    date: LegacyDate
    corrections: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def key(self) -> CalibrationKey:
        return CalibrationKey(self.device_type, self.hardware_id, check_power_mode(self.mode.power_mode),
                              self.mode.freq_mhz, self.framework)


def source_of(legacy: Any, rel: str, type_folder: str | None, hardware_folder: str | None, *,
              host_cpu: str | None = None) -> Source:
    """The facts of an original calibration; with ``host_cpu`` (a hardware id) those of the host CPU's part
    of a GPU file: device cpu, that id, numpy (the original's multi-core STREAM is numpy whatever the
    file's framework), the CPU clock's mode and ceiling."""
    if not isinstance(legacy, dict) or not isinstance(legacy.get("metadata"), dict):
        raise LegacyFormatError("not an original-registry calibration (no metadata object)")
    if "schema_version" in legacy:
        raise LegacyFormatError(f"already in hwcal format {legacy['schema_version']!r}; nothing to import")
    meta = legacy["metadata"]
    corrections: list[str] = []
    device_type = "cpu" if host_cpu else device_type_of(type_folder, meta.get("device_type"), corrections)
    hardware_id = host_cpu or hardware_id_of(hardware_folder, meta.get("hardware_name"), corrections)
    if not meta.get("framework") and not host_cpu:
        raise LegacyFormatError("metadata.framework missing")
    framework = "numpy" if host_cpu else normalise_framework(str(meta["framework"]))
    file_name = Path(rel).name
    name = parse_legacy_name(file_name) if file_name != "calibration.json" else None
    facts = mode_facts(meta, device_type, name, hardware_id, clock_from_name=not host_cpu)
    if not meta.get("calibration_date"):
        raise LegacyFormatError("metadata.calibration_date missing")
    date = parse_legacy_date(meta["calibration_date"], "calibration_date", name.stamp if name else None)
    src = Source(legacy, meta, rel, name, device_type, hardware_id, framework, facts, date,
                 corrections + facts.corrections, list(facts.faults))
    if not date.zone_known:
        src.faults.append(f"calibration_date {date.original!r} has no time zone (and no UTC stamp in the file "
                          "name to take it from): read as UTC to order it; its order against a calibration "
                          "within 26 h of it is uncertain")
    elif date.zone != "recorded":
        src.corrections.append(f"calibration_date {date.original!r} had no time zone: {date.zone}")
    return src


def old_matrix(src: Source) -> dict[str, Any]:
    """The original file's precision_matrix ({} when absent)."""
    return src.legacy["precision_matrix"] if isinstance(src.legacy.get("precision_matrix"), dict) else {}


def clock_section(src: Source) -> dict[str, Any]:
    """The key's ceiling, the checked mode id, and the original clock readings (ids not checked dropped)."""
    cpu, gpu = clocks(src.meta)
    clock: dict[str, Any] = {"ceiling_mhz": src.mode.freq_mhz, "source": src.mode.freq_source}
    if src.mode.mode_id is not None:
        clock["power_mode_id"] = src.mode.mode_id
    for name, reading in (("gpu", gpu), ("cpu", cpu)):
        kept = {k: v for k, v in reading.items() if k != "nvpmodel_mode"}
        if name == "gpu" and kept and src.device_type == "gpu" and src.mode.mode_id is not None:
            kept["nvpmodel_mode"] = src.mode.mode_id
        if kept:
            clock[name] = kept
    return clock


def metadata(src: Source) -> dict[str, Any]:
    meta = src.meta
    legacy_version = str(meta.get("calibration_tool_version") or "unknown")
    host = {k: v for k, v in {
        "cpu": {k: v for k, v in {"model": meta.get("cpu_model"), "logical_cores": meta.get("cpu_count"),
                                  "architecture": meta.get("platform_architecture")}.items() if v is not None},
        "total_memory_gb": meta.get("total_memory_gb"), "python_version": meta.get("python_version"),
    }.items() if v}
    framework_version = meta.get("pytorch_version") if src.framework == "pytorch" else meta.get("numpy_version")
    out: dict[str, Any] = {
        "hardware_id": src.hardware_id, "hardware_name": str(meta.get("hardware_name") or src.hardware_id),
        "device_type": src.device_type, "device": "cuda" if src.device_type == "gpu" else "cpu",
        "calibration_date": src.date.iso(), "tool_version": f"original tool {legacy_version}",
        "power_mode": src.mode.power_mode, "power_mode_source": src.mode.power_mode_source,
        "freq_mhz": src.mode.freq_mhz, "freq_source": src.mode.freq_source, "framework": src.framework,
        "framework_version": str(framework_version or "unknown"), "host": host, "clock": clock_section(src),
    }
    if meta.get("numpy_version"):
        out["numpy_version"] = str(meta["numpy_version"])
    if meta.get("pytorch_version"):
        out["torch_version"] = str(meta["pytorch_version"])
    preflight = _preflight(meta)
    if preflight is not None:
        out["preflight"] = preflight
    return out


def _preflight(meta: dict[str, Any]) -> dict[str, Any] | None:
    pre = meta.get("preflight")
    if not isinstance(pre, dict):
        return None
    checks = []
    for c in pre.get("checks") or []:
        if not isinstance(c, dict):
            continue
        status = str(c.get("status", "")).lower()
        known = status in ("passed", "warning", "failed", "skipped")
        check: dict[str, Any] = {"name": str(c.get("name", "?")), "status": status if known else "warning",
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


def imported_record(src: Source, imported_at: datetime, source_sha256: str, family: str) -> dict[str, Any]:
    """``metadata.imported``: where the document came from, what was corrected and found, and the original
    figures that have no place in the format (set by the caller: gemm, stream, ...)."""
    meta = src.meta
    legacy_version = str(meta.get("calibration_tool_version") or "unknown")
    return {
        "source": src.rel, **({"source_sha256": source_sha256} if source_sha256 else {}),
        "source_format": f"original registry, calibration tool {legacy_version}", "family": family,
        "legacy_key": Path(src.rel).name.removesuffix(".json"),
        "imported_at": imported_at.astimezone(timezone.utc).isoformat(), "hwcal_version": __version__,
        "original_calibration_date": src.date.original, "calibration_date_zone": src.date.zone,
        "corrections": src.corrections, "faults": src.faults,
        "legacy_summary": {k: src.legacy[k] for k in _SUMMARY_KEYS if k in src.legacy},
        "legacy_precision_matrix": old_matrix(src),
        "legacy_metadata": {k: v for k, v in meta.items() if k != "preflight"},
    }


def base_document(src: Source, matrix: dict[str, Any], theoretical_bw: float | None) -> dict[str, Any]:
    """A format-1 document with the summary fields; the caller adds what it measured."""
    return {"schema_version": 1,  # then upgraded to the current format by the migration (update_to_2)
            "key": src.key.as_dict(), "metadata": metadata(src),
            "theoretical_peak_gflops": matrix["theoretical_peaks"].get("fp32",
                                                                    pos(src.legacy.get("theoretical_peak_gflops"))),
            "theoretical_bandwidth_gbps": theoretical_bw, "best_measured_gflops": None,
            "measured_bandwidth_gbps": None, "bandwidth_efficiency": None, "precision_matrix": matrix,
            "gemm": [], "warnings": src.warnings}
