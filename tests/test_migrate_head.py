"""Importing the original registry at its head (real files of every family, copied unmodified into
tests/data/seed-registry-head): every file accounted for, power modes from the files themselves, multi-core
memory in the all-core fields of the CPU's key, DLA runs and accelerator/DSP specs as device types of their
own, efficiency curves as validation data, archived runs as history, zone-less dates stated, hostile
files (a FIFO, an over-limit file) reported in one line without hanging."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hwcal import Registry
from hwcal.document.schema import schema_errors
from hwcal.interop.legacy_calibration import legacy_calibration_to_v1
from hwcal.interop.legacy_common import parse_legacy_date
from hwcal.interop.migrate import counts_by_family, execute, make_strict, plan_migration
from hwcal.interop.migrate_keys import MigrationStep, plan_key
from hwcal.registry.fsio import read_registry_bytes
from hwcal.registry.validate import validate_registry
from tests.fixtures_registry import REPO

HEAD_ROOT = Path(__file__).resolve().parent / "data" / "seed-registry-head"  # its README and hardware_registry/
HEAD = HEAD_ROOT / "hardware_registry"
NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)
NX_CPU = "cpu/jetson_orin_nx_16gb_cpu"
AGX_GPU = "gpu/jetson_orin_agx_gpu"
# The board spec that ties the AGX GPU to its CPU in the original registry (boards/jetson_orin_agx/spec.json,
# its compute_units) and a spec for that CPU (identity only, no peaks): written by the tests that need them,
# the samples carry neither folder.
AGX_BOARD = {"id": "jetson_orin_agx", "model": "Jetson AGX Orin Developer Kit", "device_type": "board",
             "compute_units": [{"id": "jetson_orin_agx_cpu", "type": "cpu"},
                               {"id": "jetson_orin_agx_gpu", "type": "gpu"},
                               {"id": "nvidia_dla_orin", "type": "accelerator"}]}
AGX_CPU = {"id": "jetson_orin_agx_cpu", "model": "Jetson Orin AGX (CPU)", "device_type": "cpu", "theoretical_peaks": {}}


def _copy(dest: Path) -> Path:
    shutil.copytree(HEAD_ROOT, dest)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dest


def _with_board(dest: Path) -> Path:
    src = _copy(dest)
    for folder, spec in (("boards/jetson_orin_agx", AGX_BOARD), ("cpu/jetson_orin_agx_cpu", AGX_CPU)):
        (src / "hardware_registry" / folder).mkdir(parents=True)
        (src / "hardware_registry" / folder / "spec.json").write_text(json.dumps(spec))
    return src


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[MigrationStep]]:
    base = tmp_path_factory.mktemp("head")
    root = base / "registry"
    actions = execute(plan_migration(_with_board(base / "source"), root, NOW), root)
    return root, actions


def _doc(root: Path, rel: str) -> dict[str, Any]:
    return json.loads((root / rel).read_text())


def _by_source(actions: list[MigrationStep], name: str) -> list[MigrationStep]:
    return [a for a in actions if a.source.name == name]


def test_every_file_is_accounted_for(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, actions = imported
    files = {p for p in (root.parent / "source").rglob("*") if p.is_file()}
    assert {a.source for a in actions} == files  # no file without a step
    assert not [a for a in actions if a.action == "error"], [a.message for a in actions if a.action == "error"]
    counts = counts_by_family(actions)
    assert sum(row["files"] for row in counts.values()) == len(files) == 24
    assert counts["spec"]["spec"] == 8 and counts["other"]["ignored"] == 1  # the samples' README
    assert counts["dla_calibration"] == {**counts["dla_calibration"], "files": 2, "write": 1, "skip": 1}
    assert counts["archived_calibration"]["history"] == 1
    assert counts["efficiency_curves"]["validation"] == 1 and counts["efficiency_curves"]["skip"] == 1
    assert validate_registry(root).ok, validate_registry(root).errors


def test_power_modes_come_from_the_files_and_never_collide(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, actions = imported
    nx = [a for a in actions if a.rel.startswith(NX_CPU)]
    keys = {a.source.name: a.key.filename for a in nx if a.key is not None}
    # Before: 10W and 15W both keyed schedutil_1190MHz_numpy, 15W and MAXN both schedutil_1984MHz_numpy.
    assert keys["10W_960MHz_numpy.json"] == "10W_1190MHz_numpy.json"
    assert keys["15W_960MHz_numpy.json"] == "15W_1190MHz_numpy.json"
    assert keys["15W_1190MHz_numpy.json"] == "15W_1984MHz_numpy.json"
    assert keys["MAXN_1420MHz_numpy_20260128T210122Z.json"] == "MAXN_1984MHz_numpy.json"
    modes: dict[str, set[str]] = {}
    for a in nx:
        if a.key is not None and a.doc is not None:
            modes.setdefault(a.key.filename, set()).add(a.doc["metadata"]["power_mode"])
            assert "governor" not in a.doc["metadata"]["power_mode_source"]
    assert all(len(m) == 1 for m in modes.values()), modes  # a key never holds two modes
    doc = _doc(root, f"{NX_CPU}/calibrations/10W_1190MHz_numpy.json")
    assert doc["metadata"]["power_mode_source"] == "original file: cpu_clock.power_mode_name"
    assert doc["metadata"]["imported"]["legacy_key"] == "10W_960MHz_numpy"  # the original key, kept
    fifteen = _doc(root, f"{NX_CPU}/calibrations/15W_1984MHz_numpy.json")
    assert fifteen["metadata"]["power_mode_source"] == "original file name"
    assert any("record different clock ceilings (1190, 1421, 1984 MHz)" in f
               for f in fifteen["metadata"]["imported"]["faults"])


def test_zone_less_dates_are_stated(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, _ = imported
    stamped = _doc(root, f"{NX_CPU}/calibrations/25W_1498MHz_numpy.json")["metadata"]
    # 15:56:29 local, written at 20:57:44Z: the host was at UTC-05:00
    assert stamped["calibration_date"] == "2026-01-28T20:56:29.811639+00:00"
    assert stamped["imported"]["calibration_date_zone"].startswith("inferred UTC-05:00")
    plain = _doc(root, f"{NX_CPU}/calibrations/10W_1190MHz_numpy.json")["metadata"]
    assert plain["imported"]["calibration_date_zone"] == "unknown"
    assert plain["imported"]["original_calibration_date"] == "2026-01-28T11:13:49.515406"
    assert any("has no time zone" in f for f in plain["imported"]["faults"])
    assert parse_legacy_date("2026-02-01T14:29:26.811284+00:00", "d").zone == "recorded"


def test_an_uncertain_order_is_said() -> None:
    rel = f"{NX_CPU}/calibrations/15W_960MHz_numpy.json"
    legacy = json.loads((HEAD / rel).read_text())
    one = legacy_calibration_to_v1(legacy, rel=rel, type_folder="cpu", hardware_folder="jetson_orin_nx_16gb_cpu",
                                   imported_at=NOW)
    other = legacy_calibration_to_v1(legacy, rel=rel, type_folder="cpu", hardware_folder="jetson_orin_nx_16gb_cpu",
                                     imported_at=NOW, source_sha256="1" * 64)
    other.doc["metadata"]["calibration_date"] = "2026-01-28T14:14:32.787560+00:00"  # a run 4 h later, no zone
    from hwcal.interop.legacy_files import LegacyFile

    lf = LegacyFile(HEAD / rel, "calibration", rel, "cpu", "jetson_orin_nx_16gb_cpu")
    steps = plan_key(Path("/nonexistent"), one.key, [(lf, one), (lf, other)], set())
    assert [s.action for s in steps] == ["history", "write"]
    assert all("the order is uncertain" in s.message for s in steps)


def test_mode_ids_are_checked_against_the_board(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, _ = imported
    doc = _doc(root, f"{AGX_GPU}/calibrations/MODE50W_816MHz_pytorch.json")
    clock = doc["metadata"]["clock"]
    assert "power_mode_id" not in clock and "nvpmodel_mode" not in clock["gpu"]
    assert any("50 is the watts in its name: MODE_50W is id 3 on the Jetson AGX Orin" in f
               for f in doc["metadata"]["imported"]["faults"])
    dla = _doc(root, "accelerator/nvidia_dla_orin/calibrations/MAXN_1300MHz_tensorrt.json")
    assert dla["metadata"]["clock"]["power_mode_id"] == 0  # MAXN is id 0 in the table: kept
    nx = _doc(root, f"{NX_CPU}/calibrations/MAXN_1984MHz_numpy.json")
    assert nx["metadata"]["clock"]["power_mode_id"] == 0
    assert any("kept but not checked: hwcal has no nvpmodel table" in f for f in nx["metadata"]["imported"]["faults"])


def test_multicore_memory_goes_to_the_cpu_key_with_every_figure(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, actions = imported
    name = "MODE50W_306MHz_pytorch_20260203T150450Z.json"
    legacy = json.loads((HEAD / AGX_GPU / "calibrations" / name).read_text())
    mc = next(p for p in legacy["operation_profiles"].values() if p["operation_type"] == "stream_multicore")
    gpu = _doc(root, f"{AGX_GPU}/calibrations/MODE50W_816MHz_pytorch.json")
    # the GPU's own bandwidth is its triad of the largest array; no CPU figure, no kernel named "multicore"
    assert "memory" not in gpu and {s["kernel"] for s in gpu["metadata"]["imported"]["stream"]} == \
        {"copy", "scale", "add", "triad"}
    triads = [s for s in gpu["metadata"]["imported"]["stream"] if s["kernel"] == "triad"]
    largest = max(triads, key=lambda s: s["size_mb"])
    assert gpu["measured_bandwidth_gbps"] == pytest.approx(largest["gbps_mean"], rel=1e-3)
    assert gpu["measured_bandwidth_gbps"] != pytest.approx(mc["achieved_bandwidth_gbps"], rel=1e-2)
    host = [a for a in _by_source(actions, name) if a.family == "host_cpu_memory"]
    assert [a.action for a in host] == ["write"] and host[0].key is not None
    assert host[0].key.filename == "MODE50W_1498MHz_numpy.json" and host[0].key.hardware_id == "jetson_orin_agx_cpu"
    cpu = _doc(root, "cpu/jetson_orin_agx_cpu/calibrations/MODE50W_1498MHz_numpy.json")
    multicore = cpu["memory"]["multicore"]
    params = mc["extra_params"]
    assert multicore["threads"] == params["num_cores"] == 12
    assert multicore["per_thread_gbps"] == pytest.approx(params["per_core_bw_gbps"], rel=1e-4)
    assert multicore["aggregate_gbps"] == pytest.approx(params["aggregate_bw_gbps"], rel=1e-4)
    assert multicore["scaling"] == [{"threads": 1, "gbps": pytest.approx(params["single_core_bw_gbps"], rel=1e-4)},
                                    {"threads": 12, "gbps": pytest.approx(params["aggregate_bw_gbps"], rel=1e-4)}]
    assert "sum of the per-core best rounds, an upper bound" in multicore["method"]
    assert multicore["scaling_efficiency"] > 1.0 and any("scaling efficiency 1.09 > 1" in w for w in cpu["warnings"])
    assert cpu["metadata"]["selection"]["partial"] is True and cpu["metadata"]["framework"] == "numpy"


def test_concurrent_only_files_file_the_cpu_engine_and_skip_the_failed_gpu(
        imported: tuple[Path, list[MigrationStep]]) -> None:
    root, actions = imported
    steps = _by_source(actions, "MAXN_306MHz_pytorch_20260202T133412Z.json")
    assert sorted((a.family, a.action) for a in steps) == [("calibration", "skip"), ("host_cpu_memory", "write")]
    assert "no measurement" in next(a.message for a in steps if a.action == "skip")
    cpu = _doc(root, "cpu/jetson_orin_agx_cpu/calibrations/MAXN_2202MHz_numpy.json")
    assert cpu["memory"]["multicore"]["aggregate_gbps"] == pytest.approx(36.658, rel=1e-4)
    assert cpu["metadata"]["imported"]["concurrent_stream"]["isolated_gbps"]["gpu"] == 0.0


def test_an_empty_run_is_skipped_with_the_reason_and_strict_refuses_it(tmp_path: Path) -> None:
    actions = plan_migration(_copy(tmp_path / "src"), tmp_path / "reg", NOW)
    empty = _by_source(actions, "MAXN_306MHz_pytorch_20260202T131916Z.json")
    assert [a.action for a in empty] == ["skip"] and "an empty run" in empty[0].message
    no_cpu = [a for a in actions if a.family == "host_cpu_memory"]  # no board spec, no CPU spec in the samples
    assert {a.action for a in no_cpu} == {"skip"} and all("has no CPU key" in a.message for a in no_cpu)
    make_strict(actions)
    assert "skip" not in {a.action for a in actions}
    assert empty[0].action == "error" and empty[0].message.startswith("--strict: not imported")


def test_dla_runs_are_accelerator_calibrations(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, actions = imported
    doc = _doc(root, "accelerator/nvidia_dla_orin/calibrations/MAXN_1300MHz_tensorrt.json")
    assert schema_errors(doc) == [] and doc["key"]["framework"] == "tensorrt"
    [run] = doc["accelerator_runs"]
    legacy = json.loads((HEAD / "accelerator/nvidia_dla_orin/calibrations/dla0_fp16_maxn_20260201T142926Z.json")
                        .read_text())
    assert (run["engine"], run["precision"]) == ("dla0", "fp16")
    assert len(run["results"]) == len(legacy["layer_benchmarks"]) + len(legacy["model_benchmarks"])
    first = legacy["layer_benchmarks"][0]
    assert run["results"][0]["time_s"]["median"] == pytest.approx(first["latency_ms"] / 1e3, rel=1e-5)
    assert any("boost clock 1300 MHz (not measured)" in f for f in doc["metadata"]["imported"]["faults"])
    failed = _by_source(actions, "dla1_int8_mode_50w_20260131T164729Z.json")
    assert [a.action for a in failed] == ["skip"] and "all 21 benchmarks failed" in failed[0].message
    listed = {e.path.name for e in Registry(root).list_calibrations() if e.key.device_type == "accelerator"}
    assert listed == {"MAXN_1300MHz_tensorrt.json"}


def test_accelerator_and_dsp_specs_are_their_own_device_types(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, _ = imported
    tpu = _doc(root, "accelerator/google_coral_edge_tpu/spec.json")
    assert tpu["device_type"] == "accelerator" and "'tpu' filed as 'accelerator'" in tpu["notes"]
    assert _doc(root, "dsp/qualcomm_qrb5165/spec.json")["device_type"] == "dsp"


def test_efficiency_curves_are_validation_data(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, actions = imported
    doc = _doc(root, "gpu/jetson_orin_agx_gpu/validation/MODE50W_fp16_efficiency_curves.json")
    assert schema_errors(doc, "validation") == []
    assert (doc["hardware_id"], doc["power_mode"], doc["precision"]) == ("jetson_orin_agx_gpu", "MODE_50W", "fp16")
    legacy = json.loads((HEAD / "cuda/jetson_orin_agx_50w/fp16/efficiency_curves.json").read_text())
    for op, curve in legacy["curves"].items():
        measured = [p for p in curve["data_points"] if p["source"] == "measured"]
        assert [p["efficiency"]["mean"] for p in doc["curves"][op]["points"]] == \
            pytest.approx([p["efficiency_mean"] for p in measured], rel=1e-5)
        assert doc["curves"][op]["points"][0]["models"] == measured[0]["source_models"]
    i7 = _by_source(actions, "efficiency_curves.json")
    assert {a.action for a in i7 if "i7_12700K" in a.rel} == {"skip"}  # no spec of that CPU in the samples


def test_an_archived_run_is_history_never_current(imported: tuple[Path, list[MigrationStep]]) -> None:
    root, actions = imported
    [step] = _by_source(actions, "25W_408MHz_pytorch_throttled.json")
    assert step.action == "history" and step.family == "archived_calibration"
    assert not (root / "gpu/jetson_orin_nx_16gb_gpu/calibrations/25W_408MHz_pytorch.json").exists()
    assert step.target is not None
    doc = json.loads(read_registry_bytes(step.target))
    assert "throttled" in doc["metadata"]["imported"]["archived"]
    assert any("archived by the original registry" in w for w in doc["warnings"])


def test_rerunning_the_import_changes_nothing(tmp_path: Path) -> None:
    src, root = _with_board(tmp_path / "src"), tmp_path / "reg"
    execute(plan_migration(src, root, NOW), root)
    before = {p: p.read_bytes() for p in root.rglob("*.json")}
    again = plan_migration(src, root, NOW)
    assert {a.action for a in again} <= {"unchanged", "skip", "ignored"}
    assert {a.source.name for a in again if a.action == "skip"} == \
        {"MAXN_306MHz_pytorch_20260202T131916Z.json", "MAXN_306MHz_pytorch_20260202T133412Z.json",
         "dla1_int8_mode_50w_20260131T164729Z.json", "efficiency_curves.json"}
    execute(again, root)
    assert {p: p.read_bytes() for p in root.rglob("*.json")} == before


# ---- hostile input (issue 22): a FIFO and an over-limit file ---------------------------------------

def test_a_fifo_and_an_over_limit_file_are_reported_without_hanging(tmp_path: Path) -> None:
    src = tmp_path / "src"
    cal = src / "cpu" / "x_cpu" / "calibrations"
    cal.mkdir(parents=True)
    os.mkfifo(cal / "7W_960MHz_numpy.json")
    with open(cal / "15W_960MHz_numpy.json", "wb") as f:
        f.truncate(65 * 2**20)  # sparse: over the 64 MiB a registry file may have, without writing it
    done = subprocess.run([sys.executable, str(REPO / "tools" / "migrate_calibrations.py"), str(src), "--registry",
                           str(tmp_path / "reg"), "--dry-run"], capture_output=True, text=True, timeout=120,
                          cwd=REPO, check=False)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 2
    assert any("is a FIFO, not a regular file; not read" in e for e in errors)
    assert any("over the 64 MiB a registry file may have; not read" in e for e in errors)


def test_a_fifo_given_as_the_source_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "one.json")
    [step] = plan_migration(tmp_path / "one.json", tmp_path / "reg", NOW)
    assert step.action == "error" and "FIFO" in step.message


# ---- the rules on their own ----------------------------------------------------------------------------

def test_mode_ids_are_dropped_when_they_are_watts_or_contradict_the_table() -> None:
    from hwcal.interop.jetson_modes import AGX_ORIN, ORIN_NANO_SUPER, check_mode_id

    assert check_mode_id(3, "x", "MODE_50W", AGX_ORIN) == (3, None)
    kept, fault = check_mode_id(50, "x", "MODE_50W", AGX_ORIN)
    assert kept is None and fault is not None and "MODE_50W is id 3" in fault
    kept, fault = check_mode_id(1, "x", "MAXN", AGX_ORIN)
    assert kept is None and fault is not None and "not this mode's id" in fault
    assert check_mode_id(2, "x", "MAXN_SUPER", ORIN_NANO_SUPER) == (2, None)
    kept, fault = check_mode_id(10, "x", "10W", None)  # no table: the watts are still recognised
    assert kept is None and fault is not None and "watts" in fault
    kept, fault = check_mode_id(0, "x", "MAXN", None)
    assert kept == 0 and fault is not None and "not checked" in fault
    assert check_mode_id(True, "x", "MAXN", None) == (None, None)


def test_a_governor_is_never_a_jetson_power_mode() -> None:
    from hwcal.interop.legacy_common import parse_legacy_name
    from hwcal.interop.legacy_power import power_mode

    meta = {"cpu_clock": {"governor": "schedutil"}}
    faults: list[str] = []
    assert power_mode(meta, "cpu", parse_legacy_name("schedutil_729MHz_numpy.json"), True, faults)[0] == "unknown"
    assert faults and "governor" in faults[0]
    # off a Jetson the original named files after the power plan it kept in the governor field, as hwcal does
    assert power_mode({"cpu_clock": {"governor": "Balanced"}}, "cpu",
                      parse_legacy_name("Balanced_3801MHz_numpy.json"), False, [])[0] == "Balanced"
    assert power_mode({"cpu_clock": {"governor": "schedutil", "power_mode_name": "MODE_15W"}}, "cpu",
                      parse_legacy_name("MODE15W_447MHz_numpy_20260130T033700Z.json"), True, [])[0] == "MODE_15W"


def test_efficiency_curves_find_the_chip_under_its_other_name() -> None:
    from hwcal.interop.legacy_curves import same_chip

    known = {"intel_12th_gen_intelr_coretm_i7_12700k", "jetson_orin_agx_gpu", "ryzen_9_8945hs_w_radeon_780m_graphics"}
    assert same_chip("i7_12700k", "cpu", known)[0] == "intel_12th_gen_intelr_coretm_i7_12700k"
    assert same_chip("jetson_orin_agx", "gpu", known)[0] == "jetson_orin_agx_gpu"
    assert same_chip("amd_ryzen_9_8945hs_w_radeon_780m_graphics", "cpu", known)[0] == \
        "ryzen_9_8945hs_w_radeon_780m_graphics"
    assert same_chip("h100", "gpu", known) == (None, "")


def test_hidden_and_symlinked_folders_are_listed_not_entered(tmp_path: Path) -> None:
    from hwcal.interop.legacy_files import find_legacy_files

    (tmp_path / "src" / "cpu" / "x_cpu").mkdir(parents=True)
    (tmp_path / "src" / ".git").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "src" / "cpu" / "linked").symlink_to(tmp_path / "elsewhere")
    found = {f.path.name: f for f in find_legacy_files(tmp_path / "src")}
    assert found[".git"].family == "other" and "not entered" in found[".git"].reason
    assert found["linked"].family == "other" and "not followed" in found["linked"].reason


def test_the_tool_counts_per_family_and_strict_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hwcal.cli import migrate_calibrations

    src = _copy(tmp_path / "src")
    code = migrate_calibrations.main([str(src), "--registry", str(tmp_path / "reg"), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "22 file(s) seen (dry run: nothing written); per family:" in out
    assert any(line.split()[:3] == ["dla_calibration", "2", "0"] for line in out.splitlines())
    code = migrate_calibrations.main([str(src), "--registry", str(tmp_path / "reg"), "--dry-run", "--strict"])
    out, err = capsys.readouterr()
    errors = err.splitlines()
    assert code == 1 and errors and all(": error: " in e and "--strict: not imported" in e for e in errors)
    # the 6 skips of a plain run (empty run, failed DLA run, curves of an unknown CPU, host CPUs without a key)
    assert len(errors) == sum(line.startswith("error") for line in out.splitlines()) == 6 and "0 skipped" in out
