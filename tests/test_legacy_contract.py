"""The legacy loader (``tests/legacy_loader.py``) encodes SEED-FORMAT.md: the original system's own files
load in it, and it is as strict as the contract says (so a format-2 file that loads in it loads there)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.legacy_loader import HardwareCalibration

SEED = Path(__file__).resolve().parent / "data" / "seed-registry"
SEED_CALIBRATIONS = sorted(p for p in SEED.rglob("*.json") if p.name != "spec.json")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@pytest.fixture
def seed_doc() -> dict[str, Any]:
    return _load(SEED / "gpu" / "jetson_orin_nano_gpu" / "calibrations" / "7W_306MHz_pytorch.json")


def _first_profile(doc: dict[str, Any]) -> dict[str, Any]:
    return next(iter(doc["operation_profiles"].values()))


def test_the_seed_copy_is_complete() -> None:
    assert len(SEED_CALIBRATIONS) == 6
    assert all("operation_profiles" in _load(p) for p in SEED_CALIBRATIONS)


@pytest.mark.parametrize("path", SEED_CALIBRATIONS, ids=lambda p: str(p.relative_to(SEED)))
def test_every_original_file_loads(path: Path) -> None:
    doc = _load(path)
    cal = HardwareCalibration.from_dict(doc)
    assert len(cal.operation_profiles) == len(doc["operation_profiles"])
    assert cal.precision_matrix is not None
    assert cal.metadata.device_type in ("cpu", "cuda")
    for op_type in {p["operation_type"] for p in doc["operation_profiles"].values()}:
        found = cal.get_operation(op_type)
        assert found is not None and found.operation_type == op_type


def test_unknown_key_in_precision_matrix_fails(seed_doc: dict[str, Any]) -> None:
    seed_doc["precision_matrix"]["status"] = {}
    with pytest.raises(TypeError, match="status"):
        HardwareCalibration.from_dict(seed_doc)


def test_unknown_key_in_an_operation_profile_fails(seed_doc: dict[str, Any]) -> None:
    _first_profile(seed_doc)["gflops_median"] = 1.0
    with pytest.raises(TypeError, match="gflops_median"):
        HardwareCalibration.from_dict(seed_doc)


def test_unknown_key_in_a_precision_result_fails(seed_doc: dict[str, Any]) -> None:
    gemm = next(p for p in seed_doc["operation_profiles"].values() if p["operation_type"] == "blas3_gemm")
    next(iter(gemm["precision_results"].values()))["cv"] = 0.1
    with pytest.raises(TypeError, match="cv"):
        HardwareCalibration.from_dict(seed_doc)


@pytest.mark.parametrize("name", ["measured_gflops", "efficiency", "input_shape", "num_trials", "operation_type"])
def test_missing_required_profile_key_fails(seed_doc: dict[str, Any], name: str) -> None:
    del _first_profile(seed_doc)[name]
    with pytest.raises(TypeError, match=name):
        HardwareCalibration.from_dict(seed_doc)


@pytest.mark.parametrize("name", ["hardware_name", "calibration_tool_version", "cpu_model", "cpu_count",
                                  "total_memory_gb", "python_version"])
def test_missing_required_metadata_key_fails(seed_doc: dict[str, Any], name: str) -> None:
    del seed_doc["metadata"][name]
    with pytest.raises(TypeError, match=name):
        HardwareCalibration.from_dict(seed_doc)


@pytest.mark.parametrize("name", ["metadata", "theoretical_peak_gflops", "theoretical_bandwidth_gbps"])
def test_missing_required_top_level_key_fails(seed_doc: dict[str, Any], name: str) -> None:
    del seed_doc[name]
    with pytest.raises(KeyError):
        HardwareCalibration.from_dict(seed_doc)


def test_missing_precision_matrix_hardware_name_fails(seed_doc: dict[str, Any]) -> None:
    del seed_doc["precision_matrix"]["hardware_name"]
    with pytest.raises(TypeError, match="hardware_name"):
        HardwareCalibration.from_dict(seed_doc)


@pytest.mark.parametrize(("where", "name"), [("cpu_clock", "current_freq_mhz"), ("cpu_clock", "query_method"),
                                             ("gpu_clock", "sm_clock_mhz"), ("preflight", "timestamp")])
def test_missing_required_nested_metadata_key_fails(seed_doc: dict[str, Any], where: str, name: str) -> None:
    del seed_doc["metadata"][where][name]
    with pytest.raises(TypeError, match=name):
        HardwareCalibration.from_dict(seed_doc)


def test_filtered_objects_drop_unknown_keys(seed_doc: dict[str, Any]) -> None:
    seed_doc["surprise"] = 1
    seed_doc["metadata"]["surprise"] = 1
    seed_doc["metadata"]["cpu_clock"]["surprise"] = 1
    seed_doc["metadata"]["gpu_clock"]["surprise"] = 1
    seed_doc["metadata"]["preflight"]["checks"][0]["surprise"] = 1
    HardwareCalibration.from_dict(seed_doc)


def test_preflight_itself_is_strict(seed_doc: dict[str, Any]) -> None:
    seed_doc["metadata"]["preflight"]["duration_s"] = 0.1
    with pytest.raises(TypeError, match="duration_s"):
        HardwareCalibration.from_dict(seed_doc)


@pytest.mark.parametrize(("path", "value"), [
    (("theoretical_bandwidth_gbps",), None), (("theoretical_peak_gflops",), "68"), (("metadata", "cpu_count"), 4.0),
    (("metadata", "total_memory_gb"), None), (("metadata", "gpu_clock", "sm_clock_mhz"), 306.5),
    (("metadata", "preflight", "passed"), "yes"), (("avg_efficiency",), True),
])
def test_required_types_are_checked(seed_doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target: Any = seed_doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(TypeError):
        HardwareCalibration.from_dict(seed_doc)


@pytest.mark.parametrize(("name", "value"), [("device_type", "gpu"), ("framework", "jax")])
def test_enumerated_metadata_fields(seed_doc: dict[str, Any], name: str, value: str) -> None:
    seed_doc["metadata"][name] = value
    with pytest.raises(ValueError, match=name):
        HardwareCalibration.from_dict(seed_doc)


def test_get_operation_first_match_else_first_of_type_else_none(seed_doc: dict[str, Any]) -> None:
    cal = HardwareCalibration.from_dict(seed_doc)
    gemms = [p for p in seed_doc["operation_profiles"].values() if p["operation_type"] == "blas3_gemm"]
    assert cal.get_operation("blas3_gemm", size=1024).extra_params["size"] == 1024
    assert cal.get_operation("blas3_gemm").extra_params == gemms[0]["extra_params"]
    assert cal.get_operation("blas3_gemm", size=12345).extra_params == gemms[0]["extra_params"]
    assert cal.get_operation("conv2d") is None


def test_get_efficiency_falls_back_to_avg_efficiency(seed_doc: dict[str, Any]) -> None:
    cal = HardwareCalibration.from_dict(seed_doc)
    assert cal.get_efficiency("blas3_gemm", size=1024) == cal.get_operation("blas3_gemm", size=1024).efficiency
    assert cal.get_efficiency("conv2d") == seed_doc["avg_efficiency"]


def test_optional_sections_may_be_absent(seed_doc: dict[str, Any]) -> None:
    minimal = copy.deepcopy(seed_doc)
    for name in ("operation_profiles", "fusion_profiles", "precision_matrix", "best_efficiency", "avg_efficiency"):
        del minimal[name]
    for name in ("cpu_clock", "gpu_clock", "preflight", "device_type", "num_warmup_runs"):
        del minimal["metadata"][name]
    cal = HardwareCalibration.from_dict(minimal)
    assert cal.precision_matrix is None and cal.get_efficiency("blas3_gemm") == 0.0
