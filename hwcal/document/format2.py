"""Calibration format 2: a superset of the original system's calibration file. Pure functions, no I/O.

Format 2 is what format 1 is, plus what the original loader (``SEED-FORMAT.md``) requires, so that
its ``HardwareCalibration.from_dict`` reads an hwcal file unchanged:

- ``precision_matrix`` keeps EXACTLY the legacy keys (``hardware_name``, ``supported_precisions`` =
  native + emulated, i.e. every precision that runs, ``unsupported_precisions``,
  ``peak_gflops_by_precision``, ``speedup_vs_fp32``, ``theoretical_peaks``); hwcal's extras (``status``
  with reasons, ``emulated_precisions``, ``peak_size_by_precision``, ``efficiency_*`` and any other key
  format 1 had there) move unchanged to the top-level ``precision_detail``. Precisions that were not
  run are in neither legacy list (their status says why).
- ``metadata`` gains the legacy flat fields beside hwcal's (see ``legacy_metadata``); ``device_type``
  takes the legacy vocabulary ("cpu" or "cuda"), the registry folder's type stays in ``key.device_type``;
  ``preflight`` gains ``timestamp`` and per check ``current_value``/``expected_value`` strings, and its
  ``duration_s`` moves to ``metadata.preflight_duration_s`` (the legacy preflight object is read strictly).
- top-level summary numbers the loader requires. Where hwcal has null (unknown) the original tool's
  convention is used, 0 (its seed files write 0.0 for an unknown peak); every field so filled is named
  in ``legacy_unknown_zero``. ``best/avg/worst_measured_gflops`` are now, as in the original, over the
  compute operations of ``operation_profiles`` (GFLOPS > 0), no longer the fp32 GEMM peak (that stays in
  ``precision_matrix.peak_gflops_by_precision.fp32``); ``best/avg/worst_efficiency`` are over the
  profiles whose efficiency is valid for the old models, (0, 1] (unknown ones, 0, are left out).
  ``measured_bandwidth_gbps`` stays hwcal's sustained DRAM figure.
- ``operation_profiles`` (``hwcal.document.operation_profiles``, which says which profile of each type
  comes first) and ``fusion_profiles: {}``. A document imported from the original registry keeps its
  unverified results under ``metadata.imported`` only, so it gets no profiles (the loader then falls
  back to ``avg_efficiency``, 0 there).

Sections format 1 had (``gemm``, ``memory``, ``warnings``, ``blas``, ``gemm_shapes``, ``launch_floors``,
unknown keys) are kept unchanged.
"""

from __future__ import annotations

import copy
import json
import statistics
from typing import Any

from hwcal.document.nn_profiles import nn_profiles
from hwcal.document.operation_profiles import operation_profiles, valid_efficiency
from hwcal.precisions import canonical_sorted

FORMAT_1, FORMAT_2 = 1, 2
LEGACY_MATRIX_KEYS = ("hardware_name", "supported_precisions", "unsupported_precisions", "peak_gflops_by_precision",
                      "speedup_vs_fp32", "theoretical_peaks")
CPU_CLOCK_KEYS = ("current_freq_mhz", "query_method", "min_freq_mhz", "max_freq_mhz", "base_freq_mhz",
                  "per_core_freq_mhz", "governor", "driver", "turbo_enabled")
GPU_CLOCK_KEYS = ("sm_clock_mhz", "query_method", "mem_clock_mhz", "max_sm_clock_mhz", "max_mem_clock_mhz",
                  "power_draw_watts", "power_limit_watts", "temperature_c", "nvpmodel_mode", "power_mode_name")
_FIRST_KEYS = ("schema_version", "key", "metadata")
SUMMARY_KEYS = ("theoretical_peak_gflops", "theoretical_bandwidth_gbps", "best_measured_gflops",
                 "avg_measured_gflops", "worst_measured_gflops", "measured_bandwidth_gbps", "bandwidth_efficiency",
                 "best_efficiency", "avg_efficiency", "worst_efficiency")


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def legacy_device_type(doc: dict[str, Any]) -> str:
    """The legacy vocabulary: "cuda" for a GPU calibration (key.device_type "gpu", a CUDA device), else "cpu"."""
    key_type = (doc.get("key") or {}).get("device_type") or doc["metadata"].get("device_type")
    device = str(doc["metadata"].get("device") or "")
    return "cuda" if key_type == "gpu" or key_type == "cuda" or device.startswith("cuda") else "cpu"


