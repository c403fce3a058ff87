"""Launch and dispatch floors: the time of each operation's smallest call (see hwcal.measure.floors)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.floors import run_floor
from hwcal.measure.session import CalibrationSession


def test_launch_floor(benchmark: Any, hwcal_session: CalibrationSession, floor_case: str) -> None:
    run_floor(benchmark, hwcal_session, floor_case)
