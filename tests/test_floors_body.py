"""Launch and dispatch floors: every backend's smallest calls run, and the body files per-call seconds
from back-to-back calls and one synchronisation per round."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.document.sections import launch_floors_section
from hwcal.measure.floors import FLOOR_ROUNDS, MIN_CALLS, floor_cases, floor_operations, run_floor
from hwcal.measure.session import CalibrationOptions, CalibrationSession
from tests.fakes import FakeBenchmark


def _session(tmp_path: Path, framework: str = "numpy") -> CalibrationSession:
    opts = CalibrationOptions(None, framework, "cpu", None, None, tmp_path, True, None, 1.0, 1.0, False, False)
    return CalibrationSession(opts)


def test_numpy_floor_calls_run() -> None:
    backend = NumpyBackend()
    calls = backend.floor_calls()
    assert list(calls) == ["dot", "axpy", "scal", "gemv", "gemm", "batched_gemm", "add"] == floor_operations(backend)
    for op, call in calls.items():
        call.launch()
        assert call.description and call.precision == "fp32", op


def test_torch_cpu_floor_calls_run() -> None:
    pytest.importorskip("torch")
    from hwcal.backends.torch_backend import TorchBackend

    calls = TorchBackend("cpu").floor_calls()
    assert list(calls) == ["dot", "axpy", "scal", "gemv", "gemm", "batched_gemm", "add"]
    for call in calls.values():
        call.launch()
        assert "CPU dispatch" in call.description


def test_run_floor_files_per_call_seconds(tmp_path: Path) -> None:
    session = _session(tmp_path)
    bench = FakeBenchmark()
    run_floor(bench, session, "dot")
    floor = session.results.floors["dot"]
    assert floor.calls >= MIN_CALLS and floor.rounds == FLOOR_ROUNDS[True]  # --quick
    assert bench.stats.stats.min / floor.calls == pytest.approx(floor.seconds_min)
    assert 0 < floor.seconds_min <= floor.seconds_median < 1e-3  # a 1-element np.dot is microseconds
    assert floor.framework == "numpy" and floor.device == "cpu"
    assert "back-to-back calls then one synchronisation" in floor.method
    assert "launch_floors" in session.families_run


def test_run_floor_with_benchmarks_disabled_files_nothing(tmp_path: Path) -> None:
    session = _session(tmp_path)
    run_floor(FakeBenchmark(enabled=False), session, "gemm")
    assert session.results.floors == {}


def test_unknown_floor_operation_is_skipped(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="numpy has no conv2d floor call"):
        run_floor(FakeBenchmark(), _session(tmp_path), "conv2d")


def test_isolated_floor_synchronises_every_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session(tmp_path)
    syncs = []
    monkeypatch.setattr(session.backend, "synchronize", lambda: syncs.append(1))
    bench = FakeBenchmark()
    run_floor(bench, session, "dot", "isolated")
    floor = session.results.isolated_floors["dot"]
    assert session.results.floors == {} and floor.timing == "isolated"
    # every call of every timed round (and of the warm-up and sizing calls) is followed by a synchronisation
    assert len(syncs) >= floor.calls * floor.rounds
    assert "calls each followed by a synchronisation" in floor.method
    with pytest.raises(ValueError, match="unknown timing 'cold'"):
        run_floor(FakeBenchmark(), session, "dot", "cold")


def test_floor_cases_and_section_file_both_timings(tmp_path: Path) -> None:
    session = _session(tmp_path)
    assert floor_cases(session.backend)[:2] == [("dot", "back_to_back"), ("dot", "isolated")]
    run_floor(FakeBenchmark(), session, "gemm", "back_to_back")
    run_floor(FakeBenchmark(), session, "gemm", "isolated")
    run_floor(FakeBenchmark(), session, "add", "isolated")
    section = launch_floors_section(session.results.floors, session.results.isolated_floors)
    assert list(section) == ["gemm", "add"]
    assert section["gemm"]["timing"] == "back_to_back" and section["gemm"]["isolated"]["calls"] >= MIN_CALLS
    assert "seconds_min" not in section["add"] and section["add"]["isolated"]["seconds_min"] > 0
