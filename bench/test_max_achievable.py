"""Max-achievable matmul per precision (GPUs): a time-budgeted search over (M, N, K), then the best shape
timed per call with the L2 flushed (burst, the figure filed as the peak) and back to back (sustained);
see hwcal.measure.max_achievable."""

from __future__ import annotations

import pytest

from hwcal.measure.max_achievable import run_max_achievable
from hwcal.measure.session import CalibrationSession


def test_max_achievable(hwcal_session: CalibrationSession, max_achievable_case: str,
                        request: pytest.FixtureRequest) -> None:
    timed = not request.config.getoption("benchmark_disable", False)
    run_max_achievable(hwcal_session, max_achievable_case, timed)
