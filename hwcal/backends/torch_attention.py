"""PyTorch attention and the bandwidth-bound ops around it, as a transformer block calls them:
``scaled_dot_product_attention`` with one backend forced at a time (flash, memory-efficient, cuDNN, math;
on a CPU flash is ATen's own flash kernel), LayerNorm, RMSNorm, softmax over the last dimension, GELU (erf
form, ViT's) and SiLU (Llama's MLP gate).

Q, K and V are (B, H, S, D) contiguous, as a model's reshaped projections are; the mask is the
``is_causal`` flag (torch's top-left mask), never a tensor. Each call allocates its output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from hwcal.backends.nn import SDPA_BACKENDS, AttentionSpec, FusedSpec, NnOperands, Reference
from hwcal.backends.torch_conv import dtype_of
from hwcal.backends.torch_nn_reference import fused_f64, relative_sample, sdpa_f64

NORM_EPS = {"layernorm": 1e-5, "rmsnorm": 1e-6}  # torch.nn.LayerNorm's default; Llama's RMSNorm epsilon
_TORCH_BACKEND = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION",
                  "math": "MATH"}


def _sdp_backend(name: str) -> Any:
    from torch.nn.attention import SDPBackend

    if name not in _TORCH_BACKEND:
        raise ValueError(f"sdpa backend {name!r} is not one of {', '.join(SDPA_BACKENDS)}")
    return getattr(SDPBackend, _TORCH_BACKEND[name])


@contextlib.contextmanager
def forced_backend(name: str | None) -> Iterator[None]:
    """Only ``name`` may run (torch raises where it cannot); None leaves torch's own choice."""
    if name is None:
        yield
        return
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel([_sdp_backend(name)]):
        yield


def _rotating(ops: NnOperands) -> tuple[Any, ...]:
    sets = ops.extra["sets"]
    i = ops.extra["next"]
    ops.extra["next"] = (i + 1) % len(sets)
    ops.extra["last"] = sets[i]  # verification checks the operands of the last call
    return sets[i]


def sdpa_operands(spec: AttentionSpec, precision: str, variant: str, device: Any, seed: int,
                  sets_needed: Callable[[int], int]) -> NnOperands:
    dtype = dtype_of(precision)
    gen = torch.Generator(device=device).manual_seed(seed)
    item = torch.empty((), dtype=dtype).element_size()
    one_set = spec.bytes(item)
    sets = []
    for _ in range(sets_needed(one_set)):
        q = torch.randn(spec.batch, spec.heads, spec.seq_q, spec.head_dim, generator=gen, device=device).to(dtype)
        k = torch.randn(spec.batch, spec.heads, spec.seq_k, spec.head_dim, generator=gen, device=device).to(dtype)
        v = torch.randn(spec.batch, spec.heads, spec.seq_k, spec.head_dim, generator=gen, device=device).to(dtype)
        sets.append((q, k, v))
    ops = NnOperands("sdpa", precision, spec, "bhsd", variant, extra={"sets": sets, "next": 0})
    ops.extra["last"] = sets[-1]
    return ops


def sdpa_launch(ops: NnOperands) -> Any:
    q, k, v = _rotating(ops)
    ops.out = F.scaled_dot_product_attention(q, k, v, is_causal=ops.spec.causal)
    return ops.out


def sdpa_reference(ops: NnOperands) -> Reference:
    """The first and last (batch, head) pair of the last call against fp64 softmax(QK^T/sqrt(D))V."""
    spec: AttentionSpec = ops.spec
    q, k, v = ops.extra["last"]
    pairs = sorted({(0, 0), (spec.batch - 1, spec.heads - 1)})
    got = torch.stack([ops.out[b, h] for b, h in pairs])
    ref = torch.stack([sdpa_f64(q[b, h], k[b, h], v[b, h], spec.causal) for b, h in pairs])
    return relative_sample(got, ref, f"(batch, head) {pairs}, every query, vs fp64 explicit QK^T, softmax, PV")


def sdpa_default(ops: NnOperands) -> str | None:
    """The backend torch's dispatcher picks for these operands with none forced (its own selection function)."""
    q, k, v = ops.extra["last"]
    try:
        choice = torch._fused_sdp_choice(q, k, v, None, 0.0, ops.spec.causal)
        from torch.nn.attention import SDPBackend

        name = SDPBackend(choice).name
    except Exception:  # a private function: absent or changed in this torch
        return None
    return next((ours for ours, theirs in _TORCH_BACKEND.items() if theirs == name), name.lower())


def sdpa_probe(precision: str, variant: str, device: Any) -> None:
    """A tiny call with only ``variant`` allowed: raises with torch's words where it cannot run."""
    dtype = dtype_of(precision)
    q = torch.randn(1, 2, 16, 64, device=device).to(dtype)
    with forced_backend(variant):
        F.scaled_dot_product_attention(q, q, q, is_causal=True)


# ---- norms, softmax, activations ----------------------------------------------------------------------------
def fused_operands(spec: FusedSpec, precision: str, device: Any, seed: int, sets_needed: Callable[[int], int]
                   ) -> NnOperands:
    """Activations N(0, 1) (softmax: N(0, 2), attention scores' spread), affine weights near 1, bias near 0."""
    dtype = dtype_of(precision)
    gen = torch.Generator(device=device).manual_seed(seed)
    item = torch.empty((), dtype=dtype).element_size()
    scale = 2.0 if spec.op == "softmax" else 1.0
    sets = [((torch.randn(spec.rows, spec.cols, generator=gen, device=device) * scale).to(dtype),)
            for _ in range(sets_needed(spec.rows * spec.cols * item))]
    params = {}
    if spec.params_per_col:
        params["weight"] = (1.0 + 0.1 * torch.randn(spec.cols, generator=gen, device=device)).to(dtype)
        if spec.op == "layernorm":
            params["bias"] = (0.1 * torch.randn(spec.cols, generator=gen, device=device)).to(dtype)
    ops = NnOperands("fused", precision, spec, "row-major", spec.op, tensors=params, extra={"sets": sets, "next": 0})
    ops.extra["last"] = sets[-1]
    return ops


def fused_launch(ops: NnOperands) -> Any:
    (x,) = _rotating(ops)
    op, p = ops.spec.op, ops.tensors
    if op == "layernorm":
        ops.out = F.layer_norm(x, (x.shape[-1],), p["weight"], p["bias"], NORM_EPS["layernorm"])
    elif op == "rmsnorm":
        ops.out = F.rms_norm(x, (x.shape[-1],), p["weight"], NORM_EPS["rmsnorm"])
    elif op == "softmax":
        ops.out = torch.softmax(x, dim=-1)
    elif op == "gelu":
        ops.out = F.gelu(x)
    else:
        ops.out = F.silu(x)
    return ops.out


def fused_reference(ops: NnOperands) -> Reference:
    """Every row of the last call (up to 4096 rows, evenly spread) against the op's formula in fp64."""
    (x,) = ops.extra["last"]
    rows = x.shape[0]
    take = torch.linspace(0, rows - 1, steps=min(rows, 4096)).round().long().unique()
    op = ops.spec.op
    ref = fused_f64(op, x[take.to(x.device)], ops.tensors.get("weight"), ops.tensors.get("bias"), NORM_EPS.get(op, 0.0))
    return relative_sample(ops.out[take.to(x.device)], ref,
                           f"{len(take)} of {rows} rows, every element, vs fp64 from the formula")


def fused_probe(op: str, precision: str, device: Any) -> None:
    spec = FusedSpec(op, 4, 64)
    ops = fused_operands(spec, precision, device, 0, lambda _: 1)
    fused_launch(ops)
