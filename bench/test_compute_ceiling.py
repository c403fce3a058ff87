"""The measured compute ceiling of a CPU: independent FMA chains on every core, verified lane by lane
(see hwcal.measure.compute_ceiling); filed beside the peak derived from the microarchitecture."""

from __future__ import annotations

from typing import Any

from hwcal.measure.compute_ceiling import run_compute_ceiling
from hwcal.measure.session import CalibrationSession


def test_compute_ceiling(benchmark: Any, hwcal_session: CalibrationSession, compute_ceiling_case: str) -> None:
    run_compute_ceiling(benchmark, hwcal_session)
