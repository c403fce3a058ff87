"""numpy on the host CPU: BLAS for fp32/fp64, numpy's own loops for everything else."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import numpy as np

from hwcal.backends.base import (
    AXPY_ALPHAS,
    FLOOR_ELEMENTS,
    SCAL_ALPHAS,
    SHAPE_BLOCK,
    Backend,
    BlasOperands,
    FloorCall,
    GemmOperands,
    ShapeOperands,
    StreamArrays,
    StreamMethod,
    Support,
    integer_operand_range,
)
from hwcal.backends.nn import NnKernels
from hwcal.machine import collect_blas

_DTYPES: dict[str, Any] = {
    "fp64": np.float64,
    "fp32": np.float32,
    "fp16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
}
_BLAS_DTYPES: dict[str, Any] = {"fp64": np.float64, "fp32": np.float32}  # the ones numpy hands to BLAS


class NumpyBackend(Backend):
    framework = "numpy"
    device = "cpu"
    device_type = "cpu"

    def precisions(self) -> list[str]:
        return list(_DTYPES)

    def _blas_kernel(self) -> str:
        blas = [b for b in collect_blas() if b.get("user_api") == "blas"]
        if not blas:
            return "BLAS"
        b = blas[0]
        return f"BLAS {b.get('internal_api', '?')} {b.get('version', '')} kernel {b.get('architecture', '?')}".strip()

    def support(self, precision: str) -> Support:
        if precision not in _DTYPES:
            return Support(False, f"numpy has no {precision} GEMM (no such dtype); use --framework pytorch")
        if precision in ("fp32", "fp64"):
            return Support(True, kernel=self._blas_kernel())
        # numpy dispatches only float32/64 (and complex) matmul to BLAS; other dtypes use its C loops.
        return Support(True, kernel=f"numpy generic matmul loop (no BLAS kernel for {precision})")

    def gemm_layouts(self, precision: str) -> tuple[str, ...]:
        # BLAS takes either operand transposed ("T": column-major storage) at no copy; numpy's own loops
        # for the other dtypes walk strides, where the layout decides the cache behaviour.
        return ("NN", "NT", "TN")

    def make_operands(self, precision: str, n: int, seed: int, layout: str = "NN", m: int | None = None,
                      k: int | None = None) -> GemmOperands:
        rng = np.random.default_rng(seed)
        dtype = _DTYPES[precision]
        rows, inner = m or n, k or n
        if np.issubdtype(dtype, np.integer):
            bits = np.dtype(dtype).itemsize * 8
            bound, wraps = integer_operand_range(inner, bits)
            a = rng.integers(-bound, bound + 1, size=(rows, inner), dtype=dtype)
            b = rng.integers(-bound, bound + 1, size=(inner, n), dtype=dtype)
            ops = GemmOperands(precision, n, a, b, operand_range=float(bound), m=m, k=k, layout=layout)
            ops.extra["accumulator_wraps"] = wraps
        else:
            draw = np.float32 if dtype != np.float64 else np.float64
            a = rng.standard_normal((rows, inner), dtype=draw).astype(dtype)
            b = rng.standard_normal((inner, n), dtype=draw).astype(dtype)
            ops = GemmOperands(precision, n, a, b, m=m, k=k, layout=layout)
        # "T": the same values stored column-major (Fortran order), as BLAS's transposed operand.
        if layout[0] == "T":
            ops.a = np.asfortranarray(ops.a)
        if layout[1] == "T":
            ops.b = np.asfortranarray(ops.b)
        ops.out = np.empty((rows, n), dtype=dtype)
        return ops

    def gemm(self, ops: GemmOperands) -> Any:
        # out= keeps allocation out of the timed region: only the kernel is measured.
        return np.matmul(ops.a, ops.b, out=ops.out)

    def as_f64(self, x: Any) -> Any:
        return np.asarray(x, dtype=np.float64)

    def from_host(self, values: Any) -> Any:
        return np.asarray(values, dtype=np.float64)

    def facts(self) -> dict[str, object]:
        return {"framework_version": np.__version__, "numpy_version": np.__version__}

    # ==== STREAM memory bandwidth (hwcal.measure.stream) ===============================================
    # numpy's element-wise ufuncs run on one thread and it has no fused multiply-add ufunc: every
    # kernel writes into an existing array (out=, no temporaries). Triad runs its two ufuncs chunk by
    # chunk, each chunk small enough to stay in cache between them, so memory sees STREAM's three
    # arrays once (reads of b and c, the write of a), not five traversals.
    TRIAD_CHUNK = 1 << 17  # elements: 1 MiB of fp64, in L2/L3 between the multiply and the add
    def stream_arrays(self, n: int, values: tuple[float, float, float]) -> StreamArrays:
        a, b, c = (np.full(n, v, dtype=np.float64) for v in values)
        return StreamArrays(n, 8, a, b, c)

    def stream_kernel(self, kernel: str, arrays: StreamArrays, scalar: float) -> None:
        self.stream_call(kernel, arrays, scalar)()

    def stream_call(self, kernel: str, arrays: StreamArrays, scalar: float) -> Any:
        a, b, c = arrays.a, arrays.b, arrays.c
        if kernel == "copy":
            return functools.partial(np.copyto, c, a)
        if kernel == "scale":
            return functools.partial(np.multiply, c, scalar, out=b)
        if kernel == "add":
            return functools.partial(np.add, a, b, out=c)
        if kernel != "triad":
            raise ValueError(f"unknown STREAM kernel {kernel!r}")
        step = self.TRIAD_CHUNK

        def triad() -> None:
            for i in range(0, arrays.n, step):
                a_i = a[i : i + step]
                np.multiply(c[i : i + step], scalar, out=a_i)
                np.add(a_i, b[i : i + step], out=a_i)
        return triad

    def stream_method(self, kernel: str) -> StreamMethod:
        return {
            "copy": StreamMethod("np.copyto(c, a): one pass, 1 thread", 2),
            "scale": StreamMethod("np.multiply(c, s, out=b): one pass, 1 thread", 2),
            "add": StreamMethod("np.add(a, b, out=c): one pass, 1 thread", 3),
            "triad": StreamMethod("per 1 MiB chunk: np.multiply(c, s, out=a); np.add(a, b, out=a) (numpy has no "
                                  "fused triad; the chunk stays in cache between the two), 3 arrays through memory, "
                                  "1 thread", 3),
        }[kernel]

    def stream_extremes(self, x: Any) -> tuple[float, float]:
        return float(np.min(x)), float(np.max(x))

    # ==== BLAS1/BLAS2, GEMM shapes, launch floors (hwcal.measure.blas, .shapes, .floors) =================
    # numpy reaches BLAS for dot and gemv (np.dot on float32/float64 calls cblas_?dot / cblas_?gemv, which
    # OpenBLAS runs on its threads); it exposes no axpy or scal, so those are ufuncs on one thread: scal
    # is one in-place multiply, axpy a multiply into a cache-sized scratch then an add, chunk by chunk,
    # so memory sees x and y read and y written once (3n), as BLAS counts it.
    AXPY_CHUNK = 1 << 16  # elements: 512 KiB of fp64, in L2 between the multiply and the add

    def blas_precisions(self) -> list[str]:
        return ["fp32", "fp64"]  # most asked first: a tight budget leaves out the other's sizes

    @staticmethod
    def _filled(rng: np.random.Generator, size: int, dtype: Any, low: float, high: float) -> Any:
        """``size`` values from a 64 Ki-element random block repeated: drawing a full 100 MiB vector costs
        more than timing it, and bandwidth does not depend on the values."""
        block = rng.uniform(low, high, size=min(size, 1 << 16)).astype(dtype)
        return np.resize(block, size)

    def blas_operands(self, operation: str, precision: str, n: int, m: int, seed: int) -> BlasOperands:
        dtype = _BLAS_DTYPES[precision]
        rng = np.random.default_rng(seed)
        if operation == "dot":
            # Positive values: the result grows like n, so a wrong (or zero) result cannot hide in the tolerance.
            scale = 1.0 / max(1.0, n**0.5)
            return BlasOperands("dot", precision, n, x=self._filled(rng, n, dtype, 0.5 * scale, 1.5 * scale),
                                y=self._filled(rng, n, dtype, 0.5 * scale, 1.5 * scale))
        if operation == "axpy":
            ops = BlasOperands("axpy", precision, n, x=self._filled(rng, n, dtype, -1.0, 1.0),
                               y=self._filled(rng, n, dtype, -1.0, 1.0), alphas=itertools.cycle(AXPY_ALPHAS))
            ops.extra["scratch"] = np.empty(min(n, self.AXPY_CHUNK), dtype=dtype)
            return ops
        if operation == "scal":
            return BlasOperands("scal", precision, n, x=self._filled(rng, n, dtype, -1.0, 1.0),
                                alphas=itertools.cycle(SCAL_ALPHAS))
        if operation == "gemv":
            a = self._filled(rng, m * n, dtype, -1.0, 1.0).reshape(m, n)
            return BlasOperands("gemv", precision, n, m, x=self._filled(rng, n, dtype, -1.0, 1.0), a=a,
                                y=np.empty(m, dtype=dtype))
        raise ValueError(f"unknown BLAS operation {operation!r}")

    def blas_call(self, ops: BlasOperands, alpha: float | None = None) -> Any:
        op = ops.operation
        if op == "dot":
            ops.result = np.dot(ops.x, ops.y)
            return ops.result
        if op == "gemv":
            return np.dot(ops.a, ops.x, out=ops.y)
        if alpha is None:
            alpha = next(ops.alphas)  # type: ignore[arg-type]
        if op == "scal":
            return np.multiply(ops.x, alpha, out=ops.x)
        x, y, t = ops.x, ops.y, ops.extra["scratch"]
        step = t.shape[0]
        for i in range(0, ops.n, step):
            t_i = t[: min(step, ops.n - i)]
            np.multiply(x[i : i + step], alpha, out=t_i)
            np.add(y[i : i + step], t_i, out=y[i : i + step])
        return y

    def blas_bound(self, ops: BlasOperands) -> Any:
        op, x, y = ops.operation, ops.x, ops.y
        if op == "gemv":
            return functools.partial(np.dot, ops.a, x, out=y)
        if op == "dot":
            def dot() -> Any:
                ops.result = np.dot(x, y)
                return ops.result
            return dot
        if op == "scal":
            alphas = ops.alphas or itertools.cycle(SCAL_ALPHAS)
            return lambda: np.multiply(x, next(alphas), out=x)
        return functools.partial(self.blas_call, ops)  # axpy: numpy has no call for it, blas_call's chunks are it

    def _blas_threads(self) -> int:
        blas = [b for b in collect_blas() if b.get("user_api") == "blas"]
        num_threads = blas[0].get("num_threads") if blas else None
        return int(num_threads) if isinstance(num_threads, int) and num_threads else 1

    def blas_threads(self, operation: str) -> int | None:
        return self._blas_threads() if operation in ("dot", "gemv") else 1

    # OpenBLAS's interface/gemm.c gives a GEMM MNK / (65536 x GEMM_MULTITHREAD_THRESHOLD, 4 by default) threads,
    # one below twice that: on the Zen 4 guest 4x128x128 and 16 x 64x64x64 ran on one thread (CPU time / wall
    # 1.00), 128x128x128 and 8x512x512 on two (1.95, 1.99). numpy calls it once per matrix of a stack.
    POOL_SPLIT_MNK = 2 * 65536 * 4

    def pool_splits(self, operation: str, precision: str, m: int = 1, n: int = 1, k: int = 1) -> bool:
        # Only the GEMMs: numpy's other precisions run its own one-thread loops, axpy and scal are its ufuncs,
        # and OpenBLAS threads dot and gemv by kernel and size (sdot on a million elements ran on one thread,
        # ddot on two), which this look does not guess.
        return (operation == "gemm" and precision in ("fp32", "fp64") and self._blas_threads() > 1
                and m * n * k >= self.POOL_SPLIT_MNK)

    POOL_N = 128  # the pool look's GEMM: large enough that OpenBLAS splits it, ~28 us on 2 Zen 4 threads

    def pool_call(self) -> FloorCall | None:
        """``np.matmul`` of two 128x128 fp32 matrices: OpenBLAS splits it over its threads. On the Zen 4 guest
        (2 vCPUs) it took 28 us, or over 1.3x that in 21 % of 300 looks, and a stack of 16 256x64 @ 64x256
        GEMMs timed after each look ran over 1.4x its best in 81 % of the slow looks' cases and 3 % of the quick
        ones': two calibrations filed such stacks 1.5-2.2x slow while no other look saw anything."""
        threads = self._blas_threads()
        if threads < 2:
            return None
        n = self.POOL_N
        rng = np.random.default_rng(0)
        a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        return FloorCall(functools.partial(np.matmul, a, b, out=out),
                         f"np.matmul of {n}x{n} fp32 matrices ({self._blas_kernel()}, {threads} threads)", "fp32")

    def blas_kernel(self, operation: str, precision: str) -> str:
        letter = "d" if precision == "fp64" else "s"
        threads = self.blas_threads(operation)
        return {
            "dot": f"np.dot(x, y) -> cblas_{letter}dot ({self._blas_kernel()}, {threads} threads)",
            "gemv": (f"np.dot(A, x, out=y), A row-major -> cblas_{letter}gemv ({self._blas_kernel()}, "
                     f"{threads} threads)"),
            "axpy": (f"per {self.AXPY_CHUNK}-element chunk: np.multiply(x, a, out=t); np.add(y, t, out=y) "
                     "(numpy has no axpy; t stays in cache), 1 thread"),
            "scal": "np.multiply(x, a, out=x): one in-place pass (numpy has no scal), 1 thread",
        }[operation]

    def shape_precisions(self) -> list[str]:
        # The BLAS-backed ones (numpy's other matmul loops run at ~1 GFLOPS); fp32 first, the one models ask
        # about, so fp64 runs on its own share plus what fp32 left of the budget.
        return ["fp32", "fp64"]

    def make_shape_operands(self, precision: str, m: int, n: int, k: int, batch: int, seed: int,
                            rotate: bool = True, b: Any = None) -> ShapeOperands:
        # One set: a CPU's operands are always warm between back-to-back calls (no flush to emulate).
        dtype = _DTYPES[precision]
        rng = np.random.default_rng(seed)
        lead = (batch,) if batch > 1 else ()
        a = self._normals(rng, (*lead, m, k), dtype)
        b = self._normals(rng, (*lead, k, n), dtype) if b is None else _checked_b(b, (*lead, k, n), dtype)
        return ShapeOperands(precision, m, n, k, batch, a, b, out=np.empty((*lead, m, n), dtype=dtype))


    @staticmethod
    def _normals(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> Any:
        """Normal values; a large operand repeats one random block of SHAPE_BLOCK values (drawing 5 M normals
        cost 0.2-1 s a case, more than timing it; a wrong result is caught by the check all the same)."""
        size = int(np.prod(shape))
        block = rng.standard_normal(min(size, SHAPE_BLOCK), dtype=np.float32).astype(dtype)
        return np.resize(block, size).reshape(shape)

    def gemm_shape(self, ops: ShapeOperands) -> Any:
        return np.matmul(ops.a, ops.b, out=ops.out)

    def shape_call(self, ops: ShapeOperands) -> Any:
        return functools.partial(np.matmul, ops.a, ops.b, out=ops.out)

    def shape_kernel(self, precision: str, batch: int) -> str:
        letter = "d" if precision == "fp64" else "s"
        if batch > 1:
            return f"np.matmul on (B,M,K) @ (B,K,N) stacks: one cblas_{letter}gemm per matrix ({self._blas_kernel()})"
        return f"np.matmul -> cblas_{letter}gemm ({self._blas_kernel()}, {self._blas_threads()} threads)"

    def shape_layout(self, batch: int) -> str:
        return ("C-contiguous stacks (B,M,K) @ (B,K,N) -> (B,M,N)" if batch > 1
                else "row-major A (M,K) @ row-major B (K,N) -> C (M,N)")

    def floor_calls(self) -> dict[str, FloorCall]:
        # Vectors of FLOOR_ELEMENTS: a 1-element array with a Python scalar takes numpy's scalar path (this Zen 5
        # VM: np.multiply(x, 1.0, out=x) 839 ns on 1 element, 476-494 ns on 4 .. 256; axpy 1129 vs 722-759 ns),
        # which over-predicted every small scal and axpy by half.
        x, y = np.ones(FLOOR_ELEMENTS, dtype=np.float32), np.ones(FLOOR_ELEMENTS, dtype=np.float32)
        a = np.ones((FLOOR_ELEMENTS, FLOOR_ELEMENTS), dtype=np.float32)
        t = np.empty(FLOOR_ELEMENTS, dtype=np.float32)
        # GEMM floors on 4x4 matrices: 1x1 takes a degenerate path (a (16,1,1) stack 0.8 us, (16,4,4) 1.4 us).
        sq, sq_out = np.ones((4, 4), dtype=np.float32), np.empty((4, 4), dtype=np.float32)
        stack, stack_out = np.ones((16, 4, 4), dtype=np.float32), np.empty((16, 4, 4), dtype=np.float32)

        def axpy() -> None:
            np.multiply(x, 1.0, out=t)
            np.add(y, t, out=y)

        v, m = f"{FLOOR_ELEMENTS} fp32 elements", f"{FLOOR_ELEMENTS}x{FLOOR_ELEMENTS} fp32"
        return {
            "dot": FloorCall(functools.partial(np.dot, x, y), f"np.dot on {v} (BLAS sdot)", "fp32"),
            "axpy": FloorCall(axpy, f"np.multiply + np.add on {v} (the axpy route)", "fp32"),
            "scal": FloorCall(functools.partial(np.multiply, x, 1.0, out=x), f"np.multiply(x, a, out=x), {v}", "fp32"),
            "gemv": FloorCall(functools.partial(np.dot, a, x, out=t), f"np.dot(A, x, out=y), {m} (BLAS sgemv)", "fp32"),
            "gemm": FloorCall(functools.partial(np.matmul, sq, sq, out=sq_out), "np.matmul(A, B, out=C), 4x4 fp32",
                              "fp32"),
            "batched_gemm": FloorCall(functools.partial(np.matmul, stack, stack, out=stack_out),
                                      "np.matmul on (16,4,4) fp32 stacks (one BLAS call per matrix)", "fp32"),
            "add": FloorCall(functools.partial(np.add, x, y, out=t),
                             f"np.add(x, y, out=z), {v} (an element-wise ufunc: STREAM's kernels)", "fp32"),
        }

    def nn_kernels(self) -> NnKernels:
        """None: numpy has no convolution, attention or fused-op kernels, and an imitation built from its
        matmul and ufuncs would time those, not the kernel a model runs."""
        return NnKernels("numpy", "numpy has no such kernel", {
            "conv": "numpy has no convolution (numpy.convolve is 1-D only); an im2col imitation would time numpy's "
                    "matmul and a copy, not a convolution kernel",
            "conv_bn_relu": "numpy has no convolution, so no conv+BN+ReLU either",
            "sdpa": "numpy has no attention kernel; QK^T, softmax and PV as separate numpy calls would time three "
                    "passes, not a fused attention kernel",
            "fused": "numpy has no fused norm, softmax or activation kernel; a composition of ufuncs makes several "
                     "passes over memory where a framework's kernel makes one",
        })


def _checked_b(b: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A given B must be the operand its case would have made: the same shape and type."""
    if tuple(b.shape) != shape or b.dtype != dtype:
        raise ValueError(f"a shared B of {tuple(b.shape)} {b.dtype} does not fit {shape} {np.dtype(dtype)}")
    return b
