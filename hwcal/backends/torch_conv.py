"""PyTorch convolutions as models run them: ``torch.nn.functional.conv2d`` (oneDNN on a CPU, cuDNN on a
GPU) in NCHW or channels_last, and conv + BatchNorm + ReLU in eval mode, either as the three calls an
unexported model makes (conv without bias, ``batch_norm(training=False)`` on the running statistics, an
in-place ReLU) or with the batch norm folded into the conv's weights and bias (what an exporter or
``torch.ao`` fusion does), then the ReLU.

The output is allocated by each call, as a model's forward allocates it (the caching allocator, or
oneDNN's, reuses the block). On a GPU small layers rotate through several operand sets so one call never
finds the last one's input in L2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from hwcal.backends.nn import ConvSpec, NnOperands, Reference
from hwcal.backends.torch_nn_reference import conv_bn_f64, conv_check, relative_sample

DTYPES: dict[str, Any] = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
                          "bf16": torch.bfloat16, "int8": torch.int8,
                          "fp8": getattr(torch, "float8_e4m3fn", None)}
BN_EPS = 1e-5  # torch.nn.BatchNorm2d's default
ACTIVATIONS = ("relu", "relu6")


def dtype_of(precision: str) -> Any:
    dtype = DTYPES.get(precision)
    if dtype is None:
        raise ValueError(f"torch {torch.__version__} has no {precision} dtype")
    return dtype


def laid_out(x: Any, layout: str) -> Any:
    """The same values in NCHW (contiguous) or channels_last (NHWC in memory) order."""
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "nchw":
        return x.contiguous()
    raise ValueError(f"layout {layout!r} is not nchw or channels_last")


def _draw(shape: tuple[int, ...], scale: float, dtype: Any, device: Any, gen: torch.Generator) -> Any:
    if dtype == torch.int8:
        return torch.randint(-3, 4, shape, generator=gen, device=device, dtype=torch.int64).to(dtype)
    return (torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * scale).to(dtype)


def conv_operands(spec: ConvSpec, precision: str, layout: str, device: Any, seed: int,
                  sets_needed: Callable[[int], int]) -> NnOperands:
    """Input and weights drawn N(0, 1) and N(0, 1/inner), so every output is ~N(0, 1) in any precision."""
    dtype = dtype_of(precision)
    gen = torch.Generator(device=device).manual_seed(seed)
    item = torch.empty((), dtype=dtype).element_size()
    one_set = (spec.elements["input"] + spec.elements["weight"]) * item
    sets = []
    for _ in range(sets_needed(one_set)):
        x = _draw((spec.n, spec.c, spec.h, spec.w), 1.0, dtype, device, gen)
        w = _draw((spec.k, spec.c // spec.groups, spec.r, spec.s), spec.inner ** -0.5, dtype, device, gen)
        sets.append((laid_out(x, layout), laid_out(w, layout)))
    x, w = sets[-1]
    return NnOperands("conv", precision, spec, layout, tensors={"x": x, "w": w}, extra={"sets": sets, "next": 0})


def _next_set(ops: NnOperands) -> tuple[Any, Any]:
    sets = ops.extra["sets"]
    i = ops.extra["next"]
    ops.extra["next"] = (i + 1) % len(sets)
    ops.tensors["x"], ops.tensors["w"] = sets[i]  # verification checks the operands of the last call
    return sets[i]


def conv_launch(ops: NnOperands) -> Any:
    spec: ConvSpec = ops.spec
    x, w = _next_set(ops)
    ops.out = F.conv2d(x, w, None, spec.stride, spec.padding, 1, spec.groups)
    return ops.out


def conv_reference(ops: NnOperands) -> Reference:
    """The last call's output against fp64 shift-and-accumulate of its operands as stored (no conv kernel
    involved): the first and last image of the batch, every output through Freivalds' projection of the
    channels, and 4 channels exactly."""
    spec: ConvSpec = ops.spec
    images = sorted({0, spec.n - 1})
    parts = conv_check(ops.tensors["x"][images], ops.tensors["w"], ops.out[images], spec.stride, spec.padding,
                       spec.groups, seed=spec.k * 31 + spec.c)
    return Reference(parts, f"image(s) {images} of {spec.n}: every output by a random projection of each group's "
                            "channels (Freivalds) and 4 channels exactly, vs fp64 shift-and-accumulate")


# ---- conv + BatchNorm + ReLU, eval mode ---------------------------------------------------------------------
def cbr_operands(spec: ConvSpec, precision: str, layout: str, device: Any, seed: int, variant: str,
                 activation: str, sets_needed: Callable[[int], int]) -> NnOperands:
    """A conv's operands plus BN's running statistics and affine parameters (fp32, as a model keeps them in
    its precision); ``folded`` also carries the folded weights and bias."""
    if variant not in ("folded", "unfolded") or activation not in ACTIVATIONS:
        raise ValueError(f"conv+BN+{activation} {variant!r}: variant folded or unfolded, activation "
                         f"{' or '.join(ACTIVATIONS)}")
    ops = conv_operands(spec, precision, layout, device, seed, sets_needed)
    dtype = dtype_of(precision)
    gen = torch.Generator(device=device).manual_seed(seed + 1)

    def uniform(lo: float, hi: float) -> Any:
        return torch.rand(spec.k, generator=gen, device=device, dtype=torch.float32) * (hi - lo) + lo

    bn = {"mean": uniform(-0.5, 0.5), "var": uniform(0.5, 1.5), "gamma": uniform(0.5, 1.5), "beta": uniform(-0.5, 0.5)}
    ops.family, ops.variant = "conv_bn_relu", variant
    ops.extra.update({"bn": {k: v.to(dtype) for k, v in bn.items()}, "activation": activation})
    ops.extra["model_weights"] = [w for _, w in ops.extra["sets"]]
    if variant == "folded":
        scale = bn["gamma"] / torch.sqrt(bn["var"] + BN_EPS)
        folded = [(x, laid_out((w.float() * scale.view(-1, 1, 1, 1)).to(dtype), layout)) for x, w in ops.extra["sets"]]
        ops.extra.update({"sets": folded, "bias": (bn["beta"] - bn["mean"] * scale).to(dtype)})
        ops.tensors["x"], ops.tensors["w"] = folded[-1]
    return ops


def _activate(y: Any, activation: str) -> Any:
    return F.relu_(y) if activation == "relu" else F.hardtanh_(y, 0.0, 6.0)


def cbr_launch(ops: NnOperands) -> Any:
    spec: ConvSpec = ops.spec
    x, w = _next_set(ops)
    if ops.variant == "folded":
        y = F.conv2d(x, w, ops.extra["bias"], spec.stride, spec.padding, 1, spec.groups)
    else:
        bn = ops.extra["bn"]
        y = F.conv2d(x, w, None, spec.stride, spec.padding, 1, spec.groups)
        y = F.batch_norm(y, bn["mean"], bn["var"], bn["gamma"], bn["beta"], False, 0.0, BN_EPS)
    ops.out = _activate(y, ops.extra["activation"])
    return ops.out


def cbr_reference(ops: NnOperands) -> Reference:
    """What the model computes, conv of the original weights then BN on the running statistics then the
    activation, in fp64: a folded call is checked against the unfolded model, so the folding is checked too."""
    spec: ConvSpec = ops.spec
    images = sorted({0, spec.n - 1})
    weights = ops.extra["model_weights"]
    w = weights[(ops.extra["next"] - 1) % len(weights)]  # the model's (unfolded) weights of the last call
    ref = conv_bn_f64(ops.tensors["x"][images], w, spec.stride, spec.padding, spec.groups, ops.extra["bn"], BN_EPS,
                      ops.extra["activation"])
    return relative_sample(ops.out[images], ref, f"image(s) {images} of {spec.n}, every output, vs fp64 conv "
                                                 "(shift-and-accumulate), batch norm and activation of the model")


def select_path(x: Any, w: Any, stride: int, padding: int, groups: int) -> str:
    """The convolution backend ATen selects for these operands (Mkldnn, Cudnn, Slow2d ...), or ''."""
    try:
        chosen = torch._C._select_conv_backend(x, w, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], groups,
                                               None)
    except Exception:  # a private function: absent or changed in this torch
        return ""
    return str(chosen).split(".")[-1]


def probe(precision: str, device: Any, depthwise: bool = False) -> None:
    """A tiny conv in the precision (depthwise: one channel per group): raises with the framework's words where
    it cannot run. An integer conv must also be exact: 64 channels of 3 times 3x3 filters of 2 sum to 3456 at
    an interior output, which a kernel accumulating in int8 cannot hold."""
    dtype = dtype_of(precision)
    c, groups = (8, 8) if depthwise else (8, 1)
    x = _draw((1, c, 6, 6), 1.0, dtype, device, torch.Generator(device=device).manual_seed(0))
    w = _draw((c, c // groups, 3, 3), 0.3, dtype, device, torch.Generator(device=device).manual_seed(1))
    F.conv2d(x, w, None, 1, 1, 1, groups)
    if dtype.is_floating_point:
        return
    x = torch.full((1, 64, 5, 5), 3, dtype=dtype, device=device)
    w = torch.full((64, 64, 3, 3), 2, dtype=dtype, device=device)
    got = int(F.conv2d(x, w, None, 1, 1)[0, 0, 2, 2].item())
    if got != 3456:
        raise ValueError(f"no {precision} convolution kernel: F.conv2d on {precision} tensors runs ATen's "
                         f"{select_path(x, w, 1, 1, 1) or 'fallback'} path accumulating in {precision} (64 channels "
                         f"x 3x3 of 3 x 2 gave {got}, not 3456); quantized models run torch.ao's quantized::conv2d "
                         "on qint8 tensors, which this family does not time")
