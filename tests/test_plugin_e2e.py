"""The calibrator end to end through pytester: a tiny numpy run files one valid calibration; bad
input fails in one line with nothing written; Ctrl-C and failures file nothing.

Kept fast: sizes 32/64, ``-k`` selections, ``--quick`` where the numbers do not matter, and
subprocess runs only where isolation matters (the real file-writing run and Ctrl-C).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import filelock
import hypothesis.strategies
import numpy.random
import psutil
import pytest
import threadpoolctl

import hwcal
import hwcal.backends.numpy_backend
import hwcal.machine
import hwcal.measure.gemm
import hwcal.measure.verify
import hwcal.plugin.filing
import hwcal.plugin.hooks
import hwcal.plugin.summary
import hwcal.registry.writer
from hwcal.document.schema import schema_errors
from hwcal.naming import parse_calibration_filename
from tests.conftest import calibrates_this_machine
from tests.fakes import matrix_and_detail

# pytester's in-process runs forget every module first imported during the run; with no bytecode
# cache (PYTHONDONTWRITEBYTECODE) each run would compile hwcal and hypothesis (assertion-rewritten as
# a pytest plugin) again, ~1 s a run. Imported here, before any run, they stay.
_KEEP_IMPORTED = (filelock, hypothesis.strategies, numpy.random, psutil, threadpoolctl, hwcal.backends.numpy_backend,
                  hwcal.plugin.filing, hwcal.measure.gemm, hwcal.machine, hwcal.plugin.hooks, hwcal.plugin.summary,
                  hwcal.measure.verify, hwcal.registry.writer)

REPO = Path(hwcal.__file__).resolve().parent.parent
BENCH_GEMM = (REPO / "bench" / "test_gemm.py").read_text()
KEY_ARGS = ["--power-mode", "7W", "--frequency-mhz", "2450", "--hardware-id", "test_cpu"]
CAL_REL = "registry/cpu/test_cpu/calibrations/7W_2450MHz_numpy.json"
FAST = ["--sizes", "32", "-k", "fp64", "--quick"]


@pytest.fixture
def bench(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester folder holding the real bench/test_gemm.py and a conftest loading the plugin."""
    for name in ("HWCAL_POWER_MODE", "HWCAL_FRAMEWORK", "HWCAL_DEVICE", "HWCAL_FREQUENCY_MHZ", "HWCAL_HARDWARE_ID",
                 "HWCAL_REGISTRY", "HWCAL_SIZES", "HWCAL_MIN_GFLOPS", "HWCAL_MAX_CALL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # for the subprocess runs
    pytester.makeconftest('"""hwcal registers itself through its pytest11 entry point."""\n')
    pytester.makepyfile(test_gemm=BENCH_GEMM)
    return pytester


def _registry(pytester: pytest.Pytester) -> Path:
    return pytester.path / "registry"


def _calibrations(pytester: pytest.Pytester) -> list[Path]:
    """Calibration files written (not spec.json, not history)."""
    return sorted((_registry(pytester)).glob("*/*/calibrations/*.json"))


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _last_line(result: pytest.RunResult) -> str:
    return [line for line in result.outlines if line.strip()][-1]


def _one_error_line(result: pytest.RunResult, pattern: str) -> None:
    """The bad value is reported in one line that says what is wrong."""
    lines = [line for line in result.errlines + result.outlines if re.search(pattern, line)]
    assert len(lines) == 1, result.errlines + result.outlines


@calibrates_this_machine
def test_tiny_run_files_one_valid_calibration(bench: pytest.Pytester) -> None:
    result = bench.runpytest_subprocess("-p", "no:randomly", "--registry", "registry", "--power-mode", "MAXN_SUPER",
                                        "--frequency-mhz", "2450", "--hardware-id", "test_cpu",
                                        "--sizes", "32,64", "-k", "fp32 or fp64")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=4, deselected=10)
    written = _calibrations(bench)
    assert [p.relative_to(bench.path).as_posix() for p in written] == [
        "registry/cpu/test_cpu/calibrations/MAXNSUPER_2450MHz_numpy.json"]
    assert parse_calibration_filename(written[0].name) == ("MAXNSUPER", 2450, "numpy")
    doc = json.loads(written[0].read_text())
    assert schema_errors(doc) == []
    assert doc["key"] == {"device_type": "cpu", "hardware_id": "test_cpu", "power_mode": "MAXNSUPER",
                          "freq_mhz": 2450, "framework": "numpy"}
    assert doc["metadata"]["power_mode"] == "MAXN_SUPER"
    assert [(g["precision"], g["n"]) for g in doc["gemm"]] == [("fp64", 32), ("fp64", 64), ("fp32", 32), ("fp32", 64)]
    assert all(g["verified"] for g in doc["gemm"])
    matrix = matrix_and_detail(doc)
    assert matrix["supported_precisions"] == ["fp64", "fp32"]
    assert matrix["status"]["fp16"] == {"status": "not_run", "reason": "not selected in this run"}
    assert doc["metadata"]["selection"]["keyword"] == "fp32 or fp64"
    spec = json.loads((_registry(bench) / "cpu/test_cpu/spec.json").read_text())
    assert schema_errors(spec, "spec") == []
    assert not any(p.name.endswith(".tmp") for p in _all_files(_registry(bench)))
    result.stdout.fnmatch_lines(["*hwcal calibration*", "precision*status*"])
    assert _last_line(result) == ("hwcal: calibration written to "
                                  "registry/cpu/test_cpu/calibrations/MAXNSUPER_2450MHz_numpy.json")


