"""GEMM throughput per precision and size: one body for every framework (see hwcal.measure.gemm)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.gemm import run_gemm
from hwcal.measure.session import CalibrationSession


def test_gemm(benchmark: Any, hwcal_session: CalibrationSession, gemm_case: tuple[str, int]) -> None:
    precision, n = gemm_case
    run_gemm(benchmark, hwcal_session, precision, n)
