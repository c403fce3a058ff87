"""How long does this operation take on this device? Predictions from one calibration.

    profile = Registry().get("h100_sxm5", calibration_filter={"framework": "pytorch"})
    p = profile.predict("gemm", "bf16", m=2048, n=12288, k=4096)
    p.seconds, p.gflops, p.gbps, p.efficiency, p.basis, p.points, p.warnings
    profile.predict("dot", "fp32", n=4096, mode="isolated")    # one call on its own, synchronised

Operations and their dimensions (positive integers):

- ``gemm``: ``m``, ``n``, ``k`` (``n`` alone: square), ``batch`` (default 1): a roofline on the bytes actually
  moved against the tier the operands live in, scaled by the nearest measured GEMMs (``hwcal.model.gemm``);
- ``dot``, ``axpy``, ``scal`` (``n``) and ``gemv`` (``m`` rows, ``n`` columns), ``copy``, ``scale``, ``add``,
  ``triad`` (``n`` elements per array): a per-call floor plus bytes over the bandwidth of the call's own
  measured curve, else of the tier (``hwcal.model.streaming``);
- ``conv2d`` (``n, c, h, w, k, r, s``, ``stride`` 1, ``padding`` 0, ``groups`` 1 unless given) and ``sdpa``
  (``batch, heads, seq_q, seq_k, head_dim, causal``): the model layers the calibration timed, by the same
  rules, else a roofline from its GEMM curves and bandwidth (``hwcal.model.nn``).

Two timings (``mode``): ``back_to_back`` (the default: calls issued one after another, synchronised at the
end, how a model's layers run; every measured figure is timed so) and ``isolated`` (each call synchronised:
a latency), which adds what the calibration's isolated launch floors measured over the back-to-back ones.

Every answer says its ``basis`` (measured, interpolated, roofline, extrapolated) and the measured
``points`` behind it; an answer outside what was measured is ``extrapolated`` and carries ``warnings``
saying how. Never faster than measured: a GEMM's throughput is capped at the best the precision measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwcal.document.format2 import update_to_2
from hwcal.errors import HwcalError
from hwcal.model.curves import Point
from hwcal.model.energy import EnergyModel, energy_model
from hwcal.model.gemm import GemmModel, Roofline
from hwcal.model.inputs import (
    BLAS_OPS,
    MEMORY_OPS,
    OPERATIONS,
    STREAM_KERNELS,
    STREAM_PROXY,
    Inputs,
    element_bytes,
    inputs_of,
    work_of,
)
from hwcal.model.nn import NN_OPERATIONS, NnAnswer, NnModel
from hwcal.model.streaming import PATTERN, StreamingModel, floor_key, floor_of
from hwcal.precisions import PRECISIONS, canonical_sorted

BASES = ("measured", "interpolated", "roofline", "extrapolated")
MODES = ("back_to_back", "isolated")
_DIMS = {"gemm": ("m", "n", "k", "batch"), "gemv": ("m", "n")}
DRAM_BYTES = 1e15  # a working set no cache holds: operands rotated through L2 when measured come from DRAM


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
    mode: str = "back_to_back"
    warnings: list[str] = field(default_factory=list)  # why an answer lies outside what was measured
    energy_j: float | None = None  # per call, from the calibration's energy section (hwcal.model.energy)
    energy_basis: str = "no energy measured in this calibration"

    def __post_init__(self) -> None:
        # An efficiency is a share of its ceiling, as the document files them: above its reference it says the
        # reference is not this answer's ceiling (a working set in a cache against DRAM's figure, a peak set too
        # low); none then.
        if self.efficiency is not None and not 0 < self.efficiency <= 1.0:
            self.notes.append(f"efficiency {self.efficiency:.3g} against {self.efficiency_reference}: not a share "
                              "of it (its reference is not this answer's ceiling); none given")
            self.efficiency = None

    @property
    def gflops(self) -> float | None:
        return self.flops / self.seconds / 1e9 if self.flops > 0 else None

    @property
    def gbps(self) -> float | None:
        return self.bytes / self.seconds / 1e9 if self.bytes > 0 else None

    def summary(self) -> dict[str, Any]:
        return {"operation": self.operation, "precision": self.precision, **self.dims, "mode": self.mode,
                "seconds": self.seconds, "gflops": self.gflops, "gbps": self.gbps, "efficiency": self.efficiency,
                "efficiency_reference": self.efficiency_reference, "basis": self.basis, "family": self.family,
                "flops": self.flops, "bytes": self.bytes, "floor_s": self.floor_s, "notes": self.notes,
                "warnings": self.warnings, "energy_j": self.energy_j, "energy_basis": self.energy_basis,
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
    """The models of one calibration, built once; ``predict`` then takes tens of microseconds."""

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.energy: EnergyModel | None = None  # set from the document by predictor_of_document
        self._have: dict[str, list[str]] | None = None
        self.name = inputs.name
        self.additive = inputs.device_type != "gpu"
        self.gemm_peak: dict[str, float] = {}  # FLOP/s, best measured over every shape
        for p in inputs.gemm:
            self.gemm_peak[p.precision] = max(self.gemm_peak.get(p.precision, 0.0), p.flops / p.seconds)
        self.streaming = StreamingModel(inputs, self.additive)
        floors = inputs.launch_floor_s
        by_precision: dict[str, list[Point]] = {}
        for p in inputs.gemm:
            by_precision.setdefault(p.precision, []).append(p)
        self.gemm_models = {}
        for prec, pts in by_precision.items():
            bandwidth, gemv_curve = self._gemm_bandwidth(prec)
            self.gemm_models[prec] = GemmModel(pts, Roofline(
                self.gemm_peak[prec], element_bytes(prec), bandwidth, floor_of(floors, "gemm"),
                floor_of(floors, "gemm", 2), self.additive, inputs.gpu_sms, gemv_curve))
        self.nn = NnModel(inputs.nn, inputs.tiers, floor_of(floors, "gemm"))
        self.measured_precisions = set(self.gemm_peak) | {p for _, p in self.streaming.blas}
        if self.streaming.bandwidth.stream or self.streaming.bandwidth.levels:
            self.measured_precisions.add(inputs.stream_dtype)

    def _gemm_bandwidth(self, precision: str) -> tuple[Callable[[float, bool], float], bool]:
        """GB/s at which a GEMM's operands stream from the tier holding them: the framework's GEMV curve
        (its threads, its library reading a matrix), else the memory system's read figure; and whether it is
        that curve (``Roofline.gemv_curve``)."""
        gemv = self.streaming.blas.get(("gemv", precision))
        if gemv is None:
            others = [c for (op, _), c in self.streaming.blas.items() if op == "gemv"]
            gemv = max(others, key=lambda c: len(c.points), default=None)
        bandwidth, threads = self.streaming.bandwidth, self.streaming.threads_of("gemv")

        def gbps(nbytes: float, warm: bool) -> float:
            working_set = nbytes if warm else DRAM_BYTES
            if gemv is not None:
                return gemv.gbps(working_set)[0]
            found = bandwidth.gbps(working_set, "read", threads)
            return found[0] if found else math.inf
        return gbps, gemv is not None

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
        memory_anywhere = bool(self.streaming.bandwidth.stream or self.streaming.bandwidth.levels)
        memory = canonical_sorted(self.measured_precisions) if memory_anywhere else []
        for op in BLAS_OPS:
            own = {p for o, p in self.streaming.blas if o == op}
            precs = own | (set(canonical_sorted(self.measured_precisions)) if own else set())
            if STREAM_PROXY[op] in self.streaming.bandwidth.stream or self.streaming.bandwidth.levels:
                precs |= set(memory)
            if precs:
                have[op] = canonical_sorted(precs)
        for kernel in STREAM_KERNELS:
            if kernel in self.streaming.bandwidth.stream or self.streaming.bandwidth.levels:
                have[kernel] = memory
        for op in NN_OPERATIONS:  # measured layers, else the roofline of the precision's GEMMs
            precs = self.nn.precisions(op) | set(gemm)
            if precs:
                have[op] = canonical_sorted(precs)
        return have

    def describe(self) -> str:
        return "; ".join(f"{op} ({', '.join(precs)})" for op, precs in self.operations().items()) or "nothing"

    # -- predictions --
    def predict(self, operation: str, precision: str, mode: str = "back_to_back", *,
                resident_bytes: float = 0.0, **dims: int) -> Prediction:
        """One call's predicted time. ``resident_bytes``: the working set the call runs in when it is one of
        many (a layer's operations run in turn, each reading its own weights): its operands then stream from the
        tier holding that much, not from the one holding them alone. Default 0: the call on its own, repeated."""
        if operation not in OPERATIONS and operation not in NN_OPERATIONS:
            raise HwcalError(f"unknown operation {operation!r}; {self.name} predicts: {self.describe()}")
        if mode not in MODES:
            raise HwcalError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        have = self.operations()
        if operation not in have:
            raise HwcalError(f"{self.name} measured no {operation} (nor what predicts it); it has: {self.describe()}")
        if precision not in have[operation]:
            raise HwcalError(f"{self.name} did not measure {operation} in {precision!r}; "
                             f"{operation} precisions: {', '.join(have[operation])}")
        if operation in NN_OPERATIONS:
            pred = self._nn(operation, precision, dims)
        else:
            checked = check_dims(operation, dims)
            pred = (self._gemm(precision, checked, resident_bytes) if operation == "gemm"
                    else self._memory(operation, precision, checked, resident_bytes))
        if mode == "isolated":
            pred = self._isolated(pred)
        if flagged := sum(1 for p in pred.points if p.flagged):
            why = ("a layer: no series of neighbours to take its place" if operation in NN_OPERATIONS
                   else "no quiet neighbours on both sides to take their place")
            pred.notes.append(f"{flagged} of the {len(pred.points)} measured points behind it ran while something else "
                              f"did (flagged in the file; {why})")
        series = {(p.family, p.precision, p.source) for p in pred.points} if self.inputs.flagged_left_out else set()
        if left := [p for p in self.inputs.flagged_left_out if (p.family, p.precision, p.source) in series]:
            pred.notes.append(f"{len(left)} flagged point(s) of the series behind it left out for the quiet ones on "
                              f"both sides: {', '.join(p.label for p in left[:3])}{' ...' if len(left) > 3 else ''}")
        if self.energy is not None:
            pred.energy_j, pred.energy_basis = self.energy.joules(operation, precision, pred.seconds, pred.flops,
                                                                  pred.bytes)
        return pred

    def efficiency(self, operation: str, precision: str, mode: str = "back_to_back", **dims: int) -> float | None:
        return self.predict(operation, precision, mode, **dims).efficiency

    def _isolated(self, pred: Prediction) -> Prediction:
        """Back to back plus what synchronising each call costs over a stream of them (the isolated launch
        floor over the back-to-back one of the operation's family)."""
        # A convolution or attention call is one GEMM-like kernel launch (cuDNN, flash): the GEMM's floors.
        key = "gemm" if pred.operation in NN_OPERATIONS else floor_key(pred.operation, pred.dims.get("batch", 1))
        iso, b2b = self.inputs.isolated_floor_s, self.inputs.launch_floor_s
        if key not in iso and key == "batched_gemm":
            key = "gemm"
        if key not in iso or key not in b2b:
            have = ", ".join(sorted(iso)) or "none"
            raise HwcalError(f"{self.name} filed no isolated timing of {key} calls (isolated floors: {have}); "
                             "predict back_to_back, or calibrate again with this hwcal")
        extra = max(0.0, iso[key] - b2b[key])
        back_to_back_s = pred.seconds
        pred.seconds = max(iso[key], back_to_back_s + extra)
        pred.mode = "isolated"
        pred.floor_s = iso[key]
        pred.notes.append(f"isolated: back to back + {extra:.3g} s (the {key} isolated floor {iso[key]:.3g} s over its "
                          f"back-to-back floor {b2b[key]:.3g} s)")
        if pred.efficiency is not None:
            pred.efficiency *= back_to_back_s / pred.seconds
        return pred

    def _gemm(self, precision: str, dims: dict[str, int], resident_bytes: float = 0.0) -> Prediction:
        model = self.gemm_models[precision]
        b, m, n, k = dims["batch"], dims["m"], dims["n"], dims["k"]
        flops, bytes_moved = work_of("gemm", precision, dims)
        answer = model.predict(b, m, n, k, resident_bytes)
        seconds = answer.seconds
        peak = self.gemm_peak[precision]
        if seconds < flops / peak:
            answer.notes.append(f"capped at {peak / 1e9:.4g} GFLOPS, the best {precision} GEMM measured")
            seconds = flops / peak
        theoretical = self.inputs.peak_gflops_theoretical.get(precision)
        peak_gflops, ref = ((theoretical, f"theoretical {precision} peak {theoretical:.6g} GFLOPS") if theoretical
                            else (peak / 1e9, f"measured {precision} peak {peak / 1e9:.6g} GFLOPS"))
        return Prediction("gemm", precision, dims, seconds, flops, bytes_moved, answer.basis, answer.family,
                          answer.points, flops / seconds / 1e9 / peak_gflops, ref,
                          floor_of(self.inputs.launch_floor_s, "gemm", b), answer.notes, "back_to_back",
                          answer.warnings)

    def _nn(self, operation: str, precision: str, dims: dict[str, int]) -> Prediction:
        gemm = ((lambda p, d: self._gemm(p, check_dims("gemm", d)).seconds) if precision in self.gemm_models
                else None)
        return self._nn_prediction(operation, precision, self.nn.predict(operation, precision, dims, gemm))

    def _nn_prediction(self, operation: str, precision: str, a: NnAnswer) -> Prediction:
        """A conv or attention answer with its efficiency: against the peak where compute-bound, against the
        bandwidth of the tier its working set lives in where memory-bound (below the ridge)."""
        theoretical = self.inputs.peak_gflops_theoretical.get(precision)
        measured = max(self.gemm_peak.get(precision, 0.0), a.flops / a.seconds) / 1e9
        peak, peak_ref = ((theoretical, f"theoretical {precision} peak {theoretical:.6g} GFLOPS") if theoretical
                          else (measured, f"measured {precision} peak {measured:.6g} GFLOPS"))
        level = self.streaming.bandwidth.level_name(a.bytes)
        found = self.streaming.bandwidth.gbps(a.bytes, "triad", self.inputs.blas_threads)
        gbps = found[0] if found else None
        if level == "dram" and self.inputs.bandwidth_gbps_theoretical:
            gbps = self.inputs.bandwidth_gbps_theoretical
        if gbps and a.flops / a.bytes < peak / gbps:
            eff, ref = a.bytes / a.seconds / 1e9 / gbps, f"{level} bandwidth {gbps:.6g} GB/s (memory-bound)"
        else:
            eff, ref = a.flops / a.seconds / 1e9 / peak, peak_ref
        return Prediction(operation, precision, a.dims, a.seconds, a.flops, a.bytes, a.basis, a.family, a.points, eff,
                          ref, a.floor_s, a.notes)

    def _memory(self, operation: str, precision: str, dims: dict[str, int], resident_bytes: float = 0.0
                ) -> Prediction:
        flops, bytes_moved = work_of(operation, precision, dims)
        answer = self.streaming.predict(operation, precision, bytes_moved, resident_bytes)
        gbps = bytes_moved / answer.seconds / 1e9
        inputs = self.inputs
        if inputs.bandwidth_gbps_theoretical:
            ref_gbps = inputs.bandwidth_gbps_theoretical
            ref = f"theoretical DRAM {ref_gbps:.6g} GB/s"
        else:
            threads = self.streaming.threads_of(operation)
            found = self.streaming.bandwidth.reference(bytes_moved, PATTERN.get(operation, "triad"), threads)
            ref_gbps, source = found if found else (answer.best_gbps, "the best of the curve used")
            ref = f"{source}, {ref_gbps:.6g} GB/s (no theoretical figure filed)"
        return Prediction(operation, precision, dims, answer.seconds, flops, bytes_moved, answer.basis, answer.family,
                          answer.points, gbps / ref_gbps, ref, floor_of(inputs.launch_floor_s, operation),
                          answer.notes, "back_to_back", answer.warnings)


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


__all__ = ["BASES", "MEMORY_OPS", "MODES", "OPERATIONS", "PRECISIONS", "Prediction", "Predictor", "check_dims",
           "predictor_for", "predictor_of_document"]
