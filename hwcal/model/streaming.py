"""BLAS1/BLAS2 and element-wise calls: a per-call floor plus bytes over the bandwidth of the right tier with
the right threads. Pure, no I/O.

Where each call's bandwidth comes from, best evidence first:

1. its own measured curve (``blas``: the operation in the precision), bytes by bytes, the floor taken out;
2. the same operation measured in another precision (bandwidth is bytes: the same kernel streaming);
3. the STREAM kernel of the same traffic pattern (axpy: triad, scal: scale, dot and gemv: add), or the
   memory system's tier figures (scal and axpy: the in-place update's) (``hwcal.model.bandwidth``), basis ``roofline``.

The floor is the operation's launch floor (``launch_floors``; the STREAM kernels take the element-wise
``add`` call's) timed back to back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hwcal.model.bandwidth import Bandwidth, BandwidthCurve
from hwcal.model.curves import Point
from hwcal.model.inputs import BLAS_OPS, STREAM_KERNELS, STREAM_PROXY, Inputs

# The traffic pattern of each call, for the memory system's per-tier figures: scal and axpy write in place (the
# in-place update's figures, as their efficiencies in the document: hwcal.document.memory_system.blas_ceiling).
PATTERN = {"dot": "read", "gemv": "read", "axpy": "update", "scal": "update", "copy": "triad", "scale": "triad",
           "add": "triad", "triad": "triad"}
ELEMENTWISE_FLOOR = "add"
# A STREAM kernel asked in another precision than the sweep's (fp64) pays what the BLAS call of the same work
# costs more per call in that precision than in the sweep's (at the smallest sizes both measured): scale is
# scal's multiply by a scalar, triad axpy's multiply-add. torch's fp32 multiply by a Python scalar costs 0.65 us
# more than its fp64 one on this VM (1.90 against 1.35 us on 3,072 elements, where add takes 1.03 and 1.15), so
# the fp64 sweep predicted fp32 scales of 3-22 K elements 28-39 % fast; numpy's costs about the same in both.
# The bandwidth stays the sweep's: an in-place scal holds half the bytes of an out-of-place scale in the caches.
SAME_WORK = {"scale": "scal", "triad": "axpy"}


def floor_key(operation: str, batch: int = 1) -> str:
    """The launch floor an operation's calls pay: its own, the batched GEMM's, or an element-wise call's."""
    if operation == "gemm":
        return "batched_gemm" if batch > 1 else "gemm"
    return ELEMENTWISE_FLOOR if operation in STREAM_KERNELS else operation


def floor_of(floors: dict[str, float], operation: str, batch: int = 1) -> float:
    key = floor_key(operation, batch)
    return floors.get(key, floors.get("gemm", 0.0) if key == "batched_gemm" else 0.0)


