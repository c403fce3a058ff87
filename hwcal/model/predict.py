"""How long does this operation take on this device? Predictions from one calibration.

    profile = Registry().get("h100_sxm5", calibration_filter={"framework": "pytorch"})
    p = profile.predict("gemm", "bf16", m=2048, n=12288, k=4096)
    p.seconds, p.gflops, p.gbps, p.efficiency, p.basis, p.points

Operations and their dimensions (positive integers):

- ``gemm``: ``m``, ``n``, ``k`` (``n`` alone: square), ``batch`` (default 1). From the nearest shape
  family measured in the precision: the square sweep (``gemm``) or ``gemm_shapes``' small_m, proj_up,
  proj_down, batched; nearest by aspect (log M/K, log N/K), ``batched`` when ``batch`` > 1.
- ``dot``, ``axpy``, ``scal`` (``n``) and ``gemv`` (``m`` rows, ``n`` columns): from the BLAS curve
  of the operation and precision when it was measured, else from the STREAM kernel of the same traffic
  pattern (basis ``roofline``), by bytes.
- ``copy``, ``scale``, ``add``, ``triad`` (``n`` elements per array): the STREAM sweep, by bytes.
- ``conv2d`` (``n, c, h, w, k, r, s``, ``stride`` 1, ``padding`` 0, ``groups`` 1 unless given) and ``sdpa``
  (``batch, heads, seq_q, seq_k, head_dim, causal``): the model layers the calibration timed, by the same
  rules, else a roofline from its GEMM curves and bandwidth (``hwcal.model.nn``).

Along each curve the time is interpolated in the log of the roofline time (``hwcal.model.curves``): the
log of the FLOPs where compute-bound, of the bytes where memory-bound, with the cache tier of the
working set (``memory.levels``). Then two rules:

- the launch floor: ``time = max(floor, curve)``. Every measured call already includes its launch, so
  adding the floor (``floor + work / throughput``) would count it twice inside the measured range; and
  on a GPU launches queue behind running kernels, so launch and work overlap (H100 fp16 n = 2048:
  25 us measured, floor ~17 us + work 24 us would say 41). The max only bites below the smallest
  measured call, where no curve should promise less than one launch.
- never faster than measured: the throughput is capped at the best the calibration measured for the
  precision (GEMM: GFLOPS over every shape; memory: GB/s of the curve used).

Times are the *best* per call (``gflops_best``, ``gbps_best``), the figure the calibration calls its
peak, so predictions are of a warm, back-to-back call. Time is monotone in every dimension within one
shape family; where a growing dimension moves a GEMM to another family the prediction can step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwcal.document.format2 import update_to_2
from hwcal.errors import HwcalError
from hwcal.model.curves import Curve, Point, Roofline, floor_estimate
from hwcal.model.energy import EnergyModel, energy_model
from hwcal.model.inputs import (
    BLAS_OPS,
    MEMORY_OPS,
    OPERATIONS,
    SQUARE,
    STREAM_KERNELS,
    STREAM_PROXY,
    Inputs,
    inputs_of,
    work_of,
)
from hwcal.model.nn import NN_OPERATIONS, NnAnswer, NnModel
from hwcal.precisions import PRECISIONS, canonical_sorted

BASES = ("measured", "interpolated", "roofline", "extrapolated")
_DIMS = {"gemm": ("m", "n", "k", "batch"), "gemv": ("m", "n")}


@dataclass
class Prediction:
    """One operation's predicted time per call on one calibrated device."""

    operation: str
    precision: str
    dims: dict[str, int]
    seconds: float
    flops: float
    bytes: float
    basis: str  # measured | interpolated | roofline | extrapolated
    family: str  # the shape family or the curve used (square, small_m, ..., dot, triad, ...)
    points: list[Point]
    efficiency: float | None
    efficiency_reference: str
    floor_s: float
    notes: list[str] = field(default_factory=list)
    energy_j: float | None = None  # per call, from the calibration's energy section (hwcal.model.energy)
    energy_basis: str = "no energy measured in this calibration"

    @property
    def gflops(self) -> float | None:
        return self.flops / self.seconds / 1e9 if self.flops > 0 else None

    @property
    def gbps(self) -> float | None:
        return self.bytes / self.seconds / 1e9 if self.bytes > 0 else None

    def summary(self) -> dict[str, Any]:
        return {"operation": self.operation, "precision": self.precision, **self.dims, "seconds": self.seconds,
                "gflops": self.gflops, "gbps": self.gbps, "efficiency": self.efficiency,
                "efficiency_reference": self.efficiency_reference, "basis": self.basis, "family": self.family,
                "flops": self.flops, "bytes": self.bytes, "floor_s": self.floor_s, "notes": self.notes,
                "energy_j": self.energy_j, "energy_basis": self.energy_basis,
                "points": [p.summary() for p in self.points]}


