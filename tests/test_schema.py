"""Schema validation: a built document passes; every error of a bad one comes as ``json_path: message``."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from hwcal.document import schema as schema_module
from hwcal.document.schema import schema_errors, schema_files, validator

ERROR_RE = re.compile(r"^\$[^\s:]*: \S.*$")


def test_schemas_are_valid_draft_2020_12_with_ids() -> None:
    for path in schema_files():
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        assert schema["$id"].startswith("urn:hwcal:schema:"), path.name
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("compiled", [True, False])
def test_runtime_schema_check_refuses_a_broken_schema(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check every calibration makes once (the compiled meta-validator where installed) refuses what
    jsonschema's ``check_schema`` refuses, and passes the shipped schemas."""
    if compiled and not schema_module.HAVE_COMPILED:
        pytest.skip("jsonschema-rs is not installed")
    monkeypatch.setattr(schema_module, "HAVE_COMPILED", compiled)
    for path in schema_files():
        schema_module._check_schema(json.loads(path.read_text()))
    with pytest.raises(Exception, match=r"type|anyOf"):
        schema_module._check_schema({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": 12})


def test_one_validator_per_kind_with_format_checking() -> None:
    assert validator("calibration") is validator("calibration")
    assert validator("calibration").format_checker is not None
    assert "date-time" in validator("calibration").format_checker.checkers  # needs jsonschema[format]


def test_built_document_is_valid(valid_doc: dict[str, Any]) -> None:
    assert schema_errors(valid_doc) == []


def test_document_survives_a_json_round_trip(valid_doc: dict[str, Any]) -> None:
    assert schema_errors(json.loads(json.dumps(valid_doc))) == []


def _only(errors: list[str], path: str) -> list[str]:
    return [e for e in errors if e.split(": ", 1)[0] == path]


def test_missing_key(valid_doc: dict[str, Any]) -> None:
    del valid_doc["metadata"]["calibration_date"]
    del valid_doc["best_measured_gflops"]
    errors = schema_errors(valid_doc)
    assert "$: 'best_measured_gflops' is a required property" in errors
    assert "$.metadata: 'calibration_date' is a required property" in errors
    assert len(errors) == 2


def test_wrong_type(valid_doc: dict[str, Any]) -> None:
    valid_doc["gemm"][0]["n"] = "256"
    assert schema_errors(valid_doc) == ["$.gemm[0].n: '256' is not of type 'integer'"]


@pytest.mark.parametrize("date", ["yesterday", "2026-13-45T00:00:00+00:00", "2026-11-26", "2026-11-26T18:46:57",
                                  "26/11/2026 18:46"])
def test_bad_date(valid_doc: dict[str, Any], date: str) -> None:
    valid_doc["metadata"]["calibration_date"] = date
    errors = schema_errors(valid_doc)
    assert errors == [f"$.metadata.calibration_date: {date!r} is not a 'date-time'"]


def test_unknown_precision(valid_doc: dict[str, Any]) -> None:
    valid_doc["gemm"][0]["precision"] = "fp4"
    valid_doc["precision_matrix"]["supported_precisions"].append("int4")
    valid_doc["precision_matrix"]["peak_gflops_by_precision"]["fp4"] = 1.0
    errors = schema_errors(valid_doc)
    assert any(e.startswith("$.gemm[0].precision: 'fp4' is not one of") for e in errors)
    assert any(re.match(r"^\$\.precision_matrix\.supported_precisions\[\d+\]: 'int4' is not one of", e) for e in errors)
    assert any(e.startswith("$.precision_matrix.peak_gflops_by_precision: 'fp4' is not one of") for e in errors)


def test_extra_key(valid_doc: dict[str, Any]) -> None:
    valid_doc["surprise"] = 1
    valid_doc["gemm"][0]["gflops_peak"] = 1.0
    valid_doc["key"]["device"] = "cpu"
    errors = schema_errors(valid_doc)
    assert "$: Additional properties are not allowed ('surprise' was unexpected)" in errors
    assert "$.gemm[0]: Additional properties are not allowed ('gflops_peak' was unexpected)" in errors
    assert "$.key: Additional properties are not allowed ('device' was unexpected)" in errors


@pytest.mark.parametrize(("path", "value"), [(("key", "power_mode"), "MAXN_SUPER"), (("key", "power_mode"), "../x"),
                                             (("key", "freq_mhz"), 0), (("key", "framework"), "tensorflow"),
                                             (("key", "hardware_id"), "Bad Id"), (("gemm", 0, "verified"), False),
                                             (("schema_version",), 3), (("best_measured_gflops",), -1.0),
                                             (("precision_detail", "status", "fp32", "status"), "great")])
def test_each_rule(valid_doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = valid_doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    errors = schema_errors(valid_doc)
    expected_path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    assert [e.split(": ", 1)[0] for e in errors] == [expected_path]


def test_every_error_not_only_the_first(valid_doc: dict[str, Any]) -> None:
    del valid_doc["metadata"]["tool_version"]  # missing key
    valid_doc["gemm"][1]["rounds"] = "many"  # wrong type
    valid_doc["metadata"]["calibration_date"] = "not a date"  # bad date
    valid_doc["gemm"][0]["precision"] = "fp4"  # unknown precision
    valid_doc["extra"] = True  # extra key
    valid_doc["warnings"] = [1]  # wrong item type
    errors = schema_errors(valid_doc)
    assert all(ERROR_RE.match(e) for e in errors), errors
    paths = {e.split(": ", 1)[0] for e in errors}
    assert paths >= {"$", "$.metadata", "$.metadata.calibration_date", "$.gemm[0].precision", "$.gemm[1].rounds",
                     "$.warnings[0]"}
    assert len(errors) >= 6
    assert schema_errors(valid_doc) == errors  # a stable order, so two runs' reports compare


def test_not_an_object() -> None:
    assert schema_errors([]) == ["$: [] is not of type 'object'"]
    errors = schema_errors({})
    assert errors and all(e.startswith("$: ") and "is a required property" in e for e in errors)


def test_spec_errors(valid_doc: dict[str, Any]) -> None:
    spec = {"schema_version": 1, "id": "test_cpu", "model": "Test CPU", "device_type": "cpu",
            "theoretical_peaks": {"fp32": 100.0}, "peaks_source": "derived"}
    assert schema_errors(spec, "spec") == []
    spec["theoretical_peaks"] = {"fp32": -1.0, "fp4": 3.0}
    spec["peaks_source"] = "guess"
    errors = schema_errors(spec, "spec")
    assert all(ERROR_RE.match(e) for e in errors)
    assert {e.split(": ", 1)[0] for e in errors} == {"$.theoretical_peaks", "$.theoretical_peaks.fp32",
                                                     "$.peaks_source"}
