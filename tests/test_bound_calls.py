"""The calls the rounds time are the framework's own, bound to their operands (``stream_call``, ``blas_bound``,
``shape_call``): none of a backend's dispatch is timed with them, and they compute what the unbound methods do."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from hwcal.backends import make_backend
from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.measure.blas_verify import verify_blas
from hwcal.measure.records import after_kernel
from hwcal.measure.shapes import verify_shape
from hwcal.measure.stream import StreamState


def _torch_or_skip() -> Any:
    return pytest.importorskip("torch")


@pytest.mark.parametrize(("kernel", "func"), [("copy", np.copyto), ("scale", np.multiply), ("add", np.add)])
def test_numpy_stream_calls_are_the_ufuncs_themselves(kernel: str, func: Any) -> None:
    backend = NumpyBackend()
    call = backend.stream_call(kernel, backend.stream_arrays(64, (1.0, 2.0, 0.0)), 3.0)
    assert isinstance(call, functools.partial) and call.func is func


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_bound_stream_calls_compute_the_kernels(framework: str) -> None:
    if framework == "pytorch":
        _torch_or_skip()
    backend = make_backend(framework, "cpu")
    state = StreamState(backend)
    arrays = state.arrays_for(3000)
    for kernel in ("copy", "scale", "add", "triad"):
        call = backend.stream_call(kernel, arrays, 3.0)
        for _ in range(3):
            call()
        state.expected = after_kernel(kernel, state.expected, 3.0)
        assert state.validate() == 0.0, kernel


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
@pytest.mark.parametrize("op", ["dot", "gemv", "scal", "axpy"])
def test_bound_blas_calls_verify(framework: str, op: str) -> None:
    if framework == "pytorch":
        _torch_or_skip()
    backend = make_backend(framework, "cpu")
    ops = backend.blas_operands(op, "fp32", 4096, 64 if op == "gemv" else 1, seed=5)
    call = backend.blas_bound(ops)
    for _ in range(5):  # repeated in-place calls, as in timed rounds: the scalars cycle, values stay bounded
        call()
    backend.synchronize()
    assert verify_blas(backend, ops).ok


def test_a_wrong_bound_dot_fails_verification() -> None:
    backend = NumpyBackend()
    ops = backend.blas_operands("dot", "fp32", 4096, 1, seed=5)
    backend.blas_bound(ops)()
    ops.result = ops.result * 1.01
    assert not verify_blas(backend, ops).ok


def test_numpy_blas_bound_calls_blas_directly() -> None:
    backend = NumpyBackend()
    gemv = backend.blas_bound(backend.blas_operands("gemv", "fp64", 32, 32, seed=1))
    assert isinstance(gemv, functools.partial) and gemv.func is np.dot


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_shape_call_is_the_matmul_and_verifies(framework: str) -> None:
    if framework == "pytorch":
        torch = _torch_or_skip()
    backend = make_backend(framework, "cpu")
    ops = backend.make_shape_operands("fp32", 16, 16, 64, 12, seed=2)
    call = backend.shape_call(ops)
    assert isinstance(call, functools.partial)
    assert call.func is (np.matmul if framework == "numpy" else torch.bmm)
    call()
    assert verify_shape(backend, ops, ops.out, seed=2).ok


def test_torch_shape_call_keeps_rotating_operand_sets() -> None:
    """A GPU's operand sets rotate (L2 never holds the last launch's): the bound call must still go through
    gemm_shape, which picks each launch's set."""
    _torch_or_skip()
    backend = make_backend("pytorch", "cpu")
    ops = backend.make_shape_operands("fp32", 8, 8, 8, 1, seed=2)
    other = backend.make_shape_operands("fp32", 8, 8, 8, 1, seed=3)
    ops.extra["sets"] = [(ops.a, ops.b), (other.a, other.b)]
    call = backend.shape_call(ops)
    seen = []
    for _ in range(3):
        call()
        seen.append(ops.a is other.a)
    assert seen == [False, True, False]