def legacy_precision_matrix(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``precision_matrix`` with exactly the legacy keys, ``precision_detail`` with everything else)."""
    matrix = doc.get("precision_matrix") or {}
    legacy = {
        "hardware_name": str(doc["metadata"].get("hardware_name") or doc["metadata"].get("hardware_id") or ""),
        "supported_precisions": canonical_sorted(
            set(matrix.get("supported_precisions") or []) | set(matrix.get("emulated_precisions") or [])),
        "unsupported_precisions": list(matrix.get("unsupported_precisions") or []),
        "peak_gflops_by_precision": dict(matrix.get("peak_gflops_by_precision") or {}),
        "speedup_vs_fp32": dict(matrix.get("speedup_vs_fp32") or {}),
        "theoretical_peaks": dict(matrix.get("theoretical_peaks") or {}),
    }
    detail = {k: v for k, v in matrix.items() if k not in LEGACY_MATRIX_KEYS}
    return legacy, detail


def _runs(doc: dict[str, Any]) -> dict[str, int]:
    """``num_measurement_runs``: the median (lower) of timed rounds per result over the GEMM records
    (the STREAM sweep, BLAS records or shaped GEMMs when there are none); each profile's own count is
    its ``num_trials``. ``num_warmup_runs``: the median (lower) of warm-up rounds over the same records.
    Imported documents fall back to the original file's figures. Left out when nothing recorded them."""
    out: dict[str, int] = {}
    for source in (doc.get("gemm"), (doc.get("memory") or {}).get("sweep"), doc.get("blas"), doc.get("gemm_shapes")):
        recs = [r for r in source or [] if isinstance(r, dict)]
        rounds = [r["rounds"] for r in recs if isinstance(r.get("rounds"), int)]
        warm = [r["warmup_rounds"] for r in recs if isinstance(r.get("warmup_rounds"), int)]
        if rounds:
            out["num_measurement_runs"] = statistics.median_low(rounds)
            if warm:
                out["num_warmup_runs"] = statistics.median_low(warm)
            break
    legacy = ((doc["metadata"].get("imported") or {}).get("legacy_metadata") or {})
    for name in ("num_warmup_runs", "num_measurement_runs"):
        if name not in out and isinstance(legacy.get(name), int):
            out[name] = legacy[name]
    return out


def _check(preflight: dict[str, Any] | None, name: str) -> Any:
    for c in (preflight or {}).get("checks") or []:
        if isinstance(c, dict) and c.get("name") == name:
            return c.get("value")
    return None


def _measured_clock(meta: dict[str, Any]) -> tuple[float, str] | None:
    under = (meta.get("clock") or {}).get("under_load") or {}
    median = _num(under.get("median_mhz"))
    if under.get("status") in ("measured", "partial") and median:
        return median, f"median under load ({under.get('samples', '?')} samples): {under.get('source', '?')}"
    return None


def legacy_cpu_clock(meta: dict[str, Any]) -> dict[str, Any] | None:
    """``cpu_clock``: the clock measured under load (median) as ``current_freq_mhz``; the key's ceiling as
    ``max_freq_mhz`` (``base_freq_mhz`` when the ceiling is a nominal figure); governor and turbo from the
    preflight checks. An imported document's original reading otherwise; None when nothing was measured."""
    clock = meta.get("clock") or {}
    measured = _measured_clock(meta)
    if measured is None:
        original = clock.get("cpu")
        if isinstance(original, dict) and _num(original.get("current_freq_mhz")) and original.get("query_method"):
            return {k: original[k] for k in CPU_CLOCK_KEYS if original.get(k) is not None}
        return None
    out: dict[str, Any] = {"current_freq_mhz": measured[0], "query_method": measured[1]}
    ceiling = _num(clock.get("ceiling_mhz"))
    if ceiling:
        out["base_freq_mhz" if "nominal" in str(clock.get("ceiling_source", "")) else "max_freq_mhz"] = ceiling
    governor = _check(meta.get("preflight"), "cpu_governor")
    if isinstance(governor, str):
        out["governor"] = governor
    turbo = _check(meta.get("preflight"), "turbo_boost")
    if isinstance(turbo, bool):
        out["turbo_enabled"] = turbo
    return out


