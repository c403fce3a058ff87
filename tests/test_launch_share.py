"""The launch looks of GPU runs: a short call's figure is paced by the host's launch path, whose speed moves
in episodes (the lent GPU hosts: 5.5 or 8.2 us for a tiny torch.add) that /proc/stat and NVML do not show;
and the fork-join looks of CPU runs whose framework splits calls over threads (this VM: 3.5 or 5.5 us for
torch's x.mul_ on 65,536 elements). A real probe on a call that busy-waits must read its slowdown; scripted
looks drive the monitor and the watch."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hwcal.document.builder import build_calibration
from hwcal.document.schema import schema_errors
from hwcal.machine import launch_share
from hwcal.machine.interference import Monitor
from hwcal.machine.launch_share import (
    FORK_JOIN_BOUND_S,
    LAUNCH_BOUND_BYTES,
    SHORT_CALL_S,
    SPLIT_BYTES,
    LaunchProbe,
)
from hwcal.machine.sources import Sources
from hwcal.measure import watch as watch_mod
from hwcal.measure.watch import Watch
from tests.conftest import make_input


class ScriptedLaunch(LaunchProbe):
    """Launch shares from a list (the last one repeats), against a quick run's 5.5 us."""

    def __init__(self, looks: list[float], fork_join: bool = False, pool: bool = False) -> None:
        super().__init__(lambda: None, lambda: None, "scripted calls", fork_join=fork_join, pool=pool)
        self.script = list(looks)
        self.best_s = 5.5e-6

    def look(self) -> float | None:
        value = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        self.looks += 1
        self.slowest_s = max(self.slowest_s, self.best_s / value)
        return value


def _monitor(tmp_path: Path, probe: LaunchProbe) -> Monitor:
    return Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0, launch=probe)


def test_a_slow_launch_episode_is_a_reason_for_short_calls_only(tmp_path: Path) -> None:
    mon = _monitor(tmp_path, ScriptedLaunch([1.0, 0.67]))
    start, end = mon.snapshot(), mon.snapshot()
    ev = mon.evidence(start, end, footprint_bytes=1 << 20)
    assert ev.disturbed and ev.launch_share == 0.67 and len(ev.reasons) == 1
    assert "8.2 us to launch a tiny call" in ev.reasons[0] and "5.5 us" in ev.reasons[0]
    assert ev.as_dict()["launch_share"] == 0.67
    assert not mon.evidence(start, end, footprint_bytes=LAUNCH_BOUND_BYTES * 4).disturbed  # the queue hides it
    assert not mon.evidence(start, end).disturbed  # unknown bytes: the long bursts and energy windows
    assert any("scripted calls" in s for s in mon.sources)


def test_a_look_within_its_noise_is_not_a_reason(tmp_path: Path) -> None:
    mon = _monitor(tmp_path, ScriptedLaunch([1.0, 0.88]))  # 6.25 us against 5.5: the quick state's spread
    assert not mon.evidence(mon.snapshot(), mon.snapshot(), footprint_bytes=0).disturbed


def test_a_case_in_a_slow_episode_is_re_measured_once_it_passes_and_filed(tmp_path: Path) -> None:
    watch = Watch(_monitor(tmp_path, ScriptedLaunch([1.0, 0.66, 0.97])), "gpu")
    watch.quiet_wait_s = 0.6
    assert watch.settle("test_launch_floor[add-back_to_back]", watch.start(), "first", lambda: "again",
                        footprint_bytes=0) == "again"
    (case,) = watch.log.cases
    assert case["action"] == "re-measured" and case["evidence"][0]["launch_share"] == 0.66
    assert "slow episode of the launch path" in case["reasons"][0]
    doc = build_calibration(make_input(interference=watch.log))
    assert schema_errors(doc) == []
    launch = doc["metadata"]["interference"]["launch"]
    assert launch["looks"] >= 4 and launch["per_call_us_best"] == 5.5


