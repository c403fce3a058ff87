"""The clock under load and honest efficiency: sampling windows, throttling flags, NVML lost mid-run,
peaks scaled to the measured clock, derived GPU peaks, and the shipped datasheet specs.

No test depends on how fast anything runs: the sampler's step (``sample_once``) is called directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hwcal.document.builder import build_calibration
from hwcal.document.clocks import ClockOutcome
from hwcal.document.peaks import derive_gpu_peaks, peaks_at_clock, with_derived_gpu_peaks
from hwcal.document.schema import schema_errors
from hwcal.machine import sampler
from hwcal.machine.cpuclock import ChainClock, native_arch
from hwcal.machine.gpu import SmClockReader
from hwcal.machine.identity import detect_emulator
from hwcal.machine.sampler import (
    ChainProbe,
    ClockMonitor,
    DevfreqGpuProbe,
    MachineState,
    NvmlGpuProbe,
    SysfsCpuProbe,
    make_probe,
)
from hwcal.machine.sources import Sources
from hwcal.measure.session import Results
from hwcal.plugin.clocks import benchmark_window, finish_clocks, start_machine_state
from hwcal.plugin.summary import summary_lines
from tests.conftest import make_input, make_record
from tests.fakes import matrix_and_detail
from tests.test_machine import FakeNvml, install_fake_nvml, machine, machine_copy

REGISTRY = Path(__file__).resolve().parent.parent / "registry"
REGISTRY_SPECS = Path(__file__).resolve().parent / "data" / "specs"


class ListProbe:
    """Readings from a list; None stands for 'device idle, no sample'."""

    source = "test probe"

    def __init__(self, readings: list[float | None]) -> None:
        self.readings = list(readings)

    def reset(self) -> None:
        pass

    def read(self) -> tuple[float, list[str]] | None:
        value = self.readings.pop(0)
        return None if value is None else (value, [])


def _monitor(readings: list[float | None], ceiling: float = 960.0) -> ClockMonitor:
    # An hour between samples: the thread never samples by itself, the test steps it.
    return ClockMonitor(ListProbe(readings), ceiling, interval_s=3600.0)


def _window(mon: ClockMonitor, test: str, n: int) -> Any:
    mon.open_window(test)
    for _ in range(n):
        mon.sample_once()
    return mon.close_window()


def _fake_cal(src: Sources, device_type: str = "cpu", device: str = "cpu") -> Any:
    return SimpleNamespace(backend=SimpleNamespace(device_type=device_type, device=device, device_name="Orin",
                                                   warm_up=lambda: None),
                           options=SimpleNamespace(frequency_mhz=None), results=Results(), machine_state=None)


# ---- windows and throttling ------------------------------------------------------------------------------
def test_idle_readings_are_left_out_and_the_window_keeps_the_rest() -> None:
    mon = _monitor([None, 950.0, None, 940.0])
    try:
        window = _window(mon, "fp32-256", 4)
    finally:
        mon.stop()
    assert window.samples == [950.0, 940.0]
    assert mon.throttled(window) is False


@pytest.mark.parametrize(("samples", "throttled"), [
    ([950, 700, 690, 940], True),   # two samples under 75% of 960 MHz: a real drop
    ([950, 500, 940, 945], False),  # one outlier (a probe preempted once) is ignored
    ([700], True),                  # a lone sample counts as it is
    ([720.0, 721.0, 730.0], False),  # exactly at 75% is not below it
])
def test_throttled_means_the_clock_fell_below_75_percent_of_the_ceiling(samples: list[float], throttled: bool) -> None:
    mon = _monitor(list(samples))
    try:
        window = _window(mon, "fp64-1024", len(samples))
    finally:
        mon.stop()
    assert mon.throttled(window) is throttled


def test_no_samples_means_throttling_unknown() -> None:
    mon = _monitor([None, None])
    try:
        window = _window(mon, "int8-64", 2)
    finally:
        mon.stop()
    assert mon.throttled(window) is None


def test_benchmark_window_flags_the_records_of_its_test() -> None:
    src = machine("jetson_orin_nano_7w")
    cal = _fake_cal(src)
    state = start_machine_state(cal, src)
    state.monitor.probe = ListProbe([950.0, 600.0, 610.0, 955.0, 960.0])
    state.monitor.interval_s = 3600.0
    cal.machine_state = state
    untouched = make_record("fp64", 256, 10.0)
    cal.results.gemm.append(untouched)
    try:
        with benchmark_window(cal, "fp32-256"):
            cal.results.gemm.append(make_record("fp32", 256, 20.0))
            for _ in range(3):
                state.monitor.sample_once()
        with benchmark_window(cal, "fp32-512"):
            cal.results.gemm.append(make_record("fp32", 512, 21.0))
            for _ in range(2):
                state.monitor.sample_once()
    finally:
        state.monitor.stop()
    assert [r.throttled for r in cal.results.gemm] == [None, True, False]
    doc = build_calibration(make_input(cal.results.gemm))
    assert [g.get("throttled") for g in doc["gemm"]] == [None, True, False]
    assert schema_errors(doc) == []


# ---- probes -------------------------------------------------------------------------------------------
def test_nvml_probe_leaves_idle_samples_out(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_nvml(monkeypatch, FakeNvml(sm_now=[345, 1980, 1755], reasons=[0x1, 0x0, 0x4]))
    probe = NvmlGpuProbe(SmClockReader(0))
    assert probe.read() is None
    assert probe.read() == (1980.0, [])
    assert probe.read() == (1755.0, ["sw_power_cap"])


def test_nvml_failing_mid_run_keeps_the_samples_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # One clock read at session start (collect_gpu), three under load, then the GPU is lost.
    install_fake_nvml(monkeypatch, FakeNvml(sm_now=[345, 1980, 1965, 1950], reasons=0x4, fail_clock_after=4))
    src = machine("vm_epyc_no_cpufreq")
    cal = _fake_cal(src, "gpu", "cuda:0")
    state = start_machine_state(cal, src)
    assert state.key.power_mode == "700W" and state.key.freq_mhz == 1980
    state.monitor.interval_s = 3600.0
    cal.machine_state = state
    try:
        with benchmark_window(cal, "bf16-8192"):
            cal.results.gemm.append(make_record("bf16", 8192, 700_000.0))
            for _ in range(6):
                state.monitor.sample_once()  # the 4th read raises NVML_ERROR_GPU_IS_LOST
    finally:
        state.monitor.stop()
    assert state.monitor.probe is None and "GPU_IS_LOST" in (state.monitor.failure or "")
    outcome = finish_clocks(cal, state.key)
    under = outcome.metadata["under_load"]
    assert under["status"] == "partial" and under["samples"] == 3 and under["median_mhz"] == 1965.0
    assert under["clock_event_reasons"] == ["sw_power_cap"]
    assert outcome.peaks_clock_mhz == 1965.0
    assert any("sampling stopped mid-run" in w and "GPU_IS_LOST" in w for w in outcome.warnings)


def test_nvml_missing_means_no_probe_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_nvml(monkeypatch, None)
    probe, why = make_probe("gpu", "cuda:0", machine("vm_epyc_no_cpufreq"))
    assert probe is None and "NVML" in why


def test_jetson_gpu_probe_reads_devfreq_only_under_load(tmp_path: Path) -> None:
    root = machine_copy("jetson_orin_nano_7w", tmp_path)
    src = machine("jetson_orin_nano_7w", root=root)
    probe, why = make_probe("gpu", "cuda:0", src)
    assert isinstance(probe, DevfreqGpuProbe) and why == ""
    assert probe.read() is None  # load 0 per mille: idle
    node = root / "sys/class/devfreq/17000000.ga10b"
    (node / "device/load").write_text("987\n")
    (node / "cur_freq").write_text("408000000\n")
    assert probe.read() == (408.0, [])


def test_sysfs_cpu_probe_reads_scaling_cur_freq() -> None:
    probe, _ = make_probe("cpu", "cpu", machine("i7_12700k_pstate"))
    assert isinstance(probe, SysfsCpuProbe)
    reading = probe.read()  # the recording has no /proc/stat: every core counts
    assert reading is not None and 800.0 <= reading[0] <= 3600.0


def test_this_vm_recording_has_no_load_clock_source() -> None:
    probe, why = make_probe("cpu", "cpu", machine("vm_epyc_no_cpufreq"))
    assert probe is None
    assert "no cpufreq scaling_cur_freq" in why and "not a measurement" in why


@pytest.mark.skipif(native_arch() is None, reason="the dependent-add probe is x86-64 / aarch64 Linux machine code")
def test_dependent_add_chain_measures_a_clock_here() -> None:
    chain, why = ChainClock.create()
    assert chain is not None, why
    mhz = chain.read_mhz()
    assert mhz is not None and math.isfinite(mhz) and mhz > 0
    probe, why = make_probe("cpu", "cpu", Sources())
    # Natively the chain samples the clock under load; under an emulator it would time the emulator.
    assert isinstance(probe, ChainProbe) == (detect_emulator() is None), why


def test_under_an_emulator_the_add_chain_is_not_a_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "detect_emulator", lambda src: "QEMU's 'max' CPU")
    probe, why = make_probe("cpu", "cpu", Sources())
    assert not isinstance(probe, ChainProbe)
    if probe is None:
        assert "not used under an emulator (QEMU's 'max' CPU)" in why


# ---- what goes into the document ----------------------------------------------------------------------
def test_unknown_load_clock_is_said_not_invented() -> None:
    src = machine("vm_epyc_no_cpufreq")
    cal = _fake_cal(src)
    cal.machine_state = start_machine_state(cal, src)
    outcome = finish_clocks(cal, cal.machine_state.key)
    under = outcome.metadata["under_load"]
    assert under["status"] == "unknown" and under["source"] == "none"
    assert "not a measurement" in under["reason"]
    assert outcome.peaks_clock_mhz is None
    assert outcome.metadata["ceiling_mhz"] == 2445
    doc = build_calibration(make_input(clock=outcome))
    assert schema_errors(doc) == []


def test_clock_metadata_is_valid_and_complete() -> None:
    src = machine("jetson_orin_nano_7w")
    cal = _fake_cal(src)
    state = start_machine_state(cal, src)
    state.monitor.probe = ListProbe([950.0, 955.0, 958.0, 700.0, 690.0, 940.0, 400.0, 400.0])
    state.monitor.interval_s = 3600.0
    cal.machine_state = state
    with benchmark_window(cal, "fp32-256"):
        cal.results.gemm.append(make_record("fp32", 256, 20.0))
        for _ in range(3):
            state.monitor.sample_once()
    with benchmark_window(cal, "fp32-512"):
        cal.results.gemm.append(make_record("fp32", 512, 21.0))
        for _ in range(3):
            state.monitor.sample_once()
    with benchmark_window(cal, "int16-512"):  # skipped (unsupported): its samples describe no result
        for _ in range(2):
            state.monitor.sample_once()
    outcome = finish_clocks(cal, state.key)
    meta = outcome.metadata
    assert meta["power_mode_id"] == 1 and meta["ceiling_mhz"] == 960
    assert meta["under_load"] | {"source": None} == {"status": "measured", "source": None, "samples": 6,
                                                     "min_mhz": 690.0, "median_mhz": 945.0, "max_mhz": 958.0}
    assert [(t["test"], t["throttled"]) for t in meta["per_test"]] == [("fp32-256", False), ("fp32-512", True)]
    assert any(w.startswith("fp32-512: clock fell to 700 MHz") for w in outcome.warnings)
    assert meta["peaks_clock_mhz"] == 945.0
    doc = build_calibration(make_input(clock=ClockOutcome(meta, [], None), warnings=outcome.warnings))
    assert schema_errors(doc) == []


def test_each_precision_is_scaled_to_the_clock_of_its_best_result() -> None:
    """An H200 ran fp32 at 1980 MHz and fp8 at ~1410 MHz (700 W cap): one session median fits neither."""
    src = machine("vm_epyc_no_cpufreq")
    cal = _fake_cal(src)
    state = start_machine_state(cal, src)
    state.monitor.probe = ListProbe([1980.0, 1980.0, 1965.0, 1420.0, 1410.0, 1400.0, 1500.0])
    state.monitor.interval_s = 3600.0
    cal.machine_state = state
    for test, rec, n_samples in (("fp32-8192", make_record("fp32", 8192, 50_000.0), 3),
                                 ("fp8-8192", make_record("fp8", 8192, 1_200_000.0), 3),
                                 ("fp8-1024", make_record("fp8", 1024, 80_000.0), 1)):
        with benchmark_window(cal, test):
            cal.results.gemm.append(rec)
            for _ in range(n_samples):
                state.monitor.sample_once()
    outcome = finish_clocks(cal, state.key)
    assert outcome.peaks_clock_by_precision == {"fp32": 1980.0, "fp8": 1410.0}
    assert outcome.peaks_clock_mhz == 1500.0
    assert outcome.metadata["peaks_clock_by_precision_mhz"] == {"fp32": 1980.0, "fp8": 1410.0}


def test_power_mode_changed_mid_run_is_a_warning() -> None:
    src = machine("jetson_orin_nano_7w")
    cal = _fake_cal(src)
    cal.machine_state = start_machine_state(cal, src)
    src.commands["nvpmodel -q"] = "NV Power Mode: 15W\n0\n"  # type: ignore[index]  # someone ran nvpmodel -m 0
    outcome = finish_clocks(cal, cal.machine_state.key)
    assert any("power mode 7W -> 15W" in w for w in outcome.warnings)
    assert "7W -> 15W" in outcome.metadata["mode_changed"]


def test_without_session_state_the_metadata_says_sampling_did_not_start() -> None:
    cal = SimpleNamespace(machine_state=None, results=Results())
    key = start_machine_state(_fake_cal(machine("i7_12700k_pstate")), machine("i7_12700k_pstate")).key
    outcome = finish_clocks(cal, key)  # type: ignore[arg-type]
    assert outcome.metadata["under_load"]["status"] == "unknown"
    assert isinstance(MachineState, type)


# ---- peaks --------------------------------------------------------------------------------------------
def test_peaks_scale_up_to_the_measured_clock_never_below_the_stated_one() -> None:
    spec = json.loads((REGISTRY_SPECS / "h100_sxm5.json").read_text())
    scaled = peaks_at_clock(spec, 1900.0)
    assert scaled["theoretical_peaks"]["fp16"] == pytest.approx(989_400.0 * 1900 / 1830)  # above 1830: up
    assert scaled["theoretical_peaks"]["fp32"] == pytest.approx(66_900.0)  # below its 1980: kept
    assert scaled["peaks_reference_clock_mhz"] == 1900.0
    clocks = scaled["peaks_reference_clocks_mhz"]
    assert clocks["fp16"] == 1900.0 and clocks["fp32"] == 1980
    assert spec["theoretical_peaks"]["fp16"] == 989_400.0  # the spec itself is untouched
    # A power-capped fp8 at 1410 MHz keeps its datasheet peak: the cap is the device's loss, shown as efficiency.
    per = peaks_at_clock(spec, 1890.0, {"fp8": 1410.0, "fp32": 1980.0})
    assert per["theoretical_peaks"]["fp8"] == pytest.approx(1_978_900.0)
    assert per["theoretical_peaks"]["fp32"] == pytest.approx(66_900.0)
    assert per["theoretical_peaks"]["bf16"] == pytest.approx(989_400.0 * 1890 / 1830)
    assert per["peaks_reference_clocks_mhz"]["fp8"] == 1830.0


def test_peaks_without_a_clock_are_kept() -> None:
    spec = {"theoretical_peaks": {"fp32": 100.0}}
    assert peaks_at_clock(spec, 3000.0)["theoretical_peaks"] == {"fp32": 100.0}
    assert peaks_at_clock({"theoretical_peaks": {"fp32": 100.0}, "peaks_reference_clock_mhz": 2000.0},
                          None)["theoretical_peaks"] == {"fp32": 100.0}


def test_vm_efficiency_above_one_at_nominal_clock_is_flagged_and_explained_by_the_load_clock() -> None:
    """The derived fp32 peak at the nominal 2445 MHz is below what the VM measures (turbo): at the nominal
    clock the builder must warn; against the clock measured under load the efficiency is below 1."""
    spec = {"theoretical_peaks": {"fp64": 78.24, "fp32": 156.48}, "peaks_reference_clock_mhz": 2445.0}
    records = [make_record("fp64", 1024, 80.0), make_record("fp32", 1024, 164.0)]
    at_nominal = build_calibration(make_input(records, spec=spec))
    assert "fp32" not in matrix_and_detail(at_nominal)["efficiency_by_precision"]  # 1.05x: not a share, not filed
    assert any(w.startswith("fp32: measured 164 GFLOPS is 1.05x") for w in at_nominal["warnings"])
    assert any("> 1 (!)" in line for line in summary_lines(at_nominal))
    at_load = build_calibration(make_input(records, spec=peaks_at_clock(spec, 3150.0)))
    assert matrix_and_detail(at_load)["efficiency_by_precision"]["fp32"] == pytest.approx(164 / (156.48 * 3150 / 2445),
                                                                                          rel=1e-3)
    assert not any("theoretical peak" in w for w in at_load["warnings"])


def test_derived_gpu_peaks() -> None:
    peaks, note = derive_gpu_peaks("9.0", 132, 1830.0)
    assert peaks["fp16"] == pytest.approx(989_429.76) and peaks["int8"] == pytest.approx(2 * 989_429.76)
    assert "132 SMs" in note
    orin, _ = derive_gpu_peaks("8.7", 8, 625.0)
    shipped = json.loads((REGISTRY / "gpu/jetson_orin_nano_gpu/spec.json").read_text())["theoretical_peaks"]
    assert {p: orin[p] for p in shipped} == shipped  # the datasheet figures agree with the per-SM rates
    assert derive_gpu_peaks("12.0", 84, 2500.0)[0] == {}
    assert derive_gpu_peaks("garbage", 84, 2500.0)[0] == {}


def test_new_gpu_spec_without_datasheet_gets_derived_peaks() -> None:
    spec = {"device_type": "gpu", "theoretical_peaks": {}, "peaks_source": "derived", "peaks_note": "none"}
    filled = with_derived_gpu_peaks(spec, {"compute_capability": "8.9", "sm_count": 142}, 2520.0)
    assert filled["theoretical_peaks"]["fp16"] == pytest.approx(142 * 1024 * 2.52)
    assert filled["peaks_reference_clock_mhz"] == 2520.0 and filled["peaks_source"] == "derived"
    assert with_derived_gpu_peaks(spec, None, 2520.0) is spec


# ---- the shipped specs --------------------------------------------------------------------------------
SHIPPED = sorted(REGISTRY.glob("*/*/spec.json"))


def test_specs_for_the_seed_hardware_are_shipped() -> None:
    assert {p.parent.name for p in SHIPPED} >= {"jetson_orin_nano", "intel_12th_gen_intelr_coretm_i7_12700k",
                                                 "jetson_orin_nano_cpu", "jetson_orin_nano_gpu", "h100_sxm5"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_spec_is_valid_dense_and_sourced(path: Path) -> None:
    spec = json.loads(path.read_text())
    assert schema_errors(spec, "spec") == []
    assert spec["id"] == path.parent.name and spec["device_type"] == path.parent.parent.name
    assert all(v > 0 for v in spec["theoretical_peaks"].values())  # unknown is absent, never 0
    assert spec["peaks_note"]
    if spec["peaks_source"] == "derived":  # a calibrated machine's own spec (this CI host's CPU)
        return
    assert spec["peak_bandwidth_gbps"] and spec["peaks_source"] == "datasheet"
    if spec["theoretical_peaks"]:
        assert spec.get("peaks_reference_clock_mhz") or spec.get("peaks_reference_clocks_mhz")


def test_h100_spec_lists_dense_not_sparse_peaks() -> None:
    peaks = json.loads((REGISTRY / "gpu/h100_sxm5/spec.json").read_text())["theoretical_peaks"]
    assert peaks["fp16"] == peaks["bf16"] == 989_400.0  # the original listed the 2:4-sparse 1,979,000
    assert peaks["fp8"] == peaks["int8"] == pytest.approx(2 * peaks["fp16"], rel=1e-4)  # datasheet rounding
    assert peaks["tf32"] == pytest.approx(peaks["fp16"] / 2, rel=1e-4)
    assert "int32" not in peaks
