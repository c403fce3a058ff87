"""One rule for validity (``hwcal.registry.validity.problems``): the writer refuses exactly what
``hwcal-validate`` reports and what a listing skips, for every kind of problem; what the writer files,
every reader takes."""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hwcal import Registry
from hwcal.errors import HwcalError, RegistryFileError
from hwcal.naming import CalibrationKey, calibration_path, spec_path
from hwcal.registry.reader import read_calibration
from hwcal.registry.validate import validate_registry
from hwcal.registry.validity import problems
from hwcal.registry.writer import check_valid, dumps, write_calibration, write_history
from tests.fixtures_registry import make_calibration, make_spec

Change = Callable[[dict[str, Any]], None]


def _set(*where: str, value: Any) -> Change:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for step in where[:-1]:
            target = target[step]
        target[where[-1]] = value
    return change


# Each: a change to a valid calibration of cpu/test_cpu/7W_2000MHz_numpy, and a problem it must cause.
BAD: dict[str, tuple[Change, str]] = {
    "metadata hardware_id": (_set("metadata", "hardware_id", value="other_cpu"),
                             "$.metadata.hardware_id: 'other_cpu' disagrees with the key ('test_cpu')"),
    "metadata power_mode": (_set("metadata", "power_mode", value="8W"),
                            "$.metadata.power_mode: '8W' does not reduce to the key's power mode '7W'"),
    "metadata freq_mhz": (_set("metadata", "freq_mhz", value=2001),
                          "$.metadata.freq_mhz: 2001 disagrees with the key (2000)"),
    "metadata framework": (_set("metadata", "framework", value="pytorch"),
                           "$.metadata.framework: 'pytorch' disagrees with the key ('numpy')"),
    "power mode with a newline": (_set("metadata", "power_mode", value="7W\n"),
                                  r"$.metadata.power_mode: power mode '7W\n' contains a control character (U+000A)"),
    "full-width power mode": (_set("metadata", "power_mode", value="７Ｗ"),
                              "$.metadata.power_mode: power mode '７Ｗ' contains letters, digits or accents outside "
                              "ASCII ('７', 'Ｗ')"),
    "key freq_mhz": (_set("key", "freq_mhz", value=1000),
                     "$.key.freq_mhz: 1000 disagrees with the file name '7W_2000MHz_numpy.json' (2000)"),
    "key hardware_id": (_set("key", "hardware_id", value="test_gpu"),
                        "$.key.hardware_id: 'test_gpu' disagrees with the folder 'test_cpu'"),
    "schema": (_set("gemm", 0, "n", value="256"), "$.gemm[0].n: '256' is not of type 'integer'"),
    "future format": (_set("schema_version", value=3), "$.schema_version: schema_version 3 is newer than this hwcal"),
}


def _valid() -> tuple[CalibrationKey, dict[str, Any]]:
    return make_calibration("test_cpu", "7W", 2000, "numpy", date=datetime(2026, 11, 1, tzinfo=timezone.utc))


@pytest.fixture(scope="module")
def valid() -> tuple[CalibrationKey, dict[str, Any]]:
    return _valid()


def _validate_lines(registry: Path) -> set[str]:
    return set(validate_registry(registry).errors)


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_writer_refuses_exactly_what_validate_reports(tmp_path: Path, case: str,
                                                          valid: tuple[CalibrationKey, dict[str, Any]]) -> None:
    key, doc = valid[0], copy.deepcopy(valid[1])
    change, expected = BAD[case]
    change(doc)
    registry = tmp_path / "registry"
    target = calibration_path(registry, key)
    with pytest.raises(HwcalError) as refused:
        write_calibration(registry, key, doc, make_spec())
    assert not target.exists() and not target.parent.exists(), "a refused document left something behind"
    refused_lines = {line.strip() for line in str(refused.value).splitlines()[1:]}
    assert any(line.startswith(expected) for line in refused_lines), refused_lines

    # The same document put there by hand: validate reports what the writer refused, line for line ...
    target.parent.mkdir(parents=True)
    spec_path(registry, "cpu", "test_cpu").write_text(dumps(make_spec()))
    target.write_text(dumps(doc))
    assert _validate_lines(registry) == {f"{target}: {line}" for line in refused_lines}
    # ... a listing skips it, naming the first one, and reading it by name fails with it.
    reg = Registry(registry, emit_warnings=False)
    assert reg.list_calibrations() == []
    assert [s.path for s in reg.skipped] == [target]
    first = problems(json.loads(target.read_text()), "calibration", target)[0]
    assert first.message in reg.skipped[0].reason
    with pytest.raises(RegistryFileError):
        read_calibration(target, registry)


def test_what_the_writer_files_every_reader_takes(tmp_path: Path, valid: tuple[CalibrationKey, dict[str, Any]]) -> None:
    key, doc = valid
    registry = tmp_path / "registry"
    path, _ = write_calibration(registry, key, doc, make_spec())
    assert validate_registry(registry).ok
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [e.path for e in Registry(registry).list_calibrations()] == [path]
    assert read_calibration(path, registry).key == key


def test_a_spec_for_another_hardware_is_refused_with_the_calibration(tmp_path: Path,
                                                                      valid: tuple[CalibrationKey, dict[str, Any]]
                                                                      ) -> None:
    registry = tmp_path / "registry"
    with pytest.raises(HwcalError, match=r"spec\.json \$\.id: 'test_gpu' disagrees with the folder 'test_cpu'"):
        write_calibration(registry, valid[0], valid[1], make_spec("test_gpu"))
    assert not registry.exists()


