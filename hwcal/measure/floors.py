"""Launch and dispatch floors: the time of each operation's smallest call (1 element, 1x1).

What a model adds per kernel: numpy's call overhead, torch's CPU dispatch, a CUDA launch. Timed by the
shared harness as back-to-back calls then one device synchronisation, divided by the count: on a GPU
the queue fills and each launch waits for a slot, so the figure is the sustained launch rate, not the
latency of one isolated call (which adds a synchronisation, ~10 us). Best and median of the rounds.
"""

from __future__ import annotations

from typing import Any

import pytest

from hwcal.backends import Backend
from hwcal.measure.case import VERIFY_ONLY, plan_for_call
from hwcal.measure.records import LaunchFloor
from hwcal.measure.session import CalibrationSession
from hwcal.measure.timing import time_one_call, timed_rounds

FLOOR_ROUNDS = {False: 20, True: 10}
# Calls per round: a round of at least the backend's minimum (1 ms CPU, 20 ms GPU) and 200 calls, so
# the one synchronisation per round and the timer's own cost are under 1% of it.
MIN_CALLS = 200


def floor_operations(backend: Backend) -> list[str]:
    return list(backend.floor_calls())


def run_floor(benchmark: Any, session: CalibrationSession, operation: str) -> None:
    """Measure and record one operation's launch floor, or skip it with the reason."""
    session.families_run.add("launch_floors")
    backend = session.backend
    calls = backend.floor_calls()
    if operation not in calls:
        pytest.skip(f"{backend.framework} has no {operation} floor call")
    floor = calls[operation]
    if benchmark.enabled:
        backend.warm_up()
        call_s = min(time_one_call(backend, floor.launch) for _ in range(3))
        plan = plan_for_call(backend, call_s, FLOOR_ROUNDS[session.options.quick], MIN_CALLS, shortest_s=1e-8)
    else:
        plan = VERIFY_ONLY
    benchmark.extra_info.update({"operation": operation, "calls_per_round": plan.launches,
                                 "method": floor.description})
    timed = timed_rounds(benchmark, backend, plan, floor.launch, watch=session.watch)
    stats = timed.stats
    if stats is None:
        return
    session.results.floors[operation] = LaunchFloor(
        operation=operation,
        seconds_min=float(stats.min) / plan.launches,
        seconds_median=float(stats.median) / plan.launches,
        calls=plan.launches,
        rounds=int(stats.rounds),
        method=(f"{floor.description}: {plan.launches} back-to-back calls then one synchronisation, per call = "
                f"round / calls; best and median of {int(stats.rounds)} rounds"),
        framework=backend.framework,
        device=backend.device,
        precision=floor.precision,
    )
    benchmark.extra_info["seconds_min"] = float(stats.min) / plan.launches