@calibrates_this_machine
def test_command_line_in_metadata_is_this_run(bench: pytest.Pytester) -> None:
    # In-process (pytest.main, pytester) sys.argv is not this run's command line.
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, *FAST)
    assert result.ret == 0
    doc = json.loads((bench.path / CAL_REL).read_text())
    command_line = doc["metadata"]["command_line"]
    assert "--registry" in command_line and "--hardware-id" in command_line


@calibrates_this_machine
def test_dry_run_writes_nothing(bench: pytest.Pytester) -> None:
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", "--dry-run", *KEY_ARGS, *FAST)
    assert result.ret == 0
    result.assert_outcomes(passed=1)
    assert not _registry(bench).exists()
    assert _last_line(result) == f"hwcal: dry run: valid calibration, would be written to {CAL_REL}"


def test_benchmark_disable_verifies_every_precision_and_writes_nothing(bench: pytest.Pytester) -> None:
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", "--benchmark-disable", *KEY_ARGS,
                             "--sizes", "32,64")
    assert result.ret == 0
    result.assert_outcomes(passed=14)  # 7 numpy precisions x 2 sizes, each run once and verified
    assert not _registry(bench).exists()
    assert _last_line(result).startswith("hwcal: nothing timed")
    assert "no calibration filed" in _last_line(result)


def test_early_termination_skips_with_the_reason(bench: pytest.Pytester) -> None:
    # No cut below 256 however slow; at 256 below --min-gflops the larger size is skipped and says why.
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", "--benchmark-disable", *KEY_ARGS,
                             "--sizes", "128,256,512", "--min-gflops", "1e9", "-k", "fp64", "-rs")
    assert result.ret == 0
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*fp64 reached * GFLOPS at n=256, below --min-gflops 1e+09*"])


@pytest.mark.parametrize(("args", "pattern"), [
    (["--framework", "tensorflow"], r"--framework: unknown framework 'tensorflow'; supported: numpy, pytorch"),
    (["--power-mode="], r"--power-mode: power mode '' has no letters or digits"),
    (["--power-mode", "../../x"], r"--power-mode: power mode '\.\./\.\./x' contains a path separator"),
    (["--frequency-mhz", "-5"], r"--frequency-mhz: frequency '-5' MHz must be positive"),
    (["--frequency-mhz", "abc"], r"--frequency-mhz: frequency 'abc' is not a number of MHz"),
    (["--sizes", "0,-1"], r"--sizes: size '0' in '0,-1' is not a positive whole number"),
    (["--device", "cuda"], r"--framework numpy runs on the CPU only"),
])
def test_bad_option_fails_in_one_line_and_writes_nothing(bench: pytest.Pytester, args: list[str],
                                                         pattern: str) -> None:
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, *FAST, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_error_line(result, pattern)
    assert not _registry(bench).exists()
    assert "passed" not in result.stdout.str()  # nothing ran


