"""The calibration builder, a pure function: hand-made records in, the calibration document out."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from hwcal.backends import Support
from hwcal.document.builder import BuildInput, build_calibration
from hwcal.document.clocks import ClockOutcome
from hwcal.document.schema import CALIBRATION_FORMAT_VERSION, schema_errors
from hwcal.document.spec import build_cpu_spec
from hwcal.measure.records import GemmRecord
from hwcal.naming import CalibrationKey
from hwcal.plugin.summary import summary_lines
from hwcal.precisions import CANONICAL_ORDER, canonical_sorted, rate_unit
from tests.fakes import dram_sweep, matrix_and_detail

RecordFactory = Callable[..., GemmRecord]
InputFactory = Callable[..., BuildInput]

SEED_SUMMARY_FIELDS = ("metadata", "theoretical_peak_gflops", "theoretical_bandwidth_gbps", "best_measured_gflops",
                       "measured_bandwidth_gbps", "bandwidth_efficiency", "precision_matrix")
SEED_MATRIX_FIELDS = ("supported_precisions", "unsupported_precisions", "peak_gflops_by_precision",
                      "speedup_vs_fp32", "theoretical_peaks")


def _mixed_records(record_factory: RecordFactory) -> list[GemmRecord]:
    """Every numpy precision, sizes 256 and 512, in a scrambled order."""
    gflops = {"fp64": 50.0, "fp32": 100.0, "fp16": 0.5, "int64": 1.2, "int32": 1.5, "int16": 2.0, "int8": 4.0}
    records = [record_factory(p, n, g * (1.1 if n == 512 else 1.0)) for p, g in gflops.items() for n in (256, 512)]
    random.Random(3).shuffle(records)
    return records


def test_canonical_order_everywhere(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    precisions = ["int8", "fp16", "bf16", "fp32", "int64", "fp64", "int32", "int16"]
    inp = input_factory(_mixed_records(record_factory), precisions=precisions,
                        supports={"bf16": Support(False, "numpy has no bf16 GEMM")})
    doc = build_calibration(inp)
    matrix = matrix_and_detail(doc)
    expected = ["fp64", "fp32", "fp16", "bf16", "int64", "int32", "int16", "int8"]
    assert expected == canonical_sorted(expected) == [p for p in CANONICAL_ORDER if p in expected]
    assert list(matrix["status"]) == expected
    assert list(matrix["peak_gflops_by_precision"]) == [p for p in expected if p != "bf16"]
    assert list(matrix["speedup_vs_fp32"]) == [p for p in expected if p != "bf16"]
    for name in ("supported_precisions", "emulated_precisions", "unsupported_precisions"):
        assert matrix[name] == canonical_sorted(matrix[name])
    gemm_order = [(g["precision"], g["n"]) for g in doc["gemm"]]
    assert gemm_order == sorted(gemm_order, key=lambda pn: (CANONICAL_ORDER.index(pn[0]), pn[1]))


def test_lists_are_disjoint_and_cover_the_status(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    inp = input_factory(_mixed_records(record_factory), precisions=["bf16", *CANONICAL_ORDER[:2], "fp16", "int8"],
                        supports={"bf16": Support(False, "no bf16")})
    matrix = matrix_and_detail(build_calibration(inp))
    lists = {name: set(matrix[name]) for name in ("supported_precisions", "emulated_precisions",
                                                  "unsupported_precisions")}
    names = list(lists)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not lists[a] & lists[b], (a, b)
    for p, st in matrix["status"].items():
        in_lists = [name for name, members in lists.items() if p in members]
        if st["status"] == "not_run":
            assert in_lists == []
        else:
            assert in_lists == [f"{'supported' if st['status'] == 'native' else st['status']}_precisions"]


def test_not_run_has_a_reason(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    skip = "int16 reached 0.3 GFLOPS at n=256, below --min-gflops 1: larger sizes skipped"
    inp = input_factory([record_factory("fp32", 256, 100.0)], precisions=["fp32", "int16", "int8"],
                        skips={"int16": [skip, "later reason"]})
    status = matrix_and_detail(build_calibration(inp))["status"]
    assert status["int16"] == {"status": "not_run", "reason": skip}
    assert status["int8"] == {"status": "not_run", "reason": "not selected in this run"}


def test_unsupported_has_the_backend_reason(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    reason = "numpy has no bf16 GEMM (no such dtype); use --framework pytorch"
    inp = input_factory([record_factory("fp32", 256, 100.0)], precisions=["fp32", "bf16"],
                        supports={"bf16": Support(False, reason), "fp32": Support(True, kernel="BLAS")})
    matrix = matrix_and_detail(build_calibration(inp))
    assert matrix["status"]["bf16"] == {"status": "unsupported", "reason": reason}
    assert matrix["unsupported_precisions"] == ["bf16"]
    assert "bf16" not in matrix["peak_gflops_by_precision"]


def test_emulated_is_labelled_with_evidence(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    loop = "numpy generic matmul loop (no BLAS kernel for fp16)"
    records = [record_factory("fp32", 256, 100.0), record_factory("fp16", 256, 0.5, kernel=loop),
               record_factory("fp64", 256, 1.0)]  # fp64 at 1/100 of fp32: slow by design on GPUs, still native
    matrix = matrix_and_detail(build_calibration(input_factory(records, precisions=["fp64", "fp32", "fp16"])))
    fp16 = matrix["status"]["fp16"]
    assert fp16["status"] == "emulated"
    assert fp16["ratio_vs_fp32"] == 0.005
    assert "0.005x fp32" in fp16["reason"] and loop in fp16["reason"]
    assert matrix["emulated_precisions"] == ["fp16"]
    assert matrix["status"]["fp64"]["status"] == "native"
    assert matrix["supported_precisions"] == ["fp64", "fp32"]
    assert matrix["peak_gflops_by_precision"]["fp16"] == 0.5  # emulated is still measured and filed


def test_fp64_far_below_its_class_is_emulated(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    records = [record_factory("fp32", 256, 1000.0), record_factory("fp64", 256, 1.0)]  # 1/1000 < 1/200
    status = matrix_and_detail(build_calibration(input_factory(records)))["status"]
    assert status["fp64"]["status"] == "emulated"


def test_speedup_vs_fp32_uses_peaks(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    records = [record_factory("fp32", 256, 100.0), record_factory("fp32", 512, 125.0),
               record_factory("fp64", 256, 50.0), record_factory("fp64", 512, 40.0)]
    matrix = matrix_and_detail(build_calibration(input_factory(records)))
    assert matrix["peak_gflops_by_precision"] == {"fp64": 50.0, "fp32": 125.0}
    assert matrix["peak_size_by_precision"] == {"fp64": 256, "fp32": 512}
    assert matrix["speedup_vs_fp32"] == {"fp64": 0.4, "fp32": 1.0}
    assert matrix["status"]["fp64"]["ratio_vs_fp32"] == 0.4


def test_without_fp32_there_is_no_speedup(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    records = [record_factory("fp64", 256, 50.0), record_factory("int8", 256, 0.1)]
    doc = build_calibration(input_factory(records))
    matrix = matrix_and_detail(doc)
    assert matrix["speedup_vs_fp32"] == {}
    # format 2: the original loader's best_measured_gflops is the best compute operation, here fp64 GEMM
    assert doc["best_measured_gflops"] == 50.0
    assert matrix["status"]["int8"]["status"] == "native"  # no evidence to call it emulated
    assert "ratio_vs_fp32" not in matrix["status"]["int8"]
    assert schema_errors(doc) == []


def test_efficiency_above_one_is_flagged_not_filed(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    """An efficiency is a share of its peak: 1.25x says the peak is wrong. None is filed, the warning says why,
    and the run's table marks it."""
    records = [record_factory("fp32", 256, 500.0), record_factory("fp64", 256, 100.0)]
    inp = input_factory(records, warnings=["clock throttled to 60% during fp64"])
    doc = build_calibration(inp)
    matrix = matrix_and_detail(doc)
    assert matrix["efficiency_by_precision"] == {"fp64": 0.5}
    assert "efficiency" not in doc["gemm"][1] and doc["gemm"][1]["efficiency_note"].startswith("1.25x the peak 400")
    assert doc["gemm"][0]["efficiency"] == 0.5
    assert doc["warnings"][0] == "clock throttled to 60% during fp64"  # the session's warnings come first
    flagged = [w for w in doc["warnings"] if w.startswith("fp32:")]
    assert len(flagged) == 1 and len(doc["warnings"]) == 2
    assert "1.25x the theoretical peak" in flagged[0] and "2450" in flagged[0] and "peak is wrong" in flagged[0]
    assert "no efficiency filed" in flagged[0]
    assert schema_errors(doc) == []
    assert any(line.startswith("fp32") and "> 1 (!)" in line for line in summary_lines(doc))


