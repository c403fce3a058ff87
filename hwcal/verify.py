"""Checks a GEMM result against an fp64 reference in O(n^2), so verifying never dominates a run.

Two checks, both normalised by sum_k |a_ik * b_kj| (the scale rounding errors are bounded by):
- Freivalds: C x against A (B x) for random x, which covers every entry of C;
- sampled blocks of C against exact fp64 inner products, which measure the error level itself.
Integer results are exact in fp64 (bounds checked below) and must match exactly, modulo 2**bits
where the framework's accumulator wraps (numpy's int8 matmul accumulates in int8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hwcal.backends.base import Backend, GemmOperands
from hwcal.precisions import PRECISIONS

_BLOCK = 512
_SAMPLE = 8


@dataclass(frozen=True)
class Verification:
    ok: bool
    max_error: float
    tolerance: float
    method: str

    def describe(self) -> str:
        return f"max error {self.max_error:.3g} (tolerance {self.tolerance:.3g}, {self.method})"


def _matvec(backend: Backend, m: Any, v: Any, n: int, absolute: bool = False) -> Any:
    """fp64 (|M|) @ v by column blocks, so only one n x block fp64 slice exists at a time."""
    acc = None
    for j in range(0, n, _BLOCK):
        blk = backend.as_f64(m[:, j : j + _BLOCK])
        part = (abs(blk) if absolute else blk) @ v[j : j + _BLOCK]
        acc = part if acc is None else acc + part
    return acc


def _wrapped_distance(diff: Any, modulus: float) -> Any:
    """Distance of an exact integer difference from the nearest multiple of ``modulus``."""
    r = diff % modulus
    return abs(r - modulus * (r > modulus / 2))


def _worse(worst: float, value: Any) -> float:
    """Running maximum in which NaN or inf anywhere makes the result fail (max() would drop NaN)."""
    v = float(value)
    return float("inf") if not np.isfinite(v) else max(worst, v)


def verify_gemm(backend: Backend, ops: GemmOperands, c: Any, seed: int, vectors: int = 2) -> Verification:
    prec = PRECISIONS[ops.precision]
    n = ops.n
    rng = np.random.default_rng(seed + 1)
    wraps = bool(ops.extra.get("accumulator_wraps"))
    modulus = float(2 ** int(ops.extra.get("accumulator_bits", prec.bits)))
    if prec.is_integer:
        r = ops.operand_range or 1.0
        # Freivalds with x in {-1,1}: |A(Bx)| <= n^2 R^2 must stay exact in fp64 (< 2**53).
        if n * n * r * r >= 2.0**53:
            raise ValueError(f"integer verification not exact at n={n}, operand range {r}")
    worst = 0.0
    for _ in range(vectors):
        # +-1 entries: a zero would leave its column of C unchecked by that vector.
        x_host = rng.choice(np.array([-1.0, 1.0]), size=n) if prec.is_integer else rng.standard_normal(n)
        x = backend.from_host(x_host)
        y = _matvec(backend, c, x, n)
        ref = _matvec(backend, ops.a, _matvec(backend, ops.b, x, n), n)
        if prec.is_integer:
            diff = _wrapped_distance(y - ref, modulus) if wraps else abs(y - ref)
            worst = _worse(worst, diff.max())
        else:
            scale = _matvec(backend, ops.a, _matvec(backend, ops.b, abs(x), n, absolute=True), n, absolute=True)
            worst = _worse(worst, (abs(y - ref) / (scale + 1e-300)).max())
    for _ in range(2):
        i, j = (int(v) for v in rng.integers(0, max(1, n - _SAMPLE + 1), size=2))
        a_rows = backend.as_f64(ops.a[i : i + _SAMPLE])
        b_cols = backend.as_f64(ops.b[:, j : j + _SAMPLE])
        ref = a_rows @ b_cols
        got = backend.as_f64(c[i : i + _SAMPLE, j : j + _SAMPLE])
        if prec.is_integer:
            diff = _wrapped_distance(got - ref, modulus) if wraps else abs(got - ref)
            worst = _worse(worst, diff.max())
        else:
            scale = abs(a_rows) @ abs(b_cols)
            worst = _worse(worst, (abs(got - ref) / (scale + 1e-300)).max())
    tolerance = prec.tolerance
    method = "Freivalds x2 + sampled blocks vs fp64"
    if wraps:
        method += f", exact modulo 2^{int(np.log2(modulus))} (accumulator wraps)"
    ok = bool(np.isfinite(worst)) and worst <= tolerance
    return Verification(ok, worst, tolerance, method)
