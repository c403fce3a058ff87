"""Checks a GEMM result against an fp64 reference in O(n^2), so verifying never dominates a run.

- Freivalds: C X against A (B X) for random X, which covers every entry of C;
- sampled blocks of C against exact fp64 inner products.
Float errors are taken relative to the RMS of the reference, not to sum_k |a_ik b_kj|: that worst-case
scale grows like n where the result grows like sqrt(n), and would let an all-zero bf16 output pass.
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


def _one_pass(backend: Backend, m: Any, x: Any) -> Any:
    """M @ X in fp64, reading M once in row blocks: one block x n fp64 slice exists at a time, and
    all vectors (the columns of X) share each conversion, so the check is three passes over memory."""
    n = m.shape[0]
    out = backend.from_host(np.zeros((n, x.shape[1])))
    for i in range(0, n, _BLOCK):
        out[i : i + _BLOCK] = backend.as_f64(m[i : i + _BLOCK]) @ x
    return out


def _relative_to_rms(diff: Any, ref: Any) -> Any:
    """Largest |diff| over the RMS of the reference (a zero reference makes any difference infinite)."""
    rms = float((ref * ref).mean()) ** 0.5
    return diff.max() / rms if rms > 0 else (float("inf") if float(diff.max()) > 0 else 0.0)


def _wrapped_distance(diff: Any, modulus: float) -> Any:
    """Distance of an exact integer difference from the nearest multiple of ``modulus``."""
    r = diff % modulus
    return abs(r - modulus * (r > modulus / 2))


def _worse(worst: float, value: Any) -> float:
    """Running maximum in which NaN or inf anywhere makes the result fail (max() would drop NaN)."""
    v = float(value)
    return float("inf") if not np.isfinite(v) else max(worst, v)


def freivalds_vectors(backend: Backend, precision: str, n: int, seed: int, vectors: int = 4) -> Any:
    """X of the Freivalds check of an n-wide C: random normals, +-1 for integers (a zero would leave its column
    of C unchecked by that vector)."""
    return _vectors(backend, np.random.default_rng(seed + 1), precision, n, vectors)


def _vectors(backend: Backend, rng: np.random.Generator, precision: str, n: int, vectors: int) -> Any:
    shape = (n, vectors)
    return backend.from_host(rng.choice(np.array([-1.0, 1.0]), size=shape) if PRECISIONS[precision].is_integer
                             else rng.standard_normal(shape))


def freivalds_pass(backend: Backend, b: Any, x: Any) -> Any:
    """B X in fp64: what a check of every C = A B with this B and X needs of B (one pass over B)."""
    return _one_pass(backend, b, x)


def verify_gemm(backend: Backend, ops: GemmOperands, c: Any, seed: int, vectors: int = 4,
                bx: tuple[Any, Any] | None = None) -> Verification:
    """``bx``: (X, B X) made once for operands sharing B (``freivalds_vectors``, ``freivalds_pass``), so a check
    reads B's fp64 pass once for all of them; else X is drawn from ``seed``."""
    prec = PRECISIONS[ops.precision]
    n, rows, inner = ops.n, ops.rows, ops.inner  # C is rows x n, the inner products inner long
    rng = np.random.default_rng(seed + 1)
    wraps = bool(ops.extra.get("accumulator_wraps"))
    modulus = float(2 ** int(ops.extra.get("accumulator_bits", prec.bits)))
    if prec.is_integer:
        r = ops.operand_range or 1.0
        # Freivalds with x in {-1,1}: |A(Bx)| <= K N R^2 must stay exact in fp64 (< 2**53).
        if inner * n * r * r >= 2.0**53:
            raise ValueError(f"integer verification not exact at {rows}x{n}x{inner}, operand range {r}")
    worst = 0.0
    # Freivalds: C X against A (B X), X holding ``vectors`` random columns.
    if bx is None:
        x = _vectors(backend, rng, ops.precision, n, vectors)
        b_x = _one_pass(backend, ops.b, x)
    else:
        x, b_x = bx
    y = _one_pass(backend, c, x)
    ref = _one_pass(backend, ops.a, b_x)
    if prec.is_integer:
        diff = _wrapped_distance(y - ref, modulus) if wraps else abs(y - ref)
        worst = _worse(worst, diff.max())
    else:
        worst = _worse(worst, _relative_to_rms(abs(y - ref), ref))
    for _ in range(2):
        i = int(rng.integers(0, max(1, rows - _SAMPLE + 1)))
        j = int(rng.integers(0, max(1, n - _SAMPLE + 1)))
        a_rows = backend.as_f64(ops.a[i : i + _SAMPLE])
        b_cols = backend.as_f64(ops.b[:, j : j + _SAMPLE])
        ref = a_rows @ b_cols
        got = backend.as_f64(c[i : i + _SAMPLE, j : j + _SAMPLE])
        if prec.is_integer:
            diff = _wrapped_distance(got - ref, modulus) if wraps else abs(got - ref)
            worst = _worse(worst, diff.max())
        else:
            worst = _worse(worst, _relative_to_rms(abs(got - ref), ref))
    tolerance = prec.tolerance(inner)
    method = f"Freivalds x{vectors} + sampled blocks vs fp64"
    if wraps:
        method += f", exact modulo 2^{int(np.log2(modulus))} (accumulator wraps)"
    ok = bool(np.isfinite(worst)) and worst <= tolerance
    return Verification(ok, worst, tolerance, method)
