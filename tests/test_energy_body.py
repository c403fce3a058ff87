"""The energy family on this machine's numpy with a fake meter whose power follows the workload (busy once the
body synchronises launches, idle once it rests: no timing decides it), then its section, the fit, the filed file,
predictions' joules, hwcal-compare's lines and the site's energy page.

Window lengths, the rest and the warm-up are shortened here (the rules, >= 10 sensor updates, are not)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import hwcal.measure.back_to_back as back_to_back
import hwcal.measure.energy as energy
from hwcal.document.energy import energy_section, fit_static_dynamic
from hwcal.machine.energy import MeterChoice
from hwcal.measure.energy_records import MIN_UPDATES, EnergyCase, EnergyRun
from hwcal.measure.gemm import run_gemm
from hwcal.measure.session import CalibrationOptions, CalibrationSession
from hwcal.model.energy import energy_model
from hwcal.model.predict import predictor_of_document
from hwcal.plugin.filing import file_calibration
from hwcal.report.energy import energy_lines, energy_rows, run_summary_lines
from hwcal.site.energy import calibration_energy, energy_page, energy_summary
from tests.fakes import FakeBenchmark, dram_sweep

IDLE_W, BUSY_W = 20.0, 60.0


class WorkloadMeter:
    """A cumulative counter (J) of a device drawing BUSY_W after the body synchronised launches and IDLE_W
    after it slept, integrated on every read and quantised to 1 mJ, as NVML reports it."""

    kind, total, interval_s, update_note = "counter", "board", 0.002, ""
    sensor, method = "fake board counter", "fake counter read every 2 ms"

    def __init__(self) -> None:
        self.wrap_j: dict[str, float] = {}
        self.t = time.perf_counter()
        self.joules = 0.0
        self.is_busy = False
        self.closed = False

    def busy(self) -> None:
        self.read()
        self.is_busy = True

    def idle(self) -> None:
        self.read()
        self.is_busy = False

    def read(self) -> dict[str, float]:
        now = time.perf_counter()
        self.joules += (BUSY_W if self.is_busy else IDLE_W) * (now - self.t)
        self.t = now
        return {"board": round(self.joules, 3)}

    def close(self) -> None:
        self.closed = True


def _session(tmp_path: Path) -> CalibrationSession:
    opts = CalibrationOptions(None, "numpy", "cpu", None, None, tmp_path, True, [256], 1.0, 1.0, False, False)
    return CalibrationSession(opts)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CalibrationSession, WorkloadMeter]]:
    """A session with a measured fp64 GEMM, a DRAM-sized STREAM sweep, and every energy case run (once for
    the module: the windows take seconds)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(energy, "MIN_WINDOW_S", 0.2)
        mp.setattr(energy, "REST_S", 0.3)
        mp.setattr(energy, "WARM_S", 0.05)
        meter = WorkloadMeter()
        mp.setattr(energy, "find_meter", lambda *a, **k: MeterChoice(meter))
        session = _session(tmp_path_factory.mktemp("energy"))
        mp.setattr(session.backend, "synchronize", meter.busy)
        sleep = time.sleep

        def rest(seconds: float) -> None:  # only the idle window sleeps
            meter.idle()
            sleep(seconds)

        mp.setattr(energy.time, "sleep", rest)
        run_gemm(FakeBenchmark(), session, "fp64", 256)
        session.results.memory = dram_sweep(10.0, array_bytes=8 * 2**20)
        state = energy.EnergyState(session)
        state.open()
        for case, _ in energy.energy_cases(session):
            with contextlib.suppress(pytest.skip.Exception):
                energy.run_energy(state, case, timed=True)
        state.close()
    yield session, meter


