"""Predictions of convolutions and attention from one calibration: ``Profile.predict("conv2d", precision,
n=, c=, h=, w=, k=, r=, s=, stride=, padding=, groups=)`` and ``predict("sdpa", precision, batch=, heads=,
seq_q=, seq_k=, head_dim=, causal=)``. Pure functions and a small class; ``hwcal.model.predict`` hands over.

The same basis rules as GEMM (``hwcal.model.predict``):

- the measured layers of the precision and family (conv: stem, pointwise, dense, grouped or depthwise,
  ``family_of``; attention: causal or full) are a curve along the roofline coordinate
  (``hwcal.model.curves``), so a layer between two measured ones is ``interpolated``, one outside them
  ``extrapolated``, a measured one ``measured``; the conv point of a layer is its fastest layout, the
  attention point the backend torch picks by default (else the fastest);
- never faster than measured: throughput capped at the best the precision measured for that operation;
- the launch floor bounds the time from below (``max``, never added);
- where the calibration timed no such layer in the precision, a ``roofline`` answer from what it did
  measure: a convolution as its implicit GEMM (groups x (N*P*Q) x (K/groups) x (C/groups*R*S), the GEMM curves)
  and never faster than its least traffic at the working set's tier bandwidth; attention as the math
  backend computes it, two batched GEMMs (QK^T, PV) plus the score matrix written and read.

FLOPs and bytes are counted as the benchmarks count them (``hwcal.backends.nn``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwcal.backends.nn import AttentionSpec, ConvSpec
from hwcal.errors import HwcalError
from hwcal.model.curves import Point, Tiers
from hwcal.model.layer_curves import Curve, Roofline, floor_estimate
from hwcal.precisions import PRECISIONS

NN_OPERATIONS = ("conv2d", "sdpa")
CONV_DIMS = ("n", "c", "h", "w", "k", "r", "s", "stride", "padding", "groups")
SDPA_DIMS = ("batch", "heads", "seq_q", "seq_k", "head_dim", "causal")
_DEFAULTS = {"stride": 1, "padding": 0, "groups": 1, "causal": False}


def element_bytes(precision: str) -> int:
    return max(1, PRECISIONS[precision].bits // 8)


def spec_of(operation: str, dims: Mapping[str, object]) -> ConvSpec | AttentionSpec:
    """The problem the dimensions name, or a one-line HwcalError (unknown, missing or bad dimensions)."""
    names = CONV_DIMS if operation == "conv2d" else SDPA_DIMS
    unknown = sorted(set(dims) - set(names))
    if unknown:
        raise HwcalError(f"{operation} takes {', '.join(names)}; got {', '.join(unknown)}")
    values = {**{k: v for k, v in _DEFAULTS.items() if k in names}, **dims}
    missing = [n for n in names if n not in values]
    if missing:
        raise HwcalError(f"{operation} needs {', '.join(missing)} (takes {', '.join(names)})")
    for name, value in values.items():
        if name == "causal":
            if value not in (True, False, 0, 1):
                raise HwcalError(f"sdpa: causal must be True or False, got {value!r}")
            values[name] = bool(value)
        elif isinstance(value, float) and value.is_integer():
            values[name] = int(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise HwcalError(f"{operation}: {name} must be a whole number, got {value!r}")
    try:
        return ConvSpec(**values) if operation == "conv2d" else AttentionSpec(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise HwcalError(str(exc)) from None


STEM_CHANNELS = 4  # an image's 3 (or 4) channels: a reduction too short for the kernels' tiles


def family_of(spec: ConvSpec | AttentionSpec) -> str:
    """The curve a problem is read from. Convolutions: depthwise, grouped, and dense split three ways that run
    at different efficiency for the same work (a stem's C/groups <= 4, a 1x1 pointwise, the rest); attention:
    causal or full."""
    if isinstance(spec, AttentionSpec):
        return "causal" if spec.causal else "full"
    if spec.kind != "dense":
        return spec.kind
    if spec.c <= STEM_CHANNELS:
        return "stem"
    return "pointwise" if spec.r == spec.s == 1 else "dense"


def _conv_points(doc: dict[str, Any]) -> list[Point]:
    """Per (precision, layer, batch) the fastest layout's time per call."""
    best: dict[tuple[Any, ...], Point] = {}
    for rec in (doc.get("conv") or {}).get("results") or []:
        if rec.get("verified") is False or rec.get("precision") not in PRECISIONS:
            continue
        try:
            spec = ConvSpec(*(int(rec[k]) for k in CONV_DIMS))
            seconds = float(rec["time_s"]["min"])
        except (KeyError, TypeError, ValueError):
            continue
        if not seconds > 0:
            continue
        point = Point(family_of(spec), rec["precision"], tuple((k, int(rec[k])) for k in CONV_DIMS), float(spec.flops),
                      float(spec.bytes(element_bytes(rec["precision"]))), seconds, f"conv ({rec.get('layout')})",
                      flagged=rec.get("flagged") is True)
        key = (rec["precision"], spec)
        if key not in best or seconds < best[key].seconds:
            best[key] = point
    return list(best.values())


def _sdpa_points(doc: dict[str, Any]) -> list[Point]:
    """Per (precision, shape) the default backend's time per call, else the fastest backend's."""
    chosen: dict[tuple[Any, ...], tuple[bool, Point]] = {}
    for rec in (doc.get("attention") or {}).get("results") or []:
        if rec.get("verified") is False or rec.get("precision") not in PRECISIONS:
            continue
        try:
            spec = AttentionSpec(int(rec["batch"]), int(rec["heads"]), int(rec["seq_q"]), int(rec["seq_k"]),
                                 int(rec["head_dim"]), bool(rec["causal"]))
            seconds = float(rec["time_s"]["min"])
        except (KeyError, TypeError, ValueError):
            continue
        if not seconds > 0:
            continue
        dims = (*((k, int(rec[k])) for k in SDPA_DIMS[:5]), ("causal", int(spec.causal)))
        point = Point(family_of(spec), rec["precision"], dims, float(spec.flops),
                      float(spec.bytes(element_bytes(rec["precision"]))), seconds, f"attention ({rec.get('variant')})",
                      flagged=rec.get("flagged") is True)
        is_default = rec.get("variant") == rec.get("default_backend")
        key = (rec["precision"], spec)
        have = chosen.get(key)
        if have is None or (is_default, -seconds) > (have[0], -have[1].seconds):
            chosen[key] = (is_default, point)
    return [p for _, p in chosen.values()]


def nn_points(doc: dict[str, Any]) -> dict[str, list[Point]]:
    """The measured points of a format-2 document, per operation (``conv2d``, ``sdpa``)."""
    return {"conv2d": _conv_points(doc), "sdpa": _sdpa_points(doc)}


@dataclass
class NnAnswer:
    """What ``NnModel.predict`` found; ``hwcal.model.predict`` turns it into a Prediction."""

    dims: dict[str, int]
    seconds: float
    flops: float
    bytes: float
    basis: str
    family: str
    points: list[Point]
    floor_s: float
    notes: list[str] = field(default_factory=list)


# A GEMM time from the Predictor: (precision, dims with m, n, k, batch) -> seconds.
GemmSeconds = Callable[[str, dict[str, int]], float]


class NnModel:
    """The conv and attention curves of one calibration, built once."""

    def __init__(self, points: dict[str, list[Point]], tiers: Tiers | None, launch_floor_s: float) -> None:
        self.tiers = tiers
        self.best: dict[tuple[str, str], float] = {}  # (operation, precision) -> best FLOP/s measured
        groups: dict[tuple[str, str, str], list[Point]] = {}
        for operation, pts in points.items():
            for p in pts:
                key = (operation, p.precision)
                self.best[key] = max(self.best.get(key, 0.0), p.flops / p.seconds)
                groups.setdefault((operation, p.precision, p.family), []).append(p)
        self.curves: dict[tuple[str, str, str], Curve] = {}
        for (operation, precision, fam), pts in groups.items():
            roofline = Roofline(0.0, self.best[operation, precision], tiers)
            roofline.floor_s = floor_estimate(pts, roofline, launch_floor_s)
            self.curves[operation, precision, fam] = Curve(pts, roofline)
        self.launch_floor_s = launch_floor_s

    def precisions(self, operation: str) -> set[str]:
        return {p for op, p in self.best if op == operation}

    def predict(self, operation: str, precision: str, dims: Mapping[str, object], gemm: GemmSeconds | None
                ) -> NnAnswer:
        spec = spec_of(operation, dims)
        fam = family_of(spec)
        eb = element_bytes(precision)
        flops, nbytes = float(spec.flops), float(spec.bytes(eb))
        filed = {k: int(getattr(spec, k)) for k in (CONV_DIMS if operation == "conv2d" else SDPA_DIMS)}
        curve = self.curves.get((operation, precision, fam))
        if curve is None:
            return self._roofline(operation, precision, spec, filed, gemm)
        seconds, basis, used = curve.at(flops, nbytes)
        notes: list[str] = []
        fastest = self.best[operation, precision]
        if seconds < flops / fastest:
            notes.append(f"capped at {fastest / 1e9:.4g} GFLOPS, the best {precision} {operation} measured")
            seconds = flops / fastest
        if seconds < self.launch_floor_s:
            notes.append(f"raised to the launch floor {self.launch_floor_s:.3g} s")
            seconds = self.launch_floor_s
        return NnAnswer(filed, seconds, flops, nbytes, basis, fam, used, curve.roofline.floor_s, notes)

    def _bandwidth_s(self, nbytes: float) -> float:
        return nbytes / (self.tiers.gbps(nbytes) * 1e9) if self.tiers is not None else 0.0

    def _roofline(self, operation: str, precision: str, spec: ConvSpec | AttentionSpec, filed: dict[str, int],
                  gemm: GemmSeconds | None) -> NnAnswer:
        if gemm is None:
            measured = ", ".join(f"{op} {p}" for op, p in sorted(self.best)) or "no conv or attention"
            raise HwcalError(f"no {operation} measured in {precision} and no {precision} GEMM to predict it from "
                             f"(this calibration has {measured})")
        eb = element_bytes(precision)
        if isinstance(spec, ConvSpec):
            g = spec.groups
            seconds = gemm(precision, {"m": spec.n * spec.p * spec.q, "n": spec.k // g, "k": spec.inner, "batch": g})
            rows = spec.n * spec.p * spec.q
            note = (f"no {family_of(spec)} conv measured in {precision}: its implicit GEMM, {g} x ({rows} x "
                    f"{spec.k // g} x {spec.inner}), and no faster than its least traffic at the tier's bandwidth")
        else:
            bh = spec.batch * spec.heads
            seconds = (gemm(precision, {"m": spec.seq_q, "n": spec.seq_k, "k": spec.head_dim, "batch": bh})
                       + gemm(precision, {"m": spec.seq_q, "n": spec.head_dim, "k": spec.seq_k, "batch": bh})
                       + self._bandwidth_s(2.0 * bh * spec.seq_q * spec.seq_k * eb))
            note = (f"no {family_of(spec)} attention measured in {precision}: as the math backend computes it, two "
                    "batched GEMMs (QK^T, PV) and the score matrix written and read (a causal mask does not halve it)")
        nbytes = float(spec.bytes(eb))
        seconds = max(seconds, self._bandwidth_s(nbytes), self.launch_floor_s)
        return NnAnswer(filed, seconds, float(spec.flops), nbytes, "roofline", family_of(spec), [], self.launch_floor_s,
                        [note])
