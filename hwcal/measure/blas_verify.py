"""Verification of the BLAS1/BLAS2 calls (``hwcal.measure.blas``): dot against an fp64 sum of the stored
operands (relative to the result, tolerance from the precision's unit roundoff and sqrt(n)); gemv against fp64
A @ x row block by row block (relative to the result's RMS); axpy and scal run in place, so after the timed
rounds one more call is checked element by element against fp64 arithmetic on a copy of its inputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwcal.backends import Backend
from hwcal.backends.base import AXPY_ALPHAS, SCAL_ALPHAS, BlasOperands
from hwcal.measure.verify import Verification
from hwcal.precisions import PRECISIONS

# Elements per fp64 block when verifying: 512 KiB temporaries stay in L2 and are recycled by the allocator
# (2 MiB ones were mapped and page-faulted afresh each time: 4x slower on a 100 MiB vector).
_CHUNK = 1 << 16

__all__ = ["verify_blas", "verify_dot", "verify_gemv", "verify_in_place"]


def _worse(worst: float, value: Any) -> float:
    """Running maximum in which NaN or inf anywhere makes the result fail (max() would drop NaN)."""
    v = float(value)
    return float("inf") if not math.isfinite(v) else max(worst, v)


def _copy(x: Any) -> Any:
    """A copy in the array's own precision (numpy and torch keep the dtype for ``* 1``), which the in-place
    call cannot change; converted to fp64 a chunk at a time when checked, so the check stays cache-sized."""
    return x * 1


def verify_dot(backend: Backend, ops: BlasOperands) -> Verification:
    """The result against an fp64 sum of the operands as stored, relative to the result."""
    ref = 0.0
    for i in range(0, ops.n, _CHUNK):
        ref += float(backend.as_f64(ops.x[i : i + _CHUNK]) @ backend.as_f64(ops.y[i : i + _CHUNK]))
    got = float(backend.as_f64(ops.result))
    error = _worse(0.0, abs(got - ref) / abs(ref)) if ref else (0.0 if got == 0 else float("inf"))
    tolerance = PRECISIONS[ops.precision].tolerance(ops.n)
    return Verification(error <= tolerance, error, tolerance, "vs fp64 sum of the operands, relative to the result")


def verify_gemv(backend: Backend, ops: BlasOperands) -> Verification:
    """y against fp64 A @ x, row block by row block, relative to the RMS of the reference."""
    x64 = backend.as_f64(ops.x)
    rows = max(1, _CHUNK // max(1, ops.n))
    worst, squares = 0.0, 0.0
    for i in range(0, ops.m, rows):
        ref = backend.as_f64(ops.a[i : i + rows]) @ x64
        worst = _worse(worst, abs(backend.as_f64(ops.y[i : i + rows]) - ref).max())
        squares += float((ref * ref).sum())
    rms = (squares / ops.m) ** 0.5
    error = worst / rms if rms > 0 else (0.0 if worst == 0 else float("inf"))
    tolerance = PRECISIONS[ops.precision].tolerance(ops.n)
    return Verification(error <= tolerance, error, tolerance, "vs fp64 A @ x (all rows), relative to its RMS")


def verify_in_place(backend: Backend, ops: BlasOperands) -> Verification:
    """One more axpy/scal call, element by element against fp64 arithmetic on a copy of its inputs.

    Each element is rounded once (scal) or twice (axpy: product, sum), so the error of every element
    is within 2 (scal: 1) unit roundoffs of its own scale; a missed or wrong element fails by far more.
    """
    u = PRECISIONS[ops.precision].unit_roundoff
    tiny = float(np.finfo(np.float64).tiny)
    error = 0.0
    if ops.operation == "scal":
        alpha = SCAL_ALPHAS[0]
        x0 = _copy(ops.x)
        backend.blas_call(ops, alpha)
        backend.synchronize()
        for i in range(0, ops.n, _CHUNK):
            ref = backend.as_f64(x0[i : i + _CHUNK]) * alpha
            got = backend.as_f64(ops.x[i : i + _CHUNK])
            error = _worse(error, (abs(got - ref) / (abs(ref) + tiny)).max())
        tolerance = 2 * u
    else:
        alpha = AXPY_ALPHAS[0]
        y0 = _copy(ops.y)
        backend.blas_call(ops, alpha)
        backend.synchronize()
        for i in range(0, ops.n, _CHUNK):
            ax = backend.as_f64(ops.x[i : i + _CHUNK]) * alpha
            y_i = backend.as_f64(y0[i : i + _CHUNK])
            got = backend.as_f64(ops.y[i : i + _CHUNK])
            error = _worse(error, (abs(got - (y_i + ax)) / (abs(y_i) + abs(ax) + tiny)).max())
        tolerance = 4 * u
    return Verification(error <= tolerance, error, tolerance,
                        "one more call after the timed rounds, every element vs fp64 on a copy of its inputs")


def verify_blas(backend: Backend, ops: BlasOperands) -> Verification:
    if ops.operation == "dot":
        return verify_dot(backend, ops)
    if ops.operation == "gemv":
        return verify_gemv(backend, ops)
    return verify_in_place(backend, ops)