def test_bad_environment_value_names_its_source(bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWCAL_FREQUENCY_MHZ", "abc")
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_error_line(result, r"environment variable HWCAL_FREQUENCY_MHZ: frequency 'abc' is not a number of MHz")
    assert not _registry(bench).exists()


def test_bad_ini_value_names_its_source(bench: pytest.Pytester) -> None:
    bench.makeini("[pytest]\nhwcal_sizes = 0,-1\n")
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "-k", "fp64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_error_line(result, r"ini key hwcal_sizes: size '0' in '0,-1' is not a positive whole number")
    assert not _registry(bench).exists()


def test_registry_that_is_a_file_fails_and_keeps_it(bench: pytest.Pytester) -> None:
    # Tests run as root, so a read-only folder would still be writable: a regular file stands in for it.
    blocker = bench.path / "registry"
    blocker.write_text("not a registry\n")
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, *FAST)
    # Refused before any benchmark runs, not after the whole sweep.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_error_line(result, r"registry registry is not a folder; give --registry a folder; nothing was run")
    assert "passed" not in result.stdout.str()
    assert blocker.read_text() == "not a registry\n"


@calibrates_this_machine
def test_corrupt_file_for_the_same_key_is_kept_in_history(bench: pytest.Pytester) -> None:
    corrupt = bench.path / CAL_REL
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text('{"metadata": {"calibration_da')
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, *FAST)
    assert result.ret == 0
    assert schema_errors(json.loads(corrupt.read_text())) == []
    history = list((corrupt.parent / "history").iterdir())
    assert len(history) == 1
    assert history[0].name.endswith(".corrupt.json")
    assert history[0].read_text() == '{"metadata": {"calibration_da'
    last = _last_line(result)
    assert last.startswith(f"hwcal: calibration written to {CAL_REL} (previous kept as ")
    assert history[0].name in last


@calibrates_this_machine
def test_failing_test_files_nothing(bench: pytest.Pytester) -> None:
    bench.makepyfile(test_zz_fails="def test_broken() -> None:\n    assert False\n")
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "--sizes", "32", "--quick",
                             "-k", "fp64 or broken")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    assert not _registry(bench).exists()
    assert _last_line(result) == "hwcal: tests failed: no calibration filed, the registry is unchanged"


@calibrates_this_machine
def test_interrupted_run_leaves_no_file(bench: pytest.Pytester) -> None:
    # Ctrl-C after some GEMM cases have been measured: KeyboardInterrupt from a later test.
    bench.makepyfile(test_zz_interrupt="def test_ctrl_c() -> None:\n    raise KeyboardInterrupt\n")
    result = bench.runpytest_subprocess("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "--sizes", "32",
                                        "--quick", "-k", "fp32 or fp64 or ctrl_c")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["test_gemm.py .. *", "*KeyboardInterrupt*"])  # both GEMM cases were measured
    result.assert_outcomes(passed=2, deselected=5)
    assert _all_files(_registry(bench)) == []
    assert _last_line(result) == "hwcal: run interrupted: no calibration filed, the registry is unchanged"


@calibrates_this_machine
def test_a_second_calibration_of_the_same_device_waits_for_the_first(tmp_path: Path) -> None:
    import subprocess
    import sys

    from hwcal.registry.locks import device_lock

    repo = Path(__file__).resolve().parent.parent
    lock = device_lock("cpu")  # host-wide, whatever $TMPDIR: the run below has another one
    assert lock.acquire(timeout=60)  # "another calibration" holds the CPU
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "bench/test_gemm.py", "-p", "no:randomly", "-q", "--sizes", "32",
             "-k", "fp64", "--registry", str(tmp_path / "registry"), "--power-mode", "7W", "--frequency-mhz", "1000"],
            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)})
        assert proc.stdout is not None
        waited = next((line for line in iter(proc.stdout.readline, "") if "waiting for it to finish" in line), None)
        assert waited, "the second run did not wait for the device"
        assert not (tmp_path / "registry").exists() or not list((tmp_path / "registry").rglob("*.json"))
    finally:
        lock.release()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert list((tmp_path / "registry").rglob("calibrations/7W_1000MHz_numpy.json"))


@calibrates_this_machine
def test_a_run_that_cannot_be_filed_keeps_its_measurements(bench: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import hwcal.plugin.filing
    from hwcal.errors import HwcalError

    def refuse(*args: object, **kwargs: object) -> None:
        raise HwcalError("another calibration holds the lock for over 120 s; nothing written")

    monkeypatch.setattr(hwcal.plugin.filing, "place_calibration", refuse)
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, *FAST)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    kept = re.search(r"the measurements are kept in (\S+\.json)", result.stdout.str())
    assert kept, result.stdout.str()
    doc = json.loads(Path(kept.group(1)).read_text())
    assert schema_errors(doc) == [] and doc["gemm"]
    assert not (bench.path / CAL_REL).exists()
