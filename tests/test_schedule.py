"""The run's wall-clock target: budgets fixed when each family starts, cut in proportion when the run is behind,
never below half, the memory system and a user's --memory-seconds never; filed and summarised."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from hwcal.document.builder import build_calibration
from hwcal.measure.budgets import ENERGY_RESERVE_S, FINISH_RESERVE_S, make_schedule, nominal_budgets, run_target_s
from hwcal.measure.schedule import MIN_SCALE, TARGET_S, RunSchedule
from hwcal.plugin.hooks import _planned_families, _run_rank
from hwcal.plugin.summary import _schedule_lines
from hwcal.registry.writer import check_valid

NOMINAL = {"blas": 7.0, "gemm_shapes": 8.0, "stream": 5.0, "memory_system": 8.0, "late_pass": 4.0}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _schedule(now: float, target: float | None = 44.0, reserve: float = 1.5, **kw: Any) -> tuple[RunSchedule, Clock]:
    clock = Clock(now)
    return RunSchedule(target, dict(NOMINAL), clock, lambda: reserve, **kw), clock


def test_a_run_on_time_keeps_every_nominal_budget() -> None:
    schedule, clock = _schedule(now=5.0)  # 44 - 5 - 1.5 = 37.5 s left for 32 s of budgets
    for family, nominal in NOMINAL.items():
        assert schedule.budget(family, nominal) == nominal
        clock.now += nominal
    assert all(g.scale == 1.0 for g in schedule.grants.values())


def test_a_late_run_cuts_what_is_left_in_proportion_and_spares_the_memory_system() -> None:
    """torch on the AMX Xeon guest: the budgeted families started at 16.3 s; 44 - 16.3 - 1.5 - 8 (memory
    system, never cut) leaves 18.2 s for 24 s of the others' budgets: each gets 0.76 of its own."""
    schedule, clock = _schedule(now=16.3)
    blas = schedule.budget("blas", 7.0)
    assert blas == pytest.approx(7.0 * 18.2 / 24.0)
    assert schedule.budget("blas", 7.0) == blas  # fixed at the family's first ask, whatever the clock says since
    clock.now += blas + 2.0  # the BLAS family ran 2 s over (a re-measured case): the shapes pay for it
    shapes = schedule.budget("gemm_shapes", 8.0)
    left = 44.0 - clock.now - 1.5 - 8.0
    assert shapes == pytest.approx(8.0 * left / 17.0)
    clock.now += shapes
    stream = schedule.budget("stream", 5.0)
    clock.now += stream
    assert schedule.budget("memory_system", 8.0) == 8.0
    assert schedule.grants["memory_system"].scale == 1.0


def test_a_budget_is_never_cut_below_half() -> None:
    schedule, _ = _schedule(now=40.0)
    assert schedule.budget("blas", 7.0) == 7.0 * MIN_SCALE
    assert schedule.grants["blas"].scale == MIN_SCALE


def test_no_target_and_unplanned_families_keep_their_nominal_budgets() -> None:
    schedule, _ = _schedule(now=60.0, target=None)
    assert schedule.budget("gemm_shapes", 8.0) == 8.0
    planned, _ = _schedule(now=60.0)
    assert planned.budget("energy", 15.0) == 15.0  # not a budgeted family of the schedule's


def test_a_users_memory_seconds_is_held_and_kept() -> None:
    """--memory-seconds 20: never cut, and the others share what is left after it."""
    clock = Clock(10.0)
    nominal = {**NOMINAL, "memory_system": 20.0}
    schedule = RunSchedule(44.0, nominal, clock, lambda: 1.5, frozenset({"memory_system"}))
    blas = schedule.budget("blas", 7.0)
    assert blas == pytest.approx(7.0 * max(MIN_SCALE, (44.0 - 10.0 - 1.5 - 20.0) / 24.0))
    assert schedule.budget("memory_system", 20.0) == 20.0 and schedule.grants["memory_system"].fixed


def _session(device: str = "cpu", quick: bool = False, full: bool = False, target_s: float | None = None,
             memory_s: float | None = None) -> Any:
    options = SimpleNamespace(quick=quick, full=full, target_s=target_s, memory_s=memory_s)
    return SimpleNamespace(options=options, backend=SimpleNamespace(device_type=device), energy_meter=None)


@pytest.mark.parametrize(("kw", "target"), [
    ({}, TARGET_S["cpu"]), ({"device": "gpu"}, TARGET_S["gpu"]), ({"quick": True}, None), ({"full": True}, None),
    ({"target_s": 0.0}, None), ({"target_s": 90.0}, 90.0), ({"quick": True, "target_s": 20.0}, 20.0)])