def check_dims(operation: str, dims: Mapping[str, object]) -> dict[str, int]:
    """The operation's dimensions as positive ints (gemm: batch defaults to 1, ``n`` alone is square)."""
    names = _DIMS.get(operation, ("n",))
    unknown = sorted(set(dims) - set(names))
    if unknown:
        raise HwcalError(f"{operation} takes {', '.join(names)}; got {', '.join(unknown)}")
    out: dict[str, int] = {}
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise HwcalError(f"{operation}: {name} must be a positive integer, got {value!r}")
        if value <= 0:
            raise HwcalError(f"{operation}: {name} must be a positive integer, got {value}")
        out[name] = value
    if operation == "gemm":
        out.setdefault("batch", 1)
        if set(out) == {"n", "batch"}:
            out.update(m=out["n"], k=out["n"])
    missing = [n for n in names if n not in out]
    if missing:
        raise HwcalError(f"{operation} needs {', '.join(missing)} (takes {', '.join(names)})")
    return {n: out[n] for n in names}


class Predictor:
    """The curves of one calibration, built once; ``predict`` is then a few bisections (~20 us)."""

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.energy: EnergyModel | None = None  # set from the document by predictor_of_document
        self._have: dict[str, list[str]] | None = None
        self.name = inputs.name
        self.gemm_peak: dict[str, float] = {}  # FLOP/s, best measured over every shape
        for p in inputs.gemm:
            self.gemm_peak[p.precision] = max(self.gemm_peak.get(p.precision, 0.0), p.flops / p.seconds)
        launch = inputs.launch_floor_s
        groups: dict[tuple[str, str], list[Point]] = {}
        for p in inputs.gemm:
            groups.setdefault((p.precision, p.family), []).append(p)
        self.gemm_curves = {key: self._curve(pts, self.gemm_peak[key[0]], launch.get("gemm", 0.0))
                            for key, pts in groups.items()}
        self.aspects: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for (prec, fam), pts in groups.items():
            self.aspects.setdefault(prec, {})[fam] = [_aspect(dict(p.dims)) for p in pts]
        groups = {}
        for p in inputs.blas:
            groups.setdefault((p.family, p.precision), []).append(p)
        self.blas_curves = {key: self._curve(pts, None, launch.get(key[0], 0.0)) for key, pts in groups.items()}
        streams: dict[str, list[Point]] = {}
        for p in inputs.stream:
            streams.setdefault(p.family, []).append(p)
        self.stream_curves = {k: self._curve(pts, None, 0.0) for k, pts in streams.items()}
        self.tier_best_gbps: dict[str, float] = {}  # per tier, the best GB/s any STREAM kernel measured in it
        if inputs.tiers is not None:
            for p in inputs.stream:
                level = inputs.tiers.level(p.bytes, inputs.tier_names)
                self.tier_best_gbps[level] = max(self.tier_best_gbps.get(level, 0.0), p.bytes / p.seconds / 1e9)
        self.nn = NnModel(inputs.nn, inputs.tiers, launch.get("gemm", 0.0))
        self.measured_precisions = set(self.gemm_peak) | {p for _, p in self.blas_curves}
        if self.stream_curves:
            self.measured_precisions.add(inputs.stream_dtype)

    def _curve(self, points: list[Point], peak: float | None, launch_floor_s: float) -> Curve:
        roofline = Roofline(0.0, peak, self.inputs.tiers)
        roofline.floor_s = floor_estimate(points, roofline, launch_floor_s)
        return Curve(points, roofline)

    # -- what it has --
    def operations(self) -> dict[str, list[str]]:
        """Operation -> the precisions it can be predicted in (computed once)."""
        if self._have is None:
            self._have = self._operations()
        return self._have

    def _operations(self) -> dict[str, list[str]]:
        have: dict[str, list[str]] = {}
        gemm = canonical_sorted(self.gemm_peak)
        if gemm:
            have["gemm"] = gemm
        memory = canonical_sorted(self.measured_precisions) if self.stream_curves else []
        for op in BLAS_OPS:
            precs = {p for o, p in self.blas_curves if o == op} | (set(memory) if STREAM_PROXY[op] in
                                                                   self.stream_curves else set())
            if precs:
                have[op] = canonical_sorted(precs)
        for kernel in STREAM_KERNELS:
            if kernel in self.stream_curves:
                have[kernel] = memory
        for op in NN_OPERATIONS:  # measured layers, else the roofline of the precision's GEMMs
            precs = self.nn.precisions(op) | set(gemm)
            if precs:
                have[op] = canonical_sorted(precs)
        return have

    def describe(self) -> str:
        return "; ".join(f"{op} ({', '.join(precs)})" for op, precs in self.operations().items()) or "nothing"

    # -- predictions --
    def predict(self, operation: str, precision: str, **dims: int) -> Prediction:
        if operation not in OPERATIONS and operation not in NN_OPERATIONS:
            raise HwcalError(f"unknown operation {operation!r}; {self.name} predicts: {self.describe()}")
        have = self.operations()
        if operation not in have:
            raise HwcalError(f"{self.name} measured no {operation} (nor what predicts it); it has: {self.describe()}")
        if precision not in have[operation]:
            raise HwcalError(f"{self.name} did not measure {operation} in {precision!r}; "
                             f"{operation} precisions: {', '.join(have[operation])}")
        if operation in NN_OPERATIONS:
            gemm = ((lambda p, d: self._gemm(p, check_dims("gemm", d)).seconds) if precision in self.gemm_peak
                    else None)
            return self._nn_prediction(operation, precision, self.nn.predict(operation, precision, dims, gemm))
        checked = check_dims(operation, dims)
        pred = self._gemm(precision, checked) if operation == "gemm" else self._memory(operation, precision, checked)
        if self.energy is not None:
            pred.energy_j, pred.energy_basis = self.energy.joules(operation, precision, pred.seconds, pred.flops,
                                                                  pred.bytes)
        return pred

    def efficiency(self, operation: str, precision: str, **dims: int) -> float | None:
        return self.predict(operation, precision, **dims).efficiency

    def _gemm(self, precision: str, dims: dict[str, int]) -> Prediction:
        family = self._family(precision, dims)
        curve = self.gemm_curves[(precision, family)]
        flops, bytes_moved = work_of("gemm", precision, dims)
        seconds, basis, points = curve.at(flops, bytes_moved)
        notes: list[str] = []
        if dims["batch"] > 1 and family != "batched":
            notes.append(f"no batched GEMM measured in {precision}: the batch of {dims['batch']} as one "
                         f"{family} problem of its total work")
        seconds = self._bounds(seconds, flops / self.gemm_peak[precision], "gemm", curve, notes,
                               f"{self.gemm_peak[precision] / 1e9:.4g} GFLOPS, the best {precision} GEMM measured")
        theoretical = self.inputs.peak_gflops_theoretical.get(precision)
        peak_gflops, ref = ((theoretical, f"theoretical {precision} peak {theoretical:.6g} GFLOPS") if theoretical
                            else (self.gemm_peak[precision] / 1e9,
                                  f"measured {precision} peak {self.gemm_peak[precision] / 1e9:.6g} GFLOPS"))
        eff = flops / seconds / 1e9 / peak_gflops
        return Prediction("gemm", precision, dims, seconds, flops, bytes_moved, basis, family, points, eff, ref,
                          curve.roofline.floor_s, notes)

    def _nn_prediction(self, operation: str, precision: str, a: NnAnswer) -> Prediction:
        """A conv or attention answer with its efficiency: against the peak where compute-bound (below the ridge
        of the peak over the tier's bandwidth: against that bandwidth)."""
        theoretical = self.inputs.peak_gflops_theoretical.get(precision)
        measured = max(self.gemm_peak.get(precision, 0.0), a.flops / a.seconds) / 1e9
        peak, peak_ref = ((theoretical, f"theoretical {precision} peak {theoretical:.6g} GFLOPS") if theoretical
                          else (measured, f"measured {precision} peak {measured:.6g} GFLOPS"))
        gbps, level = None, "dram"
        if self.inputs.tiers is not None:
            level = self.inputs.tiers.level(a.bytes, self.inputs.tier_names)
            gbps = self.tier_best_gbps.get(level) or self.inputs.tiers.gbps(a.bytes)
        if level == "dram" and self.inputs.bandwidth_gbps_theoretical:
            gbps = self.inputs.bandwidth_gbps_theoretical
        if gbps and a.flops / a.bytes < peak / gbps:
            eff, ref = a.bytes / a.seconds / 1e9 / gbps, f"{level} bandwidth {gbps:.6g} GB/s (memory-bound)"
        else:
            eff, ref = a.flops / a.seconds / 1e9 / peak, peak_ref
        return Prediction(operation, precision, a.dims, a.seconds, a.flops, a.bytes, a.basis, a.family, a.points, eff,
                          ref, a.floor_s, a.notes)

    def _family(self, precision: str, dims: dict[str, int]) -> str:
        families = self.aspects[precision]
        if dims["batch"] > 1 and "batched" in families:
            return "batched"
        candidates = {f: a for f, a in families.items() if f != "batched"} or families
        want = _aspect(dims)

        def distance(fam: str) -> tuple[float, bool]:
            best = min(abs(a - want[0]) + abs(b - want[1]) for a, b in candidates[fam])
            return round(best, 9), fam == SQUARE  # a tie goes to the family measured for such shapes
        return min(candidates, key=distance)

    def _memory(self, operation: str, precision: str, dims: dict[str, int]) -> Prediction:
        flops, bytes_moved = work_of(operation, precision, dims)
        curve = self.blas_curves.get((operation, precision))
        family, notes = operation, []
        if curve is None:
            family = STREAM_PROXY.get(operation, operation)
            curve = self.stream_curves[family]
            if operation in BLAS_OPS:
                notes.append(f"no {operation} {precision} measured: STREAM {family}'s bandwidth at the same bytes")
        seconds, basis, points = curve.at(0.0, bytes_moved)
        if operation in BLAS_OPS and family != operation:
            basis = "roofline" if basis != "extrapolated" else basis
        seconds = self._bounds(seconds, bytes_moved / curve.max_bytes_per_s, operation, curve, notes,
                               f"{curve.max_bytes_per_s / 1e9:.4g} GB/s, the best of the {family} curve")
        gbps = bytes_moved / seconds / 1e9
        inputs = self.inputs
        if inputs.bandwidth_gbps_theoretical:
            ref_gbps = inputs.bandwidth_gbps_theoretical
            ref = f"theoretical DRAM {ref_gbps:.6g} GB/s"
        elif inputs.tiers is not None:
            level = inputs.tiers.level(bytes_moved, inputs.tier_names)
            ref_gbps = self.tier_best_gbps.get(level) or inputs.tiers.gbps(bytes_moved)
            ref = f"the best STREAM bandwidth measured in {level}, {ref_gbps:.6g} GB/s (no theoretical figure filed)"
        else:
            ref_gbps, ref = curve.max_bytes_per_s / 1e9, "best measured bandwidth of the curve"
        return Prediction(operation, precision, dims, seconds, flops, bytes_moved, basis, family, points,
                          gbps / ref_gbps, ref, curve.roofline.floor_s, notes)

    def _bounds(self, seconds: float, fastest_s: float, operation: str, curve: Curve, notes: list[str],
                fastest_what: str) -> float:
        if seconds < fastest_s:
            notes.append(f"capped at {fastest_what}")
            seconds = fastest_s
        launch = self.inputs.launch_floor_s.get(operation)
        if launch and seconds < launch:
            notes.append(f"raised to the {operation} launch floor {launch:.3g} s")
            seconds = launch
        return seconds