def test_cases_windows_and_rates(measured: tuple[CalibrationSession, WorkloadMeter]) -> None:
    session, meter = measured
    run = session.results.energy
    assert run is not None and run.unavailable is None and meter.closed
    assert [c.label.split()[0] for c in run.cases] == ["idle", "copy", "fp64", "triad"]
    idle, copy, gemm, triad = run.cases
    assert idle.watts == pytest.approx(IDLE_W, rel=0.05) and idle.rest_s == 0.3
    for case in (copy, triad, gemm):
        assert case.watts == pytest.approx(BUSY_W, rel=0.05), case.label
        assert case.updates >= MIN_UPDATES and case.seconds >= 0.2 and case.launches > 0
    assert gemm.flops_per_s > 0 and gemm.max_error is not None and gemm.label == "fp64 256x256x256 " + gemm.label[-2:]
    assert copy.bytes_per_s > 0 and copy.flops_per_s == 0.0 and copy.max_error == 0.0
    # fp32 has no GEMM in this run: skipped with the reason, not filed as zero
    assert any("no fp32 GEMM was measured" in s for s in run.skipped)


def test_section_figures_follow_from_the_windows(measured: tuple[CalibrationSession, WorkloadMeter]) -> None:
    run = measured[0].results.energy
    section, warnings = energy_section(run)
    assert section is not None and section["status"] == "measured" and warnings == []
    assert run is not None
    gemm = run.cases[2]
    assert section["pj_per_flop_by_precision"]["fp64"] == pytest.approx(gemm.watts / gemm.flops_per_s * 1e12, rel=1e-3)
    assert section["pj_per_flop_dynamic_by_precision"]["fp64"] == pytest.approx(
        (gemm.watts - run.cases[0].watts) / gemm.flops_per_s * 1e12, rel=1e-3)
    assert section["gflops_per_w_by_precision"]["fp64"] == pytest.approx(gemm.flops_per_s / 1e9 / gemm.watts, rel=1e-3)
    copy = run.cases[1]
    assert section["pj_per_byte_dram"] == pytest.approx(copy.watts / copy.bytes_per_s * 1e12, rel=1e-3)
    assert set(section["pj_per_byte_by_kernel"]) == {"copy", "triad"}
    assert section["sample_hz"] > 10 and section["window_s"] == 0.2 and section["idle_w"] > 0
    assert section["fit"]["cases"] == 4 and "static_w" in section["fit"]


def test_fit_recovers_a_known_model() -> None:
    """Cases drawn from P = 80 W + 1 pJ/FLOP (bf16) + 13 pJ/FLOP (fp32) + 90 pJ/byte: the fit gives them back."""
    def case(kind: str, prec: str | None, flops: float, nbytes: float) -> EnergyCase:
        watts = 80.0 + 1e-12 * flops * (1.0 if prec == "bf16" else 13.0) + 90e-12 * nbytes
        return EnergyCase(case=kind, label=kind, precision=prec, seconds=1.0, flops_per_s=flops, bytes_per_s=nbytes,
                          watts=watts, updates=50, update_hz=50.0)

    cases = [case("idle", None, 0, 0), case("stream", None, 0, 4.2e12), case("stream", None, 0, 3.1e12),
             case("gemm", "bf16", 6.5e14, 1e11), case("gemm", "fp32", 5e13, 2e10)]
    fit = fit_static_dynamic(cases)
    assert fit["static_w"] == pytest.approx(80.0) and fit["pj_per_byte"] == pytest.approx(90.0)
    assert fit["pj_per_flop_by_precision"] == {"bf16": pytest.approx(1.0), "fp32": pytest.approx(13.0)}
    assert fit["residual_rms_w"] < 1e-6
    # GEMMs alone cannot tell static from dynamic power
    assert "unavailable" in fit_static_dynamic([c for c in cases if c.case == "gemm"])


def test_unavailable_meter_lets_the_run_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy, "find_meter", lambda *a, **k: MeterChoice(None, ["RAPL: no /sys/class/powercap"]))
    session = _session(tmp_path)
    state = energy.EnergyState(session)
    state.open()
    with pytest.raises(pytest.skip.Exception, match="energy unavailable: RAPL: no /sys/class/powercap"):
        energy.run_energy(state, ("idle", ""), timed=True)
    section, _ = energy_section(session.results.energy)
    assert section == {"status": "unavailable", "reason": "RAPL: no /sys/class/powercap"}


