"""Importing the original registry: on its real files (copied into tests/data/seed-registry), the
measurements are kept, the known faults are flagged, nothing newer is overwritten, and a file that
cannot be read is reported without stopping the rest."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hwcal import Registry
from hwcal.document.schema import schema_errors
from hwcal.interop.legacy_calibration import legacy_calibration_to_v1
from hwcal.interop.legacy_common import LegacyFormatError
from hwcal.interop.legacy_files import find_legacy_files
from hwcal.interop.legacy_spec import legacy_spec_to_v1
from hwcal.interop.migrate import execute, plan_migration
from hwcal.registry.fsio import read_registry_bytes
from hwcal.registry.layout import history_files
from hwcal.registry.validate import validate_registry
from tests.fakes import matrix_and_detail
from tests.fixtures_registry import SEED, copy_seed, file_calibration, migrated

__all__ = ["migrated"]  # the session fixture, imported for pytest

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)
GPU = "gpu/jetson_orin_nano_gpu"


def _doc(root: Path, rel: str) -> dict[str, Any]:
    return json.loads(read_registry_bytes(root / rel))


def _legacy(rel: str) -> dict[str, Any]:
    if not (SEED / rel).exists():
        pytest.skip(f"seed file {rel} not present")
    return json.loads((SEED / rel).read_text())


def _history(root: Path, rel_dir: str) -> list[Path]:
    return history_files(root / rel_dir / "calibrations" / "history")


def test_the_seed_registry_imports_into_a_valid_registry(migrated: Path) -> None:
    report = validate_registry(migrated)
    assert report.ok, report.errors
    assert (report.specs_checked, report.calibrations_checked) == (5, 6)
    names = {e.path.name for e in Registry(migrated).list_calibrations()}
    # keyed at each mode's clock ceiling, not the idle samples (306, 729, 883 MHz) the old names carried; the
    # seed's CPU files name only the governor (schedutil), which is no power mode on a Jetson: mode unknown
    assert names == {"7W_408MHz_pytorch.json", "15W_612MHz_pytorch.json", "unknown_960MHz_numpy.json",
                     "unknown_960MHz_pytorch.json"}
    assert (migrated / "board" / "jetson_orin_nano" / "spec.json").exists()  # 'boards' -> board


def test_older_calibrations_of_a_key_are_kept_as_history(migrated: Path) -> None:
    gpu = _history(migrated, GPU)
    assert [p.name for p in gpu] == ["7W_408MHz_pytorch.20251127T123114925327Z.json.gz"]  # history is packed
    assert _doc(migrated, str(gpu[0].relative_to(migrated)))["metadata"]["imported"]["source"] == \
        f"{GPU}/calibration.json"
    cpu = _history(migrated, "cpu/jetson_orin_nano_cpu")
    assert [p.name for p in cpu] == ["unknown_960MHz_numpy.20251127T120032924214Z.json.gz"]
    current = _doc(migrated, "cpu/jetson_orin_nano_cpu/calibrations/unknown_960MHz_numpy.json")
    assert current["metadata"]["imported"]["legacy_key"] == "schedutil_729MHz_numpy"  # 13:43 beats 12:00


def test_measurements_are_kept(migrated: Path) -> None:
    legacy = _legacy(f"{GPU}/calibrations/7W_306MHz_pytorch.json")
    doc = _doc(migrated, f"{GPU}/calibrations/7W_408MHz_pytorch.json")
    imported = doc["metadata"]["imported"]
    measured = [(p, r) for prof in legacy["operation_profiles"].values() if prof["operation_type"] == "blas3_gemm"
                for p, r in prof["precision_results"].items() if r["supported"] and r["min_latency_ms"]]
    assert len(imported["gemm"]) == len(measured) > 0
    by_key = {(g["precision"], g["n"]): g for g in imported["gemm"]}
    for p, r in measured:
        g = by_key[(p, r["test_size"])]
        assert g["time_s"]["min"] == pytest.approx(r["min_latency_ms"] / 1e3, rel=1e-5)
        assert g["gflops_mean"] == pytest.approx(r["measured_gops"], rel=1e-4)
        assert g["rounds"] == r["num_trials"] and g["verified"] is False
    peaks = matrix_and_detail(doc)["peak_gflops_by_precision"]
    fp16 = max((g for g in imported["gemm"] if g["precision"] == "fp16"), key=lambda g: g["gflops_best"])
    assert peaks["fp16"] == fp16["gflops_best"] == pytest.approx(2 * 2048**3 / fp16["time_s"]["min"] / 1e9, rel=1e-4)
    assert doc["measured_bandwidth_gbps"] == pytest.approx(23.24, abs=0.01)  # triad, 512 MB
    assert len(imported["stream"]) == 28 and imported["legacy_summary"]["measured_bandwidth_gbps"] > 39
    assert len(doc["metadata"]["preflight"]["checks"]) == len(legacy["metadata"]["preflight"]["checks"])
    assert doc["metadata"]["clock"]["gpu"]["sm_clock_mhz"] == 306
    assert doc["metadata"]["power_mode"] == "7W" and doc["key"]["freq_mhz"] == 408
    assert doc["metadata"]["calibration_date"] == "2025-11-27T14:11:26.719146+00:00"


def test_efficiency_above_one_is_flagged(migrated: Path) -> None:
    doc = _doc(migrated, f"{GPU}/calibrations/7W_408MHz_pytorch.json")
    assert "fp16" not in matrix_and_detail(doc)["efficiency_by_precision"]  # above its peak: not a share
    assert any(w.startswith("fp16: measured") and "the peak is wrong" in w and "no efficiency filed" in w
               for w in doc["warnings"])
    assert any("efficiency above 1.0" in f for f in doc["metadata"]["imported"]["faults"])


def test_precision_in_both_lists_is_decided_by_the_gemm_results(migrated: Path) -> None:
    history = _history(migrated, GPU)[0]
    doc = json.loads(read_registry_bytes(history))
    matrix = matrix_and_detail(doc)
    for p in ("int64", "int32", "int16", "int8"):
        assert matrix["status"][p]["status"] == "unsupported" and "addmm_cuda" in matrix["status"][p]["reason"]
        assert p in matrix["unsupported_precisions"] and p not in matrix["supported_precisions"]
        assert p not in matrix["peak_gflops_by_precision"]  # the old 'peak' was a BLAS-1 axpy
    assert any("both supported and unsupported" in f for f in doc["metadata"]["imported"]["faults"])
    assert any("GEMM was measured only up to n=32" in w for w in doc["warnings"])


def test_wrongly_parsed_nvpmodel_id_is_flagged_and_dropped(migrated: Path) -> None:
    for name in ("7W_408MHz_pytorch.json", "15W_612MHz_pytorch.json"):
        doc = _doc(migrated, f"{GPU}/calibrations/{name}")
        assert "nvpmodel_mode" not in doc["metadata"]["clock"]["gpu"]
        # 7W and 15W are ids 3 and 0 in the Orin Nano's table: the 7 and 15 recorded are the watts in the names
        assert any("nvpmodel_mode" in f and "is the watts in its name" in f and "on the Jetson Orin Nano" in f
                   for f in doc["metadata"]["imported"]["faults"])


def test_zero_peaks_mean_unknown(migrated: Path) -> None:
    for path in migrated.rglob("*.json"):
        doc = json.loads(path.read_text())
        peaks = doc.get("theoretical_peaks") if "id" in doc else doc["precision_matrix"]["theoretical_peaks"]
        assert all(v > 0 for v in peaks.values()), path
    board = _doc(migrated, "board/jetson_orin_nano/spec.json")
    assert board["peak_bandwidth_gbps"] is None and board["theoretical_peaks"] == {}
    assert "fp8" not in _doc(migrated, f"{GPU}/spec.json")["theoretical_peaks"]


def test_sparsity_figures_are_not_kept_as_dense_peaks(migrated: Path) -> None:
    spec = _doc(migrated, "gpu/h100_sxm5/spec.json")
    assert spec["theoretical_peaks"] == {"fp64": 34000.0, "fp32": 67000.0, "int32": 67000.0}
    assert "2:4-sparsity" in spec["notes"] and "fp16 peak 1.979e+06" in spec["notes"]


def test_cpu_numpy_precisions_far_below_fp32_are_emulated(migrated: Path) -> None:
    doc = _doc(migrated, "cpu/jetson_orin_nano_cpu/calibrations/unknown_960MHz_numpy.json")
    status = matrix_and_detail(doc)["status"]
    assert status["fp32"]["status"] == "native" and status["fp16"]["status"] == "emulated"
    assert status["bf16"]["status"] == "unsupported"
    assert doc["metadata"]["power_mode"] == "unknown" and "governor" in doc["metadata"]["power_mode_source"]
    assert any("cpufreq governor" in f for f in doc["metadata"]["imported"]["faults"])


@pytest.mark.parametrize("rel", [f"{GPU}/calibration.json", f"{GPU}/calibrations/15W_612MHz_pytorch.json",
                                 "cpu/jetson_orin_nano_cpu/calibrations/schedutil_729MHz_pytorch.json"])
def test_conversion_is_pure_and_valid(rel: str) -> None:
    legacy = _legacy(rel)
    kwargs: dict[str, Any] = {"rel": rel, "type_folder": rel.split("/")[0], "hardware_folder": rel.split("/")[1],
                              "imported_at": NOW}
    first = legacy_calibration_to_v1(legacy, **kwargs)
    assert schema_errors(first.doc) == []
    assert legacy_calibration_to_v1(legacy, **kwargs).doc == first.doc
    assert legacy == _legacy(rel)  # the input is not modified


def test_legacy_files_are_found_with_their_folders(tmp_path: Path) -> None:
    seed = copy_seed(tmp_path / "seed")
    found = {f.rel: f for f in find_legacy_files(seed) if f.family != "other"}
    assert len(found) == 11
    assert found["boards/jetson_orin_nano/spec.json"].type_folder == "boards"
    assert found[f"{GPU}/calibration.json"].hardware_folder == "jetson_orin_nano_gpu"
    one = find_legacy_files(seed / GPU / "calibrations" / "15W_612MHz_pytorch.json")
    assert [f.rel for f in one] == [f"{GPU}/calibrations/15W_612MHz_pytorch.json"]


def test_rerunning_the_import_changes_nothing(tmp_path: Path) -> None:
    seed = copy_seed(tmp_path / "seed")
    root = tmp_path / "reg"
    execute(plan_migration(seed, root, NOW), root)
    before = {p: p.read_bytes() for p in root.rglob("*.json")}
    again = plan_migration(seed, root, NOW)
    assert {a.action for a in again} == {"unchanged"}
    execute(again, root)
    assert {p: p.read_bytes() for p in root.rglob("*.json")} == before


def test_a_newer_calibration_is_never_overwritten(tmp_path: Path) -> None:
    seed = copy_seed(tmp_path / "seed")
    root = tmp_path / "reg"
    newer = file_calibration(root, "jetson_orin_nano_gpu", "7W", 408, "pytorch", device_type="gpu",
                             date=datetime(2026, 1, 1, tzinfo=timezone.utc))
    content = newer.read_bytes()
    actions = execute(plan_migration(seed, root, NOW), root)
    sevens = [a for a in actions if a.key and a.key.filename == "7W_408MHz_pytorch.json"]
    assert {a.action for a in sevens} == {"history"}
    assert newer.read_bytes() == content
    assert len(_history(root, GPU)) == 2 and validate_registry(root).ok


def test_an_older_calibration_is_superseded_and_kept(tmp_path: Path) -> None:
    seed = copy_seed(tmp_path / "seed")
    root = tmp_path / "reg"
    older = file_calibration(root, "jetson_orin_nano_gpu", "15W", 612, "pytorch", device_type="gpu",
                             date=datetime(2024, 1, 1, tzinfo=timezone.utc))
    execute(plan_migration(seed, root, NOW), root)
    assert "imported" in json.loads(older.read_text())["metadata"]
    kept = [json.loads(read_registry_bytes(p)) for p in _history(root, GPU) if p.name.startswith("15W")]
    assert [d["metadata"]["calibration_date"][:4] for d in kept] == ["2024"]


def test_unreadable_files_are_reported_and_the_rest_imported(tmp_path: Path) -> None:
    seed = copy_seed(tmp_path / "seed")
    bad = seed / GPU / "calibrations" / "15W_612MHz_pytorch.json"
    bad.write_text(bad.read_text()[:1000])
    (seed / "cpu" / "jetson_orin_nano_cpu" / "spec.json").write_text("[1, 2")
    root = tmp_path / "reg"
    actions = execute(plan_migration(seed, root, NOW), root)
    errors = {a.rel: a.message for a in actions if a.action == "error"}
    assert set(errors) == {f"{GPU}/calibrations/15W_612MHz_pytorch.json", "cpu/jetson_orin_nano_cpu/spec.json"}
    assert all("not valid JSON" in m for m in errors.values())
    with pytest.warns(UserWarning, match="no spec.json"):
        assert len(Registry(root).list_calibrations()) == 3
    assert [e.split(": ", 1)[1] for e in validate_registry(root).errors] == \
        ["$: missing: every hardware folder needs a spec.json"]


def test_an_unreadable_current_file_blocks_only_its_key(tmp_path: Path) -> None:
    seed = copy_seed(tmp_path / "seed")
    root = tmp_path / "reg"
    target = root / GPU / "calibrations" / "15W_612MHz_pytorch.json"
    target.parent.mkdir(parents=True)
    target.write_text("{")
    actions = plan_migration(seed, root, NOW)
    blocked = [a for a in actions if a.key and a.key.filename == "15W_612MHz_pytorch.json"]
    assert [a.action for a in blocked] == ["error"] and "cannot compare dates" in blocked[0].message
    assert sum(a.action == "write" for a in actions) == 3


def test_dry_run_plan_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    actions = plan_migration(copy_seed(tmp_path / "seed"), root, NOW)
    assert {a.action for a in actions} == {"spec", "write", "history"} and not root.exists()


@pytest.mark.parametrize(("legacy", "message"), [
    ([], "no metadata object"),
    ({"metadata": {"calibration_date": "2025-01-01T00:00:00"}}, "metadata.framework missing"),
    ({"metadata": {"framework": "jax"}}, "unknown framework"),
    ({"schema_version": 1, "metadata": {}}, "already in hwcal format"),
    ({"metadata": {"framework": "numpy", "device_type": "cpu"}}, "no clock recorded"),
])
def test_unconvertible_calibrations_say_why(legacy: Any, message: str) -> None:
    from hwcal.errors import HwcalError

    with pytest.raises((LegacyFormatError, HwcalError), match=message):
        legacy_calibration_to_v1(legacy, rel="x.json", type_folder="cpu", hardware_folder="x_cpu", imported_at=NOW)


def test_spec_conversion_keeps_the_facts() -> None:
    legacy = _legacy(f"{GPU}/spec.json")
    spec, corrections, faults = legacy_spec_to_v1(legacy, rel=f"{GPU}/spec.json", type_folder="gpu",
                                                  hardware_folder="jetson_orin_nano_gpu", imported_at=NOW)
    assert schema_errors(spec, "spec") == []
    assert spec["theoretical_peaks"]["fp32"] == 1880.0 and spec["compute_units"] == 8
    assert spec["created"] == "2025-11-27T15:45:33.660116+00:00"
    assert any("fp4, int4" in c for c in corrections) and any("fp8, int64" in f for f in faults)
