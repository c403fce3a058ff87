"""The measured points predictions are made from, and the cache tiers of the memory summary. Pure, no I/O.

A point is one measured call: its operation family and precision, its dimensions, its work (FLOPs) and its
minimal traffic (bytes), and its best time per call. How points become predictions: ``hwcal.model.gemm``
(GEMM), ``hwcal.model.bandwidth`` and ``hwcal.model.streaming`` (memory-bound calls).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

# A streamed working set stays cache-resident only up to about half the cache's capacity (other data,
# conflict misses, an exclusive L3 that holds what L2 evicted): leave-one-out on the EPYC sweep, median /
# p90 error of copy 9% / 26% at 0.5 against 12% / 49% at the full capacity.
CACHE_HOLDS = 0.5


@dataclass(frozen=True)
class Point:
    """One measured call: its shape, its work and traffic, and its best time per call (seconds)."""

    family: str
    precision: str
    dims: tuple[tuple[str, int], ...]
    flops: float
    bytes: float
    seconds: float
    source: str  # the section it came from: gemm, gemm_shapes, blas, memory.sweep
    warm: bool = True  # operands the same every call (False: rotated through a GPU's L2, so from DRAM)
    flagged: bool = False  # its case ran while something else did (the file's ``flagged``): likely slow

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.dims)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "family": self.family, "precision": self.precision,
                               **dict(self.dims), "seconds": self.seconds}
        if self.flops > 0:
            out["gflops"] = round(self.flops / self.seconds / 1e9, 6)
        if self.bytes > 0:
            out["gbps"] = round(self.bytes / self.seconds / 1e9, 6)
        if self.flagged:
            out["flagged"] = True
        return out


@dataclass(frozen=True)
class Tiers:
    """Bandwidth by working set: the STREAM sweep's cache levels (l1, l2, l3/LLC) and DRAM, GB/s."""

    bounds: tuple[tuple[float, float], ...]  # (capacity bytes, GB/s), ascending; the last is DRAM (inf)

    def gbps(self, working_set_bytes: float) -> float:
        for capacity, gbps in self.bounds:
            if working_set_bytes <= capacity:
                return gbps
        return self.bounds[-1][1]

    def level(self, working_set_bytes: float, names: Sequence[str]) -> str:
        for (capacity, _), name in zip(self.bounds, names, strict=False):
            if working_set_bytes <= capacity:
                return name
        return names[-1] if names else "dram"


def tiers_of(memory: dict[str, Any] | None) -> tuple[Tiers, tuple[str, ...]] | None:
    """The tiers from ``memory.levels`` (``dram`` from the sustained figure when it is missing).

    A level without a figure (no clear step above the next one, say the notes) is left out: its working
    sets get the next level's bandwidth, as the sweep measured them.
    """
    if not isinstance(memory, dict):
        return None
    # The STREAM sweep's per-level figures: memory.stream_levels since the memory system took memory.levels
    # over (its entries have no ``gbps``, and are read by hwcal.model.bandwidth instead); memory.levels before.
    levels = memory.get("stream_levels") or memory.get("levels") or {}
    found: list[tuple[float, float, str]] = []
    for name, level in levels.items():
        if not isinstance(level, dict) or not _positive(level.get("gbps")):
            continue
        capacity = level.get("capacity_bytes")
        found.append((float(capacity) * CACHE_HOLDS if _positive(capacity) and name != "dram" else math.inf,
                      float(level["gbps"]), name))
    if not any(c == math.inf for c, _, _ in found) and _positive(memory.get("sustained_gbps")):
        found.append((math.inf, float(memory["sustained_gbps"]), "dram"))
    if not found:
        return None
    found.sort()
    return Tiers(tuple((c, g) for c, g, _ in found)), tuple(n for _, _, n in found)


def _positive(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), q in [0, 1]."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = q * (len(data) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)
