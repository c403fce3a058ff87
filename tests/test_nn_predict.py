"""``Profile.predict("conv2d", ...)`` and ``predict("sdpa", ...)``: the GEMM basis rules (measured, interpolated,
extrapolated along the roofline coordinate; roofline from the GEMM curves where no such layer was timed; never
faster than measured), the families a layer is read from, and one-line errors for bad dimensions."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hwcal.backends.nn import AttentionSpec, ConvSpec
from hwcal.document.builder import build_calibration
from hwcal.errors import HwcalError
from hwcal.model.nn import family_of, spec_of
from hwcal.model.predict import Predictor, predictor_of_document
from hwcal.registry.api import Profile
from tests.conftest import make_input
from tests.fakes import dram_sweep
from tests.test_nn_document import nn_record

R50 = dict(c=64, h=56, w=56, k=64, r=3, s=3, stride=1, padding=1, groups=1)


def _conv(n: int, gflops: float, name: str, layout: str = "channels_last", **over: int) -> Any:
    spec = ConvSpec(**{"n": n, **R50, **over})
    return nn_record("conv", spec, spec.flops / (gflops * 1e9), name=name, layout=layout)


def _predictor(records: list[Any]) -> Predictor:
    return predictor_of_document(build_calibration(make_input(memory=dram_sweep(20.0), nn=records)), "test")


def _dims(n: int, **over: int) -> dict[str, int]:
    return {"n": n, **R50, **over}


def test_measured_interpolated_and_extrapolated_like_gemm() -> None:
    pred = _predictor([_conv(1, 50.0, "b1"), _conv(4, 100.0, "b4"), _conv(4, 80.0, "b4", layout="nchw")])
    one = pred.predict("conv2d", "fp32", **_dims(1))
    assert one.basis == "measured" and one.family == "dense"
    assert one.seconds == pytest.approx(ConvSpec(**_dims(1)).flops / 50e9)
    four = pred.predict("conv2d", "fp32", **_dims(4))
    assert four.seconds == pytest.approx(ConvSpec(**_dims(4)).flops / 100e9)  # the fastest layout
    two = pred.predict("conv2d", "fp32", **_dims(2))
    assert two.basis == "interpolated" and one.seconds < two.seconds < four.seconds
    assert [p.label for p in two.points] == [p.label for p in one.points + four.points]
    big = pred.predict("conv2d", "fp32", **_dims(16))
    assert big.basis == "extrapolated" and big.gflops == pytest.approx(100.0, rel=0.02)
    assert big.efficiency == pytest.approx(100.0 / 400.0, rel=0.02) and "peak" in big.efficiency_reference


def test_never_faster_than_measured_and_monotone_within_a_family() -> None:
    pred = _predictor([_conv(1, 50.0, "b1"), _conv(4, 100.0, "b4")])
    times = [pred.predict("conv2d", "fp32", **_dims(n)).seconds for n in (1, 2, 3, 4, 8, 32)]
    assert times == sorted(times)
    assert all(pred.predict("conv2d", "fp32", **_dims(n)).gflops <= 100.0 * 1.0001 for n in (1, 2, 4, 8, 32))


def test_a_layer_is_read_from_its_own_family() -> None:
    assert family_of(spec_of("conv2d", _dims(1))) == "dense"
    assert family_of(spec_of("conv2d", _dims(1, r=1, s=1, padding=0))) == "pointwise"
    assert family_of(spec_of("conv2d", {**_dims(1), "c": 3})) == "stem"
    assert family_of(spec_of("conv2d", _dims(1, groups=64))) == "depthwise"
    assert family_of(spec_of("conv2d", _dims(1, groups=8))) == "grouped"
    pred = _predictor([_conv(1, 50.0, "dense"), _conv(1, 5.0, "dw", groups=64)])
    dw = pred.predict("conv2d", "fp32", **_dims(1, groups=64))
    assert dw.basis == "measured" and dw.family == "depthwise" and dw.gflops == pytest.approx(5.0)


def test_no_such_layer_timed_roofline_from_the_gemm_curves() -> None:
    pred = _predictor([_conv(1, 50.0, "dense")])
    grouped = pred.predict("conv2d", "fp32", **_dims(1, groups=8))
    assert grouped.basis == "roofline" and "implicit GEMM, 8 x (3136 x 8 x 72)" in grouped.notes[0]
    fp64 = pred.predict("conv2d", "fp64", **_dims(1))  # no fp64 conv, an fp64 GEMM
    assert fp64.basis == "roofline" and fp64.seconds > 0
    attn = pred.predict("sdpa", "fp32", batch=1, heads=12, seq_q=197, seq_k=197, head_dim=64, causal=False)
    assert attn.basis == "roofline" and "two batched GEMMs" in attn.notes[0]
    with pytest.raises(HwcalError, match="did not measure conv2d in 'bf16'"):
        pred.predict("conv2d", "bf16", **_dims(1))


def test_attention_reads_the_backend_torch_picks() -> None:
    spec = AttentionSpec(1, 12, 197, 197, 64)
    flash = nn_record("sdpa", spec, 3e-4, layout="bhsd", variant="flash", name="vit", default_backend="flash")
    math = nn_record("sdpa", spec, 2e-4, layout="bhsd", variant="math", name="vit", default_backend="flash")
    pred = _predictor([flash, math])
    p = pred.predict("sdpa", "fp32", batch=1, heads=12, seq_q=197, seq_k=197, head_dim=64, causal=False)
    assert p.basis == "measured" and p.seconds == pytest.approx(3e-4) and p.family == "full"
    assert p.dims["causal"] == 0
    causal = pred.predict("sdpa", "fp32", batch=1, heads=12, seq_q=197, seq_k=197, head_dim=64, causal=True)
    assert causal.basis == "roofline"  # no causal attention timed


@pytest.mark.parametrize("operation, dims, message", [
    ("conv2d", {"n": 1, "c": 3}, "conv2d needs h, w, k, r, s"),
    ("conv2d", {**_dims(1), "groups": 5}, "groups=5 must divide"),
    ("conv2d", {**_dims(1), "dilation": 2}, "conv2d takes n, c, h, w"),
    ("conv2d", {**_dims(1), "r": 99, "s": 99}, "does not fit"),
    ("conv2d", {**_dims(1), "n": 1.5}, "n must be a whole number"),
    ("sdpa", {"batch": 1, "heads": 1, "seq_q": 4, "seq_k": 4, "head_dim": 8, "causal": "yes"}, "causal must be"),
    ("sdpa", {"batch": 1, "heads": 1, "seq_q": 4, "seq_k": 4}, "sdpa needs head_dim"),
])
def test_bad_dimensions_are_one_line_errors(operation: str, dims: dict[str, Any], message: str) -> None:
    pred = _predictor([_conv(1, 50.0, "dense")])
    with pytest.raises(HwcalError, match=message):
        pred.predict(operation, "fp32", **dims)


def test_profile_predict_takes_the_documented_signature() -> None:
    doc = build_calibration(make_input(memory=dram_sweep(20.0), nn=[_conv(1, 50.0, "b1")]))
    profile = Profile("test_cpu", "cpu", None, doc, Path("x.json"), datetime(2026, 12, 1, tzinfo=timezone.utc))
    p = profile.predict("conv2d", "fp32", n=1, c=64, h=56, w=56, k=64, r=3, s=3, stride=1, padding=1, groups=1)
    assert p.basis == "measured" and p.operation == "conv2d"
    q = profile.predict("sdpa", "fp32", batch=1, heads=32, seq_q=1, seq_k=1024, head_dim=128, causal=False)
    assert q.seconds > 0 and q.efficiency is not None
    assert "conv2d (fp64, fp32)" in predictor_of_document(doc).describe()