def legacy_gpu_clock(meta: dict[str, Any]) -> dict[str, Any] | None:
    """``gpu_clock``: the SM clock measured under load (median), else the SM clock read at the start
    (``metadata.gpu``), with the GPU's max clocks, power and temperature as read; an imported document's
    original reading otherwise; None when no SM clock was read."""
    gpu = meta.get("gpu") or {}
    clock = meta.get("clock") or {}
    measured = _measured_clock(meta)
    if measured is None and _num(gpu.get("sm_clock_now_mhz")):
        measured = (float(gpu["sm_clock_now_mhz"]), f"SM clock read at the start ({gpu.get('source', 'gpu facts')})")
    if measured is None:
        original = clock.get("gpu")
        if isinstance(original, dict) and _num(original.get("sm_clock_mhz")) and original.get("query_method"):
            out = {k: original[k] for k in GPU_CLOCK_KEYS if original.get(k) is not None}
            out["sm_clock_mhz"] = round(out["sm_clock_mhz"])
            return out
        return None
    found = {
        "mem_clock_mhz": gpu.get("mem_clock_now_mhz"),
        "max_sm_clock_mhz": gpu.get("sm_clock_max_mhz"),
        "max_mem_clock_mhz": gpu.get("mem_clock_max_mhz"),
        "power_draw_watts": gpu.get("power_draw_w"),
        "power_limit_watts": gpu.get("power_limit_w"),
        "temperature_c": gpu.get("temperature_c"),
        "nvpmodel_mode": clock.get("power_mode_id"),
    }
    out = {"sm_clock_mhz": round(measured[0]), "query_method": measured[1]}
    out.update({k: v for k, v in found.items() if _num(v) is not None})
    if meta.get("power_mode"):
        out["power_mode_name"] = str(meta["power_mode"])
    return out


