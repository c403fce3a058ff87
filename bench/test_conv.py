"""Convolutions of public edge models' layers (ResNet-50, MobileNetV2/V3, ResNeXt-50, YOLOv8n): dense
3x3, 1x1, 7x7 stem, strided, depthwise and grouped, in NCHW and channels_last (see hwcal.measure.nn_grid;
ids are precision-layout-layer-batch)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.nn_body import run_nn
from hwcal.measure.nn_grid import NnCase
from hwcal.measure.session import CalibrationSession


def test_conv(benchmark: Any, hwcal_session: CalibrationSession, conv_case: NnCase) -> None:
    run_nn(benchmark, hwcal_session, conv_case)
