"""Convolution, attention and fused-op kernels: the problems (their geometry and the one counting
convention of each), and the interface a framework implements for them, or declines with its reason.

Counting, stated once for the whole project (the benchmarks, the document and the predictions use these):

- conv2d: ``2*N*K*(C/groups)*R*S*P*Q`` FLOPs (one multiply and one add per tap of every output element,
  padding taps included, as the kernel computes them). Bytes: input ``N*C*H*W``, weights
  ``K*(C/groups)*R*S`` and output ``N*K*P*Q`` elements once each (the least traffic a call can make; a bias
  or folded batch-norm adds ``K``).
- scaled-dot-product attention: ``4*B*H*D*pairs`` FLOPs (``QK^T`` and ``PV``), ``pairs = Sq*Sk``, causal
  counting only the unmasked (query, key) pairs of torch's top-left mask: ``sum_i min(i + 1, Sk)``. The
  softmax (exp, max, sum) is not counted. Bytes: Q and O (``B*H*Sq*D``), K and V (``B*H*Sk*D``) once each.
- fused ops (LayerNorm, RMSNorm, softmax, GELU, SiLU): bandwidth-bound, so no FLOPs are filed; bytes are the
  input read and the output written once (``rows*cols`` each), plus the norms' weight (and LayerNorm's bias).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hwcal.backends.support import Support

FAMILIES = ("conv", "conv_bn_relu", "sdpa", "fused")
FUSED_OPS = ("layernorm", "rmsnorm", "softmax", "gelu", "silu")
LAYOUTS = ("nchw", "channels_last")
SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math")


@dataclass(frozen=True)
class ConvSpec:
    """One 2-D convolution: input N x C x H x W, K filters of (C/groups) x R x S, stride, zero padding."""

    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: int = 1
    padding: int = 0
    groups: int = 1

    def __post_init__(self) -> None:
        values = (self.n, self.c, self.h, self.w, self.k, self.r, self.s, self.stride, self.groups)
        if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values) or self.padding < 0:
            raise ValueError(f"conv2d {self.label}: n, c, h, w, k, r, s, stride, groups must be positive whole "
                             "numbers and padding >= 0")
        if self.c % self.groups or self.k % self.groups:
            raise ValueError(f"conv2d {self.label}: groups={self.groups} must divide c={self.c} and k={self.k}")
        if self.p <= 0 or self.q <= 0:
            raise ValueError(f"conv2d {self.label}: the {self.r}x{self.s} filter does not fit the padded "
                             f"{self.h}x{self.w} input")

    @property
    def p(self) -> int:
        return (self.h + 2 * self.padding - self.r) // self.stride + 1

    @property
    def q(self) -> int:
        return (self.w + 2 * self.padding - self.s) // self.stride + 1

    @property
    def kind(self) -> str:
        """depthwise (one input channel per group), grouped, or dense (groups = 1)."""
        if self.groups > 1 and self.groups == self.c:
            return "depthwise"
        return "grouped" if self.groups > 1 else "dense"

    @property
    def label(self) -> str:
        g = f"g{self.groups}" if self.groups > 1 else ""
        return (f"n{self.n}c{self.c}h{self.h}w{self.w}k{self.k}r{self.r}s{self.s}"
                f"u{self.stride}p{self.padding}{g}")

    @property
    def flops(self) -> int:
        return 2 * self.n * self.k * (self.c // self.groups) * self.r * self.s * self.p * self.q

    @property
    def elements(self) -> dict[str, int]:
        return {"input": self.n * self.c * self.h * self.w,
                "weight": self.k * (self.c // self.groups) * self.r * self.s,
                "output": self.n * self.k * self.p * self.q}

    def bytes(self, element_bytes: int, extra_per_filter: int = 0) -> int:
        """Least traffic of one call; ``extra_per_filter`` elements per filter for a bias or folded BN."""
        return (sum(self.elements.values()) + extra_per_filter * self.k) * element_bytes

    @property
    def inner(self) -> int:
        """Terms of each output's inner product: (C/groups)*R*S (what the rounding error grows with)."""
        return (self.c // self.groups) * self.r * self.s


@dataclass(frozen=True)
class AttentionSpec:
    """One scaled_dot_product_attention call: B x H heads, Sq queries, Sk keys of dimension D."""

    batch: int
    heads: int
    seq_q: int
    seq_k: int
    head_dim: int
    causal: bool = False

    def __post_init__(self) -> None:
        values = (self.batch, self.heads, self.seq_q, self.seq_k, self.head_dim)
        if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
            raise ValueError(f"sdpa {self.label}: batch, heads, seq_q, seq_k, head_dim must be positive whole numbers")
        if not isinstance(self.causal, bool):
            raise ValueError(f"sdpa {self.label}: causal must be True or False")

    @property
    def label(self) -> str:
        return (f"b{self.batch}h{self.heads}q{self.seq_q}k{self.seq_k}d{self.head_dim}"
                f"{'-causal' if self.causal else ''}")

    @property
    def pairs(self) -> int:
        """(query, key) pairs computed: all of them, or torch's top-left causal mask (query i sees keys <= i)."""
        if not self.causal:
            return self.seq_q * self.seq_k
        full_rows = max(0, self.seq_q - self.seq_k)  # rows that already see every key
        ramp = min(self.seq_q, self.seq_k)
        return ramp * (ramp + 1) // 2 + full_rows * self.seq_k

    @property
    def flops(self) -> int:
        return 4 * self.batch * self.heads * self.head_dim * self.pairs

    def bytes(self, element_bytes: int) -> int:
        bh = self.batch * self.heads * self.head_dim
        return (2 * bh * self.seq_q + 2 * bh * self.seq_k) * element_bytes


@dataclass(frozen=True)
class FusedSpec:
    """One bandwidth-bound op over a rows x cols activation (norms and softmax reduce along cols)."""

    op: str
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if self.op not in FUSED_OPS:
            raise ValueError(f"unknown fused op {self.op!r}; one of {', '.join(FUSED_OPS)}")
        if self.rows <= 0 or self.cols <= 0:
            raise ValueError(f"{self.op}: rows and cols must be positive")

    @property
    def label(self) -> str:
        return f"{self.rows}x{self.cols}"

    @property
    def params_per_col(self) -> int:
        return {"layernorm": 2, "rmsnorm": 1}.get(self.op, 0)

    def bytes(self, element_bytes: int) -> int:
        return (2 * self.rows * self.cols + self.params_per_col * self.cols) * element_bytes


@dataclass
class NnOperands:
    """Operands of one call of a family on the backend's device; ``variant`` is the SDPA backend, or
    ``folded`` / ``unfolded`` for conv+BN+ReLU."""

    family: str
    precision: str
    spec: Any
    layout: str = ""
    variant: str = ""
    tensors: dict[str, Any] = field(default_factory=dict)
    out: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reference:
    """Results and their fp64 references computed another way, as (got, ref) pairs of host fp64 arrays (each
    pair judged on its own scale); ``what`` says which parts of the output were checked and how."""

    parts: tuple[tuple[Any, Any], ...]
    what: str


class NnKernels:
    """A framework's convolution, attention and fused-op kernels. This base has none: every family is
    unsupported with ``reason`` (numpy); ``hwcal.backends.torch_nn`` implements them for torch."""

    def __init__(self, framework: str, reason: str, reasons: dict[str, str] | None = None) -> None:
        self.framework = framework
        self.reason = reason
        self.reasons = dict(reasons or {})  # per family, where it says more than ``reason``

    def unsupported_reason(self, family: str) -> str:
        return self.reasons.get(family, self.reason)

    @property
    def available(self) -> bool:
        return not self.reason

    def precisions(self, family: str) -> list[str]:
        """Precisions worth trying for a family (those that cannot run are filed as unsupported, with why)."""
        return []

    def layouts(self, family: str) -> tuple[str, ...]:
        return ()

    def sdpa_backends(self) -> tuple[str, ...]:
        return ()

    def support(self, family: str, precision: str, variant: str = "") -> Support:
        """Whether a family runs in a precision (and variant) here: a tiny call, the framework's words if not."""
        return Support(False, self.unsupported_reason(family))

    def operands(self, family: str, spec: Any, precision: str, layout: str, seed: int, variant: str = "") -> NnOperands:
        raise NotImplementedError(self.reason)

    def launch(self, ops: NnOperands) -> Any:
        """One call into ``ops.out`` where the framework allows; does not wait for the device."""
        raise NotImplementedError(self.reason)

    def describe(self, ops: NnOperands, kernel_names: bool = False) -> dict[str, Any]:
        """What ran: the kernel text, the library path and algorithm chosen (where the framework tells);
        ``kernel_names``: also the device kernels one call launched, where naming them costs a profiler."""
        return {}

    def reference(self, ops: NnOperands) -> Reference:
        """The last call's result (or a sample of it) against fp64 computed without the kernel under test."""
        raise NotImplementedError(self.reason)

    def default_sdpa_backend(self, ops: NnOperands) -> str | None:
        """The backend the framework's dispatcher picks for these operands with none forced."""
        return None

    @contextlib.contextmanager
    def modes(self, precision: str, cudnn_benchmark: bool | None = None, sdpa_backend: str | None = None
              ) -> Iterator[dict[str, object]]:
        """Framework modes a case needs (TF32 on only for tf32; cuDNN benchmark mode; the one SDPA backend
        allowed), restored after."""
        yield {}

    def threads(self) -> int | None:
        """Host threads the kernels use (None on a GPU)."""
        return None
