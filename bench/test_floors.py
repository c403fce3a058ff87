"""Launch and dispatch floors: the time of each operation's smallest call, back to back and isolated (see
hwcal.measure.floors; ids are operation-timing)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.floors import run_floor
from hwcal.measure.session import CalibrationSession


def test_launch_floor(benchmark: Any, hwcal_session: CalibrationSession, floor_case: tuple[str, str]) -> None:
    operation, timing = floor_case
    run_floor(benchmark, hwcal_session, operation, timing)
