"""The timing harness every benchmark body shares: one round structure (launches, then one device
synchronisation), one warm-up rule, the sync guard, and the device-event cross-check.

A round is ``launches`` kernels followed by one device synchronisation, so pytest-benchmark's wall
clock stops only after the device has finished; after every round the device must report itself
idle, or the run fails (an unsynchronised round is how an 8192^3 bf16 GEMM once reported
45,000 TFLOP/s). Where the device can time itself (CUDA events), three extra rounds are timed that
way and the ratio is filed as evidence.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from hwcal.backends import Backend
from hwcal.errors import HwcalError
from hwcal.measure.watch import Watch, case_name


@dataclass(frozen=True)
class RoundPlan:
    launches: int
    rounds: int
    warmup_rounds: int


def launches_for(backend: Backend, call_s: float, round_s: float | None = None, min_launches: int = 1,
                 shortest_s: float = 1e-7) -> int:
    """Calls a round needs to last the backend's minimum round (or ``round_s``)."""
    return max(min_launches, math.ceil((round_s or backend.min_round_s) / max(call_s, shortest_s)))


# A square-sweep case's rounds: about ROUNDS_S seconds of them (at most MAX_ROUNDS), or the light plan's fewer.
ROUNDS_S = {"full": 0.3, "quick": 0.1, "light": 0.1}
MAX_ROUNDS = {"full": 100, "quick": 100, "light": 30}


def plan_rounds(call_s: float, backend: Backend, quick: bool, light: bool = False) -> RoundPlan:
    """Launches per round long enough to hide launch/sync overhead; rounds to fill a small budget (a third of
    it, and at most 30 rounds, on the ``light`` plan)."""
    call_s = max(call_s, 1e-7)
    launches = launches_for(backend, call_s)
    round_s = launches * call_s
    plan = "light" if light else "quick" if quick else "full"
    min_rounds = 3 if round_s > 0.05 else 5
    rounds = max(min_rounds, min(MAX_ROUNDS[plan], math.ceil(ROUNDS_S[plan] / round_s)))
    return RoundPlan(launches, rounds, warmup_rounds(backend, round_s))


def warmup_rounds(backend: Backend, round_s: float) -> int:
    """The one warm-up rule: untimed rounds covering the backend's warm-up time (GPU clocks ramping),
    else one where rounds are short (caches, page faults, thread pools); a long round needs none beyond
    the two untimed calls that sized it (``time_one_call``), which is STREAM's "after an untimed one"."""
    if backend.warmup_s:
        return min(200, max(1, math.ceil(backend.warmup_s / max(round_s, 1e-9))))
    return 1 if round_s < 0.05 else 0


def time_one_call(backend: Backend, launch: Callable[..., Any], *args: Any) -> float:
    """Seconds of one synchronised ``launch(*args)``, after an untimed first one."""
    launch(*args)
    backend.synchronize()  # first call: library initialisation, page faults, clock ramp
    start = time.perf_counter()
    launch(*args)
    backend.synchronize()
    return time.perf_counter() - start


