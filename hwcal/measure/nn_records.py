"""What the convolution, attention and fused-op families record: one typed record per timed case, and the
status of each (family, precision, variant) a run did not time (unsupported with the framework's reason, or
outside the grid this run chose)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwcal.measure.records import CaseRecord


@dataclass(kw_only=True)
class NnRecord(CaseRecord):
    """One measured and verified call of a layer: times per call. ``flops`` is 0 for the bandwidth-bound fused
    ops (no GFLOPS filed for them); ``bytes`` is the least traffic of one call (``hwcal.backends.nn``)."""

    family: str  # conv | conv_bn_relu | sdpa | fused
    name: str  # the model's layer, e.g. resnet50.layer1.0.conv2
    source: str  # key of hwcal.measure.nn_grid.SOURCES
    role: str
    dims: dict[str, Any]
    layout: str
    variant: str  # SDPA backend; folded:act / unfolded:act; the fused op
    flops: int
    bytes: int
    element_bytes: int
    gflops_best: float | None
    gflops_median: float | None
    gbps_best: float
    gbps_median: float
    threads: int | None
    modes: dict[str, object] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # ATen path, algorithm, reorders, CUDA kernels
    # GPU convolutions: the same call with cuDNN benchmark mode off (its heuristic algorithm).
    heuristic: dict[str, Any] | None = None
    default_backend: str | None = None  # SDPA: the backend torch picks with none forced


def heuristic_case(case: str) -> str:
    """The watch's name for a GPU convolution's second timing (cuDNN benchmark mode off): its flag, if the watch
    leaves one, is the heuristic figure's own, not the case's."""
    return f"{case} (cuDNN benchmark off)"


@dataclass(frozen=True)
class NnStatus:
    """A (family, precision, variant) not timed: ``unsupported`` (reason: the framework's words, or why no
    kernel exists) or ``not_in_grid`` (it runs; ``--full`` times it)."""

    family: str
    precision: str | None
    variant: str
    status: str
    reason: str
