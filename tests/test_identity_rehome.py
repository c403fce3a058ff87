"""tools/rehome_hardware.py: the Zen 3 files filed under the bare ``amd_epyc`` move to the id their own
metadata supports, through the writer, history kept, the move recorded; refusals write nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwcal.cli.rehome_hardware import main
from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.interop.rehome import execute_rehome, infer_microarchitecture, plan_rehome

ROOT = Path(__file__).resolve().parent.parent
# The real Zen 3 VM's files (2026-11: current and history, numpy and pytorch, spec.json), copied as hwcal
# filed them under the bare ``amd_epyc``, before ids carried the microarchitecture.
ZEN3 = ROOT / "tests" / "data" / "zen3_vm_registry"


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    reg = tmp_path / "registry"
    shutil.copytree(ZEN3, reg)
    return reg


def _tree(reg: Path) -> list[str]:
    return sorted(str(p.relative_to(reg)) for p in reg.rglob("*") if p.is_file() and p.name != ".lock")


def test_the_files_support_zen2_or_zen3_not_zen_nor_zen4(registry: Path) -> None:
    folder = registry / "cpu" / "amd_epyc" / "calibrations"
    docs = {p: json.loads(p.read_text()) for p in folder.rglob("*.json")}
    inference = infer_microarchitecture(docs)
    assert inference.candidates == ["zen2", "zen3"]
    assert any("without AVX-512" in e for e in inference.evidence)
    assert any("not a Zen 1" in e for e in inference.evidence)


def test_without_to_it_refuses_and_names_the_choices(registry: Path) -> None:
    before = _tree(registry)
    with pytest.raises(HwcalError, match=r"choose with --to \(amd_epyc_zen2 or amd_epyc_zen3\)"):
        plan_rehome(registry, "cpu/amd_epyc", None)
    assert _tree(registry) == before


def test_a_target_the_metadata_contradicts_is_refused(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree(registry)
    assert main(["cpu/amd_epyc", "--to", "amd_epyc_zen4", "--registry", str(registry)]) == 1
    assert "does not support it" in capsys.readouterr().err
    assert _tree(registry) == before


def test_dry_run_writes_nothing(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree(registry)
    assert main(["cpu/amd_epyc", "--to", "amd_epyc_zen3", "--registry", str(registry), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would move cpu/amd_epyc/spec.json -> cpu/amd_epyc_zen3/spec.json" in out
    assert _tree(registry) == before


def test_rehome_moves_current_history_and_spec(registry: Path) -> None:
    old = _tree(registry)
    plan, docs, spec = plan_rehome(registry, "cpu/amd_epyc", "amd_epyc_zen3")
    moved = execute_rehome(registry, plan, docs, spec)
    assert not (registry / "cpu" / "amd_epyc").exists()  # the old folder is gone
    new = _tree(registry)
    assert new == sorted(p.replace("cpu/amd_epyc/", "cpu/amd_epyc_zen3/") for p in old)  # format 1: not packed
    assert len(moved) == len(old)
    assert any("/history/" in p for p in new)  # history stays history, same names
    for path in (registry / "cpu" / "amd_epyc_zen3" / "calibrations").rglob("*.json"):
        doc = json.loads(path.read_text())
        assert schema_errors(doc) == []
        assert doc["key"]["hardware_id"] == doc["metadata"]["hardware_id"] == "amd_epyc_zen3"
        assert any(w.startswith("rehomed from cpu/amd_epyc to cpu/amd_epyc_zen3") for w in doc["warnings"])
        recorded = doc["metadata"].get("rehomed_from")  # where the calibration schema declares it
        assert recorded is None or recorded[-1]["hardware_id"] == "amd_epyc"
    spec = json.loads((registry / "cpu" / "amd_epyc_zen3" / "spec.json").read_text())
    assert schema_errors(spec, "spec") == []
    assert spec["id"] == "amd_epyc_zen3" and spec["microarchitecture"] == "zen3"
    moved_from = spec["rehomed_from"][0]
    assert moved_from["hardware_id"] == "amd_epyc" and "--to amd_epyc_zen3" in moved_from["reason"]
    assert "avx2" in spec["identity"]["isa_flags"]


def test_a_second_move_into_an_occupied_folder_is_refused(registry: Path) -> None:
    shutil.copytree(registry / "cpu" / "amd_epyc", registry / "cpu" / "amd_epyc_zen3")
    with pytest.raises(HwcalError, match="refusing to mix two folders"):
        plan_rehome(registry, "cpu/amd_epyc", "amd_epyc_zen3")


def test_recorded_family_and_model_decide_alone(registry: Path) -> None:
    for path in (registry / "cpu" / "amd_epyc" / "calibrations").rglob("*.json"):
        doc = json.loads(path.read_text())
        doc["metadata"]["host"]["cpu"].update({"cpu_family": 25, "cpu_model": 1})
        path.write_text(json.dumps(doc))
    plan, _, _ = plan_rehome(registry, "cpu/amd_epyc", None)
    assert plan.new_id == "amd_epyc_zen3" and plan.chosen_by == "CPUID family/model"


def test_files_without_cpu_facts_are_refused(registry: Path) -> None:
    for path in (registry / "cpu" / "amd_epyc" / "calibrations").rglob("*.json"):
        doc = json.loads(path.read_text())
        doc["metadata"]["host"] = {}
        path.write_text(json.dumps(doc))
    with pytest.raises(HwcalError, match=r"record no metadata\.host\.cpu"):
        plan_rehome(registry, "cpu/amd_epyc", "amd_epyc_zen3")


def test_the_tool_script_runs_from_a_checkout(registry: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "rehome_hardware.py"), "cpu/amd_epyc", "--to",
                           "amd_epyc_zen3", "--registry", str(registry), "--dry-run", "--json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["to"] == "amd_epyc_zen3"