def test_budget_and_benchmark_disable_skip_with_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meter = WorkloadMeter()
    monkeypatch.setattr(energy, "find_meter", lambda *a, **k: MeterChoice(meter))
    state = energy.EnergyState(_session(tmp_path))
    state.open()
    with pytest.raises(pytest.skip.Exception, match="--benchmark-disable"):
        energy.run_energy(state, ("idle", ""), timed=False)
    state.started = time.perf_counter() - energy.BUDGET_S
    with pytest.raises(pytest.skip.Exception, match="energy budget of 15 s is spent"):
        energy.run_energy(state, ("stream", "copy"), timed=True)
    section, _ = energy_section(state.run)
    assert section is not None and section["status"] == "unavailable" and "budget" in section["reason"]


def test_slow_sensor_is_skipped_not_filed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Frozen(WorkloadMeter):
        def read(self) -> dict[str, float]:
            return {"board": 1.0}  # never updates

    monkeypatch.setattr(back_to_back, "MAX_WINDOW_S", 0.2)
    monkeypatch.setattr(energy, "REST_S", 0.0)
    monkeypatch.setattr(energy, "find_meter", lambda *a, **k: MeterChoice(Frozen()))
    state = energy.EnergyState(_session(tmp_path))
    state.open()
    with pytest.raises(pytest.skip.Exception, match="the sensor updated 0 times"):
        energy.run_energy(state, ("idle", ""), timed=True)
    assert not state.run.cases


def _filed_doc(tmp_path: Path, run: EnergyRun) -> dict[str, Any]:
    from tests.test_golden_file import _session as golden_session

    raw = json.loads((Path(__file__).parent / "data" / "golden" / "cpu_run.json").read_text())
    cal = golden_session(raw, tmp_path / "registry")
    cal.results.energy = run
    selection = {"args": ["bench/"], "keyword": None, "markexpr": None, "tests_collected": 106,
                 "gemm_cases_collected": 21, "stream_cases_collected": 36, "operations_not_run": [], "partial": False}
    return file_calibration(cal, ["pytest", "bench/"], selection).doc  # schema-checked before it is written


def test_filed_file_carries_energy_and_predictions_give_joules(
        measured: tuple[CalibrationSession, WorkloadMeter], tmp_path: Path) -> None:
    run = measured[0].results.energy
    assert run is not None
    doc = _filed_doc(tmp_path, run)
    assert doc["energy"]["status"] == "measured"
    predictor = predictor_of_document(doc)
    pred = predictor.predict("gemm", "fp64", n=256)
    model = energy_model(doc)
    assert model is not None and model.static_w is not None
    expected = model.static_w * pred.seconds + (model.pj_per_flop["fp64"] * pred.flops
                                                 + (model.pj_per_byte or 0.0) * pred.bytes) * 1e-12
    assert pred.energy_j == pytest.approx(expected) and pred.energy_basis.startswith("fit:")
    assert pred.summary()["energy_j"] == pred.energy_j
    triad = predictor.predict("triad", "fp64", n=2**20)
    assert triad.energy_j is not None and triad.energy_j > 0
    assert any(line.startswith("energy: fake board counter; idle") for line in run_summary_lines(doc))


def test_unavailable_energy_is_filed_and_predictions_say_so(tmp_path: Path) -> None:
    doc = _filed_doc(tmp_path, EnergyRun(unavailable="RAPL: no /sys/class/powercap (a VM)"))
    assert doc["energy"] == {"status": "unavailable", "reason": "RAPL: no /sys/class/powercap (a VM)"}
    pred = predictor_of_document(doc).predict("gemm", "fp64", n=256)
    assert pred.energy_j is None and "no energy" in pred.energy_basis
    assert run_summary_lines(doc) == ["energy: unavailable: RAPL: no /sys/class/powercap (a VM)"]


