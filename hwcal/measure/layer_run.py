"""A model layer's operations run for real, end to end: the truth side of the whole-layer check
(``hwcal-validate-predictions --model FILE``).

Every operation gets its own operands (a layer's weights and activations are distinct tensors) made by the
calibrated backend, and runs through the same call the calibration timed (``shape_call``, ``blas_bound``,
``stream_call``), so the list is what the predictions describe; convolutions and attention, which the
backends do not run yet, are the framework's own calls (``torch.nn.functional``). One pass is every
operation in order, ``count`` times each, issued back to back with one synchronisation at the end; a round
is as many passes as fill ``round_s``; the figure is the best round per pass, the median beside it.
Each operation is also timed alone the same way, so a difference says which operation it comes from.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwcal.backends import Backend
from hwcal.backends.base import StreamArrays
from hwcal.errors import HwcalError
from hwcal.precisions import PRECISIONS

STREAM_KERNELS = ("copy", "scale", "add", "triad")
BLAS_OPS = ("dot", "axpy", "scal", "gemv")
TORCH_ONLY = frozenset({"conv2d", "sdpa"})  # run through torch itself (``_torch_call``); numpy has neither


@dataclass(frozen=True)
class OpToRun:
    name: str
    operation: str
    precision: str
    dims: dict[str, Any]
    count: int = 1


@dataclass
class LayerTiming:
    best_s: float  # per pass of the whole list
    median_s: float
    passes_per_round: int
    rounds: int
    per_op_s: list[float] = field(default_factory=list)  # each operation alone, per call (best), in list order


def _stream_arrays(backend: Backend, precision: str, n: int) -> StreamArrays:
    eb = max(1, PRECISIONS[precision].bits // 8)
    if backend.framework == "numpy":
        import numpy as np

        dtype = {"fp64": np.float64, "fp32": np.float32, "fp16": np.float16}.get(precision)
        if dtype is None:
            raise HwcalError(f"numpy has no {precision} arrays for an element-wise operation")
        a, b, c = (np.full(n, v, dtype=dtype) for v in (1.0, 2.0, 0.0))
        return StreamArrays(n, eb, a, b, c)
    import torch

    from hwcal.backends.torch_gemm import FLOAT

    if precision not in FLOAT:
        raise HwcalError(f"torch has no {precision} element-wise route here")
    device = getattr(backend, "_torch_device", "cpu")
    ta, tb, tc = (torch.full((n,), v, dtype=FLOAT[precision], device=device) for v in (1.0, 2.0, 0.0))
    return StreamArrays(n, eb, ta, tb, tc)


def _torch_call(backend: Backend, op: OpToRun) -> Callable[[], Any]:
    """Convolution and attention through torch itself (the backends do not run them yet)."""
    if backend.framework != "pytorch":
        raise HwcalError(f"{op.name}: {op.operation} runs on torch only; the calibration is {backend.framework}")
    import torch
    import torch.nn.functional as F

    from hwcal.backends.torch_gemm import FLOAT

    dtype, device, d = FLOAT[op.precision], getattr(backend, "_torch_device", "cpu"), op.dims
    if op.operation == "conv2d":
        groups = d.get("groups", 1)
        x = torch.randn(d["n"], d["c"], d["h"], d["w"], device=device, dtype=dtype)
        w = torch.randn(d["k"], d["c"] // groups, d["r"], d["s"], device=device, dtype=dtype)
        stride, padding = d.get("stride", 1), d.get("padding", 0)
        return lambda: F.conv2d(x, w, stride=stride, padding=padding, groups=groups)
    if op.operation == "sdpa":
        q = torch.randn(d["batch"], d["heads"], d["seq_q"], d["head_dim"], device=device, dtype=dtype)
        k = torch.randn(d["batch"], d["heads"], d["seq_k"], d["head_dim"], device=device, dtype=dtype)
        v = torch.randn_like(k)
        causal = bool(d.get("causal", False))
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    raise HwcalError(f"{op.name}: no way to run {op.operation!r}")


def prepare(backend: Backend, op: OpToRun, seed: int) -> Callable[[], Any]:
    """A zero-argument call running ``op`` once on its own operands (made here, outside any timing)."""
    d = op.dims
    if op.operation == "gemm":
        ops = backend.make_shape_operands(op.precision, d["m"], d["n"], d["k"], d.get("batch", 1), seed, rotate=False)
        return backend.shape_call(ops)
    if op.operation in BLAS_OPS:
        blas = backend.blas_operands(op.operation, op.precision, d["n"], d.get("m", 1), seed)
        return backend.blas_bound(blas)
    if op.operation in STREAM_KERNELS:
        arrays = _stream_arrays(backend, op.precision, d["n"])
        return backend.stream_call(op.operation, arrays, 3.0)
    return _torch_call(backend, op)


def _time(calls: Sequence[Callable[[], Any]], sync: Callable[[], None], round_s: float, rounds: int
          ) -> tuple[float, float, int]:
    """(best, median seconds per pass, passes per round): one warm pass, then rounds of back-to-back passes."""
    def one_pass() -> None:
        for call in calls:
            call()

    one_pass()
    sync()
    start = time.perf_counter()
    one_pass()
    sync()
    per_pass = max(time.perf_counter() - start, 1e-7)
    reps = max(1, min(10_000, math.ceil(round_s / per_pass)))
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            one_pass()
        sync()
        samples.append((time.perf_counter() - start) / reps)
    return min(samples), statistics.median(samples), reps


def run_layer(backend: Backend, ops: Sequence[OpToRun], round_s: float = 0.2, rounds: int = 5,
              per_op: bool = True) -> LayerTiming:
    """Run the list end to end (and each operation alone when ``per_op``) and time it."""
    prepared = [(op, prepare(backend, op, seed=i + 1)) for i, op in enumerate(ops)]
    sequence = [call for op, call in prepared for _ in range(op.count)]
    best, median, reps = _time(sequence, backend.synchronize, round_s, rounds)
    timing = LayerTiming(best, median, reps, rounds)
    if per_op:
        timing.per_op_s = [_time([call], backend.synchronize, round_s / 4, rounds)[0] for _, call in prepared]
    return timing
