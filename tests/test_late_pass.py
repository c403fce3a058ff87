"""The late pass (hwcal.measure.late_pass): the in-core cases, then the shared-tier band, the second window
filed only where it is faster, its checks, its log in the document, and its place after every other case."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import hwcal
import hwcal.measure.blas
import hwcal.measure.late_pass as late_pass
import hwcal.measure.late_windows as late_windows
from hwcal.document.builder import build_calibration, interference_metadata
from hwcal.document.schema import schema_errors
from hwcal.machine.caches import CacheInfo, CacheLevel
from hwcal.measure.blas import run_blas
from hwcal.measure.late_pass import run_late_pass, shared_band
from hwcal.measure.session import CalibrationOptions, CalibrationSession
from hwcal.measure.stream import StreamState, run_stream
from hwcal.measure.verify import Verification
from tests.conftest import make_input
from tests.fakes import FakeBenchmark

KiB, MiB = 2**10, 2**20
EPYC = CacheInfo((CacheLevel(1, 32 * KiB, 2), CacheLevel(2, MiB, 2), CacheLevel(3, 32 * MiB, 1)), "test")
TINY = CacheInfo((CacheLevel(1, 4 * KiB, 1), CacheLevel(2, 8 * KiB, 1), CacheLevel(3, 64 * KiB, 1)), "test")


def _session(tmp_path: Path, caches: CacheInfo, quick: bool = False) -> CalibrationSession:
    session = CalibrationSession(CalibrationOptions(None, "numpy", "cpu", None, None, tmp_path, quick, None, 1.0,
                                                    1.0, False, False))
    session.backend.stream_caches = lambda: caches  # type: ignore[method-assign]
    return session


def test_the_band_is_above_a_cores_own_caches_up_to_8x_the_llc(tmp_path: Path) -> None:
    assert shared_band(_session(tmp_path, EPYC)) == (2 * MiB, 256 * MiB)  # L2 1 MiB x 2 cores; 8 x 32 MiB
    assert shared_band(_session(tmp_path, CacheInfo((CacheLevel(1, 32 * KiB, 1),), "test"))) is None


def _first_pass(session: CalibrationSession) -> None:
    """dot and scal at 32 and 128 KiB (in TINY's band), an in-cache dot, STREAM add with 32 KiB arrays."""
    for op, nbytes in (("dot", 32 * KiB), ("scal", 128 * KiB), ("dot", 4 * KiB)):
        run_blas(FakeBenchmark(), session, op, "fp32", nbytes)
    run_stream(FakeBenchmark(), session, StreamState(session.backend), "add", 32 * KiB)


def test_the_faster_window_is_filed(tmp_path: Path) -> None:
    session = _session(tmp_path, TINY)
    _first_pass(session)
    blas = session.results.blas
    assert session.results.memory is not None
    slow, fast, small = blas
    # The first window of the dot was disturbed (100x slow); the scal's reads faster than any second can be.
    blas[0] = slow = type(slow)(**{**vars(slow), "time_s": {k: v * 100 for k, v in slow.time_s.items()}})
    blas[1] = fast = type(fast)(**{**vars(fast), "time_s": {k: v / 1e6 for k, v in fast.time_s.items()}})
    log = run_late_pass(session)
    assert log is not None and log["left_out"] == 0 and log["band_bytes"] == [8 * KiB, 512 * KiB]
    by_case = {c["case"].split(" ")[0] + c["case"].split(" ")[-2]: c for c in log["cases"]}
    # The in-core dot first (the cores' pace flips in milliseconds), then the band's, smallest first
    assert [c["case"] for c in log["cases"]] == ["dot fp32 4,096 B", "dot fp32 32,768 B", "scal fp32 131,072 B",
                                                 "STREAM add 98,304 B"]
    assert by_case["dot32,768"]["filed"] == "late" and blas[0].time_s["min"] == by_case["dot32,768"]["late_s"]
    assert blas[0].time_s["min"] < slow.time_s["min"] / 10
    assert blas[0].gbps_best == pytest.approx(blas[0].bytes / blas[0].time_s["min"] / 1e9)
    assert blas[0].cpu_busy is not None and blas[0].cpu_busy > 0  # the late window's own threads
    assert by_case["scal131,072"]["filed"] == "first" and blas[1] is fast  # the faster first window stays
    in_core = by_case["dot4,096"]
    assert in_core["first_s"] == small.time_s["min"]
    if in_core["filed"] == "first":
        assert blas[2] is small
    else:
        assert blas[2] is not small and blas[2].time_s["min"] == in_core["late_s"]
    # the 100x and 1e6x apart at least; the two timed for real may be too on a busy host
    assert any(f"late pass: {n} of 4 cases" in w for w in session.results.warnings for n in (2, 3, 4))
    meta, _ = interference_metadata(session.watch.log if session.watch else _log_of(log))
    assert meta["late_pass"]["cases"] == log["cases"]


def _log_of(log: dict) -> object:
    from hwcal.measure.watch import InterferenceLog

    out = InterferenceLog(["test"], {}, 1.0)
    out.late_pass = log
    return out


def test_no_late_pass_quick_or_with_nothing_to_time_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quick = _session(tmp_path, TINY, quick=True)
    _first_pass(quick)
    assert run_late_pass(quick) is None
    session = _session(tmp_path, TINY)
    assert run_late_pass(session) is None  # nothing measured yet
    _first_pass(session)
    monkeypatch.setattr(type(session.backend), "device_type", "gpu")
    assert run_late_pass(session) is None  # a GPU's BLAS and STREAM cases are not timed again; no floor here


def test_a_gpu_times_its_launch_floors_again_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU's launch path is the host's (the H100 host's tiny call: 6.3 or 9-13 us for minutes at a time): its
    floors get a second window, the faster filed; its memory is its own, so its BLAS and STREAM cases do not."""
    from hwcal.measure.floors import run_floor

    session = _session(tmp_path, TINY)
    _first_pass(session)
    for timing in ("back_to_back", "isolated"):
        run_floor(FakeBenchmark(), session, "scal", timing)
    floors = session.results.floors
    slow = floors["scal"] = type(floors["scal"])(**{**vars(floors["scal"]),
                                                    "seconds_min": floors["scal"].seconds_min * 20})
    monkeypatch.setattr(type(session.backend), "device_type", "gpu")
    log = run_late_pass(session)
    assert log is not None and log["band_bytes"] is None and log["budget_s"] == late_pass.LATE_BUDGET_S["gpu"]
    assert {c["case"] for c in log["cases"]} == {"floor scal back_to_back", "floor scal isolated"}
    first = next(c for c in log["cases"] if c["case"] == "floor scal back_to_back")
    assert first["filed"] == "late" and floors["scal"].seconds_min == first["late_s"] < slow.seconds_min / 4
    assert not schema_errors(build_calibration(make_input(interference=_log_of(log))))


def test_a_wrong_result_in_the_second_window_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session(tmp_path, TINY)
    _first_pass(session)
    monkeypatch.setattr(late_windows, "verify_blas", lambda backend, ops: Verification(False, 1.0, 1e-6, "test"))
    with pytest.raises(AssertionError, match="late pass: dot fp32 n=512 gave wrong results"):
        run_late_pass(session)


def test_a_case_that_does_not_fit_the_budget_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session(tmp_path, TINY)
    _first_pass(session)
    monkeypatch.setitem(late_pass.LATE_BUDGET_S, "cpu", 1e-6)
    log = run_late_pass(session)
    assert log is not None and log["cases"] == [] and log["left_out"] == 4


def test_the_in_core_cases_keep_to_their_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session(tmp_path, TINY)
    _first_pass(session)
    monkeypatch.setattr(late_pass, "IN_CORE_S", 1e-6)  # spent: the in-core dot left out, the band's still timed
    log = run_late_pass(session)
    assert log is not None and log["left_out"] == 1
    assert [c["case"] for c in log["cases"]] == ["dot fp32 32,768 B", "scal fp32 131,072 B", "STREAM add 98,304 B"]


def test_the_memory_bound_gemm_shapes_come_last_in_a_second_of_their_own(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 (the most asked precision) at M <= 16 with operands up to the band's top: timed again after the others,
    smallest first, within what the budget has beyond BEFORE_SHAPES_S; M = 32 and another precision are not."""
    from hwcal.measure.shape_plan import Shape
    from hwcal.measure.shapes import run_shape

    session = _session(tmp_path, TINY)
    _first_pass(session)
    for precision, m, nk in (("fp32", 4, 128), ("fp32", 32, 128), ("fp64", 4, 128), ("fp32", 4, 16)):
        run_shape(FakeBenchmark(), session, precision, Shape("small_m", 1, m, nk, nk))
    shapes = session.results.shapes
    assert [(r.precision, r.m, r.n) for r in shapes] == [("fp32", 4, 128), ("fp32", 32, 128), ("fp64", 4, 128),
                                                          ("fp32", 4, 16)]
    first = shapes[0]
    shapes[0] = slow = type(first)(**{**vars(first), "time_s": {k: v * 100 for k, v in first.time_s.items()}})
    others = list(shapes[1:])
    monkeypatch.setattr(late_pass, "BEFORE_SHAPES_S", 1e-6)  # the band's BLAS and STREAM cases find no time
    log = run_late_pass(session)
    assert log is not None
    assert [c["case"] for c in log["cases"]] == ["dot fp32 4,096 B", "GEMM fp32 small_m 4x16x16",
                                                 "GEMM fp32 small_m 4x128x128"]
    (case,) = [c for c in log["cases"] if c["case"].endswith("4x128x128")]
    assert case["filed"] == "late" and shapes[0].time_s["min"] == case["late_s"] < slow.time_s["min"] / 10
    assert shapes[0].gflops_best == pytest.approx(shapes[0].flops / shapes[0].time_s["min"] / 1e9)
    assert shapes[1] is others[0] and shapes[2] is others[1]  # M = 32 and fp64: not timed again
    (small,) = [c for c in log["cases"] if c["case"].endswith("4x16x16")]  # timed again: either window, by noise
    assert shapes[3] is others[2] if small["filed"] == "first" else shapes[3].time_s["min"] == small["late_s"]


def test_a_flagged_gemm_shape_comes_first_and_a_quiet_faster_window_clears_its_flag(tmp_path: Path) -> None:
    from hwcal.machine.interference import Monitor
    from hwcal.machine.sources import Sources
    from hwcal.measure.shape_plan import Shape
    from hwcal.measure.shapes import run_shape
    from hwcal.measure.watch import Watch

    session = _session(tmp_path, TINY)
    session.watch = Watch(Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0), "cpu")  # quiet
    for shape in (Shape("small_m", 1, 4, 128, 128), Shape("batched", 4, 32, 64, 64)):  # M = 32: flagged only
        run_shape(FakeBenchmark(), session, "fp32", shape)
    shapes = session.results.shapes
    first = shapes[1]
    shapes[1] = type(first)(**{**vars(first), "time_s": {k: v * 100 for k, v in first.time_s.items()}})
    session.watch.log.cases.append({"case": "bench/test_gemm_shapes.py::test_gemm_shape[fp32-b4x32x64x64]",
                                    "reasons": ["a call on the BLAS's thread pool took 50 us"], "action": "flagged",
                                    "re_measured": 1, "evidence": [{}, {}], "not_tried_again": "still slow"})
    log = run_late_pass(session)
    assert log is not None
    # flagged first, though larger (131,072 B against 69,632)
    assert [c["case"] for c in log["cases"]] == ["GEMM fp32 batched b4x32x64x64", "GEMM fp32 small_m 4x128x128"]
    assert log["cases"][0]["filed"] == "late"
    (entry,) = session.watch.log.cases
    assert entry["action"] == "re-measured" and entry["late_pass"] is True and "not_tried_again" not in entry
    assert entry["re_measured"] == 2 and len(entry["evidence"]) == 3
    assert session.watch.flagged() == []
    doc = build_calibration(make_input(interference=session.watch.log))
    assert schema_errors(doc) == [] and doc["metadata"]["interference"]["flagged"] == 0


def test_flagged_blas_and_stream_cases_come_first_in_their_tier_and_a_quiet_faster_window_clears_their_flags(
        tmp_path: Path) -> None:
    from hwcal.machine.interference import Monitor
    from hwcal.machine.sources import Sources
    from hwcal.measure.watch import Watch

    session = _session(tmp_path, TINY)
    session.watch = Watch(Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0), "cpu")  # quiet
    _first_pass(session)
    blas, sweep = session.results.blas, session.results.memory
    assert sweep is not None

    def scaled(rec: object, factor: float) -> object:
        return type(rec)(**{**vars(rec), "time_s": {k: v * factor for k, v in rec.time_s.items()}})  # type: ignore

    blas[0] = scaled(blas[0], 100)  # dot 32 KiB: slow first window, flagged
    blas[2] = scaled(blas[2], 1e-6)  # the in-core dot: a first window no second can beat, flagged
    sweep.records[0] = scaled(sweep.records[0], 100)  # STREAM add, 32 KiB arrays: flagged
    for case in ("test_blas.py::test_blas[dot-fp32-32KiB]", "test_blas.py::test_blas[dot-fp32-4KiB]",
                 "test_memory.py::test_stream[add-32KiB]"):
        session.watch.log.cases.append({"case": f"bench/{case}", "reasons": ["steal"], "action": "flagged",
                                        "re_measured": 0, "evidence": [{}], "not_tried_again": "backing off"})
    log = run_late_pass(session)
    assert log is not None and log["left_out"] == 0
    # the flagged STREAM case before the unflagged, smaller-ranked scal in the band
    assert [c["case"] for c in log["cases"]] == ["dot fp32 4,096 B", "dot fp32 32,768 B", "STREAM add 98,304 B",
                                                 "scal fp32 131,072 B"]
    entries = {e["case"].split("[")[1]: e for e in session.watch.log.cases}
    for cleared in ("dot-fp32-32KiB]", "add-32KiB]"):
        assert entries[cleared]["action"] == "re-measured" and entries[cleared]["late_pass"] is True
        assert entries[cleared]["re_measured"] == 1 and "not_tried_again" not in entries[cleared]
    assert entries["dot-fp32-4KiB]"]["action"] == "flagged"  # its first window stays filed, and so does its flag
    assert [e["case"] for e in session.watch.flagged()] == ["bench/test_blas.py::test_blas[dot-fp32-4KiB]"]


