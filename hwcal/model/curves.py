"""The curves behind ``Profile.predict``: measured points of one operation, precision and shape family,
interpolated along a roofline coordinate. Pure functions and small classes, no I/O.

A curve's coordinate is the log of the *roofline time* of a problem,

    model_s = max(floor_s, flops / peak, bytes / tier_bandwidth(working set))

plus a tilt of ``1e-3 x log(flops + bytes)`` that keeps problems the roofline cannot tell apart in
order. Between two measured points the log of the time moves linearly along that coordinate, which is

- in the compute-bound region, interpolation of log(throughput) in log(FLOPs) (the square sweep's
  usual picture);
- in the memory-bound region, interpolation in log(bytes), with a step where the working set leaves a
  cache tier;
- near the floor, a time that stays at the floor until the work outgrows it. Measured on the H100:
  fp16 GEMMs of n = 256 .. 1024 all take ~17 us per call, n = 2048 takes 25 us; plain log-log
  interpolation between n = 1024 and 4096 predicts 57 us for n = 2048, this coordinate 24 us.

Monotone by construction: the measured times are first made non-decreasing along the coordinate (a
point faster than a smaller one is raised to it: noise, never a real speed-up a model should promise),
and the interpolation between non-decreasing knots along a non-decreasing coordinate never decreases.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

# A streamed working set stays cache-resident only up to about half the cache's capacity (other data,
# conflict misses, an exclusive L3 that holds what L2 evicted): leave-one-out on the EPYC sweep, median /
# p90 error of copy 9% / 26% at 0.5 against 12% / 49% at the full capacity.
CACHE_HOLDS = 0.5
TILT = 1e-3  # orders problems the roofline ties (all at the floor) by their size; small enough not to bend it


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
    levels = memory.get("levels") or {}
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


@dataclass
class Roofline:
    """The model time of a problem: launch/call floor, compute peak, tier bandwidth (any may be absent)."""

    floor_s: float = 0.0
    peak_flops: float | None = None  # FLOP/s
    tiers: Tiers | None = None

    def seconds(self, flops: float, bytes_moved: float) -> float:
        t = self.floor_s
        if self.peak_flops and flops > 0:
            t = max(t, flops / self.peak_flops)
        if self.tiers is not None and bytes_moved > 0:
            t = max(t, bytes_moved / (self.tiers.gbps(bytes_moved) * 1e9))
        return t

    def coordinate(self, flops: float, bytes_moved: float) -> float:
        size = (flops if self.peak_flops else 0.0) + bytes_moved  # a bandwidth-only curve orders by bytes
        return math.log(max(self.seconds(flops, bytes_moved), 1e-12)) + TILT * math.log1p(size)


@dataclass
class Curve:
    """Measured points of one family, as a monotone function of the roofline coordinate."""

    points: list[Point]
    roofline: Roofline
    knots_u: list[float] = field(init=False)
    knots_log_s: list[float] = field(init=False)
    order: list[Point] = field(init=False)

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a curve needs at least one measured point")
        pairs = sorted(((self.roofline.coordinate(p.flops, p.bytes), p) for p in self.points),
                       key=lambda up: (up[0], up[1].seconds))
        self.order = [p for _, p in pairs]
        self.knots_u = [u for u, _ in pairs]
        running = -math.inf
        self.knots_log_s = []
        for _, p in pairs:
            running = max(running, math.log(p.seconds))
            self.knots_log_s.append(running)

    def at(self, flops: float, bytes_moved: float) -> tuple[float, str, list[Point]]:
        """Seconds, basis (measured / interpolated / extrapolated) and the points used."""
        u = self.roofline.coordinate(flops, bytes_moved)
        us, ls = self.knots_u, self.knots_log_s
        i = bisect_right(us, u)
        if i > 0 and abs(us[i - 1] - u) < 1e-12:
            return math.exp(ls[i - 1]), "measured", [self.order[i - 1]]
        if 0 < i < len(us):
            lam = (u - us[i - 1]) / (us[i] - us[i - 1])
            return math.exp(ls[i - 1] + lam * (ls[i] - ls[i - 1])), "interpolated", self.order[i - 1:i + 1]
        if i == 0 and len(us) > 1:
            # Below the smallest call: the first segment's log-log slope in the work (bare roofline time),
            # held between 0 (a floor) and 1 (constant throughput). The estimated floor is not used here:
            # a curve that does not reach down to its floor has not measured it.
            bare = Roofline(0.0, self.roofline.peak_flops, self.roofline.tiers)
            p0, p1 = self.order[0], self.order[1]
            b0, b1 = bare.seconds(p0.flops, p0.bytes), bare.seconds(p1.flops, p1.bytes)
            b = bare.seconds(flops, bytes_moved)
            if b0 > 0 and b1 > b0 and b > 0:
                slope = min(1.0, max(0.0, (ls[1] - ls[0]) / math.log(b1 / b0)))
                return math.exp(ls[0] + slope * math.log(min(b, b0) / b0)), "extrapolated", [p0, p1]
        # Above the largest call (or a one-point curve): the nearest point's ratio of measured to roofline
        # time, which in the compute- or memory-bound region is its throughput held.
        j = 0 if i == 0 else len(us) - 1
        p = self.order[j]
        ratio = math.exp(ls[j]) / self.roofline.seconds(p.flops, p.bytes)
        return self.roofline.seconds(flops, bytes_moved) * ratio, "extrapolated", [p]

    @property
    def max_flops_per_s(self) -> float:
        return max((p.flops / p.seconds for p in self.points), default=0.0)

    @property
    def max_bytes_per_s(self) -> float:
        return max((p.bytes / p.seconds for p in self.points), default=0.0)


def relative_errors(pairs: Sequence[tuple[float, float]]) -> list[float]:
    """|predicted - measured| / measured for (predicted, measured) pairs."""
    return [abs(p - m) / m for p, m in pairs if m > 0]


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), q in [0, 1]."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = q * (len(data) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def floor_estimate(points: Sequence[Point], roofline: Roofline, launch_floor_s: float = 0.0) -> float:
    """The per-call floor a curve's smallest calls show: the fastest measured call among those that the
    roofline explains less than half of (work or traffic would take under half their time), never below
    the filed launch floor. Measured: H100 fp16 GEMMs of n = 256 .. 1024 at ~17 us per call; CPU numpy
    fp32 n = 32 at 2.6 us. A curve whose calls are all large (BLAS at DRAM sizes) keeps the launch floor.
    """
    bare = Roofline(0.0, roofline.peak_flops, roofline.tiers)
    calls = [p.seconds for p in points if bare.seconds(p.flops, p.bytes) < 0.5 * p.seconds]
    return max(launch_floor_s, min(calls)) if calls else launch_floor_s
