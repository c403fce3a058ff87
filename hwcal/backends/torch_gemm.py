"""PyTorch GEMM operands and kernels for every precision, any shape and any operand layout.

One place decides how a precision's GEMM is called (``torch.mm``; ``torch._scaled_mm`` for fp8;
``torch._int_mm`` for int8) and how its operands lie in memory, so the square sweep and the
max-achievable search measure the same kernels. Layouts are named as BLAS names them: "NN" both
operands row-major, "NT" B column-major, "TN" A column-major. The layout is part of the measurement:
``_int_mm`` with a row-major B ran at 131 TOPS on an H200 where the column-major one ran at 927.
"""

from __future__ import annotations

from typing import Any

import torch

FLOAT = {"fp64": torch.float64, "fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
         "bf16": torch.bfloat16}
FP8 = {"fp8": getattr(torch, "float8_e4m3fn", None), "fp8_e5m2": getattr(torch, "float8_e5m2", None)}
INT = {"int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8}
LAYOUTS = ("NN", "NT", "TN")


def itemsize(precision: str) -> int:
    if precision in FLOAT:
        return int(FLOAT[precision].itemsize)
    return 1 if precision in FP8 else int(INT[precision].itemsize)


def out_dtype(precision: str) -> Any:
    """int8 accumulates into int32 (``_int_mm``), fp8 writes bf16; the rest keep their type."""
    if precision == "int8":
        return torch.int32
    if precision in FP8:
        return torch.bfloat16
    return FLOAT[precision] if precision in FLOAT else INT[precision]


def _lay(x: Any, transposed: str) -> Any:
    """The same values, stored column-major when ``transposed`` is "T" (a transposed view of a copy)."""
    return x.t().contiguous().t() if transposed == "T" else x


def operands(precision: str, m: int, n: int, k: int, layout: str, device: Any, gen: torch.Generator,
             bound: int = 0) -> tuple[Any, Any]:
    """A (m x k) and B (k x n) of ``precision`` in ``layout``: normal values for floating point (fp8 from
    normal values rounded), integers in [-bound, bound]."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if precision in INT:
        dt: torch.dtype | None = INT[precision]  # None: an fp8 dtype this torch lacks (FP8 below)
        a = torch.randint(-bound, bound + 1, (m, k), generator=gen, device=device, dtype=torch.int64).to(dt)
        b = torch.randint(-bound, bound + 1, (k, n), generator=gen, device=device, dtype=torch.int64).to(dt)
    else:
        dt = FLOAT.get(precision) or FP8[precision]
        a = torch.randn(m, k, generator=gen, device=device, dtype=torch.float32).to(dt)
        b = torch.randn(k, n, generator=gen, device=device, dtype=torch.float32).to(dt)
    return _lay(a, layout[0]), _lay(b, layout[1])


def launch(precision: str, a: Any, b: Any, out: Any, extra: dict[str, Any]) -> Any:
    """C = A @ B into ``out`` with the precision's kernel; does not wait for the device."""
    if precision in FP8:
        return torch._scaled_mm(a, b, extra["scale_a"], extra["scale_b"], out_dtype=torch.bfloat16, out=out)
    if precision == "int8":
        return torch._int_mm(a, b, out=out)
    return torch.mm(a, b, out=out)


def kernel_extra(precision: str, device: Any) -> dict[str, Any]:
    """Extra kernel arguments: fp8's per-tensor scales (1: the operands are already in range)."""
    if precision in FP8:
        one = torch.ones((), device=device, dtype=torch.float32)
        return {"scale_a": one, "scale_b": one}
    return {}


class EventTimers:
    """CUDA-event timing of GEMM calls on one device: per call with the L2 flushed (burst), and long
    back-to-back runs (sustained). The 256 MiB flush buffer is mamf-finder's: larger than any GPU's L2."""

    FLUSH_BYTES = 256 * 2**20

    def __init__(self, device: Any) -> None:
        self.device = device
        self._flush: Any = None

    def burst_times(self, launch: Any, out: Any, count: int) -> list[float]:
        """Seconds of ``count`` calls, each after the L2 was flushed and ``out`` re-written from random data."""
        if self._flush is None:
            self._flush = torch.empty(self.FLUSH_BYTES // 4, dtype=torch.int32, device=self.device)
        if out.dtype.is_floating_point:
            rand = torch.randn(out.shape, device=self.device).to(out.dtype)
        else:
            rand = torch.randint(-100, 100, out.shape, device=self.device, dtype=out.dtype)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
        for start, end in zip(starts, ends, strict=True):
            self._flush.zero_()
            out.copy_(rand)
            start.record()
            launch()
            end.record()
        torch.cuda.synchronize(self.device)
        return [s.elapsed_time(e) / 1000.0 for s, e in zip(starts, ends, strict=True)]