def test_the_runs_target(kw: dict[str, Any], target: float | None) -> None:
    assert run_target_s(_session(**kw)) == target


def test_the_schedule_plans_the_families_this_run_starts_in_run_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from hwcal.measure import budgets

    session = _session()
    assert list(nominal_budgets(session, {"late_pass", "blas", "memory_system", "gemm"})) == \
        ["blas", "memory_system", "late_pass"]
    assert nominal_budgets(_session(quick=True), {"late_pass", "blas"}) == {"blas": 3.5}  # --quick: no late pass
    assert nominal_budgets(_session(memory_s=20.0), {"memory_system"}) == {"memory_system": 20.0}
    monkeypatch.setattr(budgets, "run_meter", lambda s: SimpleNamespace(meter=object()))
    schedule = make_schedule(session, {"blas", "energy"})
    schedule.budget("blas", 7.0)
    assert schedule.as_dict()["reserve_s"] == FINISH_RESERVE_S["cpu"] + ENERGY_RESERVE_S
    assert make_schedule(_session(memory_s=20.0), {"memory_system"}).fixed == {"memory_system"}


def test_the_schedule_is_filed_valid_and_summarised(input_factory: Any) -> None:
    schedule, clock = _schedule(now=16.3)
    for family, nominal in NOMINAL.items():
        clock.now += schedule.budget(family, nominal)
    inp = input_factory()
    doc = build_calibration(dataclasses.replace(inp, run=dataclasses.replace(inp.run, schedule=schedule.as_dict())))
    check_valid(doc, "calibration")
    plan = doc["metadata"]["schedule"]
    assert plan["target_s"] == 44.0 and plan["families"]["memory_system"]["scale"] == 1.0
    (line,) = _schedule_lines(doc)
    assert line.startswith("schedule: target 44 s") and "blas 7 -> 5.3 s" in line and "memory_system" not in line
    calm, _ = _schedule(now=5.0)
    calm.budget("blas", 7.0)
    doc["metadata"]["schedule"] = calm.as_dict()
    assert _schedule_lines(doc)[0].endswith("no budget cut")


def _item(fixture: str | None, param: Any = None, name: str = "test_x") -> Any:
    names = (fixture,) if fixture else ()
    callspec = SimpleNamespace(params={fixture: param}) if fixture else None
    return SimpleNamespace(fixturenames=names, originalname=name, callspec=callspec)


def test_the_budgeted_families_run_after_the_others_then_the_late_pass_then_energy() -> None:
    items = [_item("energy_case", ("idle", "")), _item("blas_case", ("dot", "fp32", 1024)), _item("gemm_case"),
             _item(None, name="test_late_pass"), _item("memory_system_case", "tiers"), _item("conv_case")]
    ranked = sorted(items, key=_run_rank)
    assert [i.fixturenames[0] if i.fixturenames else i.originalname for i in ranked] == \
        ["gemm_case", "conv_case", "blas_case", "memory_system_case", "test_late_pass", "energy_case"]
    assert _planned_families(items) == {"energy", "blas", "gemm", "late_pass", "memory_system", "conv"}


def test_the_process_clock_counts_from_the_process_start() -> None:
    """What the user's stopwatch reads: from /proc in 10 ms steps, within psutil's whole-second boot time."""
    import time

    import psutil

    from hwcal.measure.budgets import process_clock

    first = process_clock()
    time.sleep(0.05)
    second = process_clock()
    assert 0.0 <= first < second and second - first >= 0.03
    assert abs(second - (time.time() - psutil.Process().create_time())) < 1.5


def test_a_calibration_drops_hypothesiss_plugin_only_where_nothing_used_hypothesis(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its terminal summary imports hypothesis (0.9 s of a calibration's wall): dropped unless a test imported it."""
    import sys

    from hwcal.plugin.hooks import _drop_idle_hypothesis

    plugin, dropped = object(), []
    manager = SimpleNamespace(get_plugin=lambda name: plugin if name == "hypothesispytest" else None,
                              unregister=dropped.append)
    config = SimpleNamespace(pluginmanager=manager)
    monkeypatch.setitem(sys.modules, "hypothesis", sys.modules.get("hypothesis") or object())
    _drop_idle_hypothesis(config)  # type: ignore[arg-type]
    assert dropped == []
    monkeypatch.delitem(sys.modules, "hypothesis")
    _drop_idle_hypothesis(config)  # type: ignore[arg-type]
    assert dropped == [plugin]
