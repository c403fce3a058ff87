"""The model-layer families end to end on this machine's CPU: a real torch run of a few layers through the
plugin files one valid calibration that the original loader reads (its ``get_operation`` finds each family by
name) and ``Profile.predict`` answers from; a numpy run files nothing but says why for each family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

import hwcal
from hwcal.document.schema import schema_errors
from hwcal.model.predict import predictor_of_document
from tests.legacy_loader import HardwareCalibration

REPO = Path(hwcal.__file__).resolve().parent.parent
BENCHES = ("test_conv.py", "test_conv_bn_relu.py", "test_attention.py", "test_fused_ops.py")
KEY = ["--power-mode", "7W", "--frequency-mhz", "2450", "--hardware-id", "test_cpu"]


@pytest.fixture
def bench(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("HWCAL_FRAMEWORK", "HWCAL_DEVICE", "HWCAL_REGISTRY", "HWCAL_FULL", "HWCAL_POWER_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest('"""hwcal registers itself through its pytest11 entry point."""\n')
    for name in BENCHES:
        pytester.makepyfile(**{name[:-3]: (REPO / "bench" / name).read_text()})
    return pytester


def test_a_torch_run_files_layers_the_original_loader_and_predict_read(bench: pytest.Pytester) -> None:
    result = bench.runpytest_subprocess(
        "-p", "no:randomly", "--registry", "registry", *KEY, "--framework", "pytorch", "--quick",
        "-k", "features.3.conv.1 or layer1.0.conv2 or vit_b_16.attention or norm1")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    [path] = sorted((bench.path / "registry").glob("cpu/test_cpu/calibrations/*.json"))
    doc = json.loads(path.read_text())
    assert schema_errors(doc) == []
    conv, cbr, attn, fused = (doc[k] for k in ("conv", "conv_bn_relu", "attention", "fused_ops"))
    assert {(e["name"], e["layout"]) for e in conv["results"]} == {
        ("resnet50.layer1.0.conv2", "channels_last"), ("mobilenet_v2.features.3.conv.1", "channels_last")}
    assert {e["variant"] for e in cbr["results"]} == {"folded:relu", "unfolded:relu"}
    assert {e["variant"] for e in attn["results"]} == {"flash", "math"}
    assert {e["variant"] for e in fused["results"]} == {"layernorm", "softmax"}  # norm1; vit_b_16.attention.softmax
    for section in (conv, cbr, attn, fused):
        for e in section["results"]:
            assert e["verified"] and e["max_error"] <= e["tolerance"] and e["time_s"]["min"] > 0
            assert e["efficiency_basis"] and e["tier"]
    assert all(e["path"] == "Mkldnn" and e["algorithm"].startswith("oneDNN") for e in conv["results"])
    unsupported = {(s["precision"], s["variant"]) for s in conv["not_timed"] if s["status"] == "unsupported"}
    assert {("fp8", "dense"), ("int8", "dense")} <= unsupported

    cal = HardwareCalibration.from_dict(doc)
    assert cal.get_operation("conv2d", layer="resnet50.layer1.0.conv2").operation_type == "conv2d"
    assert cal.get_operation("depthwise_conv").extra_params["layer"] == "mobilenet_v2.features.3.conv.1"
    assert cal.get_operation("attention", backend="math").extra_params["causal"] is False
    assert cal.get_operation("layernorm").memory_bound is True

    dw = next(e for e in conv["results"] if e["groups"] > 1)
    pred = predictor_of_document(doc).predict("conv2d", "fp32", **{k: dw[k] for k in (
        "n", "c", "h", "w", "k", "r", "s", "stride", "padding", "groups")})
    assert pred.basis == "measured" and pred.seconds == pytest.approx(dw["time_s"]["min"], rel=1e-6)


def test_a_numpy_run_says_why_for_each_family_and_files_nothing(bench: pytest.Pytester) -> None:
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY, "-rs")
    result.assert_outcomes(skipped=4)
    out = result.stdout.str()
    assert "conv unsupported on numpy: numpy has no convolution (numpy.convolve is 1-D only)" in out
    assert "sdpa unsupported on numpy: numpy has no attention kernel" in out
    assert not (bench.path / "registry").exists() or not list((bench.path / "registry").rglob("*.json"))
