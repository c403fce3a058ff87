"""The measured compute ceiling: run once per CPU session (under 2 s), filed as metadata.compute_ceiling
beside the derived peak, efficiency against both in the summary, both roofs on the roofline."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import pytest
from test_machine import machine

from hwcal.document.builder import ceiling_metadata
from hwcal.document.schema import schema_errors
from hwcal.machine import detect_cpu_key
from hwcal.machine.sampler import ClockMonitor, MachineState
from hwcal.machine.sources import Sources
from hwcal.measure.compute_ceiling import run_compute_ceiling
from hwcal.measure.session import CalibrationOptions, CalibrationSession
from hwcal.plugin.summary import _ceiling_lines
from tests.fakes import FakeBenchmark

LOCAL_X86 = sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")


def _ceiling_case(src: Sources | None) -> tuple[CalibrationSession, str | None]:
    """Run the compute-ceiling case of a numpy session on ``src`` (None: this machine): (session, skip reason)."""
    cal = CalibrationSession(CalibrationOptions(
        power_mode="7W", framework="numpy", device="cpu", frequency_mhz=2450, hardware_id=None,
        registry=Path("unused"), quick=True, sizes=None, min_gflops=1.0, max_call_s=0.3, dry_run=True, force=False))
    if src is not None:
        cal.machine_state = MachineState(detect_cpu_key(src), None, ClockMonitor(None, 2450.0, 0.1), "", 0.0, src)
    bench = FakeBenchmark()
    try:
        run_compute_ceiling(bench, cal)
    except pytest.skip.Exception as exc:
        return cal, str(exc)
    return cal, None


def test_a_recorded_machine_is_never_probed() -> None:
    cal, skipped = _ceiling_case(machine("vm_epyc_zen4"))
    result = cal.results.compute_ceiling
    assert result is not None and result.gflops == {} and "not the local machine" in (result.unavailable or "")
    assert skipped is not None and "not the local machine" in skipped
    assert "compute_ceiling" in cal.families_run


@pytest.mark.skipif(not LOCAL_X86, reason="the FMA probe runs on x86-64 Linux only")
def test_this_machine_measured_as_a_case() -> None:
    cal, skipped = _ceiling_case(None)
    out = ceiling_metadata(cal.results.compute_ceiling)  # type: ignore[arg-type]
    assert skipped is None and out["unavailable"] is None
    assert out["gflops"]["fp64"] > 0 and out["gflops"]["fp32"] > out["gflops"]["fp64"]
    assert out["threads"] >= 1 and "256" in out["by_width"]


def _doc(valid_doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(valid_doc)
    doc["metadata"] = {**valid_doc["metadata"], "compute_ceiling": {
        "gflops": {"fp64": 60.0, "fp32": 120.0}, "by_width": {"256": {"fp64": 60.0, "fp32": 120.0}},
        "method": "test", "duration_s": 1.1, "threads": 2, "unavailable": None,
        "efficiency_by_precision": {"fp64": 0.9, "fp32": 0.95}}}
    return doc


def test_the_calibration_schema_takes_the_ceiling(valid_doc: dict[str, Any]) -> None:
    assert schema_errors(_doc(valid_doc)) == []


def test_summary_prints_the_ceiling_beside_the_derived_peak(valid_doc: dict[str, Any]) -> None:
    lines = _ceiling_lines(_doc(valid_doc))
    assert len(lines) == 1 and "compute ceiling (measured FMA, 2 threads, 1.10 s)" in lines[0]
    assert "fp64 60.0 GFLOPS" in lines[0] and "0.90 of the ceiling" in lines[0]


def test_roofline_draws_both_roofs(valid_doc: dict[str, Any]) -> None:
    pytest.importorskip("matplotlib")
    from hwcal.report.figures import roofline_figure, series_gids

    doc = _doc(valid_doc)
    doc["memory"] = {"sustained_gbps": 20.0}
    gids = series_gids(roofline_figure(doc))
    assert "ceiling-measured-fp64" in gids
    assert any(g.startswith("ceiling-derived-") for g in gids) or not doc["precision_matrix"].get("theoretical_peaks")
