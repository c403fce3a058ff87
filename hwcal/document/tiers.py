"""Which memory tier a working set lives in, and the calibration's measured bandwidth of that tier: the one
lookup every bandwidth-bound figure (depthwise and small 1x1 convolutions, decode attention, norms and
activations) is set against. Pure functions of the document's ``memory`` section.

Today the tier is decided by the caches the STREAM sweep recorded (``memory.caches``: the innermost level
that holds the working set with the threads that ran, else DRAM), and its bandwidth is the sweep's own figure
for that level (``memory.levels``: the best triad well inside it, kept only where it is a clear step) or, for
DRAM, the sustained triad. A cache level without a figure of its own gets the next outer level's (a floor of
its real bandwidth, so efficiency may read high; ``basis`` says so). Per-tier bandwidths measured for this
purpose (issue 24) replace the body of ``bandwidth_tier`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwcal.document.memory import level_of
from hwcal.machine.caches import CacheInfo, CacheLevel


@dataclass(frozen=True)
class Tier:
    """A working set's memory tier (``l1`` .. ``l3``, ``dram``), its bandwidth in GB/s (None: not measured),
    and where that figure comes from."""

    name: str
    gbps: float | None
    basis: str


def caches_of(memory: dict[str, Any]) -> CacheInfo | None:
    """The CacheInfo a memory section recorded (``memory.caches``), None where it has none."""
    caches = memory.get("caches")
    if not isinstance(caches, dict):
        return None
    levels = []
    for entry in caches.get("levels") or []:
        name, size = str(entry.get("level", "")), entry.get("size_bytes")
        if name.startswith("l") and name[1:].isdigit() and isinstance(size, int) and size > 0:
            levels.append(CacheLevel(int(name[1:]), size, int(entry.get("instances") or 1)))
    return CacheInfo(tuple(levels), str(caches.get("source", "")), bool(caches.get("assumed"))) if levels else None


def bandwidth_tier(memory: dict[str, Any] | None, working_set_bytes: int, threads: int | None) -> Tier:
    """The tier holding ``working_set_bytes`` and its measured bandwidth (see the module docstring)."""
    if not isinstance(memory, dict):
        return Tier("unknown", None, "no STREAM sweep in this run: no measured bandwidth to set it against")
    caches = caches_of(memory)
    name = level_of(working_set_bytes, caches, threads) if caches is not None else "dram"
    levels = memory.get("levels") or {}
    order = [c.name for c in sorted(caches.levels, key=lambda c: c.level)] if caches is not None else []
    outward = order[order.index(name):] if name in order else []
    for level in outward:
        gbps = (levels.get(level) or {}).get("gbps")
        if isinstance(gbps, (int, float)) and gbps > 0:
            if level == name:
                return Tier(name, float(gbps), f"STREAM triad well inside {name}, this run")
            return Tier(name, float(gbps), f"no clear {name} step in this run's STREAM sweep: {level}'s triad "
                                           "(a floor of the real figure)")
    dram = memory.get("sustained_gbps")
    if isinstance(dram, (int, float)) and dram > 0:
        if name == "dram":
            return Tier("dram", float(dram), "sustained STREAM triad (DRAM), this run")
        return Tier(name, float(dram), f"no {name} figure in this run's STREAM sweep: the sustained DRAM triad "
                                       "(a floor of the real figure)")
    return Tier(name, None, f"this run measured no bandwidth for {name}")
