"""TorchBackend's BLAS1/BLAS2, GEMM-shape and launch-floor methods, kept apart from its square-GEMM,
STREAM and layout methods (``torch_backend``), which mix this class in.

torch.dot / torch.mv reach the BLAS torch was built with (CPU) or cuBLAS (GPU) for fp32/fp64 and ATen's
own kernels for fp16/bf16; axpy is ``y.add_(x, alpha=a)`` and scal ``x.mul_(a)``: one fused in-place
pass each, on all of torch's threads (CPU) or one CUDA kernel. Shaped GEMMs are ``torch.mm`` /
``torch.bmm`` into a preallocated output; on a GPU small operands rotate so L2 never holds the last
launch's. The floors are each operation's call on 16 elements (16x16 for gemv, 4x4 for GEMM).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import TYPE_CHECKING, Any

import torch

from hwcal.backends.base import (
    AXPY_ALPHAS,
    FLOOR_ELEMENTS,
    SCAL_ALPHAS,
    SHAPE_BLOCK,
    BlasOperands,
    FloorCall,
    ShapeOperands,
)
from hwcal.backends.torch_gemm import FLOAT as _FLOAT

ATEN_GRAIN = 32_768  # at::internal::GRAIN_SIZE: ATen's element-wise loops split in chunks of at least this


class TorchOperations:
    """Mixed into TorchBackend, which provides ``device``, ``device_type``, ``_torch_device``,
    ``_sets_needed`` and ``_kernel``."""

    device: str
    device_type: str
    _torch_device: Any

    if TYPE_CHECKING:  # declared for the type checker only: TorchBackend defines both
        def _sets_needed(self, bytes_one_set: int) -> int: ...

        def _kernel(self, precision: str) -> str: ...

    # torch was built with (CPU) or cuBLAS (GPU) for fp32/fp64 and ATen's own kernels for fp16/bf16;
    def blas_precisions(self) -> list[str]:
        # Most asked first (a tight budget leaves out the last one's sizes): bf16 on a GPU, fp32 on a CPU.
        if self.device_type == "gpu":
            return ["bf16", "fp16", "fp32", "fp64"]
        return ["fp32", "bf16", "fp16", "fp64"]

    def _blas_filled(self, gen: torch.Generator, size: int, dtype: Any, low: float, high: float) -> Any:
        """``size`` values from a 64 Ki-element random block repeated (drawing 100 MiB costs more than timing it)."""
        block = torch.rand(min(size, 1 << 16), generator=gen, device=self._torch_device, dtype=torch.float32)
        block = (block * (high - low) + low).to(dtype)
        return block.repeat(math.ceil(size / block.numel()))[:size]

    def blas_operands(self, operation: str, precision: str, n: int, m: int, seed: int) -> BlasOperands:
        dtype = _FLOAT[precision]
        gen = torch.Generator(device=self._torch_device).manual_seed(seed)
        if operation == "dot":
            # Positive values scaled by 1/sqrt(n): the result is ~1 (fp16 cannot hold n) and grows with every
            # term, so a wrong or zero result cannot hide in the tolerance.
            scale = 1.0 / max(1.0, n**0.5)
            return BlasOperands("dot", precision, n, x=self._blas_filled(gen, n, dtype, 0.5 * scale, 1.5 * scale),
                                y=self._blas_filled(gen, n, dtype, 0.5 * scale, 1.5 * scale),
                                result=torch.empty((), dtype=dtype, device=self._torch_device))
        if operation == "axpy":
            return BlasOperands("axpy", precision, n, x=self._blas_filled(gen, n, dtype, -1.0, 1.0),
                                y=self._blas_filled(gen, n, dtype, -1.0, 1.0), alphas=itertools.cycle(AXPY_ALPHAS))
        if operation == "scal":
            return BlasOperands("scal", precision, n, x=self._blas_filled(gen, n, dtype, -1.0, 1.0),
                                alphas=itertools.cycle(SCAL_ALPHAS))
        if operation == "gemv":
            a = self._blas_filled(gen, m * n, dtype, -1.0, 1.0).view(m, n)
            return BlasOperands("gemv", precision, n, m, x=self._blas_filled(gen, n, dtype, -1.0, 1.0), a=a,
                                y=torch.empty(m, dtype=dtype, device=self._torch_device))
        raise ValueError(f"unknown BLAS operation {operation!r}")

    def blas_call(self, ops: BlasOperands, alpha: float | None = None) -> Any:
        op = ops.operation
        if op == "dot":
            return torch.dot(ops.x, ops.y, out=ops.result)
        if op == "gemv":
            return torch.mv(ops.a, ops.x, out=ops.y)
        if alpha is None:
            alpha = next(ops.alphas)  # type: ignore[arg-type]
        if op == "scal":
            return ops.x.mul_(alpha)
        return ops.y.add_(ops.x, alpha=alpha)

    def blas_bound(self, ops: BlasOperands) -> Any:
        op, x, y = ops.operation, ops.x, ops.y
        if op == "dot":
            return functools.partial(torch.dot, x, y, out=ops.result)
        if op == "gemv":
            return functools.partial(torch.mv, ops.a, x, out=y)
        if op == "scal":
            scalars = ops.alphas or itertools.cycle(SCAL_ALPHAS)
            return lambda: x.mul_(next(scalars))
        alphas = ops.alphas or itertools.cycle(AXPY_ALPHAS)
        return lambda: y.add_(x, alpha=next(alphas))

    def blas_threads(self, operation: str) -> int | None:
        return torch.get_num_threads() if self.device_type == "cpu" else None

    def blas_kernel(self, operation: str, precision: str) -> str:
        call = {"dot": "torch.dot(x, y, out=r)", "gemv": "torch.mv(A, x, out=y), A row-major",
                "axpy": "y.add_(x, alpha=a): one fused pass", "scal": "x.mul_(a): one in-place pass"}[operation]
        if self.device_type == "gpu":
            lib = "cuBLAS" if operation in ("dot", "gemv") and precision in ("fp32", "fp64") else "CUDA kernel"
            return f"{call} ({lib}, {self.device})"
        return f"{call} (CPU {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"

    def shape_precisions(self) -> list[str]:
        # Most asked-about first (--quick keeps it): bf16 on a GPU, fp32 on a CPU.
        return ["bf16", "fp16", "fp32", "tf32"] if self.device_type == "gpu" else ["fp32", "bf16", "fp16"]

    def make_shape_operands(self, precision: str, m: int, n: int, k: int, batch: int, seed: int,
                            rotate: bool = True, b: Any = None) -> ShapeOperands:
        dtype = _FLOAT[precision]
        gen = torch.Generator(device=self._torch_device).manual_seed(seed)
        lead = (batch,) if batch > 1 else ()

        def normals(*shape: int) -> Any:
            """A CPU's large operand repeats one random block of SHAPE_BLOCK values, as numpy's does: drawing 17 M
            normals took 96 ms (1152x14976 on the Zen 4 guest), charged to the shape budget for every M of a
            pair; a wrong result is caught by the check all the same. A GPU draws them all (fast there)."""
            size = math.prod(shape)
            if self.device_type == "gpu" or size <= SHAPE_BLOCK:
                return torch.randn(*shape, generator=gen, device=self._torch_device, dtype=torch.float32).to(dtype)
            block = torch.randn(SHAPE_BLOCK, generator=gen, device=self._torch_device, dtype=torch.float32)
            return block.to(dtype).repeat(-(-size // SHAPE_BLOCK))[:size].reshape(shape).contiguous()

        def one_set() -> tuple[Any, Any]:
            return normals(*lead, m, k), normals(*lead, k, n)

        # GPUs: rotate operand sets so one launch never finds the last one's operands in L2 (unless warm).
        if b is not None:  # a shared B: one set, A drawn as its case's
            if tuple(b.shape) != (*lead, k, n) or b.dtype != dtype or rotate:
                raise ValueError(f"a shared B of {tuple(b.shape)} {b.dtype} does not fit {(*lead, k, n)} {dtype}"
                                 + (" (operand sets rotate here)" if rotate else ""))
            sets = [(normals(*lead, m, k), b)]
        else:
            count = self._sets_needed(batch * (m * k + k * n) * dtype.itemsize) if rotate else 1
            sets = [one_set() for _ in range(count)]
        ops = ShapeOperands(precision, m, n, k, batch, sets[-1][0], sets[-1][1],
                            out=torch.empty(*lead, m, n, device=self._torch_device, dtype=dtype))
        ops.extra.update({"sets": sets, "next": 0})
        return ops

    def gemm_shape(self, ops: ShapeOperands) -> Any:
        sets = ops.extra["sets"]
        i = ops.extra["next"]
        ops.extra["next"] = (i + 1) % len(sets)
        ops.a, ops.b = sets[i]  # verification checks the operands of the last launch
        return (torch.bmm if ops.batch > 1 else torch.mm)(ops.a, ops.b, out=ops.out)

    def shape_call(self, ops: ShapeOperands) -> Any:
        if len(ops.extra["sets"]) > 1:  # rotating operand sets (GPUs): gemm_shape picks each launch's
            return functools.partial(self.gemm_shape, ops)
        return functools.partial(torch.bmm if ops.batch > 1 else torch.mm, ops.a, ops.b, out=ops.out)

    def shape_kernel(self, precision: str, batch: int) -> str:
        call = "torch.bmm" if batch > 1 else "torch.mm"
        if self.device_type == "gpu":
            return f"{call} -> {self._kernel(precision).replace(' GEMM', '')} ({'batched' if batch > 1 else 'GEMM'})"
        return f"{call} {precision} (CPU {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"

    def shape_layout(self, batch: int) -> str:
        return ("contiguous (B,M,K) @ (B,K,N) -> (B,M,N)" if batch > 1
                else "row-major A (M,K) @ row-major B (K,N) -> C (M,N)")

    def floor_calls(self) -> dict[str, FloorCall]:
        dev = self._torch_device
        # Small vectors, not one element: numpy takes a scalar path on 1 element (base.FLOOR_ELEMENTS); the same
        # size here keeps the two frameworks' floors alike (torch CPU: 1 and 16 elements cost the same).
        x, y = torch.ones(FLOOR_ELEMENTS, device=dev), torch.ones(FLOOR_ELEMENTS, device=dev)
        r, a = torch.empty((), device=dev), torch.ones(FLOOR_ELEMENTS, FLOOR_ELEMENTS, device=dev)
        out = torch.empty(FLOOR_ELEMENTS, device=dev)
        # GEMM floors on 4x4 matrices: 1x1 takes a degenerate path (CPU: bmm of (16,1,1) 0.95 us, of (16,4,4)
        # 2.3 us, of attention's (12,4,64)@(12,64,4) 3.7 us), so a floor on it under-predicts small GEMMs.
        sq, sq_out = torch.ones(4, 4, device=dev), torch.empty(4, 4, device=dev)
        stack, stack_out = torch.ones(16, 4, 4, device=dev), torch.empty(16, 4, 4, device=dev)
        what = "CUDA launch" if self.device_type == "gpu" else "CPU dispatch"
        v, m = f"{FLOOR_ELEMENTS} fp32 elements ({what})", f"{FLOOR_ELEMENTS}x{FLOOR_ELEMENTS} fp32 ({what})"
        return {
            "dot": FloorCall(functools.partial(torch.dot, x, y, out=r), f"torch.dot, {v}", "fp32"),
            "axpy": FloorCall(functools.partial(y.add_, x, alpha=1.0), f"y.add_(x, alpha=a), {v}", "fp32"),
            "scal": FloorCall(functools.partial(x.mul_, 1.0), f"x.mul_(a), {v}", "fp32"),
            "gemv": FloorCall(functools.partial(torch.mv, a, x, out=out), f"torch.mv, {m}", "fp32"),
            "gemm": FloorCall(functools.partial(torch.mm, sq, sq, out=sq_out), f"torch.mm, 4x4 fp32 ({what})", "fp32"),
            "batched_gemm": FloorCall(functools.partial(torch.bmm, stack, stack, out=stack_out),
                                      f"torch.bmm on (16,4,4) fp32 stacks ({what})", "fp32"),
            "add": FloorCall(functools.partial(torch.add, x, y, out=out),
                             f"torch.add(x, y, out=z), {v[:-1]}; STREAM's kernels)", "fp32"),
        }

    def fork_join_call(self) -> FloorCall | None:
        """``x.mul_(1.0)`` on one ATen grain per intra-op thread: every thread takes a chunk, and at ~3.5 us a
        call (2 threads, Zen 5) the threads' wake and join are half of it."""
        threads = torch.get_num_threads()
        if self.device_type != "cpu" or threads < 2:
            return None
        n = threads * ATEN_GRAIN
        x = torch.ones(n)
        return FloorCall(functools.partial(x.mul_, 1.0),
                         f"x.mul_(a) on {n:,} fp32 elements ({threads} threads, one {ATEN_GRAIN:,}-element grain each)",
                         "fp32")
