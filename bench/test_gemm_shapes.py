"""GEMM beyond square: small M (decode), transformer projections and batched GEMM, per precision (see
hwcal.measure.shapes; ids are M x N x K, ``bB x ...`` for a batch)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.session import CalibrationSession
from hwcal.measure.shapes import Shape, run_shape


def test_gemm_shape(benchmark: Any, hwcal_session: CalibrationSession, shape_case: tuple[str, Shape]) -> None:
    precision, shape = shape_case
    run_shape(benchmark, hwcal_session, precision, shape)
