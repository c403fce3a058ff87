"""Launch and dispatch floors: the time of each operation's smallest call (1 element, 1x1), timed two ways.

What a model adds per kernel: numpy's call overhead, torch's CPU dispatch, a CUDA launch. Both timings go
through the shared harness, rounds of many calls, per call = round / calls, best and median of the rounds:

- ``back_to_back``: the calls issued one after another, one device synchronisation at the end of the round.
  On a GPU the queue fills and each launch waits for a slot: the interval between calls in a stream of
  them, which is how a model's layers run (the default timing of every prediction).
- ``isolated``: every call followed by its own synchronisation: the latency of one call on its own (a
  GPU adds the round trip of the synchronisation, ~5-10 us; on a CPU the two agree, calls being synchronous).
"""

from __future__ import annotations

from typing import Any

import pytest

from hwcal.backends import Backend
from hwcal.measure.case import VERIFY_ONLY, plan_for_call
from hwcal.measure.records import LaunchFloor
from hwcal.measure.session import CalibrationSession
from hwcal.measure.timing import time_one_call, timed_rounds
from hwcal.measure.watch import case_name

FLOOR_ROUNDS = {False: 10, True: 5}  # twice the cases of before (two timings): half the rounds each
TIMINGS = ("back_to_back", "isolated")
# Calls per round: a round of at least the backend's minimum (1 ms CPU, 20 ms GPU) and 200 calls, so
# the one synchronisation per round and the timer's own cost are under 1% of it.
MIN_CALLS = 200


def floor_operations(backend: Backend) -> list[str]:
    return list(backend.floor_calls())


def floor_cases(backend: Backend) -> list[tuple[str, str]]:
    """(operation, timing): each operation back to back, then isolated."""
    return [(op, timing) for op in floor_operations(backend) for timing in TIMINGS]


def run_floor(benchmark: Any, session: CalibrationSession, operation: str, timing: str = "back_to_back") -> None:
    """Measure and record one operation's launch floor in one timing, or skip it with the reason."""
    session.families_run.add("launch_floors")
    backend = session.backend
    calls = backend.floor_calls()
    if operation not in calls:
        pytest.skip(f"{backend.framework} has no {operation} floor call")
    if timing not in TIMINGS:
        raise ValueError(f"unknown timing {timing!r}; one of {', '.join(TIMINGS)}")
    floor = calls[operation]
    launch = floor.launch
    if timing == "isolated":
        def launch() -> None:
            floor.launch()
            backend.synchronize()
    if benchmark.enabled:
        backend.warm_up()
        call_s = min(time_one_call(backend, launch) for _ in range(3))
        plan = plan_for_call(backend, call_s, FLOOR_ROUNDS[session.options.quick], MIN_CALLS, shortest_s=1e-8)
    else:
        plan = VERIFY_ONLY
    benchmark.extra_info.update({"operation": operation, "timing": timing, "calls_per_round": plan.launches,
                                 "method": floor.description})
    timed = timed_rounds(benchmark, backend, plan, launch, watch=session.watch, footprint_bytes=0)  # 16 elements
    stats = timed.stats
    if stats is None:
        return
    how = ("back-to-back calls then one synchronisation" if timing == "back_to_back"
           else "calls each followed by a synchronisation")
    record = LaunchFloor(
        operation=operation,
        seconds_min=float(stats.min) / plan.launches,
        seconds_median=float(stats.median) / plan.launches,
        calls=plan.launches,
        rounds=int(stats.rounds),
        method=(f"{floor.description}: {plan.launches} {how}, per call = round / calls; best and median of "
                f"{int(stats.rounds)} rounds"),
        framework=backend.framework,
        device=backend.device,
        precision=floor.precision,
        timing=timing,
        case=case_name(benchmark, ""),
    )
    (session.results.floors if timing == "back_to_back" else session.results.isolated_floors)[operation] = record
    benchmark.extra_info["seconds_min"] = float(stats.min) / plan.launches
