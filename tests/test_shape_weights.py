"""The weights (B) a CPU's warm GEMM shapes share across their Ms: made once per (precision, N, K), each case's
C still checked in full against its own A, held within a limit, and let go when another family starts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from hwcal.backends import make_backend
from hwcal.measure import shape_weights
from hwcal.measure.shape_weights import SharedWeights
from hwcal.measure.shapes import verify_shape


def test_the_ms_of_one_n_x_k_share_b_and_each_c_is_still_checked() -> None:
    backend = make_backend("numpy", "cpu")
    weights = SharedWeights(backend)
    first = weights.get("fp32", 96, 64, seed=7)
    assert first is not None and weights.get("fp32", 96, 64, seed=7) is first
    assert (weights.made, weights.reused) == (1, 1)
    b, bx = first
    for m in (1, 4, 16):
        ops = backend.make_shape_operands("fp32", m, 96, 64, 1, seed=100 + m, rotate=False, b=b)
        assert ops.b is b and ops.a.shape == (m, 64)
        c = backend.gemm_shape(ops)
        assert verify_shape(backend, ops, c, seed=100 + m, bx=bx).ok
        wrong = c.copy()
        wrong[m - 1, 5] += 1.0
        assert not verify_shape(backend, ops, wrong, seed=100 + m, bx=bx).ok  # one wrong entry of C is caught
    with pytest.raises(ValueError, match="does not fit"):
        backend.make_shape_operands("fp32", 4, 64, 96, 1, seed=1, rotate=False, b=b)  # another shape's B


def test_torch_shares_b_alike() -> None:
    pytest.importorskip("torch")
    backend = make_backend("pytorch", "cpu")
    b, bx = SharedWeights(backend).get("fp32", 80, 48, seed=3) or (None, None)
    ops = backend.make_shape_operands("fp32", 8, 80, 48, 1, seed=9, rotate=False, b=b)
    assert ops.b is b
    assert verify_shape(backend, ops, backend.gemm_shape(ops), seed=9, bx=bx).ok
    with pytest.raises(ValueError, match="rotate"):
        backend.make_shape_operands("fp32", 8, 80, 48, 1, seed=9, rotate=True, b=b)


def test_what_is_held_stays_within_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    backend: Any = make_backend("numpy", "cpu")
    monkeypatch.setattr(shape_weights, "LIMIT_BYTES", 3 * 68 * 64 * 4)  # three of these Bs
    weights = SharedWeights(backend)
    for n in (64, 64 + 1, 64 + 2, 64 + 3):
        assert weights.get("fp32", n, 64, seed=n) is not None
    assert [key[1] for key in weights.held] == [65, 66, 67]  # the least recently used went first
    assert weights.get("fp32", 4096, 4096, seed=1) is None  # larger than all it may hold: the case makes its own


def test_another_familys_first_case_lets_the_weights_go() -> None:
    from hwcal.plugin.hooks import SESSION_KEY, pytest_runtest_setup

    cal = SimpleNamespace(shape_weights=object())
    config = SimpleNamespace(stash={SESSION_KEY: cal})
    pytest_runtest_setup(SimpleNamespace(config=config, fixturenames=("shape_case",)))  # type: ignore[arg-type]
    assert cal.shape_weights is not None
    pytest_runtest_setup(SimpleNamespace(config=config, fixturenames=("stream_case",)))  # type: ignore[arg-type]
    assert cal.shape_weights is None
