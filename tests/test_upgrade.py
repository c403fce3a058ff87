"""hwcal-upgrade: every format-1 file of a registry becomes format 2 in place, the original kept in
history, safe to interrupt and to run again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import hwcal.interop.upgrade as upgrade_mod
from hwcal.cli.upgrade_registry import main
from hwcal.interop.upgrade import upgrade_registry
from hwcal.registry.api import Registry
from hwcal.registry.validate import validate_registry

V1 = Path(__file__).parent / "data" / "v1"


def _registry(tmp_path: Path) -> Path:
    """A registry holding the real format-1 CPU calibration as current and a copy of it as history."""
    root = tmp_path / "reg"
    src = V1 / "default_2445MHz_numpy.json"
    doc = json.loads(src.read_text())
    hw = root / "cpu" / doc["key"]["hardware_id"]
    (hw / "calibrations" / "history").mkdir(parents=True)
    shutil.copy(V1.parent / "specs" / "amd_epyc_zen3.json", hw / "spec.json")  # the real spec that file was filed with
    shutil.copy(src, hw / "calibrations" / src.name)
    older = dict(doc, metadata={**doc["metadata"], "calibration_date": "2026-11-20T10:00:00+00:00"})
    (hw / "calibrations" / "history" / "default_2445MHz_numpy.20261120T100000000000Z.json").write_text(
        json.dumps(older, indent=2))
    return root


def _versions(root: Path) -> list[int]:
    return sorted(json.loads(p.read_text())["schema_version"] for p in root.rglob("*.json")
                  if p.name != "spec.json" and not p.name.endswith(".format1.json"))


def test_upgrade_rewrites_every_file_keeps_originals_and_is_idempotent(tmp_path: Path) -> None:
    root = _registry(tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*.json")}
    assert _versions(root) == [1, 1]
    dry = upgrade_registry(root, dry_run=True)
    assert [s.action for s in dry] == ["upgraded", "upgraded"]
    assert {p: p.read_bytes() for p in root.rglob("*.json")} == before  # dry run wrote nothing
    steps = upgrade_registry(root)
    assert [s.action for s in steps] == ["upgraded", "upgraded"]
    assert _versions(root) == [2, 2]
    kept = sorted(root.rglob("*.format1.json"))
    assert len(kept) == 2 and {k.read_bytes() for k in kept} == {before[s.path] for s in steps}
    assert validate_registry(root).ok
    entries = Registry(root, emit_warnings=False).list_calibrations(history=True)
    assert len(entries) == 2  # the kept originals are not listed as calibrations
    again = upgrade_registry(root)
    assert [s.action for s in again] == ["current", "current"]
    assert sorted(root.rglob("*.format1.json")) == kept


def test_an_interrupted_upgrade_loses_nothing_and_a_rerun_finishes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = _registry(tmp_path)
    real = upgrade_mod.atomic_write_text
    calls = {"n": 0}

    def dies_on_the_replace(path: Path, text: str, root_: Path | None = None) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the original is kept, then the process dies before the file is replaced
            raise KeyboardInterrupt
        real(path, text, root_)

    monkeypatch.setattr(upgrade_mod, "atomic_write_text", dies_on_the_replace)
    with pytest.raises(KeyboardInterrupt):
        upgrade_registry(root)
    monkeypatch.setattr(upgrade_mod, "atomic_write_text", real)
    assert validate_registry(root).ok and _versions(root) == [1, 1]
    upgrade_registry(root)
    assert _versions(root) == [2, 2]
    assert len(list(root.rglob("*.format1.json"))) == 2  # the first run's kept copy was reused


def test_a_v1_file_with_unknown_keys_is_reported_not_upgraded(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    root = _registry(tmp_path)
    current = next((root / "cpu").glob("*/calibrations/*.json"))
    doc = json.loads(current.read_text())
    doc["surprise"] = 1
    current.write_text(json.dumps(doc))
    assert main(["--registry", str(root)]) == 1
    out = capsys.readouterr().out
    assert "error" in out and "surprise" in out
    assert json.loads(current.read_text())["schema_version"] == 1  # left as it was


def test_a_packed_older_history_file_is_upgraded_and_stays_packed(tmp_path: Path) -> None:
    """A history file packed in format 1 (as --compress-history would pack one a future format makes old):
    upgraded in place, packed again, its original kept beside it packed too (a registry's history is most of its
    size: 76 files of this project's, ~1 MB each unpacked)."""
    import gzip

    from hwcal.registry.fsio import read_registry_bytes

    root = _registry(tmp_path)
    plain = next(root.rglob("history/*.json"))
    packed = plain.with_name(plain.name + ".gz")
    original = plain.read_bytes()
    packed.write_bytes(gzip.compress(original))
    plain.unlink()
    steps = {s.path.name: s for s in upgrade_registry(root)}
    assert steps[packed.name].action == "upgraded", steps[packed.name].message
    assert json.loads(read_registry_bytes(packed))["schema_version"] == 2  # still packed, now format 2
    assert len([p for p in root.rglob("history/*.format1.json.gz") if read_registry_bytes(p) == original]) == 1
    assert not [p for p in root.rglob("history/*.format1.json") if p.read_bytes() == original]
    assert validate_registry(root).ok


def test_the_writer_keeps_an_older_format_filed_straight_into_history_unpacked(tmp_path: Path) -> None:
    """An older runner's file merged as history stays plain: hwcal-upgrade rewrites it."""
    from datetime import datetime, timezone

    from hwcal.naming import CalibrationKey
    from hwcal.registry.writer import write_history

    doc = json.loads((V1 / "default_2445MHz_numpy.json").read_text())
    root = _registry(tmp_path)
    path = write_history(root, CalibrationKey(**doc["key"]),
                         json.dumps(doc), datetime(2026, 11, 1, tzinfo=timezone.utc))
    assert path.name.endswith("Z.json") and json.loads(path.read_text())["schema_version"] == 1


def _filed_above_one(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A registry holding a format-2 file as the writer filed one before efficiencies were bounded: a BLAS
    call and a STREAM point above their tiers' roofs (2.63x, 1.52x), an in-cache STREAM size set against the
    DRAM plateau in ``operation_profiles`` (3.8x in this project's Zen 3 files)."""
    from hwcal.document.format2 import recompose, to_format_2

    root = _registry(tmp_path)
    current = next(p for p in root.rglob("calibrations/*.json"))
    doc = to_format_2(json.loads(current.read_text()))
    ceiling = {"tier": "dram", "threads": 2, "kernel": "triad", "gbps": 61.45, "working_set_bytes": 134217728}
    doc["blas"] = [{"operation": "scal", "precision": "fp32", "n": 8388608, "bytes": 67108864, "flops": 8388608,
                    "gflops_best": 40.6, "gbps_best": 161.75, "rounds": 10,
                    "time_s": dict.fromkeys(("min", "max", "mean", "median"), 4.149e-4) | {"stddev": 0.0, "iqr": 0.0},
                    "kernel": "x.mul_(a)", "threads": 2, "at_dram": False, "efficiency": 2.632,
                    "efficiency_ceiling": ceiling, "efficiency_vs_measured_dram": 1.5,
                    "efficiency_vs_theoretical": None}]
    sweep = doc["memory"]["sweep"][0]
    sweep.update(efficiency=1.52, efficiency_ceiling={**ceiling, "tier": "l1", "threads": 1, "gbps": 8.5})
    doc = recompose(doc)
    current.write_text(json.dumps(doc, indent=2))
    return root, current, doc


def _efficiencies(doc: Any) -> list[float]:
    out: list[float] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k.startswith("efficiency") and isinstance(v, float):
                out.append(v)
            out += _efficiencies(v)
    elif isinstance(doc, list):
        for v in doc:
            out += _efficiencies(v)
    return out


def test_efficiencies_above_one_are_not_kept_the_measurements_are_and_the_original_is(tmp_path: Path) -> None:
    """An efficiency is a share of its ceiling: a format-2 file that filed one above 1 is rewritten with it null
    and a warning saying what it was, the parts derived from it composed again; every measurement stays, the
    original bytes are kept as a .prebound copy, and a second run finds the file current."""
    from hwcal.registry.fsio import read_registry_bytes

    root, current, before = _filed_above_one(tmp_path)
    assert max(_efficiencies(before)) > 1
    original = current.read_bytes()
    [step] = [s for s in upgrade_registry(root) if s.path == current]
    assert step.action == "upgraded" and "bounded" in step.message and step.kept is not None
    assert step.kept.name.endswith(".prebound.json.gz") and read_registry_bytes(step.kept) == original
    after = json.loads(current.read_text())
    assert all(0 <= e <= 1 for e in _efficiencies(after))
    blas, sweep = after["blas"][0], after["memory"]["sweep"][0]
    assert blas["efficiency"] is None and blas["efficiency_vs_measured_dram"] is None
    assert blas["gbps_best"] == 161.75 and blas["time_s"] == before["blas"][0]["time_s"]  # measurements kept
    assert sweep["efficiency"] is None and "1.52x the l1 roof" in sweep["efficiency_note"]
    assert sweep["gbps_best"] == before["memory"]["sweep"][0]["gbps_best"]
    assert any("efficiency 2.63 was above its ceiling" in w for w in after["warnings"])
    assert validate_registry(root).ok
    assert Registry(root, emit_warnings=False).list_calibrations(history=True)  # the .prebound copy is not listed
    assert [s.action for s in upgrade_registry(root) if s.path == current] == ["current"]


def test_a_layer_efficiency_above_one_is_bounded_with_its_note() -> None:
    """Layer sections too (a Zen 5 torch history file filed an attention decode at 2.217x its DRAM tier)."""
    from hwcal.document.rebound import _bound_layers

    doc = {"attention": {"results": [{"name": "llama2_7b.decode1024", "precision": "fp32", "gbps_best": 80.0,
                                      "efficiency": 2.217, "efficiency_vs_bandwidth": 2.217,
                                      "efficiency_vs_peak": 0.02}]}}
    changed = _bound_layers(doc)
    entry = doc["attention"]["results"][0]
    assert entry["efficiency"] is None and entry["efficiency_vs_bandwidth"] is None
    assert entry["efficiency_vs_peak"] == 0.02 and entry["gbps_best"] == 80.0
    assert entry["efficiency_note"].startswith("2.22x its ceiling")
    assert [c.split(":")[0] for c in changed] == ["attention", "attention"]
    assert changed[0].startswith("attention: llama2_7b.decode1024 fp32: efficiency 2.22 was above")


def test_a_gemm_above_its_peak_keeps_its_figure_and_loses_its_efficiency(tmp_path: Path) -> None:
    """The H100 file of 2026-11-26 filed its fp16 GEMM at 1.005x the peak: hwcal-upgrade turns that format-1 file
    into a valid format 2 with no efficiency there (a note and a warning say why), every figure kept."""
    src = V1 / "700W_1980MHz_pytorch.json"
    v1 = json.loads(src.read_text())
    hw = tmp_path / "reg" / "gpu" / v1["key"]["hardware_id"]
    (hw / "calibrations").mkdir(parents=True)
    shutil.copy(V1.parent / "specs" / "h100_sxm5.json", hw / "spec.json")
    shutil.copy(src, hw / "calibrations" / src.name)
    [step] = upgrade_registry(tmp_path / "reg")
    assert step.action == "upgraded"
    after = json.loads((hw / "calibrations" / src.name).read_text())
    [over] = [e for e in after["gemm"] if "efficiency_note" in e]
    assert (over["precision"], over["n"]) == ("fp16", 16384) and "efficiency" not in over
    assert over["efficiency_note"].startswith("1.005x the peak: the peak is wrong")
    assert over["gflops_best"] == next(e for e in v1["gemm"] if e["precision"] == "fp16" and e["n"] == 16384)[
        "gflops_best"]
    assert "fp16" not in after["precision_detail"]["efficiency_by_precision"]
    assert after["precision_detail"]["efficiency_by_precision"]["fp32"] <= 1
    assert any(w.startswith("gemm: fp16 n=16384") for w in after["warnings"])
    assert validate_registry(tmp_path / "reg").ok


def test_a_format_2_file_missing_its_parts_is_one_clear_error_and_left_as_it_was(tmp_path: Path) -> None:
    root = _registry(tmp_path)
    current = next(p for p in root.rglob("calibrations/*.json"))
    doc = json.loads(current.read_text())
    bad = json.dumps({"schema_version": 2, "key": doc["key"], "metadata": doc["metadata"]})
    current.write_text(bad)
    [step] = [s for s in upgrade_registry(root) if s.path == current]
    assert step.action == "error" and "precision_matrix" in step.message and "\n" not in step.message
    assert step.message.startswith("not an hwcal format-2 calibration") and current.read_text() == bad
