"""conv + BatchNorm + ReLU as a model runs it in eval, the batch norm folded into the conv or not (see
hwcal.backends.torch_conv)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.nn_body import run_nn
from hwcal.measure.nn_grid import NnCase
from hwcal.measure.session import CalibrationSession


def test_conv_bn_relu(benchmark: Any, hwcal_session: CalibrationSession, conv_bn_relu_case: NnCase) -> None:
    run_nn(benchmark, hwcal_session, conv_bn_relu_case)
