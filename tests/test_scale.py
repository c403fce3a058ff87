"""A fleet-sized registry (300 calibrations here; tools/make_synthetic_registry.py builds 5,000): the listing
cache gives the same answers as full reads, and a file changed behind its back is checked again.
Correctness only, never speed (the machine is shared)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fixtures_registry import REPO, make_calibration, make_spec, write_json

from hwcal.document import schema
from hwcal.naming import calibration_path, spec_path
from hwcal.registry import validate
from hwcal.registry.api import Registry
from hwcal.registry.cache import CACHE_DIR
from hwcal.registry.validate import validate_registry

sys.path.insert(0, str(REPO / "tools"))
from make_synthetic_registry import build


def _fleet(tmp_path: Path, n: int = 300, hw: int = 10) -> tuple[Path, list[Path]]:
    registry = tmp_path / "fleet"
    _key, doc = make_calibration()
    source = write_json(tmp_path / "source.json", doc)
    spec = write_json(tmp_path / "spec.json", make_spec())
    return registry, build(registry, n, hw, source, spec)


def test_the_cache_answers_as_full_reads_do(tmp_path: Path) -> None:
    registry, _paths = _fleet(tmp_path)
    cold = Registry(registry, emit_warnings=False)
    first = [e.summary() for e in cold.list_calibrations()]
    assert len(first) == 300 and not cold.skipped
    assert (registry / CACHE_DIR).is_dir()
    warm = Registry(registry, emit_warnings=False)
    assert [e.summary() for e in warm.list_calibrations()] == first
    profile = warm.get("synth_cpu_003", {"power_mode": "P5"})
    assert profile.calibration["key"]["power_mode"] == "P5" and profile.spec is not None
    assert validate_registry(registry).calibrations_checked == 300


def test_a_file_changed_behind_the_cache_is_read_again(tmp_path: Path) -> None:
    registry, paths = _fleet(tmp_path, 120, 4)
    Registry(registry, emit_warnings=False).list_calibrations()
    victim = paths[7]
    victim.write_text(victim.read_text().replace('"schema_version"', '"schema_versio"', 1))
    reg = Registry(registry, emit_warnings=False)
    assert len(reg.list_calibrations()) == 119 and [s.path for s in reg.skipped] == [victim]
    spec = spec_path(registry, "cpu", "synth_cpu_000")
    spec.write_text("{broken")
    reg = Registry(registry, emit_warnings=False)
    reg.hardware()
    assert spec in [s.path for s in reg.skipped]


def test_a_hostile_cache_is_only_a_slower_listing(tmp_path: Path) -> None:
    registry, _paths = _fleet(tmp_path, 40, 2)
    expected = [e.summary() for e in Registry(registry, emit_warnings=False).list_calibrations()]
    cache_file = next((registry / CACHE_DIR).iterdir())
    cache_file.write_text(json.dumps({"fingerprint": "x", "entries": {"a": 1}}))
    assert [e.summary() for e in Registry(registry, emit_warnings=False).list_calibrations()] == expected
    cache_file.write_text("[" * 100_000)
    assert [e.summary() for e in Registry(registry, emit_warnings=False).list_calibrations()] == expected


def test_a_read_only_registry_is_listed_without_a_cache(tmp_path: Path) -> None:
    registry, _ = _fleet(tmp_path, 20, 2)
    key, _doc = make_calibration("synth_cpu_000", "P1", 1000)
    assert calibration_path(registry, key).exists()
    registry.chmod(0o555)
    try:
        assert len(Registry(registry, emit_warnings=False).list_calibrations()) == 20
    finally:
        registry.chmod(0o755)


def _break(paths: list[Path]) -> None:
    """Problems of every kind, in files the compiled validator and jsonschema are known to judge apart."""
    changes = [("calibration_date", "2026-12-31T23:59:60Z"), ("calibration_date", "0000-01-01T00:00:00Z"),
               ("hardware_id", "other_cpu"), ("power_mode", "P1\n")]
    for path, (field, value) in zip(paths[3:80:20], changes, strict=True):
        doc = json.loads(path.read_text())
        doc["metadata"][field] = value
        path.write_text(json.dumps(doc))
    doc = json.loads(paths[5].read_text())
    doc["gemm"][0]["n"], doc["key"]["freq_mhz"] = "big", 1
    paths[5].write_text(json.dumps(doc))


def test_verdicts_are_the_same_with_or_without_the_compiled_validator_and_in_parallel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every error listed, as file: json_path: message, the same whichever path found it."""
    registry, paths = _fleet(tmp_path, 100, 4)  # above PARALLEL_FROM: checked by worker processes
    _break(paths)
    fast = validate_registry(registry)
    assert len(fast.errors) >= 6 and fast.calibrations_checked == 100
    monkeypatch.setattr(validate, "PARALLEL_FROM", 10**9)
    assert validate_registry(registry).errors == fast.errors
    monkeypatch.setattr(schema, "HAVE_COMPILED", False)
    schema.compiled_validator.cache_clear()
    try:
        assert validate_registry(registry).errors == fast.errors
    finally:
        schema.compiled_validator.cache_clear()
