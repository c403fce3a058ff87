"""The convolution, attention and fused-op benchmark body on this machine's CPU (torch): every case is timed,
verified and recorded with what ran it; a wrong kernel fails and blocks its family's later cases; a framework
without the kernels (numpy) and a precision without one (fp8, int8 conv) are filed as unsupported with the
reason, never as 0; the budget skips with a warning the file carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from hwcal.backends.nn import AttentionSpec, ConvSpec, FusedSpec  # noqa: E402
from hwcal.backends.torch_nn import TorchNnKernels  # noqa: E402
from hwcal.measure.nn_body import _heuristic, run_nn  # noqa: E402
from hwcal.measure.nn_grid import NnCase  # noqa: E402
from hwcal.measure.nn_records import heuristic_case  # noqa: E402
from hwcal.measure.session import CalibrationOptions, CalibrationSession  # noqa: E402
from tests.fakes import FakeBenchmark  # noqa: E402

CONV = ConvSpec(1, 16, 12, 12, 16, 3, 3, stride=1, padding=1)


def _session(framework: str = "pytorch") -> CalibrationSession:
    return CalibrationSession(CalibrationOptions(
        power_mode=None, framework=framework, device="cpu", frequency_mhz=None, hardware_id=None,
        registry=Path("unused"), quick=True, sizes=None, min_gflops=1.0, max_call_s=0.3, dry_run=True, force=False))


def _conv(layout: str = "channels_last", spec: ConvSpec = CONV, precision: str = "fp32") -> NnCase:
    return NnCase("conv", "test.conv", "resnet50", "3x3", precision, layout, "", spec)


CASES = [
    _conv("nchw"),
    _conv("channels_last", ConvSpec(1, 24, 10, 10, 24, 3, 3, stride=2, padding=1, groups=24)),
    NnCase("conv_bn_relu", "test.cbr", "resnet50", "3x3 + BN + relu", "fp32", "channels_last", "folded:relu", CONV),
    NnCase("conv_bn_relu", "test.cbr", "mobilenet_v2", "dw + BN + relu6", "fp32", "nchw", "unfolded:relu6",
           ConvSpec(1, 8, 9, 9, 8, 3, 3, padding=1, groups=8)),
    NnCase("sdpa", "test.attn", "vit_b_16", "encoder", "fp32", "bhsd", "flash", AttentionSpec(1, 2, 20, 20, 16)),
    NnCase("sdpa", "test.attn", "llama2_7b", "prefill", "fp32", "bhsd", "math", AttentionSpec(1, 2, 9, 9, 16, True)),
    *(NnCase("fused", "test.fused", "vit_b_16", op, "fp32", "row-major", op, FusedSpec(op, 12, 64))
      for op in ("layernorm", "rmsnorm", "softmax", "gelu", "silu")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.family}-{c.variant or c.layout}")
def test_each_family_records_a_verified_result(case: NnCase) -> None:
    session = _session()
    bench = FakeBenchmark()
    run_nn(bench, session, case)
    [rec] = session.results.nn
    assert rec.family == case.family and rec.precision == "fp32" and rec.layout == case.layout
    assert rec.max_error <= rec.tolerance and rec.verify_method
    assert rec.gbps_best == pytest.approx(rec.bytes / rec.time_s["min"] / 1e9)
    if case.family == "fused":
        assert rec.flops == 0 and rec.gflops_best is None
    else:
        assert rec.flops == case.spec.flops and rec.gflops_best == pytest.approx(rec.flops / rec.time_s["min"] / 1e9)
    assert rec.kernel and rec.threads == torch.get_num_threads()
    if case.family == "sdpa":
        assert rec.default_backend == "flash" and rec.modes["sdpa_backend_forced"] == case.variant
    if case.family in ("conv", "conv_bn_relu"):
        assert rec.details["path"] in ("Mkldnn", "Slow2d", "SlowDilated2d", "Empty")  # ATen skips oneDNN for tiny ones
        if rec.details["path"] == "Mkldnn":
            assert rec.details["algorithm"].startswith("oneDNN ") and rec.details["reorders_per_call"] >= 0
    assert bench.extra_info["verified"] is True


def test_statuses_file_what_cannot_run_with_the_reason() -> None:
    session = _session()
    run_nn(FakeBenchmark(), session, _conv())
    status = {(s.precision, s.variant): s for s in session.results.nn_status if s.family == "conv"}
    assert status["fp8", "dense"].status == "unsupported" and "Float8" in status["fp8", "dense"].reason
    assert status["int8", "dense"].status == "unsupported"
    assert "no int8 convolution kernel" in status["int8", "dense"].reason and "3456" in status["int8", "dense"].reason
    assert status["bf16", ""].status == "not_in_grid"  # runs here, outside the default CPU grid
    assert all(s.reason for s in session.results.nn_status)


def test_a_wrong_kernel_fails_and_blocks_the_family_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    original = TorchNnKernels.launch

    def off_by_one(self: TorchNnKernels, ops: Any) -> Any:
        out = original(self, ops)
        out[-1, -1, -1, -1] += 1.0  # one output of thousands
        return out

    monkeypatch.setattr(TorchNnKernels, "launch", off_by_one)
    session = _session()
    with pytest.raises(pytest.fail.Exception, match="gave wrong results"):
        run_nn(FakeBenchmark(), session, _conv())
    assert "conv:fp32" in session.failures and session.results.nn == []
    with pytest.raises(pytest.skip.Exception, match="failed verification earlier"):
        run_nn(FakeBenchmark(), session, _conv("nchw"))


def test_numpy_files_each_family_unsupported_with_its_reason() -> None:
    session = _session("numpy")
    case = NnCase("conv", "unsupported", "", "", "", "", "", None)
    with pytest.raises(pytest.skip.Exception, match="numpy has no convolution"):
        run_nn(FakeBenchmark(), session, case)
    [status] = session.results.nn_status
    assert (status.family, status.precision, status.status) == ("conv", None, "unsupported")
    assert "im2col" in status.reason and session.results.nn == []


def test_a_spent_budget_skips_with_a_warning() -> None:
    session = _session()
    session.budget_spent_s["conv"] = 1e6
    with pytest.raises(pytest.skip.Exception, match="budget is spent"):
        run_nn(FakeBenchmark(), session, _conv())
    assert any(w.startswith("conv: fp32-channels_last-test.conv-n1 skipped") for w in session.results.warnings)


def test_benchmark_disabled_verifies_and_files_nothing() -> None:
    session = _session()
    bench = FakeBenchmark(enabled=False)
    run_nn(bench, session, _conv())
    assert session.results.nn == [] and bench.extra_info["verified"] is True


def test_heuristic_figure_is_timed_by_the_harness_and_verified() -> None:
    session = _session()
    kernels = session.backend.nn_kernels()
    case = _conv()
    ops = kernels.operands("conv", case.spec, "fp32", case.layout, 1)
    kernels.launch(ops)
    out = _heuristic(session, kernels, ops, case, heuristic_case("bench/test_conv.py::test_conv[x]"))
    assert out["cudnn_benchmark"] is False and out["rounds"] == 3
    assert out["gflops_best"] == pytest.approx(CONV.flops / out["time_s"]["min"] / 1e9, rel=1e-3)
    assert out["max_error"] <= 1e-4
