"""Errata: a known fault of a filed calibration is shown by list and compare, never fixed by editing it."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hwcal.cli import compare_calibrations, list_calibrations
from hwcal.registry.errata import errata_for
from hwcal.registry.validate import validate_registry

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """The real H100 calibration (as filed, format 1) under its key, with its spec."""
    hw = tmp_path / "reg" / "gpu" / "h100_sxm5"
    (hw / "calibrations").mkdir(parents=True)
    shutil.copy(DATA / "specs" / "h100_sxm5.json", hw / "spec.json")
    shutil.copy(DATA / "v1" / "700W_1980MHz_pytorch.json", hw / "calibrations" / "700W_1980MHz_pytorch.json")
    return tmp_path / "reg"


def _errata(root: Path, until: str) -> None:
    (root / "errata.json").write_text(json.dumps({"errata": [{
        "key": "gpu/h100_sxm5/700W_1980MHz_pytorch", "precisions": ["int8"],
        "problem": "int8 measured with the slow operand layout", "applies_until": until}]}))


def test_list_and_compare_warn_on_the_key(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _errata(registry, "2026-11-30T00:00:00+00:00")
    assert validate_registry(registry).ok  # the errata file is part of the layout
    assert list_calibrations.main(["--registry", str(registry)]) == 0
    assert "erratum (int8): int8 measured with the slow operand layout" in capsys.readouterr().err
    key = "h100_sxm5:700W:pytorch"
    assert compare_calibrations.main([key, key, "--registry", str(registry)]) == 0
    assert "warning: A: erratum (int8)" in capsys.readouterr().out


def test_a_calibration_filed_after_the_erratum_is_not_concerned(registry: Path) -> None:
    _errata(registry, "2026-11-01T00:00:00+00:00")
    date = datetime(2026, 11, 26, tzinfo=timezone.utc)
    assert errata_for(registry, "gpu", "h100_sxm5", "700W_1980MHz_pytorch", date) == []


def test_an_unusable_errata_file_is_one_warning(registry: Path) -> None:
    (registry / "errata.json").write_text("{not json")
    warnings = errata_for(registry, "gpu", "h100_sxm5", "700W_1980MHz_pytorch", datetime.now(timezone.utc))
    assert len(warnings) == 1 and warnings[0].startswith("errata file unusable:")
