"""numpy on the host CPU: BLAS for fp32/fp64, numpy's own loops for everything else."""

from __future__ import annotations

from typing import Any

import numpy as np

from hwcal.backends.base import Backend, GemmOperands, StreamArrays, StreamMethod, Support, integer_operand_range
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

    def make_operands(self, precision: str, n: int, seed: int) -> GemmOperands:
        rng = np.random.default_rng(seed)
        dtype = _DTYPES[precision]
        if np.issubdtype(dtype, np.integer):
            bits = np.dtype(dtype).itemsize * 8
            bound, wraps = integer_operand_range(n, bits)
            a = rng.integers(-bound, bound + 1, size=(n, n), dtype=dtype)
            b = rng.integers(-bound, bound + 1, size=(n, n), dtype=dtype)
            ops = GemmOperands(precision, n, a, b, operand_range=float(bound))
            ops.extra["accumulator_wraps"] = wraps
        else:
            a = rng.standard_normal((n, n), dtype=np.float32 if dtype != np.float64 else np.float64).astype(dtype)
            b = rng.standard_normal((n, n), dtype=np.float32 if dtype != np.float64 else np.float64).astype(dtype)
            ops = GemmOperands(precision, n, a, b)
        ops.out = np.empty((n, n), dtype=dtype)
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
        a, b, c = arrays.a, arrays.b, arrays.c
        if kernel == "copy":
            np.copyto(c, a)
        elif kernel == "scale":
            np.multiply(c, scalar, out=b)
        elif kernel == "add":
            np.add(a, b, out=c)
        elif kernel == "triad":
            step = self.TRIAD_CHUNK
            for i in range(0, arrays.n, step):
                a_i = a[i : i + step]
                np.multiply(c[i : i + step], scalar, out=a_i)
                np.add(a_i, b[i : i + step], out=a_i)
        else:
            raise ValueError(f"unknown STREAM kernel {kernel!r}")

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