class SyncGuard:
    """Runs after every round, outside the timed region: the device must have no work left queued.

    Comparing wall time with device time cannot catch a missing synchronisation once the launch
    queue is full (launches then block, and the two agree); asking the device whether it is idle can.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.rounds = 0
        self.busy_rounds = 0

    def __call__(self) -> None:
        self.rounds += 1
        if self.backend.device_idle() is False:
            self.busy_rounds += 1
            self.backend.synchronize()

    def check(self) -> None:
        if self.busy_rounds:
            raise HwcalError(
                f"GPU timing is not synchronised: {self.busy_rounds} of {self.rounds} rounds ended with work still "
                "queued on the device; the backend's synchronize() must wait for the device, nothing filed"
            )


def _device_event_ratio(backend: Backend, round_fn: Any, wall_min_s: float) -> float | None:
    """Fastest wall-clock round / fastest of three rounds timed by device events (evidence, ~1.0)."""
    timer = backend.device_timer()
    if timer is None:
        return None
    device_s = min(timer.time(round_fn) for _ in range(3))
    return wall_min_s / device_s if device_s > 0 else None


@dataclass(frozen=True)
class TimedRounds:
    """pytest-benchmark's statistics (None with --benchmark-disable), the wall time of all rounds, the
    device-event ratio (GPUs: evidence that the rounds were synchronised) and the process's CPU seconds
    over the rounds (``cpu_busy``: CPU seconds per wall second, about the threads a call kept busy)."""

    stats: Any
    elapsed_s: float
    event_ratio: float | None
    cpu_s: float = 0.0

    @property
    def cpu_busy(self) -> float | None:
        """Process CPU seconds per wall second over the rounds: ~1 for one thread, ~T for T busy threads
        (a BLAS thread spinning while it waits counts as busy). None when nothing was timed."""
        return self.cpu_s / self.elapsed_s if self.stats is not None and self.elapsed_s > 0 else None


def stats_of(times: list[float]) -> Any:
    """min/max/mean/median/stddev/iqr/rounds/data of round times (pytest-benchmark's names), for rounds
    timed outside pytest-benchmark (re-measurements, extra DRAM rounds)."""
    ordered = sorted(times)
    q = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return SimpleNamespace(min=ordered[0], max=ordered[-1], mean=statistics.fmean(ordered),
                           median=statistics.median(ordered),
                           stddev=statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
                           iqr=q[2] - q[0], rounds=len(ordered), data=list(times))


def own_rounds(backend: Backend, plan: RoundPlan, round_fn: Callable[[], None]) -> Any:
    """The plan's rounds again, timed as pytest-benchmark times them (warm-up, then each round on the wall
    clock), each checked by the sync guard: a re-measurement of a disturbed case."""
    guard = SyncGuard(backend)
    for _ in range(plan.warmup_rounds):
        round_fn()
        guard()
    times = []
    for _ in range(plan.rounds):
        start = time.perf_counter()
        round_fn()
        times.append(max(time.perf_counter() - start, 1e-9))
        guard()
    guard.check()
    return stats_of(times)


def round_of(backend: Backend, launches: int, launch: Callable[..., Any], *args: Any) -> Callable[[], None]:
    """One round as every body times it: ``launches`` launches back to back, then one device synchronisation."""

    def round_fn() -> None:
        for _ in range(launches):
            launch(*args)
        backend.synchronize()
    return round_fn


def timed_rounds(benchmark: Any, backend: Backend, plan: RoundPlan, launch: Callable[..., Any],
                 *args: Any, watch: Watch | None = None, suspect: Callable[[Any], str | None] | None = None,
                 footprint_bytes: int | None = None, split: bool | None = None) -> TimedRounds:
    """The round structure every benchmark body shares: ``plan.launches`` launches then one device
    synchronisation per round, timed by ``benchmark.pedantic``; SyncGuard checks after every round,
    outside the timed region, that nothing is left queued (HwcalError otherwise).

    With a ``watch``, a case that other work disturbed (or whose statistics ``suspect`` finds doubtful)
    is timed again once the machine is quiet (``hwcal.measure.watch``); ``footprint_bytes``, the bytes one
    launch touches where the caller knows them, tells the watch whether a taken LLC could matter, and ``split``
    whether the BLAS's thread pool splits the calls."""
    round_fn = round_of(backend, plan.launches, launch, *args)
    guard = SyncGuard(backend)
    snap = watch.start(split) if watch is not None and benchmark.enabled else None
    cpu_start = time.process_time()
    start = time.perf_counter()
    benchmark.pedantic(round_fn, rounds=plan.rounds, warmup_rounds=plan.warmup_rounds, iterations=1,
                       teardown=guard)
    elapsed_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    guard.check()
    stats = benchmark.stats.stats if benchmark.enabled and benchmark.stats else None
    if watch is not None and snap is not None and stats is not None:
        stats = watch.settle(case_name(benchmark), snap, stats, lambda: own_rounds(backend, plan, round_fn),
                             suspect(stats) if suspect is not None else None, footprint_bytes,
                             stats.min / max(1, plan.launches), split)
    event_ratio = _device_event_ratio(backend, round_fn, stats.min) if stats else None
    return TimedRounds(stats, elapsed_s, event_ratio, cpu_s)


STAT_FIELDS = ("min", "max", "mean", "median", "stddev", "iqr")


def round_times(stats: Any, per: int = 1) -> dict[str, float]:
    """pytest-benchmark's statistics of the rounds in seconds; per call when ``per`` is a round's launches."""
    return {k: float(getattr(stats, k)) / per for k in STAT_FIELDS}


def round_cv(stats: Any) -> float:
    """Coefficient of variation of the rounds (0 with a single round)."""
    return float(stats.stddev / stats.mean) if stats.mean > 0 and stats.rounds > 1 else 0.0