@dataclass
class StreamAnswer:
    seconds: float
    basis: str
    family: str
    points: list[Point]
    best_gbps: float
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class StreamingModel:
    """The BLAS and STREAM curves of one calibration, and the tier figures behind them."""

    def __init__(self, inputs: Inputs, additive: bool) -> None:
        self.additive = additive
        floors = inputs.launch_floor_s
        self.bandwidth = Bandwidth(inputs.memory, inputs.stream, inputs.tiers, inputs.tier_names,
                                   floor_of(floors, ELEMENTWISE_FLOOR), additive)
        self.op_threads = inputs.op_threads
        groups: dict[tuple[str, str], list[Point]] = {}
        for p in inputs.blas:
            groups.setdefault((p.family, p.precision), []).append(p)
        self.blas = {key: BandwidthCurve.of(pts, floor_of(floors, key[0]), additive, self._tier(key[0]))
                     for key, pts in groups.items()}
        self.floors = floors
        self.stream_dtype = inputs.stream_dtype

    def threads_of(self, operation: str) -> int:
        """The threads a call runs on, as its calibration filed them (numpy: BLAS dot and gemv on all cores,
        its ufuncs on one; torch: its intra-op threads); a STREAM kernel on the sweep's."""
        if operation in STREAM_KERNELS:
            return self.bandwidth.stream_threads
        return self.op_threads.get(operation, 1)

    def _tier(self, operation: str) -> Callable[[float], float] | None:
        """The memory system's GB/s by working set for the operation's traffic, which shapes its curve between
        the sizes it measured; None where the file has no figure at all."""
        pattern, threads = PATTERN.get(operation, "triad"), self.threads_of(operation)
        bandwidth = self.bandwidth
        if bandwidth.gbps(1.0, pattern, threads) is None:
            return None

        def tier(nbytes: float) -> float:
            found = bandwidth.gbps(nbytes, pattern, threads)
            return found[0] if found else 1.0
        return tier

    def curve_for(self, operation: str, precision: str) -> tuple[BandwidthCurve | None, str, list[str]]:
        """The curve a call is predicted from, its family name, and what to say about the choice; no curve
        (None) where the memory system's tier figures serve better than a STREAM kernel of similar traffic."""
        own = self.blas.get((operation, precision))
        if own is not None:
            return own, operation, []
        others = sorted((k for k in self.blas if k[0] == operation), key=lambda k: -len(self.blas[k].points))
        if others:
            prec = others[0][1]
            return self.blas[others[0]], operation, [f"no {operation} {precision} measured: {operation} {prec}'s "
                                                     "bandwidth at the same bytes"]
        if operation in STREAM_KERNELS and operation in self.bandwidth.stream:
            return self.bandwidth.stream[operation], operation, []
        if self.bandwidth.levels and not (self.bandwidth.stream
                                          and self.bandwidth.stream_threads == self.threads_of(operation)):
            return None, operation, [f"no {operation} measured: the memory system's tier figures"]
        kernel = STREAM_PROXY.get(operation, operation)
        stream = self.bandwidth.stream.get(kernel)
        return stream, kernel, ([f"no {operation} measured: STREAM {kernel}'s bandwidth at the same bytes"]
                                if stream is not None else [])

    def predict(self, operation: str, precision: str, nbytes: float, resident_bytes: float = 0.0) -> StreamAnswer:
        """``resident_bytes``: the working set the call runs in (a layer's), whose tier its operands stream from."""
        curve, family, notes = self.curve_for(operation, precision)
        floor = floor_of(self.floors, operation)
        at = max(nbytes, resident_bytes)
        if at > nbytes:
            notes.append(f"in a working set of {at / 2**20:,.1f} MiB: its operands stream from the tier holding that")
        if curve is None:
            return self._from_levels(operation, nbytes, floor, notes, at)
        gbps, basis, used = curve.gbps(at)
        work = nbytes / (gbps * 1e9)
        if family == operation or floor <= 0:  # its own curve (its floor, filed or estimated), or nothing filed
            floor = curve.floor_s
        extra = self._precision_cost_s(operation, precision)
        if extra > 0:
            notes.append(f"{operation} in {precision}: {extra * 1e6:.2g} us more a call than in {self.stream_dtype}, "
                         f"as {SAME_WORK[operation]} costs more in {precision} (STREAM runs in {self.stream_dtype})")
            floor += extra
        seconds = floor + work if self.additive else max(floor, work)
        if operation in BLAS_OPS and (operation, precision) not in self.blas and basis != "extrapolated":
            basis = "roofline"  # another precision's or kernel's bandwidth: not this call measured
        warnings = []
        if basis == "extrapolated":
            lo, hi = curve.range_bytes
            side = "below the smallest" if at < lo else "above the largest"
            warnings.append(f"{at:,.0f} bytes is {side} {family} size measured ({lo:,.0f} .. {hi:,.0f} bytes): "
                            f"the bandwidth at that end held ({gbps:.4g} GB/s)")
        return StreamAnswer(seconds, basis, family, used, curve.best_gbps, notes, warnings)

    def _precision_cost_s(self, operation: str, precision: str) -> float:
        """Seconds a call of a STREAM kernel costs more in ``precision`` than in the sweep's: the same-work BLAS
        call's measured time in the two at the two smallest bytes both measured, where a call is mostly its
        overhead: the lesser difference, so one disturbed size does not make it. CPUs only: a GPU's calls overlap
        the host's overhead with the device's work. 0 where they share under two sizes, or it costs less."""
        if (not self.additive or operation not in STREAM_KERNELS or precision == self.stream_dtype
                or operation not in SAME_WORK):
            return 0.0
        asked = self.blas.get((SAME_WORK[operation], precision))
        swept = self.blas.get((SAME_WORK[operation], self.stream_dtype))
        if asked is None or swept is None:
            return 0.0
        both = sorted({p.bytes for p in asked.points} & {p.bytes for p in swept.points})[:2]
        if len(both) < 2:
            return 0.0
        return max(0.0, min(min(p.seconds for p in asked.points if p.bytes == at)
                            - min(p.seconds for p in swept.points if p.bytes == at) for at in both))

    def _from_levels(self, operation: str, nbytes: float, floor: float, notes: list[str], at: float
                     ) -> StreamAnswer:
        found = self.bandwidth.gbps(at, PATTERN.get(operation, "triad"), self.threads_of(operation))
        if found is None:
            raise LookupError(f"no bandwidth figure for {operation}")
        gbps, source = found
        work = nbytes / (gbps * 1e9)
        seconds = floor + work if self.additive else max(floor, work)
        return StreamAnswer(seconds, "roofline", operation, [], gbps,
                            [*notes, f"the bytes at {gbps:.4g} GB/s, {source}"])

    def operations_with_curves(self) -> Sequence[tuple[str, str]]:
        return list(self.blas)
