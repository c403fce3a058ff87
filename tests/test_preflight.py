"""Preflight checks on recorded machines (passed / warning / failed / skipped, with advice), and the
plugin end to end: checks run once for a calibration run and never for plain tests, a failed check
stops the run in one message unless --force (recorded), bad key input fails in one line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import hwcal.plugin.clocks
import hwcal.plugin.hooks
import hwcal.plugin.preflight
from hwcal.document.schema import schema_errors
from hwcal.machine import detect_cpu_key, detect_gpu_key
from hwcal.plugin.checks import (
    CHECKS,
    FAILED,
    PASSED,
    SKIPPED,
    WARNING,
    CheckResult,
    PreflightContext,
)
from hwcal.plugin.preflight import PreflightReport, run_preflight
from tests.test_machine import FakeNvml, install_fake_nvml, machine, machine_copy

REPO = Path(hwcal.plugin.__file__).resolve().parents[2]
BENCH_GEMM = (REPO / "bench" / "test_gemm.py").read_text()
FAST = ["--sizes", "32", "-k", "fp64", "--quick"]


def _ctx(name: str, device_type: str = "cpu", gpu: dict[str, Any] | None = None, root: Path | None = None,
         commands: dict[str, str | None] | None = None, **options: Any) -> PreflightContext:
    src = machine(name, root=root, commands=commands)
    key = detect_gpu_key(gpu, src) if device_type == "gpu" and gpu is not None else detect_cpu_key(src)
    return PreflightContext(device_type=device_type, key=key, src=src, gpu=gpu, **options)


def _by_name(report: PreflightReport) -> dict[str, CheckResult]:
    return {c.name: c for c in report.checks}


def _statuses(report: PreflightReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


# ---- the recorded machines --------------------------------------------------------------------------------
def test_jetson_orin_nano_7w() -> None:
    report = run_preflight(_ctx("jetson_orin_nano_7w"), force=False)
    checks = _by_name(report)
    assert report.passed and not report.stops_run
    assert checks["registry_key"].message.startswith("7W_960MHz")
    assert (checks["jetson_power_mode"].status, checks["jetson_power_mode"].message) == (PASSED, "7W (nvpmodel mode 1)")
    assert checks["jetson_clocks"].status == WARNING and checks["jetson_clocks"].advice == (
        "sudo jetson_clocks pins the clocks at the mode's max")
    assert "GPU 306-408 MHz" in checks["jetson_clocks"].message and "CPU 730-960 MHz" in checks["jetson_clocks"].message
    assert checks["cpu_governor"].status == WARNING and checks["cpu_governor"].advice.endswith("sudo jetson_clocks")
    assert (checks["temperature"].status, checks["temperature"].value) == (PASSED, 46.25)
    assert checks["turbo_boost"].status == SKIPPED
    assert checks["gpu_persistence_mode"].status == checks["gpu_clocks"].status == SKIPPED
    assert checks["system_load"].status == PASSED  # from the recorded load average: 0.21 over 6 CPUs


@pytest.mark.parametrize("nvpmodel", [None, "Segmentation fault (core dumped)\n", "garbage\n0\n"])
def test_jetson_without_readable_nvpmodel_fails_with_advice(nvpmodel: str | None) -> None:
    report = run_preflight(_ctx("jetson_orin_nano_7w", commands={"nvpmodel -q": nvpmodel}), force=False)
    failed = report.failed
    assert [c.name for c in failed] == ["jetson_power_mode"] and report.stops_run
    assert "give --power-mode" in failed[0].advice
    message = report.failure_message()
    assert message.startswith("hwcal preflight failed") and "--force" in message.splitlines()[-1]


def test_jetson_unreadable_nvpmodel_with_power_mode_given_is_a_warning() -> None:
    ctx = _ctx("jetson_orin_nano_7w", commands={"nvpmodel -q": None}, power_mode_override="7W")
    checks = _by_name(run_preflight(ctx, force=False))
    assert checks["jetson_power_mode"].status == WARNING
    assert checks["registry_key"].message.startswith("7W_960MHz (power mode: --power-mode")


def test_power_mode_option_contradicting_nvpmodel_fails() -> None:
    report = run_preflight(_ctx("jetson_orin_nano_7w", power_mode_override="MAXN"), force=False)
    check = _by_name(report)["jetson_power_mode"]
    assert check.status == FAILED and "nvpmodel reports 7W" in check.message and "wrong mode" in check.message
    assert _by_name(run_preflight(_ctx("jetson_orin_nano_7w", power_mode_override="7-W"),
                                  force=False))["jetson_power_mode"].status == PASSED  # same token


def test_i7_intel_pstate() -> None:
    checks = _by_name(run_preflight(_ctx("i7_12700k_pstate"), force=False))
    assert checks["registry_key"].message.startswith("powersave_3600MHz")
    assert checks["cpu_governor"].status == WARNING and "powersave (intel_pstate)" in checks["cpu_governor"].message
    assert checks["cpu_governor"].advice == "for steady clocks: sudo cpupower frequency-set -g performance"
    assert checks["turbo_boost"].status == PASSED
    assert checks["turbo_boost"].message == "turbo off (intel_pstate/no_turbo)"
    assert checks["temperature"].status == PASSED and "x86_pkg_temp at 52" in checks["temperature"].message
    assert checks["jetson_power_mode"].status == SKIPPED


def test_i7_turbo_on_is_a_warning_with_the_command(tmp_path: Path) -> None:
    root = machine_copy("i7_12700k_pstate", tmp_path)
    (root / "sys/devices/system/cpu/intel_pstate/no_turbo").write_text("0\n")
    check = _by_name(run_preflight(_ctx("i7_12700k_pstate", root=root), force=False))["turbo_boost"]
    assert check.status == WARNING and "intel_pstate/no_turbo" in check.advice


@pytest.mark.parametrize(("millideg", "status"), [("79000", PASSED), ("85000", WARNING), ("99500", FAILED)])
def test_temperature(tmp_path: Path, millideg: str, status: str) -> None:
    root = machine_copy("jetson_orin_nano_7w", tmp_path)
    (root / "sys/class/thermal/thermal_zone1/temp").write_text(millideg + "\n")  # trip point 99 C
    report = run_preflight(_ctx("jetson_orin_nano_7w", root=root), force=False)
    check = _by_name(report)["temperature"]
    assert check.status == status and "gpu-thermal" in check.message
    assert report.stops_run is (status == FAILED)


def test_disconnected_sensor_is_ignored(tmp_path: Path) -> None:
    root = machine_copy("i7_12700k_pstate", tmp_path)
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("255000\n")
    assert _by_name(run_preflight(_ctx("i7_12700k_pstate", root=root), force=False))["temperature"].status == PASSED


def test_this_vm_has_nothing_to_complain_about() -> None:
    report = run_preflight(_ctx("vm_epyc_no_cpufreq"), force=False)
    statuses = _statuses(report)
    assert report.passed
    assert statuses["registry_key"] == statuses["system_load"] == PASSED
    assert {statuses[n] for n in ("cpu_governor", "turbo_boost", "temperature", "jetson_power_mode")} == {SKIPPED}
    assert "VM" in _by_name(report)["cpu_governor"].message


def test_windows_box() -> None:
    report = run_preflight(_ctx("windows_balanced"), force=False)
    assert report.passed and _by_name(report)["registry_key"].message.startswith("Balanced_3610MHz")
    assert _statuses(report)["system_load"] == SKIPPED  # no /proc: unknown, not invented


def _gpu_ctx(monkeypatch: pytest.MonkeyPatch, **nvml: Any) -> PreflightContext:
    from hwcal.machine import collect_gpu

    install_fake_nvml(monkeypatch, FakeNvml(**nvml))
    return _ctx("vm_epyc_no_cpufreq", device_type="gpu", gpu=collect_gpu(0))


def test_datacenter_gpu_idle_and_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = _by_name(run_preflight(_gpu_ctx(monkeypatch), force=False))
    assert checks["registry_key"].message.startswith("700W_1980MHz")
    assert checks["gpu_persistence_mode"].status == PASSED
    assert checks["gpu_clocks"].status == PASSED
    assert checks["cpu_governor"].status == checks["turbo_boost"].status == SKIPPED


def test_datacenter_gpu_persistence_off_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    check = _by_name(run_preflight(_gpu_ctx(monkeypatch, persistence=0), force=False))["gpu_persistence_mode"]
    assert (check.status, check.advice) == (WARNING, "sudo nvidia-smi -pm 1")


@pytest.mark.parametrize(("nvml", "fragment"), [({"reasons": 0x40}, "hw_thermal_slowdown"),
                                                ({"reasons": 0x80 | 0x1}, "hw_power_brake_slowdown"),
                                                ({"temp": 88}, "slowdown threshold")])
def test_datacenter_gpu_slowing_down_now_fails(monkeypatch: pytest.MonkeyPatch, nvml: dict[str, Any],
                                               fragment: str) -> None:
    report = run_preflight(_gpu_ctx(monkeypatch, **nvml), force=False)
    assert [c.name for c in report.failed] == ["gpu_clocks"] and fragment in report.failed[0].message
    assert report.stops_run


def test_datacenter_gpu_capped_applications_clocks_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    check = _by_name(run_preflight(_gpu_ctx(monkeypatch, sm_app=1590), force=False))["gpu_clocks"]
    assert check.status == WARNING and "nvidia-smi -rac" in check.advice


def test_gpu_without_nvml_stops_before_the_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    from hwcal.machine import collect_gpu

    install_fake_nvml(monkeypatch, None)
    gpu = {**collect_gpu(0), "name": "NVIDIA H100 80GB HBM3"}
    report = run_preflight(_ctx("vm_epyc_no_cpufreq", device_type="gpu", gpu=gpu), force=False)
    checks = _by_name(report)
    assert checks["registry_key"].status == FAILED and "--frequency-mhz" in checks["registry_key"].advice
    assert checks["gpu_clocks"].status == WARNING and "nvidia-ml-py" in checks["gpu_clocks"].advice
    forced = run_preflight(_ctx("vm_epyc_no_cpufreq", device_type="gpu", gpu=gpu, frequency_override=1980),
                           force=False)
    assert forced.passed  # --frequency-mhz supplies the missing half of the key


def test_force_overrides_and_is_recorded() -> None:
    report = run_preflight(_ctx("jetson_orin_nano_7w", commands={"nvpmodel -q": None}), force=True)
    assert not report.passed and report.forced and not report.stops_run
    doc_part = report.as_dict()
    assert doc_part["passed"] is False and doc_part["forced"] is True
    assert report.warnings_for_document() == [
        "preflight check jetson_power_mode failed and --force was given: Jetson Orin Nano: nvpmodel -q is missing "
        "or printed no mode, so the power mode for the key is unknown"]
    assert "--force given" in report.summary_lines()[0]


def test_a_broken_check_reports_instead_of_crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(hwcal.plugin.checks.Check):
        name = "broken"

        def run(self, ctx: PreflightContext) -> CheckResult:
            raise KeyError("nope")

    monkeypatch.setattr(hwcal.plugin.preflight, "CHECKS", (*CHECKS, Broken()))
    report = run_preflight(_ctx("vm_epyc_no_cpufreq"), force=False)
    assert _by_name(report)["broken"].status == WARNING and "KeyError" in _by_name(report)["broken"].message
    assert report.passed


def test_every_check_result_fits_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import make_valid_doc

    for ctx in (_ctx("jetson_orin_nano_7w"), _ctx("i7_12700k_pstate"), _gpu_ctx(monkeypatch, reasons=0x40)):
        report = run_preflight(ctx, force=True)
        doc = make_valid_doc(preflight=report.as_dict())
        assert schema_errors(doc) == []


# ---- end to end through the plugin ------------------------------------------------------------------------
@pytest.fixture
def bench(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("HWCAL_POWER_MODE", "HWCAL_FRAMEWORK", "HWCAL_DEVICE", "HWCAL_FREQUENCY_MHZ", "HWCAL_HARDWARE_ID",
                 "HWCAL_REGISTRY", "HWCAL_SIZES", "HWCAL_MIN_GFLOPS", "HWCAL_MAX_CALL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest('"""hwcal registers itself through its pytest11 entry point."""\n')
    pytester.makepyfile(test_gemm=BENCH_GEMM)
    return pytester


def _fake_host(monkeypatch: pytest.MonkeyPatch, name: str, commands: dict[str, str | None] | None = None) -> None:
    """The calibration run reads a recorded machine instead of this one (key detection, checks, sampling)."""
    monkeypatch.setattr(hwcal.plugin.clocks, "Sources", lambda: machine(name, commands=commands))


def _written(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / "registry").glob("*/*/calibrations/*.json"))


def test_plain_tests_run_no_preflight(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: Any) -> None:
        raise AssertionError("preflight ran for plain tests")

    monkeypatch.setattr(hwcal.plugin.hooks, "preflight_session", must_not_run)
    pytester.makeconftest('"""hwcal registers itself through its pytest11 entry point."""\n')
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    assert result.ret == 0
    assert not any("hwcal preflight" in line for line in result.outlines)


def test_calibration_run_records_preflight_and_clock(bench: pytest.Pytester) -> None:
    result = bench.runpytest_inprocess(*FAST, "-p", "no:randomly", "--hardware-id", "test_cpu")
    assert result.ret == 0, result.outlines
    heads = [line for line in result.outlines if line.startswith("hwcal preflight:")]
    assert len(heads) == 1 and "0 failed" in heads[0]
    (path,) = _written(bench)
    doc = json.loads(path.read_text())
    assert schema_errors(doc) == []
    meta = doc["metadata"]
    assert meta["preflight"]["passed"] is True and meta["preflight"]["forced"] is False
    assert {c["name"] for c in meta["preflight"]["checks"]} == {c.name for c in CHECKS}
    assert meta["clock"]["ceiling_mhz"] == meta["freq_mhz"]
    assert meta["clock"]["under_load"]["status"] in ("measured", "unknown")


def test_failed_check_stops_the_run_in_one_message(bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_host(monkeypatch, "jetson_orin_nano_7w", {"nvpmodel -q": None})
    result = bench.runpytest_inprocess(*FAST, "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "hwcal preflight failed" in errors[0]
    text = "\n".join(result.errlines)
    assert "jetson_power_mode" in text and "give --power-mode" in text and "--force" in text
    assert not any(re.search(r"\bpassed\b", line) for line in result.outlines[-3:])
    assert _written(bench) == []


def test_force_runs_anyway_and_records_it(bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_host(monkeypatch, "jetson_orin_nano_7w", {"nvpmodel -q": None})
    result = bench.runpytest_inprocess(*FAST, "-p", "no:randomly", "--force")
    assert result.ret == 0, result.outlines
    (path,) = _written(bench)
    assert path.name == "unknown_960MHz_numpy.json"  # the mode really is unknown: the file says so
    doc = json.loads(path.read_text())
    assert schema_errors(doc) == []
    assert doc["metadata"]["preflight"]["passed"] is False and doc["metadata"]["preflight"]["forced"] is True
    assert any(w.startswith("preflight check jetson_power_mode failed and --force was given") for w in doc["warnings"])


def test_fake_jetson_with_nvpmodel_files_under_its_mode(bench: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_host(monkeypatch, "jetson_orin_nano_7w")
    result = bench.runpytest_inprocess(*FAST, "-p", "no:randomly")
    assert result.ret == 0, result.outlines
    (path,) = _written(bench)
    assert path.relative_to(bench.path / "registry").as_posix() == (
        "cpu/jetson_orin_nano_cpu/calibrations/7W_960MHz_numpy.json")
    meta = json.loads(path.read_text())["metadata"]
    assert (meta["power_mode"], meta["power_mode_source"], meta["clock"]["power_mode_id"]) == ("7W", "nvpmodel -q", 1)
    assert meta["freq_source"] == "cpufreq scaling_max_freq"


@pytest.mark.parametrize(("args", "env", "pattern"), [
    (["--frequency-mhz", "0"], {}, r"frequency '0' MHz must be positive"),
    ([], {"HWCAL_FREQUENCY_MHZ": "0"}, r"environment variable HWCAL_FREQUENCY_MHZ: frequency '0' MHz must be positive"),
    (["--power-mode", "7W/../../etc"], {}, r"path separator"),
])
def test_bad_key_input_fails_in_one_line(bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                         env: dict[str, str], pattern: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = bench.runpytest_inprocess(*FAST, "-p", "no:randomly", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.errlines + result.outlines if re.search(pattern, line)]
    assert len(lines) == 1, result.errlines + result.outlines
    assert _written(bench) == []
