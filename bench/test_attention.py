"""scaled_dot_product_attention of ViT-B/16 and Llama-2-7B, causal and not, each backend forced in turn
(flash, memory-efficient, cuDNN, math; see hwcal.backends.torch_attention)."""

from __future__ import annotations

from typing import Any

from hwcal.measure.nn_body import run_nn
from hwcal.measure.nn_grid import NnCase
from hwcal.measure.session import CalibrationSession


def test_sdpa(benchmark: Any, hwcal_session: CalibrationSession, sdpa_case: NnCase) -> None:
    run_nn(benchmark, hwcal_session, sdpa_case)
