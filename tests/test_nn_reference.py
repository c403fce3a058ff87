"""The fp64 references the convolution, attention and fused-op checks use agree with torch's own fp64 kernels,
and the convolution check (Freivalds' projection plus exact channels) catches one wrong output anywhere."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from hwcal.backends.torch_nn_reference import conv_bn_f64, conv_check, conv_f64, fused_f64, sdpa_f64  # noqa: E402

GEOMETRIES = [  # n, c, h, w, k, r, stride, padding, groups
    (2, 3, 20, 21, 8, 7, 2, 3, 1), (1, 16, 9, 9, 16, 3, 1, 1, 16), (2, 32, 11, 10, 32, 3, 2, 1, 8),
    (1, 6, 5, 5, 4, 1, 1, 0, 2), (1, 4, 7, 7, 12, 5, 2, 2, 4)]


@pytest.mark.parametrize("n, c, h, w, k, r, stride, padding, groups", GEOMETRIES)
def test_conv_reference_is_torch_conv2d_in_fp64(n: int, c: int, h: int, w: int, k: int, r: int, stride: int,
                                                padding: int, groups: int) -> None:
    gen = torch.Generator().manual_seed(n * c + k)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    wt = torch.randn(k, c // groups, r, r, generator=gen, dtype=torch.float64)
    want = F.conv2d(x, wt, stride=stride, padding=padding, groups=groups)
    assert torch.allclose(conv_f64(x, wt, stride, padding, groups), want, rtol=1e-12, atol=1e-12)
    for got, ref in conv_check(x, wt, want, stride, padding, groups, seed=3):
        assert float((got - ref).abs().max()) < 1e-10


@pytest.mark.parametrize("n, c, h, w, k, r, stride, padding, groups", GEOMETRIES)
def test_conv_check_catches_one_wrong_output_anywhere(n: int, c: int, h: int, w: int, k: int, r: int, stride: int,
                                                      padding: int, groups: int) -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    wt = torch.randn(k, c // groups, r, r, generator=gen, dtype=torch.float64)
    out = F.conv2d(x, wt, stride=stride, padding=padding, groups=groups)
    for where in ((0, 0, 0, 0), (n - 1, k - 1, out.shape[2] - 1, out.shape[3] - 1), (n - 1, k // 2, 0, 1)):
        bad = out.clone()
        bad[where] += 0.5
        worst = max(float((got - ref).abs().max()) for got, ref in conv_check(x, wt, bad, stride, padding, groups, 3))
        assert worst > 1e-3, where


def test_conv_bn_reference_is_the_eval_block() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 6, 6, generator=gen, dtype=torch.float64)
    wt = torch.randn(8, 8, 3, 3, generator=gen, dtype=torch.float64)
    bn = {"mean": torch.randn(8, dtype=torch.float64), "var": torch.rand(8, dtype=torch.float64) + 0.5,
          "gamma": torch.rand(8, dtype=torch.float64) + 0.5, "beta": torch.randn(8, dtype=torch.float64)}
    y = F.batch_norm(F.conv2d(x, wt, padding=1), bn["mean"], bn["var"], bn["gamma"], bn["beta"], False, 0.0, 1e-5)
    assert torch.allclose(conv_bn_f64(x, wt, 1, 1, 1, bn, 1e-5, "relu"), F.relu(y), atol=1e-12)
    assert torch.allclose(conv_bn_f64(x, wt, 1, 1, 1, bn, 1e-5, "relu6"), F.relu6(y), atol=1e-12)


@pytest.mark.parametrize("sq, sk, causal", [(5, 5, False), (5, 5, True), (3, 7, True), (7, 3, True), (1, 9, False)])
def test_sdpa_reference_is_torch_math_in_fp64(sq: int, sk: int, causal: bool) -> None:
    gen = torch.Generator().manual_seed(sq * sk)
    q = torch.randn(2, sq, 16, generator=gen, dtype=torch.float64)
    k = torch.randn(2, sk, 16, generator=gen, dtype=torch.float64)
    v = torch.randn(2, sk, 16, generator=gen, dtype=torch.float64)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):
        want = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(sdpa_f64(q, k, v, causal), want, atol=1e-12)


@pytest.mark.parametrize("op", ["layernorm", "rmsnorm", "softmax", "gelu", "silu"])
def test_fused_references_are_the_formulas(op: str) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(7, 33, generator=gen, dtype=torch.float64) * 2
    weight, bias = torch.rand(33, dtype=torch.float64) + 0.5, torch.randn(33, dtype=torch.float64)
    want = {"layernorm": lambda: F.layer_norm(x, (33,), weight, bias, 1e-5),
            "rmsnorm": lambda: F.rms_norm(x, (33,), weight, 1e-6), "softmax": lambda: torch.softmax(x, -1),
            "gelu": lambda: F.gelu(x), "silu": lambda: F.silu(x)}[op]()
    eps = {"layernorm": 1e-5, "rmsnorm": 1e-6}.get(op, 0.0)
    assert torch.allclose(fused_f64(op, x, weight, bias, eps), want, atol=1e-12)