def _value_str(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def legacy_preflight(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The preflight report in the legacy shape: ``timestamp`` (recorded, else the calibration date;
    the checks run just before the benchmarks), ``passed``, ``forced``, and per check ``current_value``
    (the check's ``value`` as a string, json.dumps where it is not one) and ``expected_value`` where the
    check records one; hwcal's own check fields are kept."""
    pre = meta.get("preflight")
    if not isinstance(pre, dict):
        return None
    checks = []
    for c in pre.get("checks") or []:
        check = dict(c)
        if "value" in c and "current_value" not in c:
            check["current_value"] = _value_str(c["value"])
        expected = c.get("expected")
        if expected is None and str(c.get("advice", "")).startswith("expected "):
            expected = str(c["advice"]).removeprefix("expected ")
        if expected is not None and "expected_value" not in c:
            check["expected_value"] = _value_str(expected)
        checks.append(check)
    return {"timestamp": str(pre.get("timestamp") or meta.get("calibration_date") or ""),
            "passed": bool(pre.get("passed")), "forced": bool(pre.get("forced")), "checks": checks}


def legacy_metadata(doc: dict[str, Any]) -> dict[str, Any]:
    """hwcal's metadata with the legacy flat fields beside it. Unknown required facts take the original
    tool's "unknown": "unknown" for a string, 0 for a number."""
    meta = dict(doc["metadata"])
    host = meta.get("host") or {}
    cpu = host.get("cpu") or {}
    original = ((meta.get("imported") or {}).get("legacy_metadata") or {})
    device_type = legacy_device_type(doc)
    meta["device_type"] = device_type
    meta["calibration_tool_version"] = str(meta.get("tool_version") or "unknown")
    meta["cpu_model"] = str(cpu.get("model") or original.get("cpu_model") or "unknown")
    meta["cpu_count"] = int(cpu.get("logical_cores") or cpu.get("physical_cores") or original.get("cpu_count") or 0)
    meta["total_memory_gb"] = float(host.get("total_memory_gb") or original.get("total_memory_gb") or 0.0)
    meta["python_version"] = str(host.get("python_version") or original.get("python_version") or "unknown")
    meta["pytorch_version"] = str(meta["torch_version"]) if meta.get("torch_version") else None
    meta["numpy_version"] = str(meta["numpy_version"]) if meta.get("numpy_version") else None
    meta.update(_runs(doc))
    arch = cpu.get("architecture") or original.get("platform_architecture")
    if arch:
        meta["platform_architecture"] = str(arch)
    clocks = {"cpu_clock": legacy_cpu_clock(meta) if device_type == "cpu" else None,
              "gpu_clock": legacy_gpu_clock(meta) if device_type == "cuda" else None}
    if device_type == "cuda" and isinstance((meta.get("clock") or {}).get("cpu"), dict):
        clocks["cpu_clock"] = legacy_cpu_clock({**meta, "clock": {"cpu": meta["clock"]["cpu"]}})
    meta.update({k: v for k, v in clocks.items() if v is not None})
    preflight = legacy_preflight(meta)
    if preflight is not None:
        if isinstance(meta["preflight"].get("duration_s"), (int, float)):
            meta["preflight_duration_s"] = meta["preflight"]["duration_s"]
        meta["preflight"] = preflight
    return meta


def _summary(doc: dict[str, Any], profiles: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    gflops = [p["measured_gflops"] for p in profiles.values() if p["measured_gflops"] > 0]
    effs = [p["efficiency"] for p in profiles.values() if valid_efficiency(p["efficiency"])]
    values: dict[str, Any] = {
        "theoretical_peak_gflops": _num(doc.get("theoretical_peak_gflops")),
        "theoretical_bandwidth_gbps": _num(doc.get("theoretical_bandwidth_gbps")),
        "best_measured_gflops": max(gflops) if gflops else None,
        "avg_measured_gflops": statistics.fmean(gflops) if gflops else None,
        "worst_measured_gflops": min(gflops) if gflops else None,
        "measured_bandwidth_gbps": _num(doc.get("measured_bandwidth_gbps")),
        "bandwidth_efficiency": _num(doc.get("bandwidth_efficiency")),
        "best_efficiency": max(effs) if effs else None,
        "avg_efficiency": statistics.fmean(effs) if effs else None,
        "worst_efficiency": min(effs) if effs else None,
    }
    unknown = [k for k, v in values.items() if v is None]
    return {k: (0.0 if v is None else v) for k, v in values.items()}, unknown


def _unsupported(matrix: dict[str, Any], detail: dict[str, Any]) -> dict[str, str]:
    """Per precision that cannot run, the reason its operation profiles carry."""
    status = detail.get("status") or {}
    unsupported = {p: str(s.get("reason") or "unsupported") for p, s in status.items()
                   if isinstance(s, dict) and s.get("status") == "unsupported"}
    for p in matrix["unsupported_precisions"]:
        unsupported.setdefault(p, "unsupported")
    return unsupported


def compose(key: Any, metadata: dict[str, Any], headline: dict[str, Any], matrix: dict[str, Any],
            detail: dict[str, Any], sections: dict[str, Any]) -> dict[str, Any]:
    """The format-2 document of hwcal's own parts: ``metadata``, the ``headline`` figures (spec peak and
    bandwidth, measured bandwidth), the two precision views and the per-measurement ``sections`` (in the
    order given). Adds what the original loader reads: its metadata fields, ``operation_profiles``, the
    summary numbers (0 where unknown, named in ``legacy_unknown_zero``) and ``fusion_profiles``."""
    view = {"key": key, "metadata": metadata, **headline, **sections}
    metadata = legacy_metadata(view)
    env = {"framework": metadata.get("framework"), "device": metadata["device_type"]}
    profiles = operation_profiles(view, _unsupported(matrix, detail), env, nn_profiles(view, env))
    summary, unknown = _summary(view, profiles)
    out: dict[str, Any] = {"schema_version": FORMAT_2, "key": key, "metadata": metadata, **summary}
    if unknown:
        out["legacy_unknown_zero"] = unknown
    out.update({"precision_matrix": matrix, "precision_detail": detail, "operation_profiles": profiles,
                "fusion_profiles": {}})
    out.update({k: v for k, v in sections.items() if k not in out})
    return out


def to_format_2(doc: dict[str, Any]) -> dict[str, Any]:
    """A format-2 document from a format-1 file read from disk (``doc`` is not modified): its precision
    matrix split into the two views, the rest composed as the builder composes a new run."""
    if not isinstance(doc, dict) or doc.get("schema_version") != FORMAT_1:
        raise ValueError("to_format_2 takes an hwcal format-1 calibration (schema_version 1)")
    src = copy.deepcopy(doc)
    matrix, detail = legacy_precision_matrix(src)
    headline = {k: src[k] for k in SUMMARY_KEYS if k in src}
    moved = {*_FIRST_KEYS, *SUMMARY_KEYS, "precision_matrix"}
    sections = {k: v for k, v in src.items() if k not in moved}
    return compose(src.get("key"), src["metadata"], headline, matrix, detail, sections)


DERIVED_KEYS = ("precision_matrix", "precision_detail", "operation_profiles", "fusion_profiles", "legacy_unknown_zero")


def recompose(doc: dict[str, Any]) -> dict[str, Any]:
    """A format-2 document composed again from its own parts (``compose``): what the original loader reads
    (``operation_profiles``, the summary numbers) derived afresh from the sections. ``doc`` is not modified."""
    src = copy.deepcopy(doc)
    unknown = set(src.get("legacy_unknown_zero") or [])  # filled with 0 for the loader: unknown again here
    headline = {k: (None if k in unknown else src[k]) for k in SUMMARY_KEYS if k in src}
    moved = {*_FIRST_KEYS, *SUMMARY_KEYS, *DERIVED_KEYS}
    sections = {k: v for k, v in src.items() if k not in moved}
    return compose(src.get("key"), src["metadata"], headline, src["precision_matrix"],
                   src.get("precision_detail") or {}, sections)


def update_to_2(doc: Any) -> dict[str, Any]:
    """The format-upgrade step 1 -> 2: a format-1 document becomes format 2 (``to_format_2``); a format-2
    document is returned unchanged (idempotent); anything else raises ValueError with a one-line reason.
    Unknown top-level keys of a format-1 document are kept as they are (the schema judges them), unknown
    ``precision_matrix`` keys move to ``precision_detail``."""
    if not isinstance(doc, dict):
        raise ValueError(f"not an hwcal calibration: a JSON object was expected, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if "schema_version" not in doc:
        raise ValueError("not an hwcal calibration: no schema_version (an original-registry file? import it first)")
    if isinstance(version, bool) or version not in (FORMAT_1, FORMAT_2):
        raise ValueError(f"not an hwcal format 1 or 2 calibration: schema_version {version!r}")
    missing = [k for k in ("key", "metadata", "precision_matrix") if not isinstance(doc.get(k), dict)]
    if version == FORMAT_2 and not isinstance(doc.get("operation_profiles"), dict):
        missing.append("operation_profiles")
    if missing:
        raise ValueError(f"not an hwcal format-{version} calibration: {', '.join(missing)} missing or not an object")
    if not isinstance(doc["metadata"].get("calibration_date"), str):
        raise ValueError(f"not an hwcal format-{version} calibration: metadata.calibration_date missing")
    return doc if version == FORMAT_2 else to_format_2(doc)


def precision_detail(doc: dict[str, Any]) -> dict[str, Any]:
    """hwcal's per-precision detail (status and reasons, peak sizes, efficiencies) of a format-2 document,
    or of a format-1 one, where it still sat inside ``precision_matrix``."""
    detail = doc.get("precision_detail")
    return detail if isinstance(detail, dict) else dict(doc.get("precision_matrix") or {})


def efficiency_cell(doc: dict[str, Any], precision: str) -> str:
    """A precision's GEMM efficiency as the tables show it: the filed share ("0.87"); "> 1 (!)" where its best
    GEMM beat a reference peak (none is filed: the peak is wrong, a warning says why); "-" where unknown."""
    detail = precision_detail(doc)
    eff = (detail.get("efficiency_by_precision") or {}).get(precision)
    if eff is not None:
        return f"{eff:.2f}" + (" (!)" if eff > 1.0 else "")  # a format-1 file may hold one
    matrix = doc.get("precision_matrix") or {}
    reference = detail.get("efficiency_reference_gflops") or matrix.get("theoretical_peaks") or {}
    measured = matrix.get("peak_gflops_by_precision") or {}
    return "> 1 (!)" if reference.get(precision) and measured.get(precision) else "-"

