"""The layers the convolution, attention and fused-op families time: shapes taken from public edge models'
layer tables (each names its model and source), and the grid a run times per device.

The grids are sized for the run budgets (a 2-core CPU run <= 45 s, a GPU run <= 120 s with every family):
the default grid times each layer once per layout in the precision models run there (CPU fp32; GPU fp16,
the 3 standard layers also in tf32, what an fp32 model runs on Ampere and later with torch's default
cuDNN TF32), ``--full`` every layer, layout and float precision (and batch 1 on a GPU), ``--quick`` the 3
standard layers in channels_last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwcal.backends.nn import LAYOUTS, AttentionSpec, ConvSpec, FusedSpec
from hwcal.measure.session import CalibrationSession

SOURCES = {
    "resnet50": "He et al., Deep Residual Learning for Image Recognition, CVPR 2016, Table 1 (50-layer); torchvision "
                "resnet50 (v1.5: the stride-2 is on the 3x3), 224x224 input",
    "resnext50_32x4d": "Xie et al., Aggregated Residual Transformations, CVPR 2017, Table 1 (32x4d); torchvision "
                       "resnext50_32x4d, 224x224 input",
    "mobilenet_v2": "Sandler et al., MobileNetV2, CVPR 2018, Table 2; torchvision mobilenet_v2, 224x224 input",
    "mobilenet_v3_large": "Howard et al., Searching for MobileNetV3, ICCV 2019, Table 1 (Large); torchvision "
                          "mobilenet_v3_large, 224x224 input",
    "yolov8n": "Ultralytics YOLOv8 (ultralytics/cfg/models/v8/yolov8.yaml, scale n: width 0.25), 640x640 input",
    "vit_b_16": "Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021, Table 1 (ViT-Base): 12 heads of 64, "
                "hidden 768, MLP 3072; patch 16 at 224x224: 197 tokens",
    "llama2_7b": "Touvron et al., Llama 2, 2023 (7B): 32 heads of 128, hidden 4096, MLP 11008, RMSNorm, SiLU gate",
}
STANDARD = ("resnet50.layer1.0.conv2", "resnet50.layer1.0.conv3", "mobilenet_v2.features.3.conv.1")


@dataclass(frozen=True)
class ConvLayer:
    name: str
    source: str
    role: str
    c: int
    h: int
    w: int
    k: int
    r: int
    stride: int = 1
    groups: int = 1
    full_only: bool = False

    def spec(self, n: int) -> ConvSpec:
        return ConvSpec(n, self.c, self.h, self.w, self.k, self.r, self.r, self.stride, self.r // 2, self.groups)


CONV_LAYERS = (
    ConvLayer("resnet50.conv1", "resnet50", "stem 7x7/2", 3, 224, 224, 64, 7, stride=2),
    ConvLayer("resnet50.layer1.0.conv2", "resnet50", "3x3", 64, 56, 56, 64, 3),
    ConvLayer("resnet50.layer1.0.conv3", "resnet50", "1x1 pointwise", 64, 56, 56, 256, 1),
    ConvLayer("resnet50.layer2.0.conv2", "resnet50", "3x3/2 strided", 128, 56, 56, 128, 3, stride=2),
    ConvLayer("resnet50.layer3.1.conv2", "resnet50", "3x3", 256, 14, 14, 256, 3),
    ConvLayer("mobilenet_v2.features.2.conv.0", "mobilenet_v2", "1x1 expand, 16 channels", 16, 112, 112, 96, 1),
    ConvLayer("mobilenet_v2.features.3.conv.1", "mobilenet_v2", "depthwise 3x3", 144, 56, 56, 144, 3, groups=144),
    ConvLayer("mobilenet_v3_large.features.4.block.1", "mobilenet_v3_large", "depthwise 5x5/2", 72, 56, 56, 72, 5,
              stride=2, groups=72),
    ConvLayer("resnext50_32x4d.layer1.0.conv2", "resnext50_32x4d", "grouped 3x3, 32 groups", 128, 56, 56, 128, 3,
              groups=32),
    ConvLayer("yolov8n.model.0", "yolov8n", "stem 3x3/2", 3, 640, 640, 16, 3, stride=2),
    ConvLayer("yolov8n.model.1", "yolov8n", "3x3/2 strided", 16, 320, 320, 32, 3, stride=2),
    # --full only:
    ConvLayer("mobilenet_v2.features.0.0", "mobilenet_v2", "stem 3x3/2", 3, 224, 224, 32, 3, stride=2, full_only=True),
    ConvLayer("mobilenet_v2.features.2.conv.1", "mobilenet_v2", "depthwise 3x3/2", 96, 112, 112, 96, 3, stride=2,
              groups=96, full_only=True),
    ConvLayer("mobilenet_v2.features.3.conv.2", "mobilenet_v2", "1x1 project", 144, 56, 56, 24, 1, full_only=True),
    ConvLayer("resnet50.layer4.0.conv3", "resnet50", "1x1 pointwise", 512, 7, 7, 2048, 1, full_only=True),
    ConvLayer("yolov8n.model.2.m.0.cv1", "yolov8n", "3x3 (C2f bottleneck)", 16, 160, 160, 16, 3, full_only=True),
)
# conv + BN + activation as the model's block runs it: (layer, activation).
CBR_LAYERS = (("resnet50.layer1.0.conv2", "relu"), ("mobilenet_v2.features.3.conv.1", "relu6"))


@dataclass(frozen=True)
class AttentionShape:
    name: str
    source: str
    role: str
    heads: int
    seq_q: int
    seq_k: int
    head_dim: int
    causal: bool

    def spec(self, batch: int) -> AttentionSpec:
        return AttentionSpec(batch, self.heads, self.seq_q, self.seq_k, self.head_dim, self.causal)


# Per device type: (shapes, batch for ViT, batch for Llama decode). Decode attends every cached key with one
# query, so it runs unmasked (torch's top-left causal mask would let the one query see only the first key).
ATTENTION = {
    "cpu": ((AttentionShape("vit_b_16.attention", "vit_b_16", "encoder, 197 tokens", 12, 197, 197, 64, False),
             AttentionShape("llama2_7b.prefill256", "llama2_7b", "prefill, 256 tokens, causal", 32, 256, 256, 128,
                            True),
             AttentionShape("llama2_7b.decode1024", "llama2_7b", "decode, 1 query over 1024 cached keys", 32, 1,
                            1024, 128, False)), 1, 1),
    "gpu": ((AttentionShape("vit_b_16.attention", "vit_b_16", "encoder, 197 tokens", 12, 197, 197, 64, False),
             AttentionShape("llama2_7b.prefill4096", "llama2_7b", "prefill, 4096 tokens, causal", 32, 4096, 4096, 128,
                            True),
             AttentionShape("llama2_7b.decode4096", "llama2_7b", "decode, 1 query over 4096 cached keys", 32, 1, 4096,
                            128, False)), 32, 8),
}


@dataclass(frozen=True)
class FusedShape:
    name: str
    source: str
    op: str
    cols: int
    rows_per_item: int  # rows per image (ViT) or per token block (Llama: the sequence)


def fused_shapes(device_type: str) -> tuple[FusedShape, ...]:
    """ViT-B/16's LayerNorm, attention softmax and GELU; Llama-2-7B's RMSNorm and SiLU."""
    seq = 256 if device_type == "cpu" else 4096
    return (FusedShape("vit_b_16.norm1", "vit_b_16", "layernorm", 768, 197),
            FusedShape("llama2_7b.input_layernorm", "llama2_7b", "rmsnorm", 4096, seq),
            FusedShape("vit_b_16.attention.softmax", "vit_b_16", "softmax", 197, 12 * 197),
            FusedShape("vit_b_16.mlp.gelu", "vit_b_16", "gelu", 3072, 197),
            FusedShape("llama2_7b.mlp.act_fn", "llama2_7b", "silu", 11008, seq))


@dataclass(frozen=True)
class NnCase:
    """One timed case: a family's layer in a precision, layout and variant (the SDPA backend, folded or not)."""

    family: str
    name: str
    source: str
    role: str
    precision: str
    layout: str
    variant: str
    spec: Any

    @property
    def case_id(self) -> str:
        parts = [self.precision]
        if self.family in ("conv", "conv_bn_relu"):
            parts.append(self.layout)
        if self.variant:
            parts.append(self.variant.partition(":")[0])
        parts.append(self.name)
        if self.family in ("conv", "conv_bn_relu"):
            parts.append(f"n{self.spec.n}")
        return "-".join(parts)