def test_efficiency_at_or_below_one_raises_no_warning(record_factory: RecordFactory,
                                                       input_factory: InputFactory) -> None:
    doc = build_calibration(input_factory([record_factory("fp32", 256, 400.0)]))
    assert matrix_and_detail(doc)["efficiency_by_precision"] == {"fp32": 1.0}
    assert doc["warnings"] == []


def test_an_efficiency_above_one_is_a_warning_naming_the_peak(record_factory: RecordFactory,
                                                               input_factory: InputFactory) -> None:
    doc = build_calibration(input_factory([record_factory("fp64", 256, 250.0)]))
    assert doc["precision_detail"]["efficiency_by_precision"] == {}
    assert len(doc["warnings"]) == 1 and doc["warnings"][0].startswith("fp64:")
    assert "the peak is wrong" in doc["warnings"][0]


def test_zero_theoretical_peaks_mean_unknown(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    # The original registry wrote 0.0 for "no peak known": no efficiency (and no division by zero) from it.
    spec = {"theoretical_peaks": {"fp32": 400.0, "fp16": 0.0, "int8": 0.0}}
    records = [record_factory("fp32", 256, 100.0), record_factory("fp16", 256, 0.5)]
    matrix = matrix_and_detail(build_calibration(input_factory(records, spec=spec)))
    assert matrix["theoretical_peaks"] == {"fp32": 400.0}
    assert matrix["efficiency_by_precision"] == {"fp32": 0.25}


def test_seed_summary_fields(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    spec = {"theoretical_peaks": {"fp64": 200.0, "fp32": 400.0}, "peak_bandwidth_gbps": 50.0}
    doc = build_calibration(input_factory(spec=spec, memory=dram_sweep(20.0)))
    for name in SEED_SUMMARY_FIELDS:
        assert name in doc
    for name in SEED_MATRIX_FIELDS:
        assert name in matrix_and_detail(doc)
    assert doc["schema_version"] == CALIBRATION_FORMAT_VERSION
    assert doc["theoretical_peak_gflops"] == 400.0
    assert doc["best_measured_gflops"] == 120.0
    assert doc["theoretical_bandwidth_gbps"] == 50.0
    assert doc["measured_bandwidth_gbps"] == 20.0
    assert doc["bandwidth_efficiency"] == 0.4
    assert doc["memory"]["sustained_gbps"] == 20.0
    assert matrix_and_detail(doc)["theoretical_peaks"] == {"fp64": 200.0, "fp32": 400.0}
    assert schema_errors(doc) == []


def test_seed_summary_fields_without_memory_are_unknown(input_factory: InputFactory) -> None:
    doc = build_calibration(input_factory())
    # format 2 writes the original system's 0 for an unknown figure, and names each such field
    assert doc["theoretical_bandwidth_gbps"] == 0
    assert doc["measured_bandwidth_gbps"] == 0
    assert doc["bandwidth_efficiency"] == 0
    assert {"theoretical_bandwidth_gbps", "measured_bandwidth_gbps", "bandwidth_efficiency"} <= set(
        doc["legacy_unknown_zero"])
    assert "memory" not in doc


def test_metadata(input_factory: InputFactory) -> None:
    key = CalibrationKey("cpu", "test_cpu", "MAXNSUPER", 1510, "numpy")
    inp = input_factory(key=key, power_mode="MAXN_SUPER", power_mode_source="nvpmodel -q",
                        clock=ClockOutcome({"under_load_mhz": {"median": 1490}}, [], None),
                        selection={"keyword": "fp32 or fp64"}, wall_time_s=12.3456)
    meta = build_calibration(inp)["metadata"]
    assert meta["calibration_date"] == "2026-11-26T18:46:57.123456+00:00"
    assert meta["power_mode"] == "MAXN_SUPER"  # the original string; the key holds the token
    assert meta["freq_mhz"] == 1510
    assert meta["hardware_id"] == "test_cpu" and meta["hardware_name"] == "Test CPU 9000"
    assert meta["framework"] == "numpy" and "framework_version" in meta and "numpy_version" in meta
    assert meta["clock"] == {"under_load_mhz": {"median": 1490}}
    assert meta["selection"] == {"keyword": "fp32 or fp64"}
    assert meta["command_line"] == ["pytest", "bench/"]
    assert meta["wall_time_s"] == 12.35
    assert build_calibration(inp)["key"] == key.as_dict()


def test_gemm_detail(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    doc = build_calibration(input_factory([record_factory("fp32", 256, 100.0), record_factory("int8", 64, 2.0)]))
    fp32, int8 = doc["gemm"]
    assert set(fp32["time_s"]) >= {"min", "median", "mean", "stddev", "iqr"}
    assert fp32["verified"] is True
    assert fp32["rounds"] == 20 and fp32["flops_per_round"] == 2 * 256**3
    assert fp32["gflops_best"] == 100.0 and fp32["gflops_median"] < fp32["gflops_best"]
    assert fp32["efficiency"] == 0.25
    assert {"cv", "max_error", "tolerance", "verify_method", "kernel"} <= set(fp32)
    assert "operand_range" not in fp32
    assert int8["operand_range"] == 1.0 and int8["accumulator_wraps"] is False
    assert "efficiency" not in int8  # no theoretical int8 peak in the spec


def test_builder_is_pure(record_factory: RecordFactory, input_factory: InputFactory) -> None:
    records = _mixed_records(record_factory)
    inp = input_factory(records, memory=dram_sweep(10.0))
    before = copy.deepcopy(inp)
    first = build_calibration(inp)
    second = build_calibration(inp)
    assert first == second
    assert inp == before  # inputs untouched (record order included)
    json.dumps(first, allow_nan=False)  # serialisable, no NaN/inf


@pytest.mark.parametrize("variant", ["default", "mixed", "no_fp32", "no_records", "unsupported", "memory"])
def test_built_documents_are_valid(variant: str, record_factory: RecordFactory, input_factory: InputFactory) -> None:
    kwargs: dict[str, Any] = {
        "default": {},
        "mixed": {"records": _mixed_records(record_factory)},
        "no_fp32": {"records": [record_factory("fp64", 256, 5.0)]},
        "no_records": {"records": [], "skips": {"fp32": ["fp32 at n=4096 needs 2 GiB"]}},
        "unsupported": {"supports": {"int8": Support(False, "no int8")}},
        "memory": {"memory": dram_sweep(12.5), "spec": {"theoretical_peaks": {}, "peak_bandwidth_gbps": 25}},
    }[variant]
    assert schema_errors(build_calibration(input_factory(**kwargs))) == []


def test_cpu_spec_is_valid_and_derived() -> None:
    host = {"cpu": {"model": "Test CPU 9000", "vendor": "AuthenticAMD", "physical_cores": 2, "logical_cores": 4,
                    "isa_flags": ["avx2", "fma", "avx"], "architecture": "x86_64"}, "total_memory_gb": 7.5}
    spec = build_cpu_spec("test_cpu", host, 2450.0, datetime(2026, 11, 26, tzinfo=timezone.utc))
    assert schema_errors(spec, "spec") == []
    assert spec["peaks_source"] == "derived"
    assert spec["theoretical_peaks"] == {"fp64": 78.4, "fp32": 156.8}  # 2 cores x 16|32 FLOPs/cycle x 2.45 GHz
    assert spec["peaks_reference_clock_mhz"] == 2450.0
    assert spec["compute_units"] == 2


def test_cpu_spec_unknown_isa_has_no_peaks() -> None:
    spec = build_cpu_spec("test_cpu", {"cpu": {}}, 0.0, datetime(2026, 11, 26, tzinfo=timezone.utc))
    assert spec["theoretical_peaks"] == {}
    assert schema_errors(spec, "spec") == []


def test_summary_has_a_row_per_precision(valid_doc: dict[str, Any]) -> None:
    lines = summary_lines(valid_doc)
    statuses = matrix_and_detail(valid_doc)["status"]
    assert lines[0].split()[:2] == ["precision", "status"]
    rows = [line for line in lines[2:] if not line.startswith("warning:")]
    assert [row.split()[0] for row in rows] == list(statuses)
    assert [row.split()[1] for row in rows] == [s["status"] for s in statuses.values()]


def test_integer_rates_are_gops_the_rest_and_unknown_names_gflops() -> None:
    assert [rate_unit(p) for p in ("int8", "int64", "fp32", "bf16", "fp8_e5m2", "nonsense")] == [
        "GOPS", "GOPS", "GFLOPS", "GFLOPS", "GFLOPS", "GFLOPS"]
