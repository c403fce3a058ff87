"""The original registry's DLA calibrations (TensorRT on one DLA engine in one precision) as calibrations of
the ``accelerator`` device type, framework ``tensorrt``.

One original file is one run: one engine (dla0, dla1), one precision, one power mode, per-layer and
per-model timings. hwcal's calibration covers every precision a device runs in one mode, so the runs of a
key (device, mode, clock, tensorrt) make one document whose ``accelerator_runs`` hold the newest run of
each engine and precision; a superseded run is filed as history on its own. The files record no DLA
clock: the key's frequency is the mode's DLA limit from the board's nvpmodel table, else the spec's
boost clock, flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.interop.jetson_modes import NO_LIMIT, JetsonBoard, board_of, check_mode_id
from hwcal.interop.legacy_calibration import NothingMeasured
from hwcal.interop.legacy_common import LegacyDate, LegacyFormatError, parse_legacy_date, pos, rounded
from hwcal.interop.legacy_spec import device_type_of, hardware_id_of
from hwcal.naming import CalibrationKey, check_power_mode
from hwcal.precisions import PRECISIONS, canonical_sorted
from hwcal.version import __version__

FRAMEWORK = "tensorrt"
_NAME_RE = re.compile(r"^dla(?P<core>\d+)_(?P<precision>[a-z0-9]+)_(?P<mode>.+)_(?P<stamp>\d{8}T\d{6}Z)\.json$")
_TIMES = (("min", "min_ms"), ("median", "latency_ms"), ("mean", "mean_ms"), ("max", "max_ms"), ("stddev", "std_ms"))
_LEGACY_DERIVED = ("tflops", "attained_gflops", "peak_gflops", "efficiency", "throughput_fps", "dla_percentage",
                   "total_layers", "gpu_busy_ms", "dla_busy_ms", "utilization")


def is_dla_calibration(doc: object) -> bool:
    """An original DLA run: per-layer benchmarks of one DLA engine, no metadata object."""
    return isinstance(doc, dict) and "metadata" not in doc and "dla_core" in doc and (
        "layer_benchmarks" in doc or "model_benchmarks" in doc)


@dataclass
class DlaRun:
    """One original DLA file as an ``accelerator_run``, with its key and what was found on the way."""

    key: CalibrationKey
    run: dict[str, Any]
    date: LegacyDate
    power_mode: str
    power_mode_source: str
    mode_id: int | None
    freq_source: str
    hardware_name: str
    legacy: dict[str, Any] = field(repr=False)
    corrections: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    @property
    def slot(self) -> tuple[str, str]:
        return self.run["engine"], self.run["precision"]

    @property
    def calibration_date(self) -> datetime:
        return self.date.utc


def _result(entry: dict[str, Any], kind: str) -> dict[str, Any]:
    times = {k: float(entry[v]) / 1e3 for k, v in _TIMES if pos(entry.get(v)) is not None}
    ok = entry.get("status") == "success" and "median" in times
    flops = pos(entry.get("flops")) or pos(entry.get("approx_flops"))
    out: dict[str, Any] = {
        "name": str(entry.get("config") or entry.get("model") or "?"), "kind": kind,
        "params": entry.get("params") if isinstance(entry.get("params"), dict) else None,
        "input_shape": [s for s in entry.get("input_shape") or [] if isinstance(s, int) and not isinstance(s, bool)],
        "batch_size": entry.get("batch_size") if isinstance(entry.get("batch_size"), int) else None,
        "flops": flops, "status": "measured" if ok else "failed",
        "error": str(entry["error"]) if entry.get("error") else None,
        "time_s": {k: float(f"{v:.6g}") for k, v in times.items()} if ok else None,
        "gflops_median": rounded(flops / times["median"] / 1e9) if ok and flops else None,
        "layers_on_accelerator": entry.get("dla_layer_count"), "layers_on_gpu": entry.get("gpu_layer_count"),
        "legacy": {k: entry[k] for k in _LEGACY_DERIVED if k in entry} or None,
    }
    if not ok and not out["error"]:
        out["error"] = f"status {entry.get('status')!r}, no timing"
    return {k: v for k, v in out.items() if v is not None}


def _results(legacy: dict[str, Any]) -> list[dict[str, Any]]:
    layers = [e for e in legacy.get("layer_benchmarks") or [] if isinstance(e, dict)]
    models = [e for e in legacy.get("model_benchmarks") or [] if isinstance(e, dict)]
    return [_result(e, str(e.get("layer_type") or "layer")) for e in layers] + [_result(e, "model") for e in models]


def _mode(legacy: dict[str, Any], name: re.Match[str] | None, faults: list[str]) -> tuple[str, str]:
    field_mode = legacy.get("power_mode_name")
    if isinstance(field_mode, str) and field_mode.strip():
        if name and name["mode"].replace("_", "").casefold() != field_mode.replace("_", "").casefold():
            faults.append(f"the file name says mode {name['mode']!r}, power_mode_name {field_mode!r}; the field is "
                          "used")
        return field_mode.strip(), "original file: power_mode_name"
    if name:
        return name["mode"].upper(), "original file name"
    raise LegacyFormatError("no power mode recorded (power_mode_name) and no dla<N>_<precision>_<mode>_<stamp>.json "
                            "file name to take it from")


def _frequency(board: JetsonBoard | None, mode: str, spec: dict[str, Any] | None, faults: list[str]
               ) -> tuple[int, str]:
    table = board.mode(mode) if board is not None else None
    limit = table.dla_max_mhz if table is not None else None
    if board is not None and table is not None and limit is not None and limit != NO_LIMIT:
        return round(limit), f"{board.name} nvpmodel table: {table.name} limits DLA0_CORE to {limit:g} MHz " \
                             "(the original file recorded no DLA clock)"
    boost = pos((spec or {}).get("boost_clock_mhz"))
    if boost is None:
        raise LegacyFormatError(f"no DLA clock: the file recorded none, hwcal's table has no DLA limit for {mode!r}, "
                                "and no spec.json beside it states a boost clock")
    why = "sets no DLA limit" if limit == NO_LIMIT else "is not in hwcal's nvpmodel tables"
    faults.append(f"mode {mode!r} {why} and the file recorded no DLA clock: keyed at the original spec's boost clock "
                  f"{boost:g} MHz (not measured)")
    return round(boost), "original spec.json: boost_clock_mhz (no DLA clock recorded, no mode limit known)"


def legacy_dla_run(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None,
                   spec: dict[str, Any] | None = None, source_sha256: str = "") -> DlaRun:
    """One original DLA file as a run; raises LegacyFormatError, NothingMeasured when every benchmark failed."""
    if not is_dla_calibration(legacy):
        raise LegacyFormatError("not an original DLA calibration (no dla_core and layer_benchmarks)")
    corrections: list[str] = []
    faults: list[str] = []
    device_type = device_type_of(type_folder, "accelerator", corrections)
    hardware_id = hardware_id_of(hardware_folder, legacy.get("hardware_name"), corrections)
    precision = str(legacy.get("precision") or "").lower()
    if precision not in PRECISIONS:
        raise LegacyFormatError(f"precision {legacy.get('precision')!r} is not one this format knows")
    name = _NAME_RE.match(Path(rel).name)
    mode, mode_source = _mode(legacy, name, faults)
    board = board_of(legacy.get("hardware_name"), hardware_id)
    mode_id, fault = check_mode_id(legacy.get("nvpmodel_mode"), "nvpmodel_mode", mode, board)
    faults += [fault] if fault else []
    freq, freq_source = _frequency(board, mode, spec, faults)
    if not legacy.get("calibration_date"):
        raise LegacyFormatError("calibration_date missing")
    date = parse_legacy_date(legacy["calibration_date"], "calibration_date",
                             datetime.strptime(name["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
                             if name else None)
    results = _results(legacy)
    if not any(r["status"] == "measured" for r in results):
        first = next((r.get("error") for r in results if r.get("error")), "no benchmark recorded")
        raise NothingMeasured(f"no measurement in it: all {len(results)} benchmarks failed (first error: {first}); "
                              "not imported")
    core = legacy.get("dla_core")
    run = {"engine": f"dla{core}", "precision": precision, "calibration_date": date.iso(), "framework": FRAMEWORK,
           "framework_version": str(legacy.get("tensorrt_version") or "unknown"),
           "gpu_fallback": legacy.get("gpu_fallback") if isinstance(legacy.get("gpu_fallback"), bool) else None,
           "source": rel, **({"source_sha256": source_sha256} if source_sha256 else {}),
           "benchmarks": {k: legacy[k] for k in ("total_benchmarks", "successful_benchmarks", "failed_benchmarks")
                          if isinstance(legacy.get(k), int) and legacy[k] >= 0},
           "results": results}
    key = CalibrationKey(device_type, hardware_id, check_power_mode(mode), freq, FRAMEWORK)
    return DlaRun(key, run, date, mode, mode_source, mode_id, freq_source, str(legacy.get("hardware_name") or ""),
                  legacy, corrections, faults)


def _status(runs: list[DlaRun]) -> dict[str, Any]:
    status = {}
    for p in canonical_sorted({r.run["precision"] for r in runs}):
        engines = sorted(r.run["engine"] for r in runs if r.run["precision"] == p)
        status[p] = {"status": "native", "kernel": f"TensorRT on {', '.join(engines)} (layers a DLA cannot run fall "
                                                   "back to the GPU where gpu_fallback is on)"}
    return status


def dla_document(runs: list[DlaRun], spec: dict[str, Any] | None, imported_at: datetime) -> dict[str, Any]:
    """The format-1 calibration of one key from its newest run of each engine and precision."""
    runs = sorted(runs, key=lambda r: r.slot)
    newest = max(runs, key=lambda r: r.calibration_date)
    status = _status(runs)
    peaks = (spec or {}).get("theoretical_peaks") or {}
    theoretical = {p: float(peaks[p]) for p in status if pos(peaks.get(p))}
    versions = sorted({r.run["framework_version"] for r in runs})
    corrections = [f"{r.run['engine']} {r.run['precision']}: {c}" for r in runs for c in r.corrections]
    faults = [f"{r.run['engine']} {r.run['precision']}: {f}" for r in runs for f in r.faults]
    if len(versions) > 1:
        faults.append(f"the runs used TensorRT {', '.join(versions)}; framework_version is the newest run's")
    meta: dict[str, Any] = {
        "hardware_id": newest.key.hardware_id, "hardware_name": newest.hardware_name or newest.key.hardware_id,
        "device_type": newest.key.device_type, "device": "cuda:0",
        "calibration_date": newest.date.iso(), "tool_version": "original tool (DLA calibrator)",
        "power_mode": newest.power_mode, "power_mode_source": newest.power_mode_source,
        "freq_mhz": newest.key.freq_mhz, "freq_source": newest.freq_source, "framework": FRAMEWORK,
        "framework_version": newest.run["framework_version"],
        "host": {k: v for k, v in {"python_version": newest.legacy.get("python_version"),
                                   "cpu": {"architecture": newest.legacy.get("platform_architecture")}}.items() if v},
        "clock": {"ceiling_mhz": newest.key.freq_mhz, "source": newest.freq_source,
                  **({"power_mode_id": newest.mode_id} if newest.mode_id is not None else {})},
        "imported": {
            "source": "; ".join(r.run["source"] for r in runs), "family": "dla_calibration",
            "source_format": "original registry, DLA calibrator (TensorRT)",
            "imported_at": imported_at.astimezone(timezone.utc).isoformat(), "hwcal_version": __version__,
            "corrections": corrections, "faults": faults,
            "legacy_metadata": {k: v for k, v in newest.legacy.items() if k not in ("layer_benchmarks",
                                                                                 "model_benchmarks")},
        },
    }
    return {"schema_version": 1, "key": newest.key.as_dict(), "metadata": meta,
            "theoretical_peak_gflops": None, "theoretical_bandwidth_gbps": None, "best_measured_gflops": None,
            "measured_bandwidth_gbps": None, "bandwidth_efficiency": None,
            "precision_matrix": {"supported_precisions": list(status), "emulated_precisions": [],
                                 "unsupported_precisions": [], "status": status, "peak_gflops_by_precision": {},
                                 "speedup_vs_fp32": {}, "theoretical_peaks": theoretical},
            "gemm": [], "accelerator_runs": [r.run for r in runs],
            "warnings": [f"imported from the original registry's DLA runs: per-layer and per-model TensorRT timings "
                         f"in accelerator_runs (the newest run of each engine and precision, {len(runs)} here); no "
                         "GEMM was measured, so there are no GEMM peaks; metadata.device is the CUDA device TensorRT "
                         "drove the DLA from"]}
