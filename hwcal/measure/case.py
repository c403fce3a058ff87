"""The benchmark-case helper every operation family shares: size the rounds from a measured call, run
them through the one harness (``hwcal.measure.timing``), verify the result (a wrong one fails the test
and blocks the precision's later cases), and hand the family the fields every record shares.

A family's own body keeps only what is its own: its skip rules and budget, its operands, its counting
(FLOPs, bytes) and its record type.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hwcal.backends import Backend
from hwcal.measure.session import CalibrationSession
from hwcal.measure.timing import (
    RoundPlan,
    TimedRounds,
    launches_for,
    round_cv,
    round_times,
    time_one_call,
    timed_rounds,
    warmup_rounds,
)
from hwcal.measure.verify import Verification
from hwcal.measure.watch import case_name

VERIFY_ONLY = RoundPlan(launches=1, rounds=1, warmup_rounds=0)  # --benchmark-disable: one run, verified


def best_call_s(backend: Backend, launch: Callable[..., Any], *args: Any, tries: int = 3) -> float:
    """Seconds of one call; a call shorter than a round is timed ``tries`` more times and the best kept
    (one preempted sample on a shared machine would otherwise leave one call per round)."""
    call_s = time_one_call(backend, launch, *args)
    if call_s < backend.min_round_s:
        call_s = min(call_s, *(time_one_call(backend, launch, *args) for _ in range(tries)))
    return call_s


def plan_for_call(backend: Backend, call_s: float, rounds: int, min_launches: int = 1,
                  shortest_s: float = 1e-7, round_s: float | None = None) -> RoundPlan:
    """Launches per round to fill the backend's minimum round (or ``round_s``), ``rounds`` rounds, the one
    warm-up rule."""
    launches = launches_for(backend, call_s, round_s, min_launches, shortest_s)
    return RoundPlan(launches, rounds, warmup_rounds(backend, launches * call_s))


@dataclass(frozen=True)
class CaseRun:
    """A case's timed rounds and its check; ``stats`` is None with --benchmark-disable (nothing filed)."""

    plan: RoundPlan
    timed: TimedRounds
    check: Verification
    case: str = ""  # the pytest id (``watch.case_name``): the record carries it, so a flag finds its figure

    @property
    def stats(self) -> Any:
        return self.timed.stats

    def record_fields(self, precision: str, kernel: str, per_call: bool) -> dict[str, Any]:
        """The fields of ``CaseRecord``: timing (per round, or per call when ``per_call``) and the check."""
        stats = self.stats
        return {
            "precision": precision,
            "kernel": kernel,
            "launches_per_round": self.plan.launches,
            "rounds": int(stats.rounds),
            "warmup_rounds": self.plan.warmup_rounds,
            "time_s": round_times(stats, self.plan.launches if per_call else 1),
            "cv": round_cv(stats),
            "max_error": self.check.max_error,
            "tolerance": self.check.tolerance,
            "verify_method": self.check.method,
            "device_event_ratio": self.timed.event_ratio,
            "case": self.case,
        }


def run_verified(benchmark: Any, session: CalibrationSession, plan: RoundPlan, launch: Callable[..., Any],
                 args: tuple[Any, ...], verify: Callable[[], Verification], *, info: dict[str, Any],
                 failure_key: str, where: str, what: str,
                 suspect: Callable[[Any], str | None] | None = None, footprint_bytes: int | None = None,
                 split: bool | None = None) -> CaseRun:
    """Time ``plan`` rounds of ``launch(*args)``, then verify. A wrong result is recorded under
    ``failure_key`` (later cases of it skip) and fails the test: ``what`` gave wrong results. The session's
    watch re-measures a case other work disturbed, or whose statistics a cross-check (``suspect``) doubts."""
    backend = session.backend
    benchmark.extra_info.update({**info, "launches_per_round": plan.launches})
    timed = timed_rounds(benchmark, backend, plan, launch, *args, watch=session.watch, suspect=suspect,
                         footprint_bytes=footprint_bytes, split=split)
    check = verify()
    benchmark.extra_info.update({"verified": check.ok, "max_error": check.max_error})
    if not check.ok:
        session.failures[failure_key] = f"{where}: {check.describe()}"
        pytest.fail(f"{what} gave wrong results: {check.describe()}")
    return CaseRun(plan, timed, check, case_name(benchmark, ""))


def flagged_cases(session: CalibrationSession) -> set[str]:
    """The pytest ids of the cases the watch left flagged (measured while something else ran)."""
    return {c["case"] for c in session.watch.flagged()} if session.watch is not None else set()


def watch_spent_s(session: CalibrationSession) -> float:
    """Seconds the interference watch has spent waiting for quiet and re-measuring (its own budget)."""
    return session.watch.log.spent_s if session.watch is not None else 0.0


@contextlib.contextmanager
def charged(session: CalibrationSession, budget: str) -> Iterator[None]:
    """Charge the wall time of the block to a time-budgeted sweep, whatever way the case ends; the watch's
    waiting and re-measuring has its own budget and is not charged (a busy machine must not cost a sweep
    its DRAM figures)."""
    started, watched = time.perf_counter(), watch_spent_s(session)
    try:
        yield
    finally:
        spent = time.perf_counter() - started - (watch_spent_s(session) - watched)
        session.budget_spent_s[budget] = session.budget_spent_s.get(budget, 0.0) + max(spent, 0.0)