def test_a_wrong_gemm_in_the_second_window_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwcal.measure.shape_plan import Shape
    from hwcal.measure.shapes import run_shape

    session = _session(tmp_path, TINY)
    run_shape(FakeBenchmark(), session, "fp32", Shape("small_m", 1, 4, 128, 128))
    monkeypatch.setattr(late_windows, "verify_shape", lambda *a: Verification(False, 1.0, 1e-6, "test"))
    with pytest.raises(AssertionError, match="late pass: fp32 GEMM 4x128x128 gave wrong results"):
        run_late_pass(session)


REPO = Path(hwcal.__file__).resolve().parent.parent
KEY_ARGS = ["--power-mode", "7W", "--frequency-mhz", "2450", "--hardware-id", "test_cpu"]


def test_a_run_files_the_late_pass_after_the_other_cases(pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: the late pass's file is collected first, yet runs after the BLAS cases it times again, and
    the calibration with its log validates."""
    for name in ("HWCAL_POWER_MODE", "HWCAL_FRAMEWORK", "HWCAL_DEVICE", "HWCAL_REGISTRY", "HWCAL_SIZES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hwcal.measure.blas, "plan_working_sets", lambda *args, **kwargs: [4096, 65536])
    monkeypatch.setattr(late_pass, "shared_band", lambda session: (1024, 2**20))
    pytester.makeconftest('"""hwcal registers itself through its pytest11 entry point."""\n')
    pytester.makepyfile(test_a_late_pass=(REPO / "bench" / "test_late_pass.py").read_text(),
                        test_blas=(REPO / "bench" / "test_blas.py").read_text())
    result = pytester.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "-k", "fp32 or late",
                                "-v")
    assert result.ret == 0, result.stdout.str()
    names = [line.split(" ")[0] for line in result.outlines if "PASSED" in line or "SKIPPED" in line]
    assert names[-1].endswith("test_late_pass") and any("test_blas" in n for n in names[:-1])
    doc = json.loads((pytester.path / "registry/cpu/test_cpu/calibrations/7W_2450MHz_numpy.json").read_text())
    assert schema_errors(doc, "calibration") == []
    log = doc["metadata"]["interference"]["late_pass"]
    assert len(log["cases"]) + log["left_out"] == len(doc["blas"]) > 0
    for case in log["cases"]:
        assert case["filed"] == ("late" if case["late_s"] < case["first_s"] else "first")


def test_the_floors_come_first_and_a_faster_window_replaces_a_slow_one(tmp_path: Path) -> None:
    """Every small call's prediction stands on the floors, and one slow episode of the call path (1.6-1.9x, the
    Zen 4 guest) filed four of them slow: both timings get a second window before anything else."""
    from hwcal.measure.floors import run_floor

    session = _session(tmp_path, TINY)
    for timing in ("back_to_back", "isolated"):
        run_floor(FakeBenchmark(), session, "scal", timing)
    _first_pass(session)
    floors = session.results.floors
    slow = floors["scal"]
    # 20x slow (at 100x a noisy host's first window made the late one's estimate overrun the in-core second)
    floors["scal"] = slow = type(slow)(**{**vars(slow), "seconds_min": slow.seconds_min * 20})
    isolated = session.results.isolated_floors["scal"]
    log = run_late_pass(session)
    assert log is not None
    # the two floors before anything else; between them, one the watch flagged (a noisy host) goes first
    assert {c["case"] for c in log["cases"][:2]} == {"floor scal back_to_back", "floor scal isolated"}
    by_case = {c["case"]: c for c in log["cases"][:2]}
    first = by_case["floor scal back_to_back"]
    assert first["filed"] == "late" and floors["scal"].seconds_min == first["late_s"] < slow.seconds_min / 4
    assert "late pass" in floors["scal"].method and floors["scal"].calls >= 200
    second = by_case["floor scal isolated"]
    assert second["first_s"] == isolated.seconds_min
    assert (session.results.isolated_floors["scal"] is isolated) == (second["filed"] == "first")


def test_the_runs_schedule_cuts_the_late_pass_and_its_windows_alike(tmp_path: Path) -> None:
    """A run behind its target gives the late pass less (``hwcal.measure.schedule``): the budget and its in-core
    and shared-tier shares shrink by the same factor; a cut to nothing leaves every case out."""
    from hwcal.measure.schedule import RunSchedule

    session = _session(tmp_path, TINY)
    _first_pass(session)
    session.schedule = RunSchedule(44.0, {"late_pass": 4.0}, lambda: 42.0)  # 2 s left of 4: half
    log = run_late_pass(session)
    assert log is not None and log["budget_s"] == pytest.approx(2.0) and len(log["cases"]) == 4
    assert session.schedule.grants["late_pass"].scale == pytest.approx(0.5)
    late = _session(tmp_path, TINY)
    _first_pass(late)
    late.schedule = RunSchedule(44.0, {"late_pass": 4.0}, lambda: 42.0)
    late.schedule.grants["late_pass"] = dataclasses.replace(session.schedule.grants["late_pass"], budget_s=1e-7,
                                                            scale=2.5e-8)
    cut = run_late_pass(late)
    assert cut is not None and cut["cases"] == [] and cut["left_out"] == 4