def test_nan_is_refused_naming_where_it_is(tmp_path: Path, valid: tuple[CalibrationKey, dict[str, Any]]) -> None:
    key, doc = valid[0], copy.deepcopy(valid[1])
    doc["gemm"][0]["gflops_best"] = math.nan  # jsonschema alone would let NaN through (NaN < 0 is False)
    with pytest.raises(HwcalError, match=r"\$\.gemm\[0\]\.gflops_best: not JSON data"):
        write_calibration(tmp_path / "registry", key, doc)
    with pytest.raises(HwcalError, match=r"\$\.gemm\[0\]\.gflops_best: not JSON data"):
        check_valid(doc, "calibration")
    assert not (tmp_path / "registry").exists()


def test_a_tuple_is_judged_as_the_list_it_is_filed_as(tmp_path: Path,
                                                      valid: tuple[CalibrationKey, dict[str, Any]]) -> None:
    key, doc = valid[0], copy.deepcopy(valid[1])
    doc["warnings"] = tuple(doc["warnings"])
    path, _ = write_calibration(tmp_path / "registry", key, doc, make_spec())
    assert validate_registry(tmp_path / "registry").ok and json.loads(path.read_text())["warnings"] == \
        list(doc["warnings"])


def test_history_is_held_to_the_same_rule(tmp_path: Path, valid: tuple[CalibrationKey, dict[str, Any]]) -> None:
    key, doc = valid[0], copy.deepcopy(valid[1])
    registry = tmp_path / "registry"
    date = datetime(2026, 10, 1, tzinfo=timezone.utc)
    doc["metadata"]["hardware_id"] = "other_cpu"
    with pytest.raises(HwcalError, match=r"\$\.metadata\.hardware_id: 'other_cpu' disagrees with the key"):
        write_history(registry, key, dumps(doc), date)
    with pytest.raises(HwcalError, match="is not JSON"):
        write_history(registry, key, '{"schema_version": 2, "key": ', date)
    assert not registry.exists()
    kept = write_history(registry, key, dumps(valid[1]), date)
    assert validate_registry(registry).errors == [f"{spec_path(registry, 'cpu', 'test_cpu')}: $: missing: every "
                                                  "hardware folder needs a spec.json"]
    assert kept.parent.name == "history"


def test_metadata_must_agree_with_the_key_outside_a_registry_too(tmp_path: Path,
                                                                 valid: tuple[CalibrationKey, dict[str, Any]]) -> None:
    doc = copy.deepcopy(valid[1])
    doc["metadata"]["freq_mhz"] = 999
    loose = tmp_path / "some calibration.json"
    loose.write_text(dumps(doc))
    with pytest.raises(RegistryFileError, match=r"misnamed: \$\.metadata\.freq_mhz: 999 disagrees with the key"):
        read_calibration(loose)
    loose.write_text(dumps(valid[1]))
    assert read_calibration(loose).key == valid[0]  # a file outside a registry has no name to agree with


def test_problems_without_a_path_judge_the_document_alone(valid: tuple[CalibrationKey, dict[str, Any]]) -> None:
    assert problems(valid[1], "calibration") == []
    assert [p.rule for p in problems([], "calibration")] == ["version"]
    assert all(str(p).startswith("$") for p in problems({"schema_version": 1}, "spec"))
    with pytest.raises(ValueError, match="kind"):
        problems(valid[1], "other")


def test_a_spec_that_disagrees_with_its_folder_is_skipped_as_validate_reports_it(
        tmp_path: Path, valid: tuple[CalibrationKey, dict[str, Any]]) -> None:
    registry = tmp_path / "registry"
    write_calibration(registry, valid[0], valid[1], make_spec())
    spec_file = spec_path(registry, "cpu", "test_cpu")
    spec_file.write_text(dumps(make_spec("test_gpu")))
    assert validate_registry(registry).errors == [f"{spec_file}: $.id: 'test_gpu' disagrees with the folder "
                                                  "'test_cpu'"]
    reg = Registry(registry, emit_warnings=False)
    assert [h.spec for h in reg.hardware()] == [None]
    assert [(s.path, s.reason) for s in reg.skipped] == [
        (spec_file, "misnamed: $.id: 'test_gpu' disagrees with the folder 'test_cpu'")]


VALIDATION_DOC = {"schema_version": 1, "kind": "efficiency_curves", "device_type": "gpu", "hardware_id": "test_gpu",
                  "power_mode": "MODE_50W", "precision": "fp16", "calibration_date": "2026-11-01T00:00:00+00:00",
                  "curves": {}, "imported": {"source": "efficiency_curves.json", "corrections": [], "faults": []}}


def test_validation_data_is_judged_by_the_same_function(tmp_path: Path) -> None:
    """Measured efficiency curves (``<type>/<id>/validation/``, filed by hwcal-migrate): version, schema and
    the folders it sits in."""
    folder = tmp_path / "registry" / "gpu" / "test_gpu" / "validation"
    assert problems(VALIDATION_DOC, "validation", folder / "MODE50W_fp16_efficiency_curves.json") == []
    check_valid(VALIDATION_DOC, "validation")
    moved = tmp_path / "registry" / "gpu" / "other_gpu" / "validation" / "history" / "x.json"
    assert [str(p) for p in problems(VALIDATION_DOC, "validation", moved)] == [
        "$.hardware_id: 'test_gpu' disagrees with the folder 'other_gpu'"]
    assert [p.rule for p in problems({**VALIDATION_DOC, "schema_version": 2}, "validation")] == ["version"]
    with pytest.raises(HwcalError, match="'kind'"):
        check_valid({k: v for k, v in VALIDATION_DOC.items() if k != "kind"}, "validation")
