"""The measured compute ceiling: run once per CPU session (under 2 s), filed as metadata.compute_ceiling
beside the derived peak, efficiency against both in the summary, both roofs on the roofline."""

from __future__ import annotations

from typing import Any

import pytest
from test_machine import machine

from hwcal.document.schema import schema_errors
from hwcal.machine.cpuclock import native_arch
from hwcal.plugin.preflight import compute_ceiling_metadata
from hwcal.plugin.summary import _ceiling_lines

ARCH = native_arch()


def test_a_recorded_machine_is_never_probed() -> None:
    out = compute_ceiling_metadata(machine("vm_epyc_zen4"))
    assert out["gflops"] == {} and "not the local machine" in out["unavailable"]


@pytest.mark.skipif(ARCH is None, reason="the FMA probe runs on x86-64 and aarch64 Linux only")
def test_this_machine_measured_within_the_budget() -> None:
    from hwcal.machine.sources import Sources

    out = compute_ceiling_metadata(Sources())
    assert out["unavailable"] is None and out["duration_s"] < 2.0
    assert out["gflops"]["fp64"] > 0 and out["gflops"]["fp32"] > out["gflops"]["fp64"]
    assert out["threads"] >= 1 and {"x86_64": "256", "aarch64": "128"}[str(ARCH)] in out["by_width"]


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
