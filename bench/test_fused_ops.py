"""The bandwidth-bound ops of a transformer block: LayerNorm, RMSNorm, softmax, GELU, SiLU (see
hwcal.measure.nn_grid)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.nn_body import run_nn
from hwcal.measure.nn_grid import NnCase
from hwcal.measure.session import CalibrationSession


def test_fused_op(benchmark: Any, hwcal_session: CalibrationSession, fused_op_case: NnCase) -> None:
    run_nn(benchmark, hwcal_session, fused_op_case)
