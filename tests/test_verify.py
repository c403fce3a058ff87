"""verify_gemm with the numpy backend: right results pass, a wrong entry, NaN or a wrap fail."""

from __future__ import annotations

import numpy as np
import pytest

from hwcal.backends.base import GemmOperands, integer_operand_range
from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.measure.verify import verify_gemm
from hwcal.precisions import PRECISIONS

BACKEND = NumpyBackend()
NUMPY_PRECISIONS = BACKEND.precisions()
FLOATS = [p for p in NUMPY_PRECISIONS if not PRECISIONS[p].is_integer]
SEED = 7


def _case(precision: str, n: int, seed: int = SEED) -> tuple[GemmOperands, np.ndarray]:
    ops = BACKEND.make_operands(precision, n, seed)
    return ops, BACKEND.gemm(ops).copy()


def _bump(precision: str, value: object) -> object:
    """A wrong value well outside the precision's tolerance (integers: off by one)."""
    if PRECISIONS[precision].is_integer:
        return value + 1  # type: ignore[operator]
    return value + 1e4  # type: ignore[operator]


def test_numpy_backend_has_the_issue_precisions() -> None:
    assert NUMPY_PRECISIONS == ["fp64", "fp32", "fp16", "int64", "int32", "int16", "int8"]


@pytest.mark.parametrize("n", [32, 64, 65])
@pytest.mark.parametrize("precision", NUMPY_PRECISIONS)
def test_correct_result_passes(precision: str, n: int) -> None:
    ops, c = _case(precision, n)
    check = verify_gemm(BACKEND, ops, c, SEED)
    assert check.ok, check.describe()
    assert check.max_error <= check.tolerance
    assert check.tolerance == PRECISIONS[precision].tolerance(n)
    if PRECISIONS[precision].is_integer:
        assert check.max_error == 0.0  # integers are exact


@pytest.mark.parametrize("precision", NUMPY_PRECISIONS)
def test_operands_are_random_not_zeros(precision: str) -> None:
    ops, _ = _case(precision, 64)
    assert np.count_nonzero(ops.a) > 0.5 * ops.a.size
    assert not np.array_equal(ops.a, ops.b)


@pytest.mark.parametrize("precision", NUMPY_PRECISIONS)
def test_one_corrupted_entry_fails(precision: str) -> None:
    ops, c = _case(precision, 64)
    c[37, 11] = _bump(precision, c[37, 11])
    check = verify_gemm(BACKEND, ops, c, SEED)
    assert not check.ok
    assert check.max_error > check.tolerance


@pytest.mark.parametrize("precision", NUMPY_PRECISIONS)
def test_every_single_entry_corruption_is_caught(precision: str) -> None:
    """Freivalds covers every entry of C only if no entry of x is 0: x in {-1, 0, 1} leaves a column
    unchecked by both vectors with probability 1/9, so integer results miss single wrong entries."""
    n = 32
    ops, c = _case(precision, n)
    missed = []
    for j in range(n):
        bad = c.copy()
        bad[20, j] = _bump(precision, bad[20, j])
        if verify_gemm(BACKEND, ops, bad, SEED).ok:
            missed.append(j)
    assert missed == [], f"single wrong entries C[20, j] not caught for columns {missed}"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("precision", FLOATS)
def test_nan_or_inf_fails(precision: str, bad: float) -> None:
    ops, c = _case(precision, 64)
    c[5, 60] = bad
    check = verify_gemm(BACKEND, ops, c, SEED)
    assert not check.ok
    assert check.max_error == float("inf")


@pytest.mark.parametrize("precision", FLOATS)
def test_all_nan_fails(precision: str) -> None:
    ops, c = _case(precision, 32)
    c[:] = np.nan
    assert not verify_gemm(BACKEND, ops, c, SEED).ok


@pytest.mark.parametrize("precision", ["fp64", "fp32"])
def test_result_of_lower_precision_fails(precision: str) -> None:
    """A result computed in fp16 must not pass as fp64 or fp32 (the tolerance is per precision)."""
    ops, _ = _case(precision, 64)
    coarse = (ops.a.astype(np.float16) @ ops.b.astype(np.float16)).astype(ops.a.dtype)
    assert not verify_gemm(BACKEND, ops, coarse, SEED).ok


