"""Format 2: real format-1 files (tests/data/v1, unmodified copies of registry files) become documents
the original loader (tests/legacy_loader.py) reads, that the schema accepts, and that keep hwcal's detail."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from hwcal.document.format2 import (
    LEGACY_MATRIX_KEYS,
    to_format_2,
    update_to_2,
)
from hwcal.document.operation_profiles import profile_key, valid_efficiency
from hwcal.document.rebound import bound_efficiencies
from tests.legacy_loader import HardwareCalibration

try:
    from hwcal.document.schema import schema_errors
except ImportError:  # before the package restructuring
    from hwcal.schema import schema_errors  # type: ignore[no-redef]

V1 = Path(__file__).resolve().parent / "data" / "v1"
V1_FILES = sorted(V1.glob("*.json"))
SEED_FILE = (Path(__file__).resolve().parent / "data" / "seed-registry" / "gpu" / "jetson_orin_nano_gpu"
             / "calibrations" / "7W_306MHz_pytorch.json")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@pytest.fixture(params=V1_FILES, ids=lambda p: p.name)
def v1(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


@pytest.fixture
def cpu_v1() -> dict[str, Any]:
    return _load(V1 / "default_2445MHz_numpy.json")


def _profiles(doc: dict[str, Any], op_type: str) -> list[dict[str, Any]]:
    return [p for p in doc["operation_profiles"].values() if p["operation_type"] == op_type]


def _time_s(t: float) -> dict[str, float]:
    return {"min": t, "max": t * 1.4, "mean": t * 1.1, "median": t * 1.05, "stddev": t * 0.05, "iqr": t * 0.04}


def _blas(operation: str, precision: str, n: int, gbps: float, *, m: int | None = None) -> dict[str, Any]:
    eb = {"fp64": 8, "fp32": 4}[precision]
    flops, bytes_ = {"dot": (2 * n, 2 * n * eb), "axpy": (2 * n, 3 * n * eb), "scal": (n, 2 * n * eb),
                     "gemv": (2 * (m or n) * n, ((m or n) * n + n + (m or n)) * eb)}[operation]
    t = bytes_ / (gbps * 1e9)
    rec = {"operation": operation, "precision": precision, "n": n, "flops": flops, "bytes": bytes_,
           "gflops_best": flops / t / 1e9, "gflops_median": flops / t / 1.05e9, "gbps_best": gbps,
           "arithmetic_intensity": flops / bytes_, "time_s": _time_s(t), "rounds": 20, "cv": 0.03, "verified": True,
           "max_error": 1e-12, "kernel": f"numpy {operation}",
           "efficiency_vs_measured_dram": gbps / 16.36 if gbps <= 16.36 else None,
           "efficiency_vs_theoretical": None}
    if m is not None:
        rec["m"] = m
    return rec


@pytest.fixture
def with_blas(cpu_v1: dict[str, Any]) -> dict[str, Any]:
    """The real CPU file with the sections the benchmarks will add: BLAS-1/2, GEMM shapes, launch floors."""
    cpu_v1["blas"] = [
        _blas("dot", "fp64", 4096, 40.0), _blas("dot", "fp64", 16_777_216, 15.0),
        _blas("dot", "fp32", 16_777_216, 14.0),
        _blas("axpy", "fp64", 4096, 30.0), _blas("axpy", "fp64", 16_777_216, 14.5),
        _blas("scal", "fp64", 16_777_216, 13.0),
        _blas("gemv", "fp64", 2048, 12.0, m=2048), _blas("gemv", "fp64", 4096, 11.0, m=1024),
    ]
    flops = 2 * 64**3 * 32
    shape = {"family": "batched", "precision": "fp32", "m": 64, "n": 64, "k": 64, "batch": 32, "layout": "row_major",
             "flops": flops, "gflops_best": 50.0, "gflops_median": 48.0, "time_s": _time_s(flops / 50e9),
             "rounds": 30, "cv": 0.02, "efficiency": 0.25, "kernel": "numpy matmul (batched)"}
    small_m = {**shape, "family": "small_m", "m": 1, "n": 4096, "k": 4096, "batch": 1, "flops": 2 * 4096**2,
               "gflops_best": 20.0, "time_s": _time_s(2 * 4096**2 / 20e9), "efficiency": 0.1}
    cpu_v1["gemm_shapes"] = [shape, small_m]
    cpu_v1["launch_floors"] = {"gemm": {"seconds_min": 2e-6, "seconds_median": 2.4e-6}}
    return cpu_v1


# ---- the real files --------------------------------------------------------------------------------

def test_the_v1_copies_are_the_registry_files() -> None:
    assert [p.name for p in V1_FILES] == ["700W_1980MHz_pytorch.json", "default_2445MHz_numpy.json",
                                          "default_2445MHz_pytorch.json"]
    assert all(_load(p)["schema_version"] == 1 for p in V1_FILES)


def test_v1_files_still_validate(v1: dict[str, Any]) -> None:
    assert schema_errors(v1, "calibration") == []


def test_format_2_validates_and_survives_json(v1: dict[str, Any]) -> None:
    """Format 1 -> 2 as hwcal-upgrade makes it: the conversion, then the efficiencies bounded to (0, 1] (the H100
    file's fp16 GEMM read 1.005x its peak)."""
    doc, _ = bound_efficiencies(to_format_2(v1))
    assert schema_errors(doc, "calibration") == []
    text = json.dumps(doc, allow_nan=False)  # no NaN/Infinity: they are not JSON
    assert schema_errors(json.loads(text), "calibration") == []


def test_input_is_not_modified(v1: dict[str, Any]) -> None:
    before = copy.deepcopy(v1)
    to_format_2(v1)
    assert v1 == before


def test_the_original_loader_reads_it(v1: dict[str, Any]) -> None:
    doc = to_format_2(v1)
    cal = HardwareCalibration.from_dict(doc)
    assert len(cal.operation_profiles) == len(doc["operation_profiles"]) > 0
    assert cal.metadata.device_type == ("cuda" if v1["key"]["device_type"] == "gpu" else "cpu")
    assert cal.precision_matrix is not None
    for op_type in ("blas3_gemm", "stream_triad", "stream_copy"):
        found = cal.get_operation(op_type)
        assert found is not None and 0.0 < found.efficiency <= 1.0, (op_type, found)
    assert 0.0 < cal.get_efficiency("blas3_gemm") <= 1.0
    assert 0.0 < cal.avg_efficiency <= 1.0


def test_precision_matrix_has_exactly_the_legacy_keys(v1: dict[str, Any]) -> None:
    doc = to_format_2(v1)
    matrix, detail, old = doc["precision_matrix"], doc["precision_detail"], v1["precision_matrix"]
    assert tuple(matrix) == LEGACY_MATRIX_KEYS
    assert matrix["hardware_name"] == v1["metadata"]["hardware_name"]
    assert set(matrix["supported_precisions"]) == set(old["supported_precisions"]) | set(old["emulated_precisions"])
    for name in ("unsupported_precisions", "peak_gflops_by_precision", "speedup_vs_fp32", "theoretical_peaks"):
        assert matrix[name] == old[name]
    assert detail == {k: v for k, v in old.items() if k not in LEGACY_MATRIX_KEYS}
    assert {"status", "emulated_precisions", "peak_size_by_precision", "efficiency_by_precision"} <= set(detail)


def test_hwcal_sections_are_kept(v1: dict[str, Any]) -> None:
    doc = to_format_2(v1)
    for name in ("key", "gemm", "memory", "warnings"):
        assert doc[name] == v1[name]
    assert doc["fusion_profiles"] == {}
    assert doc["schema_version"] == 2 and doc["key"]["device_type"] in ("cpu", "gpu")


def test_legacy_metadata(v1: dict[str, Any]) -> None:
    meta, old = to_format_2(v1)["metadata"], v1["metadata"]
    host = old["host"]
    assert meta["calibration_tool_version"] == old["tool_version"]
    assert meta["cpu_model"] == host["cpu"]["model"] and meta["cpu_count"] == host["cpu"]["logical_cores"]
    assert meta["total_memory_gb"] == host["total_memory_gb"] and meta["python_version"] == host["python_version"]
    assert meta["pytorch_version"] == old.get("torch_version") and meta["numpy_version"] == old["numpy_version"]
    assert meta["platform_architecture"] == host["cpu"]["architecture"]
    assert meta["num_measurement_runs"] in {r["rounds"] for r in v1["gemm"]}
    assert meta["num_warmup_runs"] in {r["warmup_rounds"] for r in v1["gemm"]}
    for name in old:  # hwcal's own fields stay (device_type in the legacy vocabulary, preflight reshaped)
        if name not in ("device_type", "preflight"):
            assert meta[name] == old[name], name
    assert "duration_s" not in meta["preflight"] and meta["preflight_duration_s"] == old["preflight"]["duration_s"]


def test_clock_of_the_device(v1: dict[str, Any]) -> None:
    meta = to_format_2(v1)["metadata"]
    under = v1["metadata"]["clock"]["under_load"]
    if v1["key"]["device_type"] == "gpu":
        assert "cpu_clock" not in meta
        gpu = v1["metadata"]["gpu"]
        assert meta["gpu_clock"]["sm_clock_mhz"] == round(under["median_mhz"])
        assert meta["gpu_clock"]["max_sm_clock_mhz"] == gpu["sm_clock_max_mhz"]
        assert meta["gpu_clock"]["power_limit_watts"] == gpu["power_limit_w"]
    else:
        assert "gpu_clock" not in meta
        assert meta["cpu_clock"]["current_freq_mhz"] == under["median_mhz"]
        assert under["source"] in meta["cpu_clock"]["query_method"]


def test_preflight_in_the_legacy_shape(v1: dict[str, Any]) -> None:
    pre, old = to_format_2(v1)["metadata"]["preflight"], v1["metadata"]["preflight"]
    assert pre["timestamp"] == v1["metadata"]["calibration_date"]
    assert pre["passed"] == old["passed"] and len(pre["checks"]) == len(old["checks"])
    for new, check in zip(pre["checks"], old["checks"], strict=True):
        assert {k: new[k] for k in check} == check  # hwcal's own fields kept
        if "value" in check:
            value = check["value"]
            assert new["current_value"] == (value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        else:
            assert "current_value" not in new


def test_unknown_figures_are_zero_and_named(cpu_v1: dict[str, Any]) -> None:
    assert cpu_v1["theoretical_bandwidth_gbps"] is None and cpu_v1["bandwidth_efficiency"] is None
    doc = to_format_2(cpu_v1)
    assert doc["theoretical_bandwidth_gbps"] == 0.0 and doc["bandwidth_efficiency"] == 0.0
    assert doc["legacy_unknown_zero"] == ["theoretical_bandwidth_gbps", "bandwidth_efficiency"]
    assert doc["measured_bandwidth_gbps"] == cpu_v1["measured_bandwidth_gbps"]


def test_summary_over_operation_profiles(v1: dict[str, Any]) -> None:
    doc = to_format_2(v1)
    gflops = [p["measured_gflops"] for p in doc["operation_profiles"].values() if p["measured_gflops"] > 0]
    effs = [p["efficiency"] for p in doc["operation_profiles"].values() if valid_efficiency(p["efficiency"])]
    assert doc["best_measured_gflops"] == max(gflops) and doc["worst_measured_gflops"] == min(gflops)
    assert math.isclose(doc["avg_measured_gflops"], sum(gflops) / len(gflops))
    assert doc["best_efficiency"] == max(effs) and doc["worst_efficiency"] == min(effs)
    assert 0 < doc["worst_efficiency"] <= doc["avg_efficiency"] <= doc["best_efficiency"] <= 1


def test_profile_keys_are_the_old_calibrators(v1: dict[str, Any]) -> None:
    for key, prof in to_format_2(v1)["operation_profiles"].items():
        assert key == profile_key(prof["operation_type"], prof["extra_params"])
        assert key.startswith(prof["operation_type"] + "_")


def test_one_gemm_profile_per_size_with_every_precision_tried(v1: dict[str, Any]) -> None:
    doc = to_format_2(v1)
    gemms = _profiles(doc, "blas3_gemm")
    sizes = sorted({r["n"] for r in v1["gemm"]})
    assert sorted(p["extra_params"]["size"] for p in gemms) == sizes
    unsupported = set(v1["precision_matrix"]["unsupported_precisions"])
    for prof in gemms:
        n = prof["extra_params"]["size"]
        measured = {r["precision"]: r for r in v1["gemm"] if r["n"] == n}
        results = prof["precision_results"]
        assert {p for p, r in results.items() if r["supported"]} == set(measured)
        assert {p for p, r in results.items() if not r["supported"]} == unsupported - set(measured)
        assert all(r["failure_reason"] for r in results.values() if not r["supported"])
        best = max(measured.values(), key=lambda r: r["gflops_best"])
        assert prof["extra_params"]["best_precision"] == best["precision"]
        assert prof["extra_params"]["kernel"] == best["kernel"]
        assert prof["measured_gflops"] == best["gflops_best"]
        assert prof["efficiency"] == best.get("efficiency", 0.0)
        assert prof["input_shape"] == prof["output_shape"] == [n, n] and prof["batch_size"] == 1
        assert prof["compute_bound"] and not prof["memory_bound"]
        per_call = best["time_s"]["min"] / best["launches_per_round"] * 1e3
        assert math.isclose(prof["min_latency_ms"], per_call) and prof["num_trials"] == best["rounds"]
        if "fp32" in measured:
            assert math.isclose(results["fp32"]["speedup_vs_fp32"], 1.0)


def test_the_first_profile_of_each_type_is_representative(v1: dict[str, Any]) -> None:
    doc = to_format_2(v1)
    gemms = _profiles(doc, "blas3_gemm")
    valid = [p for p in gemms if valid_efficiency(p["efficiency"])]
    assert gemms[0]["measured_gflops"] == max(p["measured_gflops"] for p in valid)
    memory = v1["memory"]
    for kernel in ("copy", "scale", "add", "triad"):
        first = _profiles(doc, f"stream_{kernel}")[0]
        assert first["input_shape"][0] * memory["element_bytes"] in memory["plateau"][kernel]["array_bytes"]
        assert first["extra_params"]["level"] == "dram"


def test_stream_profiles(v1: dict[str, Any]) -> None:
    doc = to_format_2(v1)
    sweep = v1["memory"]["sweep"]
    intensity = {"copy": 0.0, "scale": 1 / 16, "add": 1 / 24, "triad": 2 / 24}
    spec_bw = v1["theoretical_bandwidth_gbps"]
    for kernel, ai in intensity.items():
        profs = _profiles(doc, f"stream_{kernel}")
        assert len(profs) == sum(e["kernel"] == kernel for e in sweep)
        for prof in profs:
            entry = next(e for e in sweep if e["kernel"] == kernel and e["n"] == prof["input_shape"][0])
            assert prof["memory_bound"] and not prof["compute_bound"]
            assert math.isclose(prof["arithmetic_intensity"], ai, abs_tol=1e-15)
            assert prof["achieved_bandwidth_gbps"] == entry["gbps_best"]
            assert math.isclose(prof["measured_gflops"], entry["gbps_best"] * ai, abs_tol=1e-15)
            # the first ceiling the figure is a share of: the entry's tier roof, the spec's, the DRAM plateau
            basis, eff = prof["extra_params"]["efficiency_basis"], prof["efficiency"]
            tier = entry.get("efficiency")
            if tier is not None:
                assert basis == "measured_tier_bandwidth" and eff == tier
            elif spec_bw and entry["gbps_best"] <= spec_bw:
                assert basis == "theoretical_bandwidth" and math.isclose(eff, entry["gbps_best"] / spec_bw)
            elif basis == "none":  # above every ceiling (an in-cache size over the DRAM ones): the format's 0
                assert eff == 0.0
            else:
                assert basis == "measured_dram_plateau"
            assert eff == 0.0 or 0 < eff <= 1
            assert list(prof["precision_results"]) == [v1["memory"]["dtype"]]


# ---- sections the benchmarks will add ---------------------------------------------------------------

def test_blas_records_become_blas_profiles(with_blas: dict[str, Any]) -> None:
    doc = to_format_2(with_blas)
    assert schema_errors(doc, "calibration") == []
    cal = HardwareCalibration.from_dict(doc)
    dot = cal.get_operation("blas1_dot")
    assert dot is not None and dot.extra_params["size"] == 16_777_216  # the DRAM-sized one: valid efficiency
    assert dot.extra_params["best_precision"] == "fp32" and set(dot.precision_results) == {"fp64", "fp32"}
    assert dot.output_shape == [1] and dot.memory_bound
    assert dot.extra_params["efficiency_basis"] == "measured_dram_bandwidth"
    assert cal.get_operation("blas1_dot", size=4096).extra_params["size"] == 4096
    axpy = cal.get_operation("blas1_axpy")
    assert axpy is not None and 0 < axpy.efficiency <= 1 and axpy.achieved_bandwidth_gbps == 14.5
    assert cal.get_operation("blas1_scal") is not None
    gemv = cal.get_operation("blas2_gemv", m=1024, n=4096)
    assert gemv is not None and gemv.input_shape == [1024, 4096] and gemv.output_shape == [1024]
    assert cal.get_operation("blas2_gemv", size=2048).input_shape == [2048, 2048]
    assert math.isclose(dot.min_latency_ms, with_blas["blas"][2]["time_s"]["min"] * 1e3)  # fp32: the best


def test_gemm_shapes_become_gemm_profiles_after_the_square_ones(with_blas: dict[str, Any]) -> None:
    doc = to_format_2(with_blas)
    cal = HardwareCalibration.from_dict(doc)
    batched = cal.get_operation("blas3_gemm", family="batched")
    assert batched.batch_size == 32 and batched.input_shape == [32, 64, 64]
    assert batched.extra_params["layout"] == "row_major"
    small = cal.get_operation("blas3_gemm", family="small_m", m=1)
    assert small.input_shape == [1, 4096] and small.output_shape == [1, 4096] and small.efficiency == 0.1
    assert "size" in cal.get_operation("blas3_gemm").extra_params  # a square GEMM stays the representative


def test_launch_floors_are_kept_but_not_profiles(with_blas: dict[str, Any]) -> None:
    doc = to_format_2(with_blas)
    assert doc["launch_floors"] == with_blas["launch_floors"]
    assert doc["blas"] == with_blas["blas"] and doc["gemm_shapes"] == with_blas["gemm_shapes"]
    assert len(doc["operation_profiles"]) == len(to_format_2(_load(V1 / "default_2445MHz_numpy.json"))[
        "operation_profiles"]) + 7 + 2


def test_without_the_new_sections_there_are_no_blas_profiles(cpu_v1: dict[str, Any]) -> None:
    types = {p["operation_type"] for p in to_format_2(cpu_v1)["operation_profiles"].values()}
    assert types == {"blas3_gemm", "stream_copy", "stream_scale", "stream_add", "stream_triad"}


# ---- the schema judges format 2 -------------------------------------------------------------------

@pytest.mark.parametrize(("path", "value", "where"), [
    (("precision_matrix", "status"), {}, "$.precision_matrix"),
    (("metadata", "device_type"), "gpu", "$.metadata.device_type"),
    (("metadata", "cpu_count"), None, "$.metadata.cpu_count"),
    (("theoretical_bandwidth_gbps",), None, "$.theoretical_bandwidth_gbps"),
    (("metadata", "preflight", "timestamp"), 5, "$.metadata.preflight.timestamp"),
])
def test_schema_rejects_what_the_loader_cannot_read(cpu_v1: dict[str, Any], path: tuple[str, ...], value: Any,
                                                    where: str) -> None:
    doc = to_format_2(cpu_v1)
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert {e.split(": ", 1)[0] for e in schema_errors(doc, "calibration")} == {where}


def test_schema_rejects_an_unknown_profile_key(cpu_v1: dict[str, Any]) -> None:
    doc = to_format_2(cpu_v1)
    key, prof = next(iter(doc["operation_profiles"].items()))
    prof["gflops_median"] = 1.0
    next(iter(prof["precision_results"].values()))["cv"] = 0.1
    paths = {e.split(": ", 1)[0] for e in schema_errors(doc, "calibration")}
    assert paths == {f"$.operation_profiles['{key}']", f"$.operation_profiles['{key}'].precision_results.fp64"}


def test_schema_requires_the_legacy_fields(cpu_v1: dict[str, Any]) -> None:
    doc = to_format_2(cpu_v1)
    del doc["operation_profiles"]
    del doc["metadata"]["cpu_model"]
    assert schema_errors(doc, "calibration") == ["$: 'operation_profiles' is a required property",
                                                 "$.metadata: 'cpu_model' is a required property"]


# ---- the upgrade step -----------------------------------------------------------------------------

def test_update_to_2_upgrades_and_is_idempotent(v1: dict[str, Any]) -> None:
    once = update_to_2(v1)
    assert once == to_format_2(v1) and once["schema_version"] == 2
    assert update_to_2(once) is once
    assert update_to_2(copy.deepcopy(once)) == once


def test_update_to_2_keeps_unknown_keys(cpu_v1: dict[str, Any]) -> None:
    cpu_v1["from_the_future"] = {"x": 1}
    cpu_v1["precision_matrix"]["new_detail"] = [1, 2]
    doc = update_to_2(cpu_v1)
    assert doc["from_the_future"] == {"x": 1}
    assert doc["precision_detail"]["new_detail"] == [1, 2] and "new_detail" not in doc["precision_matrix"]
    HardwareCalibration.from_dict(doc)


@pytest.mark.parametrize("garbage", [
    [], "calibration", None, {}, {"schema_version": 3}, {"schema_version": True}, {"schema_version": "1"},
    {"schema_version": 1, "metadata": {}}, {"schema_version": 2, "key": {}, "metadata": {}, "precision_matrix": {}},
    {"schema_version": 1, "key": {}, "metadata": {}, "precision_matrix": {}},
])
def test_update_to_2_refuses_what_is_not_hwcal(garbage: Any) -> None:
    with pytest.raises(ValueError) as info:
        update_to_2(garbage)
    assert "\n" not in str(info.value) and str(info.value)


def test_update_to_2_refuses_an_original_registry_file() -> None:
    with pytest.raises(ValueError, match="no schema_version"):
        update_to_2(_load(SEED_FILE))


def test_to_format_2_takes_format_1_only(v1: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        to_format_2(to_format_2(v1))


# ---- imported documents and missing facts ---------------------------------------------------------

def test_clock_falls_back_to_the_original_reading_and_leaves_out_what_was_not_measured(cpu_v1: dict[str, Any]) -> None:
    clock = cpu_v1["metadata"]["clock"]
    clock["under_load"] = {"status": "unknown", "source": "none", "reason": "no probe"}
    assert "cpu_clock" not in to_format_2(cpu_v1)["metadata"]
    original = _load(SEED_FILE)["metadata"]["cpu_clock"]
    clock["cpu"] = original
    assert to_format_2(cpu_v1)["metadata"]["cpu_clock"] == original
    del cpu_v1["metadata"]["preflight"]
    doc = to_format_2(cpu_v1)
    assert "preflight" not in doc["metadata"] and schema_errors(doc, "calibration") == []
    HardwareCalibration.from_dict(doc)
