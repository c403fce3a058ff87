"""BLAS1 and BLAS2 throughput (dot, axpy, scal, gemv) per precision and size, from cache-resident to
DRAM: one body for every framework (see hwcal.measure.blas)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.blas import run_blas
from hwcal.measure.session import CalibrationSession


def test_blas(benchmark: Any, hwcal_session: CalibrationSession, blas_case: tuple[str, str, int]) -> None:
    operation, precision, working_bytes = blas_case
    run_blas(benchmark, hwcal_session, operation, precision, working_bytes)
