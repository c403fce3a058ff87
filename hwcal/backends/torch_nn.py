"""TorchBackend's convolution, attention and fused-op kernels (``hwcal.backends.nn``), and what ran them.

What ran is read from the framework, never assumed: the convolution path ATen selects
(``torch._C._select_conv_backend``: oneDNN, cuDNN, a slow fallback), on a CPU oneDNN's own verbose log of one
call (the implementation, e.g. ``brg_conv_fwd:avx512_core``, and the reorders NCHW costs per call), on a GPU
the CUDA kernels one call launched (torch.profiler), which name cuDNN's algorithm. The SDPA backend is forced
one at a time, and the one torch's dispatcher would pick unforced is asked of torch.

Modes are explicit and restored: TF32 for cuDNN convolutions and fp32 matmuls on only for ``tf32``; cuDNN
benchmark mode (autotuned algorithm) on or off as the case says.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

import hwcal.backends.torch_attention as attn
import hwcal.backends.torch_conv as conv
from hwcal.backends.nn import FUSED_OPS, LAYOUTS, ConvSpec, NnKernels, NnOperands, Reference
from hwcal.backends.support import Support

ACTIVATION = {"relu": "ReLU", "relu6": "ReLU6"}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def onednn_calls(fn: Callable[[], Any]) -> list[tuple[str, str]]:
    """(primitive, implementation) of every oneDNN primitive one call of ``fn`` executed, from oneDNN's verbose
    log (written to fd 1 by the library, so fd 1 is redirected to a file around the call)."""
    sys.stdout.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1)
        try:
            os.dup2(tmp.fileno(), 1)
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                fn()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    return parse_onednn(text)


def parse_onednn(text: str) -> list[tuple[str, str]]:
    """``onednn_verbose,[v1,]primitive,exec,cpu,<primitive>,<implementation>,...`` lines -> pairs."""
    calls = []
    for line in text.splitlines():
        fields = line.split(",")
        if not fields or not fields[0].endswith("_verbose") or "exec" not in fields:
            continue
        i = fields.index("exec")
        if len(fields) > i + 3:
            calls.append((fields[i + 2], fields[i + 3]))
    return calls


def cuda_kernels(fn: Callable[[], Any]) -> list[str]:
    """Names of the CUDA kernels one call of ``fn`` launched (torch.profiler), templates trimmed."""
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
    names = []
    for event in prof.events():
        if str(getattr(event, "device_type", "")).endswith("CUDA"):
            name = str(event.name).split("(")[0].split("<")[0].strip()
            if name and name not in names:
                names.append(name[:120])
    return names[:6]


def conv_path(ops: NnOperands) -> str:
    """The convolution backend ATen selects for these operands (Mkldnn, Cudnn, Slow2d ...), or ''."""
    spec: ConvSpec = ops.spec
    return conv.select_path(ops.tensors["x"], ops.tensors["w"], spec.stride, spec.padding, spec.groups)


class TorchNnKernels(NnKernels):
    """Made by TorchBackend: ``device`` a torch.device, ``sets_needed`` its L2-rotation rule."""

    def __init__(self, device: Any, device_type: str, sets_needed: Callable[[int], int], cc: str) -> None:
        super().__init__("pytorch", "")
        self.device = device
        self.device_type = device_type
        self.sets_needed = sets_needed
        self.cc = cc
        self.gpu = device_type == "gpu"

    def precisions(self, family: str) -> list[str]:
        floats = ["fp32", "tf32", "fp16", "bf16"] if self.gpu else ["fp32", "fp16", "bf16"]
        if family == "conv":
            return [*floats, "fp8", "int8"]
        return floats if family == "conv_bn_relu" else [p for p in floats if p != "tf32"]

    def layouts(self, family: str) -> tuple[str, ...]:
        return LAYOUTS if family in ("conv", "conv_bn_relu") else ({"sdpa": "bhsd"}.get(family, "row-major"),)

    def sdpa_backends(self) -> tuple[str, ...]:
        return ("flash", "efficient", "cudnn", "math") if self.gpu else ("flash", "math")

    def threads(self) -> int | None:
        return None if self.gpu else torch.get_num_threads()

    # ---- what can run ---------------------------------------------------------------------------------------
    def support(self, family: str, precision: str, variant: str = "") -> Support:
        if precision == "tf32" and not self.gpu:
            return Support(False, "TF32 is a tensor-core mode of NVIDIA GPUs; on a CPU torch computes it as fp32")
        try:
            with self.modes(precision):
                if family in ("conv", "conv_bn_relu"):
                    conv.probe(precision, self.device, depthwise=variant == "depthwise")
                elif family == "sdpa":
                    attn.sdpa_probe(precision, variant, self.device)
                else:
                    attn.fused_probe(variant or FUSED_OPS[0], precision, self.device)
                if self.gpu:
                    torch.cuda.synchronize(self.device)
        except Exception as exc:  # the framework's own words are the reason
            return Support(False, first_line(exc))
        return Support(True, kernel=self.kernel(family, precision, variant))

    def kernel(self, family: str, precision: str, variant: str = "", layout: str = "") -> str:
        where = f"cuDNN {torch.backends.cudnn.version()}, sm_{self.cc.replace('.', '')}" if self.gpu else \
            f"CPU {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
        call = {"conv": "torch.nn.functional.conv2d",
                "conv_bn_relu": "conv2d + batch_norm(eval) + relu_" if variant != "folded"
                else "conv2d (BN folded into weights and bias) + relu_",
                "sdpa": f"scaled_dot_product_attention, {variant or 'torch-chosen'} backend",
                "fused": {"layernorm": "F.layer_norm", "rmsnorm": "F.rms_norm", "softmax": "torch.softmax(dim=-1)",
                          "gelu": "F.gelu (erf)", "silu": "F.silu"}.get(variant, variant)}[family]
        return f"{call} {precision}{' ' + layout if layout else ''} ({where})"

    @contextlib.contextmanager
    def modes(self, precision: str, cudnn_benchmark: bool | None = None, sdpa_backend: str | None = None
              ) -> Iterator[dict[str, object]]:
        matmul_before = torch.get_float32_matmul_precision()
        cudnn_before = (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
        torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
        modes: dict[str, object] = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
        try:
            if self.gpu:
                torch.backends.cudnn.allow_tf32 = precision == "tf32"
                if cudnn_benchmark is not None:
                    torch.backends.cudnn.benchmark = cudnn_benchmark
                modes.update({"cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                              "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
                              "cudnn_deterministic": bool(torch.backends.cudnn.deterministic)})
            else:
                modes["mkldnn_conv_fp32_precision"] = str(getattr(getattr(torch.backends.mkldnn, "conv", None),
                                                                  "fp32_precision", "unknown"))
            if sdpa_backend is not None:
                modes["sdpa_backend_forced"] = sdpa_backend
            with attn.forced_backend(sdpa_backend):
                yield modes
        finally:
            torch.set_float32_matmul_precision(matmul_before)
            if self.gpu:
                torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = cudnn_before

    # ---- operands, calls, checks ----------------------------------------------------------------------------
    def operands(self, family: str, spec: Any, precision: str, layout: str, seed: int, variant: str = "") -> NnOperands:
        if family == "conv":
            return conv.conv_operands(spec, precision, layout, self.device, seed, self.sets_needed)
        if family == "conv_bn_relu":
            folded, _, activation = variant.partition(":")
            return conv.cbr_operands(spec, precision, layout, self.device, seed, folded, activation or "relu",
                                     self.sets_needed)
        if family == "sdpa":
            return attn.sdpa_operands(spec, precision, variant, self.device, seed, self.sets_needed)
        return attn.fused_operands(spec, precision, self.device, seed, self.sets_needed)

    def launch(self, ops: NnOperands) -> Any:
        return {"conv": conv.conv_launch, "conv_bn_relu": conv.cbr_launch, "sdpa": attn.sdpa_launch,
                "fused": attn.fused_launch}[ops.family](ops)

    def reference(self, ops: NnOperands) -> Reference:
        return {"conv": conv.conv_reference, "conv_bn_relu": conv.cbr_reference, "sdpa": attn.sdpa_reference,
                "fused": attn.fused_reference}[ops.family](ops)

    def default_sdpa_backend(self, ops: NnOperands) -> str | None:
        return attn.sdpa_default(ops)

    def describe(self, ops: NnOperands, kernel_names: bool = False) -> dict[str, Any]:
        """The kernel text, ATen's conv path, and the algorithm of one more call (oneDNN's implementation and its
        reorders on a CPU; on a GPU the CUDA kernels, with ``kernel_names``: the profiler's first start costs
        ~5 s, 4.9 s measured on an H100 host)."""
        info: dict[str, Any] = {"kernel": self.kernel(ops.family, ops.precision, ops.variant.partition(":")[0],
                                                      ops.layout if ops.family in ("conv", "conv_bn_relu") else "")}
        if ops.family in ("conv", "conv_bn_relu"):
            info["path"] = conv_path(ops)
        try:
            if self.gpu and not kernel_names:
                info["algorithm_unavailable"] = "CUDA kernels not named: --kernel-names (or --full) names them"
            elif self.gpu:
                info["cuda_kernels"] = cuda_kernels(lambda: self.launch(ops))
            elif ops.family in ("conv", "conv_bn_relu") and torch.backends.mkldnn.is_available():
                calls = onednn_calls(lambda: self.launch(ops))
                convs = [impl for prim, impl in calls if prim == "convolution"]
                if convs:
                    info["algorithm"] = f"oneDNN {convs[0]}"
                    info["reorders_per_call"] = sum(1 for prim, _ in calls if prim == "reorder")
        except Exception as exc:  # evidence only: a profiler or log that does not answer costs no result
            info["algorithm_unavailable"] = first_line(exc)
        if self.gpu and info.get("cuda_kernels"):
            info["algorithm"] = "; ".join(info["cuda_kernels"][:2])
        return info