def test_int8_operands_at_256_declare_the_wrapping_accumulator() -> None:
    assert integer_operand_range(256, 8) == (1, True)
    assert integer_operand_range(64, 8) == (1, False)
    ops = BACKEND.make_operands("int8", 256, SEED)
    assert ops.extra["accumulator_wraps"] is True
    assert ops.operand_range == 1.0
    assert not BACKEND.make_operands("int8", 64, SEED).extra["accumulator_wraps"]


def _int8_wrapping_case(wraps: bool) -> tuple[GemmOperands, np.ndarray]:
    """All-ones int8 operands at n=256: every true sum is 256, which numpy's int8 accumulator wraps to 0."""
    n = 256
    ones = np.ones((n, n), dtype=np.int8)
    ops = GemmOperands("int8", n, ones, ones.copy(), out=np.empty((n, n), dtype=np.int8), operand_range=1.0)
    ops.extra["accumulator_wraps"] = wraps
    return ops, BACKEND.gemm(ops).copy()


def test_int8_wraparound_verified_exactly() -> None:
    ops, c = _int8_wrapping_case(wraps=True)
    assert (c == 0).all()  # the accumulator really wrapped: 256 mod 2^8
    check = verify_gemm(BACKEND, ops, c, SEED)
    assert check.ok, check.describe()
    assert check.max_error == 0.0
    assert "modulo 2^8" in check.method


def test_int8_wraparound_off_by_one_fails() -> None:
    ops, c = _int8_wrapping_case(wraps=True)
    assert not verify_gemm(BACKEND, ops, c + np.int8(1), SEED).ok


def test_int8_wraparound_not_declared_fails() -> None:
    ops, c = _int8_wrapping_case(wraps=False)
    assert not verify_gemm(BACKEND, ops, c, SEED).ok


def test_int8_random_operands_at_256_verified() -> None:
    ops, c = _case("int8", 256)
    check = verify_gemm(BACKEND, ops, c, SEED)
    assert check.ok, check.describe()
    assert "accumulator wraps" in check.method


def test_integer_verification_refuses_when_fp64_is_not_exact() -> None:
    big = np.full((4, 4), 2**26, dtype=np.int64)
    ops = GemmOperands("int64", 4, big, big.copy(), operand_range=float(2**26))
    with pytest.raises(ValueError, match="not exact"):
        verify_gemm(BACKEND, ops, big @ big, SEED)


def test_describe_names_error_tolerance_and_method() -> None:
    ops, c = _case("fp32", 32)
    text = verify_gemm(BACKEND, ops, c, SEED).describe()
    assert "max error" in text and "tolerance" in text and "Freivalds" in text


@pytest.mark.parametrize("precision", FLOATS)
def test_unwritten_output_fails_at_large_n(precision: str) -> None:
    """An all-zero C must fail for every float precision, however large n: the error is taken
    relative to the result's RMS, not to sum |a||b|, which grows like n and would hide it."""
    n = 512 if precision == "fp16" else 2048
    ops, c = _case(precision, n)
    check = verify_gemm(BACKEND, ops, np.zeros_like(c), SEED)
    assert not check.ok and check.max_error > 1.0, check.describe()


def test_fp32_computed_at_lower_precision_fails() -> None:
    """What TF32 left on would do to an fp32 result: operands rounded to a 10-bit mantissa."""
    ops, _ = _case("fp32", 1024)
    low = (ops.a.astype(np.float16).astype(np.float32) @ ops.b.astype(np.float16).astype(np.float32))
    check = verify_gemm(BACKEND, ops, low, SEED)
    assert not check.ok, check.describe()
    assert verify_gemm(BACKEND, ops, ops.a @ ops.b, SEED).ok


def test_one_garbage_tile_fails() -> None:
    ops, c = _case("fp32", 1024)
    c[128:192, 256:320] = np.random.default_rng(1).standard_normal((64, 64)) * float(c.std())
    assert not verify_gemm(BACKEND, ops, c, SEED).ok
