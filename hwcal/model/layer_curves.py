"""The curves behind the model-layer predictions (``hwcal.model.nn``): measured layers of one operation,
precision and family, interpolated along the log of their *roofline time*,

    model_s = max(floor_s, flops / peak, bytes / tier_bandwidth(working set))

plus a tilt of ``1e-3 x log(flops + bytes)`` that keeps problems the roofline cannot tell apart in order.
Between two measured layers the log of the time moves linearly along that coordinate (log throughput in
log FLOPs where compute-bound, in log bytes where memory-bound, flat at the floor). Monotone by
construction: measured times are made non-decreasing along the coordinate first.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from hwcal.model.curves import Point, Tiers

TILT = 1e-3  # orders problems the roofline ties (all at the floor) by their size; small enough not to bend it


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


def floor_estimate(points: Sequence[Point], roofline: Roofline, launch_floor_s: float = 0.0) -> float:
    """The per-call floor a curve's smallest calls show: the fastest measured call among those that the
    roofline explains less than half of (work or traffic would take under half their time), never below
    the filed launch floor. Measured: H100 fp16 GEMMs of n = 256 .. 1024 at ~17 us per call; CPU numpy
    fp32 n = 32 at 2.6 us. A curve whose calls are all large (BLAS at DRAM sizes) keeps the launch floor.
    """
    bare = Roofline(0.0, roofline.peak_flops, roofline.tiers)
    calls = [p.seconds for p in points if bare.seconds(p.flops, p.bytes) < 0.5 * p.seconds]
    return max(launch_floor_s, min(calls)) if calls else launch_floor_s
