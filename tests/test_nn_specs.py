"""The convolution, attention and fused-op problems: the one counting convention, the geometry of the public
models' layers the grids name, and the grids each device and option runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hwcal.backends.nn import AttentionSpec, ConvSpec, FusedSpec, NnKernels
from hwcal.measure.nn_grid import ATTENTION, CONV_LAYERS, SOURCES, STANDARD, family_cases, fused_shapes
from hwcal.measure.session import CalibrationOptions


def test_conv_flops_follow_the_stated_convention() -> None:
    stem = ConvSpec(1, 3, 224, 224, 64, 7, 7, stride=2, padding=3)  # ResNet-50 conv1
    assert (stem.p, stem.q) == (112, 112)
    assert stem.flops == 2 * 1 * 64 * 3 * 7 * 7 * 112 * 112 == 236_027_904
    dw = ConvSpec(2, 144, 56, 56, 144, 3, 3, padding=1, groups=144)
    assert dw.kind == "depthwise" and dw.inner == 9
    assert dw.flops == 2 * 2 * 144 * 1 * 9 * 56 * 56
    assert dw.bytes(4) == 4 * (2 * 144 * 56 * 56 + 144 * 9 + 2 * 144 * 56 * 56)
    assert dw.bytes(2, extra_per_filter=4) == 2 * (2 * 144 * 56 * 56 * 2 + 144 * 9 + 4 * 144)
    grouped = ConvSpec(1, 128, 56, 56, 128, 3, 3, padding=1, groups=32)
    assert grouped.kind == "grouped" and grouped.inner == 4 * 9
    assert ConvSpec(1, 64, 56, 56, 256, 1, 1).kind == "dense"


@pytest.mark.parametrize("bad", [dict(groups=3), dict(r=9, s=9), dict(n=0), dict(padding=-1), dict(stride=0)])
def test_conv_spec_refuses_impossible_layers(bad: dict[str, int]) -> None:
    args = {"n": 1, "c": 8, "h": 6, "w": 6, "k": 8, "r": 3, "s": 3, "stride": 1, "padding": 0, "groups": 1, **bad}
    with pytest.raises(ValueError, match="conv2d"):
        ConvSpec(**args)


def test_attention_counts_the_pairs_torch_computes() -> None:
    assert AttentionSpec(1, 1, 4, 4, 8).pairs == 16
    assert AttentionSpec(1, 1, 4, 4, 8, causal=True).pairs == 10  # 1 + 2 + 3 + 4
    assert AttentionSpec(1, 1, 2, 5, 8, causal=True).pairs == 3  # top-left: query i sees keys 0..i
    assert AttentionSpec(1, 1, 5, 2, 8, causal=True).pairs == 1 + 2 + 2 + 2 + 2
    spec = AttentionSpec(2, 12, 197, 197, 64)
    assert spec.flops == 4 * 2 * 12 * 64 * 197 * 197
    assert spec.bytes(2) == 2 * (2 * 2 * 12 * 197 * 64 + 2 * 2 * 12 * 197 * 64)
    with pytest.raises(ValueError, match="causal"):
        AttentionSpec(1, 1, 4, 4, 8, causal=1)  # type: ignore[arg-type]


def test_fused_ops_count_bytes_only() -> None:
    assert FusedSpec("layernorm", 197, 768).bytes(4) == 4 * (2 * 197 * 768 + 2 * 768)
    assert FusedSpec("rmsnorm", 10, 4096).bytes(2) == 2 * (2 * 10 * 4096 + 4096)
    assert FusedSpec("gelu", 3, 5).bytes(4) == 4 * 2 * 15
    with pytest.raises(ValueError, match="unknown fused op"):
        FusedSpec("tanh", 1, 1)


@pytest.mark.parametrize("name, out_hw", [
    ("resnet50.conv1", 112), ("resnet50.layer1.0.conv2", 56), ("resnet50.layer2.0.conv2", 28),
    ("resnet50.layer3.1.conv2", 14), ("mobilenet_v2.features.2.conv.0", 112), ("mobilenet_v2.features.3.conv.1", 56),
    ("mobilenet_v3_large.features.4.block.1", 28), ("resnext50_32x4d.layer1.0.conv2", 56), ("yolov8n.model.0", 320),
    ("yolov8n.model.1", 160), ("mobilenet_v2.features.2.conv.1", 56), ("resnet50.layer4.0.conv3", 7)])
def test_layer_table_matches_the_models_feature_maps(name: str, out_hw: int) -> None:
    layer = next(x for x in CONV_LAYERS if x.name == name)
    spec = layer.spec(1)
    assert (spec.p, spec.q) == (out_hw, out_hw)
    assert layer.source in SOURCES


def test_every_layer_names_a_source_and_the_standard_layers_exist() -> None:
    names = [layer.name for layer in CONV_LAYERS]
    assert len(names) == len(set(names))
    assert set(STANDARD) <= set(names)
    for shapes, _, _ in ATTENTION.values():
        assert all(s.source in SOURCES for s in shapes)
    assert {s.op for s in fused_shapes("cpu")} == {"layernorm", "rmsnorm", "softmax", "gelu", "silu"}


class _Kernels(NnKernels):
    def __init__(self, backends: tuple[str, ...]) -> None:
        super().__init__("pytorch", "")
        self.backends = backends

    def sdpa_backends(self) -> tuple[str, ...]:
        return self.backends


def _session(device_type: str, *, quick: bool = False, full: bool = False, available: bool = True) -> Any:
    kernels = _Kernels(("flash", "efficient", "cudnn", "math") if device_type == "gpu" else ("flash", "math"))
    if not available:
        kernels = NnKernels("numpy", "numpy has no convolution")
    backend = SimpleNamespace(device_type=device_type, nn_kernels=lambda: kernels)
    options = CalibrationOptions(power_mode=None, framework="pytorch", device="cpu", frequency_mhz=None,
                                 hardware_id=None, registry=Path("r"), quick=quick, sizes=None, min_gflops=1.0,
                                 max_call_s=0.3, dry_run=True, force=False, full=full)
    return SimpleNamespace(backend=backend, options=options)


def _ids(session: Any, family: str) -> list[str]:
    return [case_id for _, case_id in family_cases(session, family)]


def test_default_cpu_grid_times_every_default_layer_in_both_layouts_in_fp32() -> None:
    ids = _ids(_session("cpu"), "conv")
    default_layers = [x for x in CONV_LAYERS if not x.full_only]
    assert len(ids) == 2 * len(default_layers) and len(set(ids)) == len(ids)
    assert all(i.startswith("fp32-") and i.endswith("-n1") for i in ids)
    assert "fp32-channels_last-resnet50.layer1.0.conv2-n1" in ids
    assert _ids(_session("cpu"), "sdpa") == ["fp32-flash-vit_b_16.attention", "fp32-math-vit_b_16.attention",
                                            "fp32-flash-llama2_7b.prefill256", "fp32-math-llama2_7b.prefill256",
                                            "fp32-flash-llama2_7b.decode1024", "fp32-math-llama2_7b.decode1024"]
    assert len(_ids(_session("cpu"), "conv_bn_relu")) == 8 and len(_ids(_session("cpu"), "fused")) == 5


def test_gpu_grid_runs_fp16_at_batch_32_and_tf32_for_the_standard_layers() -> None:
    ids = _ids(_session("gpu"), "conv")
    tf32 = [i for i in ids if i.startswith("tf32-")]
    assert tf32 == [f"tf32-channels_last-{name}-n32" for name in STANDARD]
    assert all(i.endswith("-n32") for i in ids)
    assert len(_ids(_session("gpu"), "sdpa")) == 3 * 4


def test_quick_and_full_grids() -> None:
    quick = _ids(_session("cpu", quick=True), "conv")
    assert quick == [f"fp32-channels_last-{name}-n1" for name in STANDARD]
    full = _ids(_session("gpu", full=True), "conv")
    assert {i.split("-")[0] for i in full} == {"fp32", "tf32", "fp16", "bf16"}
    assert any(i.endswith("-n1") for i in full) and any("resnet50.layer4.0.conv3" in i for i in full)


def test_a_framework_without_the_kernels_gets_one_unsupported_case_per_family() -> None:
    session = _session("cpu", available=False)
    for family in ("conv", "conv_bn_relu", "sdpa", "fused"):
        assert _ids(session, family) == ["unsupported"]