def _mode_doc(doc: dict[str, Any], mode: str, scale: float) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    out["key"]["power_mode"] = mode
    e = out["energy"]
    e["gflops_per_w_by_precision"] = {p: v * scale for p, v in e["gflops_per_w_by_precision"].items()}
    e["pj_per_byte_dram"] = e["pj_per_byte_dram"] / scale
    return out


def test_compare_and_site_show_energy_per_power_mode(
        measured: tuple[CalibrationSession, WorkloadMeter], tmp_path: Path) -> None:
    run = measured[0].results.energy
    assert run is not None
    doc = _filed_doc(tmp_path, run)
    low, maxn = _mode_doc(doc, "7W", 1.5), _mode_doc(doc, "MAXN", 1.0)
    rows = {r.metric: r for r in energy_rows(maxn, low)}
    assert rows["fp64 GFLOPS/W"].ratio == pytest.approx(1.5)
    text = "\n".join(energy_lines(maxn, low))
    assert "fp64 GFLOPS/W" in text and "better" in text and "DRAM pJ/byte" in text
    unavailable = {**maxn, "energy": {"status": "unavailable", "reason": "no NVML"}}
    assert "energy of B: unavailable: no NVML" in "\n".join(energy_lines(maxn, unavailable))
    site_rows = [{"dt": "cpu", "hw": "box", "mode": m, "fw": "numpy", "sup": False, "page": f"cal/{m}.html",
                  "energy": energy_summary(d, m, f"cal/{m}.html")} for m, d in (("7W", low), ("MAXN", maxn))]
    page = energy_page(site_rows)
    assert "cpu/box: GFLOPS/W per power mode" in page and "<svg" in page and page.count("<rect x=") >= 3
    assert 'href="cal/7W.html"' in page and "fp64 GFLOPS/W" in page
    on_page = calibration_energy(doc)
    assert "Energy per precision (sustained GEMM)" in on_page and ">fp64<" in on_page
    assert "fake board counter" in on_page
    assert "Energy unavailable: no NVML" in calibration_energy(unavailable)
    assert "No calibration in this registry measured energy" in energy_page(
        [replace_energy(r, {"unavailable": "x"}) for r in site_rows])


def replace_energy(row: dict[str, Any], energy_value: dict[str, Any]) -> dict[str, Any]:
    return {**row, "energy": energy_value}


def test_negative_dynamic_energy_is_a_warning() -> None:
    run = EnergyRun(meter={"sensor": "s", "method": "m", "kind": "counter", "poll_hz": 500.0})
    run.cases = [EnergyCase(case="idle", label="idle", seconds=1.0, watts=100.0, updates=20, update_hz=20.0),
                 EnergyCase(case="gemm", label="bf16 1x1x1 NN", precision="bf16", seconds=1.0, flops_per_s=1e12,
                            watts=90.0, updates=20, update_hz=20.0)]
    section, warnings = energy_section(run)
    assert section is not None and section["pj_per_flop_dynamic_by_precision"]["bf16"] < 0
    assert len(warnings) == 1 and "below the idle" in warnings[0]
    assert replace(run.cases[0], watts=1.0).joules == 1.0


def test_a_disturbed_window_goes_through_the_interference_watch(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class Watch:
        """Says every window was disturbed: settle measures it again (the real policy waits for quiet first)."""

        def __init__(self) -> None:
            self.cases: list[str] = []

        def start(self) -> None:
            return None

        def settle(self, case: str, start: None, first: Any, again: Any) -> Any:
            self.cases.append(case)
            return again()

    meter = WorkloadMeter()
    monkeypatch.setattr(energy, "find_meter", lambda *a, **k: MeterChoice(meter))
    monkeypatch.setattr(energy, "MIN_WINDOW_S", 0.1)
    monkeypatch.setattr(energy, "REST_S", 0.0)
    session = _session(tmp_path)
    watch = Watch()
    session.watch = watch  # type: ignore[assignment]
    state = energy.EnergyState(session)
    state.open()
    energy.run_energy(state, ("idle", ""), timed=True)
    assert watch.cases == ["energy[idle]"] and len(state.run.cases) == 1