def test_a_case_slowed_only_by_the_launch_pace_is_timed_again_at_once(tmp_path: Path) -> None:
    """No wait for a pace episode: the retry follows at once, and sets no back-off for the next case."""
    watch = Watch(_monitor(tmp_path, ScriptedLaunch([1.0, 0.6, 0.97, 0.97])), "gpu")

    def no_wait(*args: object) -> None:
        raise AssertionError("waited for a quiet moment")

    watch.wait_quiet = no_wait  # type: ignore[method-assign, assignment]
    started = time.perf_counter()
    assert watch.settle("test_launch_floor[add-back_to_back]", watch.start(), "first", lambda: "again",
                        footprint_bytes=0) == "again"
    assert time.perf_counter() - started < 1.0 and watch._backoff_until == 0.0
    (case,) = watch.log.cases
    assert case["action"] == "re-measured" and case["at_once"] == 1 and case["re_measured"] == 1
    assert schema_errors(build_calibration(make_input(interference=watch.log))) == []


def test_a_pace_episode_that_lasts_is_flagged_after_one_try_at_once(tmp_path: Path) -> None:
    watch = Watch(_monitor(tmp_path, ScriptedLaunch([1.0, 0.6])), "cpu")
    watch.quiet_wait_s = 5.0
    started = time.perf_counter()
    watch.settle("test_blas[scal-fp32-512KiB]", watch.start(), "first", lambda: "again", footprint_bytes=0)
    assert time.perf_counter() - started < 1.0
    (case,) = watch.flagged()
    assert case["at_once"] == 1 and case["re_measured"] == 1
    assert "still slow on its try at once" in case["not_tried_again"]
    assert (watch.log.pace_tried, watch.log.pace_quick) == (1, 0)


def test_once_tries_at_once_rarely_find_a_quick_pace_the_run_stops_trying(tmp_path: Path) -> None:
    """PACE_TRIAL tries with fewer than 1 in PACE_ODDS quick: later pace-only cases are flagged untried, and the
    file says how the tries went."""
    watch = Watch(_monitor(tmp_path, ScriptedLaunch([1.0, 0.6])), "gpu")  # slow throughout
    for i in range(watch_mod.PACE_TRIAL + 2):
        watch.settle(f"case{i}", watch.start(), "first", lambda: "again", footprint_bytes=0)
    assert (watch.log.pace_tried, watch.log.pace_quick) == (watch_mod.PACE_TRIAL, 0)
    last = watch.flagged()[-1]
    assert last["re_measured"] == 0 and "quick pace for 0 of 6 cases" in last["not_tried_again"]
    doc = build_calibration(make_input(interference=watch.log))
    assert schema_errors(doc) == [] and doc["metadata"]["interference"]["pace_tries"] == {"tried": 6, "quick": 0}


