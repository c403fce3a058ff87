"""fp64 references for the convolution, attention and fused-op checks, computed on the host another way
than the kernels under test: a convolution as the input's strided windows stacked into columns times the
filters as a matrix (im2col written out, no conv kernel), attention as explicit QK^T, a max-subtracted
exponential and PV, the norms and activations from their formulas. Pure functions of tensors."""

from __future__ import annotations

import math
from typing import Any

import torch

from hwcal.backends.nn import Reference


def host64(x: Any) -> Any:
    return x.detach().to(device="cpu", dtype=torch.float64)


def relative_sample(got: Any, ref: Any, what: str) -> Reference:
    """A result (any device, any dtype) and its reference as host fp64 arrays of the same shape."""
    return Reference((_pair(got, ref),), what)


def _pair(got: Any, ref: Any) -> tuple[Any, Any]:
    got64 = host64(got)
    if tuple(got64.shape) != tuple(ref.shape):
        raise ValueError(f"result shape {tuple(got64.shape)} is not the reference's {tuple(ref.shape)}")
    return got64.contiguous(), ref.contiguous()


def conv_check(x: Any, w: Any, out: Any, stride: int, padding: int, groups: int, seed: int, channels: int = 4
               ) -> tuple[tuple[Any, Any], ...]:
    """Freivalds for a convolution, and exact channels. Output channels are linear in their filters, so a
    random combination v of each group's outputs must equal the conv with the filter sum(v_k w_k): one fp64
    product of 1/(K/groups) the work covers every output. Then ``channels`` output channels (first, last and
    random ones) exactly, at every position. One column matrix serves both."""
    gen = torch.Generator().manual_seed(seed)
    k, cg, r_taps, s_taps = w.shape
    kg = k // groups
    cols, p, q = columns_f64(x, r_taps, s_taps, stride, padding, groups)
    n = cols.shape[0]
    v = torch.randn(groups, kg, generator=gen, dtype=torch.float64)
    w64 = host64(w).reshape(groups, kg, cg * r_taps * s_taps)
    ref_proj = torch.matmul((v.unsqueeze(-1) * w64).sum(dim=1, keepdim=True), cols).reshape(n, groups, p, q)
    out64 = host64(out)
    got_proj = (out64.reshape(n, groups, kg, p, q) * v.view(1, groups, kg, 1, 1)).sum(dim=2)
    picks = sorted({0, k - 1, *torch.randint(0, k, (max(0, channels - 2),), generator=gen).tolist()})
    ref_exact = torch.stack([torch.matmul(w64[ch // kg, ch % kg], cols[:, ch // kg]) for ch in picks], dim=1)
    return (got_proj.contiguous(), ref_proj.contiguous()), _pair(out[:, picks], ref_exact.reshape(n, len(picks), p, q))


def columns_f64(x: Any, r_taps: int, s_taps: int, stride: int, padding: int, groups: int) -> tuple[Any, int, int]:
    """The input as a matrix per group: (N, groups, C/groups*R*S, P*Q), row c*R*S + r*S + s holding channel c's
    tap (r, s) at every output position: strided windows of the zero-padded input, stacked (no conv kernel)."""
    x64 = host64(x)
    n, c, h, wd = x64.shape
    p = (h + 2 * padding - r_taps) // stride + 1
    q = (wd + 2 * padding - s_taps) // stride + 1
    xp = torch.nn.functional.pad(x64, (padding, padding, padding, padding))
    taps = [xp[:, :, r : r + stride * (p - 1) + 1 : stride, s : s + stride * (q - 1) + 1 : stride]
            for r in range(r_taps) for s in range(s_taps)]
    cols = torch.stack(taps, dim=2)  # (N, C, R*S, P, Q)
    return cols.reshape(n, groups, (c // groups) * r_taps * s_taps, p * q), p, q


def conv_f64(x: Any, w: Any, stride: int, padding: int, groups: int) -> Any:
    """Convolution (cross-correlation, as torch defines it) of x (N,C,H,W) with w (K,C/g,R,S) in fp64: each
    group's filters as a matrix times the group's columns (``columns_f64``)."""
    k, cg, r_taps, s_taps = w.shape
    cols, p, q = columns_f64(x, r_taps, s_taps, stride, padding, groups)
    out = torch.matmul(host64(w).reshape(groups, k // groups, cg * r_taps * s_taps), cols)  # (N, g, K/g, PQ)
    return out.reshape(cols.shape[0], k, p, q)


def conv_bn_f64(x: Any, w: Any, stride: int, padding: int, groups: int, bn: dict[str, Any], eps: float,
                activation: str) -> Any:
    """conv, then batch norm on the running statistics, then ReLU or ReLU6, in fp64."""
    y = conv_f64(x, w, stride, padding, groups)
    mean, var, gamma, beta = (host64(bn[name]).view(1, -1, 1, 1) for name in ("mean", "var", "gamma", "beta"))
    y = (y - mean) / torch.sqrt(var + eps) * gamma + beta
    return y.clamp(min=0.0) if activation == "relu" else y.clamp(0.0, 6.0)


def sdpa_f64(q: Any, k: Any, v: Any, causal: bool) -> Any:
    """softmax(Q K^T / sqrt(D) + top-left causal mask) V of (..., S, D) blocks, in fp64."""
    q64, k64, v64 = host64(q), host64(k), host64(v)
    scores = q64 @ k64.transpose(-1, -2) / math.sqrt(q64.shape[-1])
    if causal:
        sq, sk = scores.shape[-2], scores.shape[-1]
        keep = torch.ones(sq, sk, dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, -math.inf)
    scores = scores - scores.amax(dim=-1, keepdim=True)
    weights = torch.exp(scores)
    return (weights / weights.sum(dim=-1, keepdim=True)) @ v64


def fused_f64(op: str, x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    """LayerNorm, RMSNorm (over the last dimension, with their affine weights), softmax, GELU (erf form) or
    SiLU, in fp64."""
    x64 = host64(x)
    if op == "layernorm":
        mean = x64.mean(dim=-1, keepdim=True)
        var = ((x64 - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x64 - mean) / torch.sqrt(var + eps) * host64(weight) + host64(bias)
    if op == "rmsnorm":
        return x64 / torch.sqrt((x64 * x64).mean(dim=-1, keepdim=True) + eps) * host64(weight)
    if op == "softmax":
        e = torch.exp(x64 - x64.amax(dim=-1, keepdim=True))
        return e / e.sum(dim=-1, keepdim=True)
    if op == "gelu":
        return 0.5 * x64 * (1.0 + torch.erf(x64 / math.sqrt(2.0)))
    if op == "silu":
        return x64 / (1.0 + torch.exp(-x64))
    raise ValueError(f"unknown fused op {op!r}")
