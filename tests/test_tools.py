"""The command-line tools, run as a user runs them (a subprocess of tools/*.py, exit codes checked),
plus in-process runs of their main() for the many option combinations (fast)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hwcal.cli import compare_calibrations, list_calibrations, migrate_calibrations, validate_registry
from tests.fixtures_registry import (
    REPO,
    copy_seed,
    file_calibration,
    later,
    migrated,
    registry,
    registry_template,
    run_tool,
)

__all__ = ["migrated", "registry", "registry_template"]  # fixtures, imported for pytest

TOOLS = ("list_calibrations", "compare_calibrations", "migrate_calibrations", "validate_registry")
GPU = "gpu/jetson_orin_nano_gpu"


@pytest.mark.parametrize("tool", TOOLS)
def test_help_shows_an_example(tool: str) -> None:
    result = run_tool(tool, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and f"python tools/{tool}.py" in result.stdout
    assert "--registry" in result.stdout or "PATH" in result.stdout


# ---- list --------------------------------------------------------------------------------------

def test_list_prints_a_table_in_natural_order(registry: Path) -> None:
    result = run_tool("list_calibrations", "--registry", registry)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["hardware", "type", "power"] and set(lines[1]) <= {"-", " "}
    modes = [ln.split()[2] for ln in lines[2:]]
    assert modes == ["7W", "15W", "15W", "MAXN_SUPER", "300W"]
    assert result.stderr == ""


def test_list_json_and_environment_registry(registry: Path) -> None:
    result = run_tool("list_calibrations", "--json", "-p", "maxn_super", env={"HWCAL_REGISTRY": str(registry)})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [c["power_mode"] for c in data["calibrations"]] == ["MAXNSUPER"]
    assert data["calibrations"][0]["power_mode_name"] == "MAXN_SUPER" and data["skipped"] == []


def test_list_unknown_hardware_exits_1_with_known_ids(registry: Path) -> None:
    result = run_tool("list_calibrations", "--registry", registry, "-H", "jetson_thor")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (f"list_calibrations.py: error: unknown hardware 'jetson_thor' in registry "
                                     f"{registry}; known: test_cpu, test_gpu")


def test_list_survives_every_bad_file(registry: Path, tmp_path: Path) -> None:
    cal = registry / "cpu" / "test_cpu" / "calibrations"
    good = (cal / "7W_1000MHz_numpy.json").read_text()
    (cal / "calibration (copy).json").write_text(good)
    (cal / "25W_1MHz_numpy.json").write_text(good[:300])
    newer = json.loads(good)
    newer["schema_version"] = 99
    (cal / "99W_1MHz_numpy.json").write_text(json.dumps(newer))
    (tmp_path / "elsewhere.json").write_text(good)
    (cal / "8W_1MHz_numpy.json").symlink_to(tmp_path / "elsewhere.json")
    (registry / "cpu" / "lonely_cpu").mkdir()
    result = run_tool("list_calibrations", "--registry", registry)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 2 + 5
    warnings = result.stderr.splitlines()
    for name in ("calibration (copy).json", "25W_1MHz_numpy.json", "99W_1MHz_numpy.json", "8W_1MHz_numpy.json",
                 "lonely_cpu/spec.json"):
        assert any(w.startswith("warning: skipped ") and name in w for w in warnings), (name, warnings)
    assert any("newer than this hwcal" in w and "upgrade" in w for w in warnings)


def test_list_empty_and_missing_registries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for root in (tmp_path, tmp_path / "missing"):
        code, out, _ = _main(list_calibrations, ["--registry", str(root)], capsys)
        assert code == 0 and out.startswith("no calibrations in registry")


def _main(module: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = module.main(argv)  # type: ignore[attr-defined]
    out, err = capsys.readouterr()
    return code, out, err


def test_list_filters_detail_summary_history(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file_calibration(registry, "test_cpu", "7W", 1000, date=later(5), peaks={"fp64": 25.0, "fp32": 45.0})
    code, out, _ = _main(list_calibrations, ["--registry", str(registry), "-f", "torch"], capsys)
    assert code == 0 and [ln.split()[4] for ln in out.splitlines()[2:]] == ["pytorch", "pytorch"]
    code, out, _ = _main(list_calibrations, ["--registry", str(registry), "-H", "cpu", "--history"], capsys)
    assert "superseded" in out and len(out.splitlines()) == 2 + 5
    code, out, _ = _main(list_calibrations, ["--registry", str(registry), "-H", "test_cpu", "-p", "7w", "-d"],
                         capsys)
    assert code == 0
    assert re.search(r"calibrated\s+2026-11-06 12:00:00 UTC", out)
    assert re.search(r"fp32\s+native\s+45\s+GFLOPS\s+256\s+0\.11", out)
    assert "bandwidth    40 GB/s measured, 50 GB/s theoretical (80%)" in out
    assert "clock        1000 MHz ceiling (--frequency-mhz)" in out
    code, out, _ = _main(list_calibrations, ["--registry", str(registry), "-s", "--json"], capsys)
    data = json.loads(out)
    assert data["by_power_mode"] == {"7W": 1, "15W": 2, "300W": 1, "MAXNSUPER": 1}
    assert data["by_framework"] == {"numpy": 3, "pytorch": 2}
    code, out, _ = _main(list_calibrations, ["--registry", str(registry), "-s"], capsys)
    assert "power mode  calibrations" in out


def test_list_bad_filter_values(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main(list_calibrations, ["--registry", str(registry), "-f", "jax"], capsys)
    assert code == 1 and "unknown framework 'jax'" in err
    code, _, err = _main(list_calibrations, ["--registry", str(registry), "--freq-mhz", "fast"], capsys)
    assert code == 1 and "freq_mhz filter 'fast'" in err and err.count("\n") == 1


def test_list_the_imported_seed_registry(migrated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(list_calibrations, ["--registry", str(migrated), "-H", "jetson_orin_nano_gpu", "-d"], capsys)
    assert code == 0
    assert out.index("jetson_orin_nano_gpu  7W") < out.index("jetson_orin_nano_gpu  15W")
    assert "imported from the original registry" in out and "governor     schedutil" in out
    assert "> 1 (!)" in out  # fp16 above its peak (1.68x): no efficiency filed, the table marks it


# ---- compare -----------------------------------------------------------------------------------

def test_compare_selectors_and_the_ci_gate(registry: Path) -> None:
    result = run_tool("compare_calibrations", "test_cpu:15W:numpy", "test_cpu:7W:numpy", "--registry", registry,
                      "--fail-below", "0.95")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert re.search(r"fp32\s+GFLOPS\s+100\s+40\s+0\.400\s+0\.25\s+0\.10\s+\S+%\s+slower <- regression", out)
    assert "2 regression(s) below 0.95x of A:" in out and "  fp32: 0.400x (100 -> 40 GFLOPS)" in out
    assert re.search(r"bandwidth\s+GB/s\s+40\s+40\s+1\.000", out)
    ok = run_tool("compare_calibrations", "test_cpu:7W:numpy", "test_cpu:15W:numpy", "--registry", registry,
                  "--fail-below", "0.95", "--json")
    assert ok.returncode == 0
    data = json.loads(ok.stdout)
    assert data["regressions"] == [] and {r["metric"] for r in data["rows"]} == {"fp64", "fp32", "bandwidth"}
    assert data["rows"][1]["ratio"] == pytest.approx(2.5)


def test_compare_unreadable_input_exits_2_with_one_line(registry: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{\"schema_version\": 1,")
    result = run_tool("compare_calibrations", str(broken), "test_cpu:7W:numpy", "--registry", registry)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"compare_calibrations.py: error: {broken}: not valid JSON")
    assert result.stderr.count("\n") == 1


def test_compare_within_noise_is_not_a_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "reg"
    file_calibration(root, "test_cpu", "7W", 1000, date=later(1), peaks={"fp32": 100.0}, cv=0.2, rounds=20)
    file_calibration(root, "test_cpu", "7W", 1000, date=later(2), peaks={"fp32": 90.0}, cv=0.2, rounds=20)
    args = ["test_cpu:7W:numpy@previous", "test_cpu:7W:numpy", "--registry", str(root), "--fail-below", "0.95"]
    code, out, _ = _main(compare_calibrations, args, capsys)
    assert code == 0 and "within noise" in out and "no regression below 0.95x" in out
    # the same drop with tight timings is real
    file_calibration(root, "test_cpu", "7W", 1000, date=later(3), peaks={"fp32": 100.0}, cv=0.01, rounds=100)
    file_calibration(root, "test_cpu", "7W", 1000, date=later(4), peaks={"fp32": 90.0}, cv=0.01, rounds=100)
    code, out, _ = _main(compare_calibrations, args, capsys)
    assert code == 1 and "fp32: 0.900x" in out


def test_compare_paths_history_and_lost_precisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "reg"
    a = file_calibration(root, "test_cpu", "7W", 1000, date=later(1), peaks={"fp64": 50.0, "fp32": 100.0})
    b = file_calibration(root, "test_cpu", "7W", 1000, date=later(2), peaks={"fp32": 100.0})
    history = next((root / "cpu" / "test_cpu" / "calibrations" / "history").glob("*.json.gz"))  # packed
    code, out, _ = _main(compare_calibrations, [str(history), str(b), "--fail-below", "0.95"], capsys)
    assert a == b and code == 0  # fp64 was not selected in B: not run, not lost
    assert re.search(r"fp64\s+GFLOPS\s+50\s+-\s+-.*not run in B", out)
    code, out, err = _main(compare_calibrations, ["test_cpu:7W:numpy@7", str(b), "--registry", str(root)], capsys)
    assert code == 2 and "only 2 calibration(s) of 7W_1000MHz_numpy.json exist (@0 .. @1)" in err
    with pytest.raises(SystemExit) as exit_info:
        compare_calibrations.main(["test_cpu", str(b), "--registry", str(root), "--fail-below", "0"])
    assert exit_info.value.code == 2 and "must be a number > 0" in capsys.readouterr().err


def test_compare_imported_calibrations_uses_their_cv(migrated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["jetson_orin_nano_gpu:15W:pytorch", "jetson_orin_nano_gpu:7W:pytorch", "--registry", str(migrated),
            "--fail-below", "0.95", "--json"]
    code, out, _ = _main(compare_calibrations, args, capsys)
    data = json.loads(out)
    assert code == 1 and "fp32" in data["regressions"] and "bandwidth" in data["regressions"]
    assert all(r["noise"] is not None for r in data["rows"])


# ---- validate ----------------------------------------------------------------------------------

def test_validate_valid_empty_and_missing(registry: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    result = run_tool("validate_registry", "--registry", registry)
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr == f"{registry}: 2 spec(s), 5 calibration(s) checked: valid\n"
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "missing"):
        code, out, err = _main(validate_registry, ["--registry", str(root)], capsys)
        assert code == 0 and out == "" and "0 calibration(s) checked: valid" in err


def test_validate_reports_every_error_and_exits_1(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cal = registry / "cpu" / "test_cpu" / "calibrations"
    doc = json.loads((cal / "7W_1000MHz_numpy.json").read_text())
    doc["gemm"][0]["verified"] = False
    doc["metadata"]["calibration_date"] = "yesterday"
    (cal / "7W_1000MHz_numpy.json").write_text(json.dumps(doc))
    (cal / "7W_1000MHz_numpy.json").rename(cal / "7W_999MHz_numpy.json")
    result = run_tool("validate_registry", str(registry))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    f = cal / "7W_999MHz_numpy.json"
    assert f"{f}: $.gemm[0].verified: True was expected" in lines
    assert f"{f}: $.metadata.calibration_date: 'yesterday' is not a 'date-time'" in lines
    assert f"{f}: $.key.freq_mhz: 1000 disagrees with the file name '7W_999MHz_numpy.json' (999)" in lines
    assert lines[-1].endswith("4 error(s)") or lines[-1].endswith("3 error(s)")
    data = json.loads(_main(validate_registry, [str(registry), "--json"], capsys)[1])
    assert data["valid"] is False and len(data["errors"]) == len(lines) - 1


def test_validate_the_seed_registry_names_its_legacy_files(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    seed = copy_seed(tmp_path / "seed")
    code, out, _ = _main(validate_registry, ["--registry", str(seed)], capsys)
    assert code == 1
    assert f"{seed / 'boards'}: $: folder 'boards' is not a device type" in out
    assert f"{seed / GPU / 'calibration.json'}: $: single calibration.json of the original registry" in out
    assert "migrate_calibrations.py" in out


def test_validate_refuses_two_registries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        validate_registry.main([str(tmp_path), "--registry", str(tmp_path / "other")])
    assert exit_info.value.code == 2 and "two registries given" in capsys.readouterr().err


# ---- migrate -----------------------------------------------------------------------------------

def test_migrate_dry_run_then_import_then_nothing_to_do(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    seed = copy_seed(tmp_path / "seed")
    root = tmp_path / "reg"
    code, out, _ = _main(migrate_calibrations, [str(seed), "--registry", str(root), "--dry-run"], capsys)
    assert code == 0 and not root.exists()
    assert "dry run: nothing written" in out and "would write" in out
    assert "4 calibration(s) would be filed as current, 2 would be filed as history, 5 spec(s) would be" in out
    assert "fault: gpu_clock.nvpmodel_mode 7 is the watts in its name: 7W is id 3 on the Jetson Orin Nano" in out
    real = run_tool("migrate_calibrations", seed, "--registry", root)
    assert real.returncode == 0 and "0 error(s)" in real.stdout
    code, out, _ = _main(validate_registry, ["--registry", str(root)], capsys)
    assert code == 0
    code, out, _ = _main(migrate_calibrations, [str(seed), "--registry", str(root), "--json"], capsys)
    assert code == 0 and json.loads(out)["counts"] == {"unchanged": 11}  # already imported: nothing to do


def test_migrate_reports_unreadable_files_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = copy_seed(tmp_path / "seed")
    bad = seed / GPU / "calibrations" / "7W_306MHz_pytorch.json"
    bad.write_text(bad.read_text()[:2000])
    root = tmp_path / "reg"
    code, out, err = _main(migrate_calibrations, [str(seed), "--registry", str(root), "-v"], capsys)
    assert code == 1
    assert f"error   {GPU}/calibrations/7W_306MHz_pytorch.json: cannot read: not valid JSON" in out
    assert "corrected: key frequency" in out and "1 error(s)" in out
    assert err.startswith(f"migrate_calibrations.py: error: {bad}: cannot read")
    assert (root / GPU / "calibrations" / "7W_408MHz_pytorch.json").exists()  # from calibration.json instead


def test_migrate_missing_source_is_one_line(tmp_path: Path) -> None:
    result = run_tool("migrate_calibrations", tmp_path / "nope", "--registry", tmp_path / "reg")
    assert result.returncode == 1
    assert result.stderr.strip() == f"migrate_calibrations.py: error: source {tmp_path / 'nope'} does not exist; " \
                                    "give the original registry's folder"


# ---- end to end with a real (tiny) calibration -------------------------------------------------

@pytest.fixture(scope="session")
def real_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny real calibration filed by the benchmark suite (about 3 s)."""
    root = tmp_path_factory.mktemp("real") / "registry"
    result = subprocess.run([sys.executable, "-m", "pytest", "bench/", "--sizes", "32,64", "-k", "fp32 or fp64",
                             "--registry", str(root), "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"the tiny calibration failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return root


def test_a_real_calibration_validates_lists_and_compares_with_itself(real_registry: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(validate_registry, ["--registry", str(real_registry)], capsys)[0] == 0
    listed = json.loads(_main(list_calibrations, ["--registry", str(real_registry), "--json"], capsys)[1])
    assert len(listed["calibrations"]) == 1
    entry = listed["calibrations"][0]
    assert set(entry["peak_gflops_by_precision"]) == {"fp64", "fp32"}
    code, out, _ = _main(compare_calibrations, [entry["path"], entry["path"], "--fail-below", "0.95"], capsys)
    assert code == 0 and "note: A and B are the same file" in out
    assert out.count("within noise") == 2


@pytest.mark.parametrize("script", sorted([*(REPO / "tools").glob("*.py"), *(REPO / "fleet").glob("*.py")]),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_tool_prints_its_help(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout and done.stderr == "", done.stderr[-500:]


@pytest.mark.parametrize("which", ["²", "9" * 5000, "x1"])
def test_compare_a_bad_history_index_is_one_line(registry: Path, which: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main(compare_calibrations, [f"test_cpu:7W:numpy@{which}", "test_cpu:7W:numpy", "--registry",
                                                  str(registry)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "is not @N, @previous or @latest" in err