def test_the_pace_with_another_reason_is_waited_for(tmp_path: Path) -> None:
    """Only a window whose one reason is the pace skips the wait: with steal beside it, the watch waits."""
    mon = _monitor(tmp_path, ScriptedLaunch([1.0, 0.6]))
    start, end = mon.snapshot(), mon.snapshot()
    assert mon.evidence(start, end, footprint_bytes=0).pace_only
    start = dataclasses.replace(start, t=0.0, busy_s=0.0, steal_s=0.0, own_cpu_s=0.0)
    end = dataclasses.replace(end, t=1.0, busy_s=0.0, steal_s=1.0, own_cpu_s=0.0)  # a stolen CPU-second
    ev = mon.evidence(start, end, footprint_bytes=0)
    assert ev.disturbed and len(ev.reasons) == 2 and not ev.pace_only and ev.pace_slow
    assert ev.launch_share == 0.6

    class Stolen(Monitor):
        def evidence(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return ev

    watch = Watch(Stolen(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0), "cpu")
    waits: list[object] = []
    watch.wait_quiet = lambda *a: waits.append(a)  # type: ignore[method-assign, assignment, func-returns-value]
    watch.settle("case", watch.start(), "first", lambda: "again", footprint_bytes=0)
    assert waits and "at_once" not in watch.log.cases[0]  # waited (and found no quiet moment), no try at once


def test_the_real_look_reads_a_slower_call_and_answers_from_a_recent_look(monkeypatch: pytest.MonkeyPatch) -> None:
    delay = [0.0]

    def call() -> None:
        if delay[0]:
            end = time.perf_counter() + delay[0]
            while time.perf_counter() < end:
                pass

    monkeypatch.setattr(launch_share, "SEED_LOOKS", 3)
    probe = LaunchProbe(call, lambda: None, "busy waits")
    delay[0] = 20e-6
    probe.seed()
    assert probe.looks == 3 and 0.8 < (probe.look() or 0) <= 1.0
    assert probe.look() == probe.look() and probe.looks == 3  # under MAX_AGE_S: the seed's last look answers
    time.sleep(launch_share.MAX_AGE_S)
    delay[0] = 40e-6  # twice as slow a call: a share near 0.5
    share = probe.look()
    assert share is not None and 0.3 < share < 0.65
    summary = probe.summary()
    assert summary["per_call_us_slowest"] > 1.6 * summary["per_call_us_best"] and "busy waits" in summary["method"]


def test_a_slow_wake_up_is_a_reason_for_short_split_calls_only(tmp_path: Path) -> None:
    mon = _monitor(tmp_path, ScriptedLaunch([1.0, 0.6], fork_join=True))
    start, end = mon.snapshot(), mon.snapshot()
    ev = mon.evidence(start, end, footprint_bytes=512 << 10, call_s=5e-6)  # scal on 131,072 fp32 elements
    assert ev.disturbed and len(ev.reasons) == 1
    assert "split over the threads took 9.2 us" in ev.reasons[0] and "wake-up" in ev.reasons[0]
    assert not mon.evidence(start, end, footprint_bytes=512 << 10, call_s=FORK_JOIN_BOUND_S * 2).disturbed  # long
    assert not mon.evidence(start, end, footprint_bytes=SPLIT_BYTES // 2, call_s=1e-6).disturbed  # one thread
    assert not mon.evidence(start, end, footprint_bytes=512 << 10).disturbed  # call time unknown: not judged
    assert mon.evidence(start, end, call_s=5e-6).disturbed  # bytes unknown: could be split
    assert "fork-join look" in " ".join(mon.sources)


def test_the_watch_passes_a_case_s_call_time_from_its_rounds(tmp_path: Path) -> None:
    """timed_rounds gives the watch a call's time (fastest round / launches): a split call of 5 us is judged."""
    from types import SimpleNamespace

    from hwcal.measure.timing import RoundPlan, timed_rounds

    watch = Watch(_monitor(tmp_path, ScriptedLaunch([1.0, 0.6], fork_join=True)), "cpu")
    watch.log.budget_s = 0.0  # no waiting: the case is flagged at once

    class Bench:
        enabled = True
        fullname = "test_blas[scal-fp32-512KiB]"
        stats = SimpleNamespace(stats=SimpleNamespace(min=100 * 5e-6))

        def pedantic(self, fn, rounds, warmup_rounds, iterations, teardown):  # type: ignore[no-untyped-def]
            fn()

    backend = SimpleNamespace(synchronize=lambda: None, device_idle=lambda: None, device_timer=lambda: None)
    plan = RoundPlan(launches=100, rounds=1, warmup_rounds=0)
    timed_rounds(Bench(), backend, plan, lambda: None, watch=watch, footprint_bytes=512 << 10)  # type: ignore[arg-type]
    (case,) = watch.log.cases
    assert case["action"] == "flagged" and "wake-up" in case["reasons"][0]


def test_a_slow_pool_thread_is_a_reason_for_the_calls_the_pool_splits(tmp_path: Path) -> None:
    """The thread-pool look judges the cases whose calls the BLAS's pool splits (the backend's word), however long
    their calls, on bytes it could split."""
    mon = _monitor(tmp_path, ScriptedLaunch([1.0, 0.6], pool=True))
    assert mon.snapshot().launch_share is None and mon.launch is not None and mon.launch.looks == 0  # no split
    start, end = mon.snapshot(split=True), mon.snapshot(split=True)
    ev = mon.evidence(start, end, footprint_bytes=6 << 20, call_s=1e-3, split=True)  # 16 x 256x64 @ 64x256
    assert ev.disturbed and ev.pace_only and "BLAS's thread pool took 9.2 us" in ev.reasons[0]
    assert not mon.evidence(start, end, footprint_bytes=6 << 20, call_s=1e-3, split=False).disturbed  # numpy STREAM
    assert not mon.evidence(start, end, footprint_bytes=6 << 20, call_s=1e-3).disturbed  # not known: not judged
    assert not mon.evidence(start, end, footprint_bytes=64, call_s=1e-6, split=True).disturbed  # 16 elements
    assert "thread-pool look" in " ".join(mon.sources)


def test_which_numpy_calls_the_pool_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    from hwcal.backends.numpy_backend import NumpyBackend

    backend = NumpyBackend()
    monkeypatch.setattr(NumpyBackend, "_blas_threads", lambda self: 2)
    big = (128, 128, 128)  # MNK 2^21: OpenBLAS gives it 8 (of 2) threads; 4x128x128 and 64^3 get one
    assert [op for op in ("gemm", "dot", "gemv", "axpy", "scal") if backend.pool_splits(op, "fp32", *big)] == ["gemm"]
    assert backend.pool_splits("gemm", "fp64", *big) and not backend.pool_splits("gemm", "fp16", *big)  # numpy's loop
    assert not backend.pool_splits("gemm", "fp32", 4, 128, 128) and not backend.pool_splits("gemm", "fp32", 64, 64, 64)
    assert backend.pool_splits("gemm", "fp32", 32, 128, 128)  # 2 x 65536 x 4: two threads
    monkeypatch.setattr(NumpyBackend, "_blas_threads", lambda self: 1)
    assert not backend.pool_splits("gemm", "fp32", *big)


def test_the_bodies_tell_the_watch_which_calls_the_pool_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A numpy fp32 GEMM shape OpenBLAS splits goes to the pool; a smaller one, an fp16 GEMM (numpy's loop), a gemv
    (not judged) and a STREAM kernel do not."""
    from hwcal.backends.numpy_backend import NumpyBackend
    from hwcal.measure.blas import run_blas
    from hwcal.measure.session import CalibrationOptions, CalibrationSession
    from hwcal.measure.shape_plan import Shape
    from hwcal.measure.shapes import run_shape
    from hwcal.measure.stream import StreamState, run_stream
    from tests.fakes import FakeBenchmark

    seen: list[bool | None] = []

    class Recording(Monitor):
        def evidence(self, start, end, footprint_bytes=None, call_s=None, split=None):  # type: ignore[no-untyped-def]
            seen.append(split)
            return super().evidence(start, end, footprint_bytes, call_s, split)

    monkeypatch.setattr(NumpyBackend, "_blas_threads", lambda self: 2)
    session = CalibrationSession(CalibrationOptions(None, "numpy", "cpu", None, None, tmp_path, False, None, 1.0,
                                                    1.0, False, False))
    session.watch = Watch(Recording(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0), "cpu")
    run_shape(FakeBenchmark(), session, "fp32", Shape("small_m", 1, 32, 128, 128))
    run_shape(FakeBenchmark(), session, "fp32", Shape("small_m", 1, 4, 128, 128))
    run_shape(FakeBenchmark(), session, "fp16", Shape("small_m", 1, 32, 128, 128))
    run_blas(FakeBenchmark(), session, "gemv", "fp32", 64 << 10)
    run_stream(FakeBenchmark(), session, StreamState(session.backend), "add", 32 << 10)
    assert seen[:4] == [True, False, False, False] and not seen[4]  # STREAM says nothing of the pool


def test_a_slow_call_gets_fewer_calls_a_look_and_a_bounded_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2 ms call (an emulated CPU's GEMM) gets MIN_CALLS a look and the seed stops after SEED_MAX_S; a 5 us one
    keeps CALLS."""
    def busy(seconds: float) -> Callable[[], None]:
        def call() -> None:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        return call

    monkeypatch.setattr(launch_share, "SEED_MAX_S", 0.05)
    slow = LaunchProbe(busy(2e-3), lambda: None, "slow calls", pool=True)
    started = time.perf_counter()
    slow.seed()
    assert slow.calls == launch_share.MIN_CALLS and slow.looks == 3 and time.perf_counter() - started < 0.5
    assert f"{launch_share.MIN_CALLS} back-to-back slow calls" in slow.description
    quick = LaunchProbe(busy(5e-6), lambda: None, "quick calls")
    monkeypatch.setattr(launch_share, "SEED_LOOKS", 2)
    quick.seed()
    assert quick.calls == launch_share.CALLS


def test_launch_probes_by_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """GPU: the add floor's launch look; torch on CPU threads: a fork-join look on one grain per thread;
    numpy (its element-wise calls run on one thread): a thread-pool look on a GEMM its OpenBLAS splits, where
    that has threads to split over, else none."""
    from hwcal.backends.numpy_backend import NumpyBackend
    from hwcal.plugin.preflight import launch_probe

    numpy_backend = NumpyBackend()
    assert numpy_backend.fork_join_call() is None
    monkeypatch.setattr(launch_share, "SEED_LOOKS", 2)
    monkeypatch.setattr(NumpyBackend, "_blas_threads", lambda self: 1)
    assert numpy_backend.pool_call() is None and launch_probe(numpy_backend) is None
    monkeypatch.setattr(NumpyBackend, "_blas_threads", lambda self: 2)
    probe = launch_probe(numpy_backend)
    assert probe is not None and probe.pool and not probe.fork_join and probe.looks == 2
    assert "thread-pool look" in probe.description and "np.matmul of 128x128 fp32" in probe.description
    torch = pytest.importorskip("torch")
    from hwcal.backends.torch_backend import TorchBackend

    backend = TorchBackend("cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert backend.fork_join_call() is None
        torch.set_num_threads(2)
        call = backend.fork_join_call()
        assert call is not None and "65,536 fp32 elements (2 threads" in call.description
        call.launch()
    finally:
        torch.set_num_threads(before)


def test_a_slow_call_episode_is_a_reason_for_short_calls_only(tmp_path: Path) -> None:
    """The call look (a CPU run's own tiny call on one thread) judges the cases whose calls take under
    SHORT_CALL_S, whatever their bytes: the floors and the smallest BLAS calls, whose dispatch slowed 1.6-1.9x
    together on the Zen 4 guest. Alone, it is a pace (one try at once); beside the launch look's too."""
    call = ScriptedLaunch([1.0, 0.56])
    call.single = True
    mon = Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0, call=call)
    start, end = mon.snapshot(), mon.snapshot()
    ev = mon.evidence(start, end, footprint_bytes=0, call_s=1.2e-6)
    assert ev.disturbed and ev.pace_only and ev.call_share == 0.56 and ev.as_dict()["call_share"] == 0.56
    assert "a tiny call took 9.82 us, 1.79x this run's best (5.50 us)" in ev.reasons[0]
    assert not mon.evidence(start, end, footprint_bytes=0, call_s=SHORT_CALL_S * 2).disturbed  # a longer call
    assert not mon.evidence(start, end, footprint_bytes=0).disturbed  # its time not known: not judged
    assert any("a call look" in s for s in mon.sources)
    both = Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0, call=call,
                   launch=ScriptedLaunch([0.6], fork_join=True))
    ev = both.evidence(both.snapshot(), both.snapshot(), footprint_bytes=SPLIT_BYTES, call_s=5e-6)
    assert len(ev.reasons) == 2 and ev.pace_only  # two pace looks: tried at once, not waited for


def test_cpu_runs_get_a_call_look_on_their_add_floor() -> None:
    from hwcal.backends.numpy_backend import NumpyBackend
    from hwcal.plugin.preflight import call_probe

    probe = call_probe(NumpyBackend())
    assert probe is not None and probe.single and probe.looks >= 3 and 0 < probe.best_s < 1e-4
    assert "a call look" in probe.description and "np.add" in probe.description
    summary = probe.summary()
    assert summary["looks"] == probe.looks and summary["per_call_us_best"] > 0


def test_a_floor_in_a_slow_call_episode_is_timed_again_at_once_and_the_look_is_filed(tmp_path: Path) -> None:
    call = ScriptedLaunch([1.0, 0.56, 0.98, 0.98])
    call.single = True
    watch = Watch(Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0, call=call), "cpu")
    watch.wait_quiet = lambda *args: pytest.fail("waited for a quiet moment")  # type: ignore[method-assign, assignment]
    assert watch.settle("test_launch_floor[scal-back_to_back]", watch.start(), "first", lambda: "again",
                        footprint_bytes=0, call_s=0.7e-6) == "again"
    (case,) = watch.log.cases
    assert case["action"] == "re-measured" and case["at_once"] == 1 and "call path" in case["reasons"][0]
    doc = build_calibration(make_input(interference=watch.log))
    assert schema_errors(doc) == []
    assert doc["metadata"]["interference"]["call"]["looks"] >= 3
    assert "call look" in doc["metadata"]["interference"]["call"]["method"]
