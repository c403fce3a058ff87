"""Which memory tier a working set lives in, and the calibration's measured bandwidth of that tier: the one
lookup every bandwidth-bound figure (depthwise and small 1x1 convolutions, decode attention, norms and
activations) is set against. Pure functions of the run's memory measurements.

In order of preference:

1. the memory system (``hwcal.measure.memsys``, issue 24): the ceiling BLAS is set against too
   (``document.memory_system.blas_ceiling``: the best of read, write and triad measured at the tier the
   working set lives in, on one core or on all, as the operation ran; a GPU's L2 or HBM);
2. without it, the STREAM sweep: the tier by the caches it recorded (``memory.caches``: the innermost level
   holding the working set with the threads that ran, else DRAM), its bandwidth the sweep's best triad well
   inside that level (``memory.stream_levels``; ``memory.levels`` in files written before the memory system)
   or, for DRAM, the sustained triad. A cache level without a figure of its own gets the next outer level's
   (a floor of its real bandwidth, so efficiency may read high; ``basis`` says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwcal.document.memory import level_of
from hwcal.document.memory_system import blas_ceiling
from hwcal.machine.caches import CacheInfo, CacheLevel
from hwcal.measure.memsys import MemorySystem


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


def _stream_levels(memory: dict[str, Any]) -> dict[str, Any]:
    """The STREAM sweep's per-level triads: ``stream_levels``, or the old shape of ``levels`` ({gbps, ...})."""
    if isinstance(memory.get("stream_levels"), dict):
        return dict(memory["stream_levels"])
    return {k: v for k, v in (memory.get("levels") or {}).items() if isinstance(v, dict) and "gbps" in v}


def bandwidth_tier(system: MemorySystem | None, memory: dict[str, Any] | None, working_set_bytes: int,
                   threads: int | None) -> Tier:
    """The tier holding ``working_set_bytes`` and its measured bandwidth (see the module docstring)."""
    ceiling = blas_ceiling(system, working_set_bytes, threads) if system is not None else None
    if ceiling is not None:
        return Tier(ceiling.tier, float(ceiling.gbps),
                    f"memory system: {ceiling.kernel} at {ceiling.working_set_bytes:,} bytes in {ceiling.tier} on "
                    f"{ceiling.threads} thread(s), the best kernel measured there, this run")
    if not isinstance(memory, dict):
        return Tier("unknown", None, "no memory measurement in this run: no bandwidth to set it against")
    caches = caches_of(memory)
    name = level_of(working_set_bytes, caches, threads) if caches is not None else "dram"
    levels = _stream_levels(memory)
    order = [c.name for c in sorted(caches.levels, key=lambda c: c.level)] if caches is not None else []
    for level in order[order.index(name):] if name in order else []:
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
