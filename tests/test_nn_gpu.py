"""GPU-only checks of the model-layer families (skipped without CUDA): cuDNN benchmark mode on for the filed
figure and off for the heuristic one, both verified, the CUDA kernels named; TF32 really off for fp32
convolutions and on for tf32; every SDPA backend either timed or filed unsupported with torch's words."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

from hwcal.backends.nn import AttentionSpec, ConvSpec  # noqa: E402
from hwcal.measure.nn_body import run_nn  # noqa: E402
from hwcal.measure.nn_grid import NnCase  # noqa: E402
from hwcal.measure.session import CalibrationOptions, CalibrationSession  # noqa: E402
from hwcal.precisions import PRECISIONS  # noqa: E402
from tests.fakes import FakeBenchmark  # noqa: E402

R50 = ConvSpec(32, 64, 56, 56, 64, 3, 3, stride=1, padding=1)


def _session(kernel_names: bool = True) -> CalibrationSession:
    return CalibrationSession(CalibrationOptions(
        power_mode=None, framework="pytorch", device="cuda:0", frequency_mhz=None, hardware_id=None,
        registry=Path("unused"), quick=True, sizes=None, min_gflops=1.0, max_call_s=0.3, dry_run=True, force=False,
        kernel_names=kernel_names))


def test_conv_files_the_autotuned_figure_and_the_heuristic_one() -> None:
    session = _session()
    run_nn(FakeBenchmark(), session, NnCase("conv", "r50", "resnet50", "3x3", "fp16", "channels_last", "", R50))
    [rec] = session.results.nn
    assert rec.modes["cudnn_benchmark"] is True and rec.modes["cudnn_allow_tf32"] is False
    assert rec.details["path"].startswith("Cudnn") and rec.details["cuda_kernels"]
    assert rec.heuristic is not None and rec.heuristic["cudnn_benchmark"] is False
    assert rec.heuristic["max_error"] <= rec.tolerance and rec.heuristic["time_s"]["min"] > 0
    assert torch.backends.cudnn.benchmark is False  # restored


def test_kernels_are_named_only_when_asked() -> None:
    """The profiler's first start costs seconds: a default run says how to get the names instead."""
    session = _session(kernel_names=False)
    run_nn(FakeBenchmark(), session, NnCase("conv", "r50", "resnet50", "3x3", "fp16", "channels_last", "", R50))
    [rec] = session.results.nn
    assert "cuda_kernels" not in rec.details and "--kernel-names" in rec.details["algorithm_unavailable"]


def test_fp32_convolutions_run_without_tf32() -> None:
    session = _session()
    errors = {}
    for precision in ("fp32", "tf32"):
        run_nn(FakeBenchmark(), session, NnCase("conv", "r50", "resnet50", "3x3", precision, "channels_last", "", R50))
        errors[precision] = session.results.nn[-1].max_error
    assert errors["fp32"] < PRECISIONS["fp32"].tolerance(R50.inner) < errors["tf32"]


@pytest.mark.parametrize("backend", ["flash", "efficient", "cudnn", "math"])
def test_each_sdpa_backend_is_timed_or_filed_unsupported(backend: str) -> None:
    session = _session()
    spec = AttentionSpec(1, 8, 512, 512, 128, True)
    case = NnCase("sdpa", "llama", "llama2_7b", "prefill", "bf16", "bhsd", backend, spec)
    try:
        run_nn(FakeBenchmark(), session, case)
    except pytest.skip.Exception as skip:
        assert "unsupported" in str(skip)
        assert any(s.variant == backend and s.status == "unsupported" and s.reason for s in session.results.nn_status)
        return
    [rec] = session.results.nn
    assert rec.variant == backend and rec.default_backend in ("flash", "efficient", "cudnn", "math")
    assert rec.details["cuda_kernels"]