def _aspect(dims: Mapping[str, int]) -> tuple[float, float]:
    return math.log(dims["m"] / dims["k"]), math.log(dims["n"] / dims["k"])


def predictor_of_document(doc: Any, name: str = "") -> Predictor:
    """A Predictor of a raw calibration dict; format 1 is upgraded in memory (``update_to_2``)."""
    try:
        doc2 = update_to_2(doc)
    except ValueError as exc:
        raise HwcalError(f"{name or 'calibration'}: {exc} (upgrade a file with hwcal-migrate)") from None
    predictor = Predictor(inputs_of(doc2, name))
    predictor.energy = energy_model(doc2)
    return predictor


def predictor_for(profile: Any) -> Predictor:
    """The Profile's Predictor, built on first use and kept on the Profile (rebuilt if its calibration
    object is replaced)."""
    cached = profile.__dict__.get("_predictor")
    if cached is not None and cached[0] is profile.calibration:
        return cached[1]
    predictor = predictor_of_document(profile.calibration, _profile_name(profile))
    profile.__dict__["_predictor"] = (profile.calibration, predictor)
    return predictor


def _profile_name(profile: Any) -> str:
    key = profile.calibration.get("key") or {}
    return f"{profile.hardware_id} ({key.get('power_mode', '?')}, {key.get('framework', '?')})"


__all__ = ["BASES", "MEMORY_OPS", "OPERATIONS", "PRECISIONS", "Prediction", "Predictor", "check_dims",
           "predictor_for", "predictor_of_document"]