# Precisions per (device type, grid): what models run there by default, every float one with --full.
PRECISIONS = {
    "conv": {("cpu", "default"): ("fp32",), ("gpu", "default"): ("fp16",),
             ("cpu", "full"): ("fp32", "fp16", "bf16"), ("gpu", "full"): ("fp32", "tf32", "fp16", "bf16")},
    "conv_bn_relu": {("cpu", "default"): ("fp32",), ("gpu", "default"): ("fp16",),
                     ("cpu", "full"): ("fp32", "fp16", "bf16"), ("gpu", "full"): ("fp32", "tf32", "fp16", "bf16")},
    "sdpa": {("cpu", "default"): ("fp32",), ("gpu", "default"): ("bf16",),
             ("cpu", "full"): ("fp32", "fp16", "bf16"), ("gpu", "full"): ("fp32", "fp16", "bf16")},
    "fused": {("cpu", "default"): ("fp32",), ("gpu", "default"): ("bf16",),
              ("cpu", "full"): ("fp32", "fp16", "bf16"), ("gpu", "full"): ("fp32", "fp16", "bf16")},
}


def grid_name(session: CalibrationSession) -> str:
    return "full" if session.options.full else ("quick" if session.options.quick else "default")


def grid_precisions(session: CalibrationSession, family: str) -> tuple[str, ...]:
    device = session.backend.device_type
    table = PRECISIONS[family]
    return table[device, "full"] if session.options.full else table[device, "default"]


def _layer(name: str) -> ConvLayer:
    return next(layer for layer in CONV_LAYERS if layer.name == name)


def conv_cases(session: CalibrationSession) -> list[NnCase]:
    """Precision-major, then layout, then the layer table's order; a GPU's default adds tf32 for the 3 standard
    layers in channels_last."""
    gpu = session.backend.device_type == "gpu"
    grid = grid_name(session)
    batches = (32, 1) if gpu and grid == "full" else ((32,) if gpu else (1,))
    layers = [layer for layer in CONV_LAYERS if grid == "full" or not layer.full_only]
    plan: list[tuple[str, tuple[str, ...], list[ConvLayer]]]
    if grid == "quick":
        plan = [(grid_precisions(session, "conv")[0], ("channels_last",), [_layer(n) for n in STANDARD])]
    else:
        plan = [(p, LAYOUTS, layers) for p in grid_precisions(session, "conv")]
        if gpu and grid == "default":
            plan.append(("tf32", ("channels_last",), [_layer(n) for n in STANDARD]))
    return [NnCase("conv", layer.name, layer.source, layer.role, p, layout, "", layer.spec(n))
            for p, layouts, chosen in plan for layout in layouts for n in batches for layer in chosen]


def cbr_cases(session: CalibrationSession) -> list[NnCase]:
    gpu = session.backend.device_type == "gpu"
    grid = grid_name(session)
    pairs = CBR_LAYERS[:1] if grid == "quick" else CBR_LAYERS
    layouts = ("channels_last",) if grid == "quick" else LAYOUTS
    precisions = grid_precisions(session, "conv_bn_relu")[: 1 if grid == "quick" else None]
    return [NnCase("conv_bn_relu", name, _layer(name).source, f"{_layer(name).role} + BN + {act}", p, layout,
                   f"{variant}:{act}", _layer(name).spec(32 if gpu else 1))
            for p in precisions for layout in layouts for name, act in pairs for variant in ("unfolded", "folded")]


def sdpa_cases(session: CalibrationSession) -> list[NnCase]:
    device = session.backend.device_type
    table, vit_batch, decode_batch = ATTENTION[device]
    grid = grid_name(session)
    shapes: tuple[AttentionShape, ...] = table[:1] if grid == "quick" else table
    backends = session.backend.nn_kernels().sdpa_backends()
    precisions = grid_precisions(session, "sdpa")[: 1 if grid == "quick" else None]

    def batch(shape: AttentionShape) -> int:
        return vit_batch if shape.source == "vit_b_16" else (decode_batch if shape.seq_q == 1 else 1)

    return [NnCase("sdpa", s.name, s.source, s.role, p, "bhsd", b, s.spec(batch(s)))
            for p in precisions for s in shapes for b in backends]


def fused_cases(session: CalibrationSession) -> list[NnCase]:
    device = session.backend.device_type
    batch = 32 if device == "gpu" else 1
    grid = grid_name(session)
    precisions = grid_precisions(session, "fused")[: 1 if grid == "quick" else None]
    return [NnCase("fused", s.name, s.source, s.op, p, "row-major", s.op,
                   FusedSpec(s.op, s.rows_per_item * (batch if s.source == "vit_b_16" else 1), s.cols))
            for p in precisions for s in fused_shapes(device)]


CASES = {"conv": conv_cases, "conv_bn_relu": cbr_cases, "sdpa": sdpa_cases, "fused": fused_cases}


def family_cases(session: CalibrationSession, family: str) -> list[tuple[NnCase, str]]:
    """(case, test id); a backend with no such kernels (numpy) gets one case that files the family as
    unsupported with the reason."""
    if not session.backend.nn_kernels().available:
        return [(NnCase(family, "unsupported", "", "", "", "", "", None), "unsupported")]
    return [(case, case.case_id) for case in CASES[family](session)]
