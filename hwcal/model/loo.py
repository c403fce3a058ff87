"""Leave-one-out validation of ``Profile.predict``: each measured point predicted from all the others.

A point is removed from the inputs (so from its curve, the precision's peak and the curve's floor),
the whole predictor is rebuilt, and the point's operation and dimensions are asked for. What stays in:
the cache-tier figures of ``memory.levels`` (a summary of the STREAM sweep) and the launch floors.

Errors are relative, |predicted - measured| / measured, per call. The two ends of each curve are
extrapolations when left out; they are counted (``all``) and also reported apart (``interior``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwcal.errors import HwcalError
from hwcal.model.curves import Point, quantile
from hwcal.model.inputs import SQUARE, Inputs
from hwcal.model.predict import Predictor


@dataclass(frozen=True)
class Trial:
    operation: str  # gemm, gemm:small_m, ..., dot, ..., copy, ...
    point: Point
    predicted_s: float
    basis: str
    interior: bool

    @property
    def error(self) -> float:
        return abs(self.predicted_s - self.point.seconds) / self.point.seconds

    def summary(self) -> dict[str, Any]:
        return {"operation": self.operation, "precision": self.point.precision, "shape": self.point.label,
                "measured_s": self.point.seconds, "predicted_s": self.predicted_s, "error": round(self.error, 5),
                "basis": self.basis, "interior": self.interior}


def _operation(point: Point) -> tuple[str, str, dict[str, int]]:
    """(group name, operation to ask for, its dimensions) of a measured point."""
    dims = dict(point.dims)
    if point.source in ("gemm", "gemm_shapes"):
        return ("gemm" if point.family == SQUARE else f"gemm:{point.family}"), "gemm", dims
    return point.family, point.family, dims


def _interior(point: Point, pool: list[Point]) -> bool:
    same = [p for p in pool if p.family == point.family and p.precision == point.precision]
    size = point.flops + point.bytes
    return any(p.flops + p.bytes < size for p in same) and any(p.flops + p.bytes > size for p in same)


def leave_one_out(inputs: Inputs) -> list[Trial]:
    trials: list[Trial] = []
    for pool in (inputs.gemm, inputs.blas, inputs.stream):
        for point in pool:
            group, operation, dims = _operation(point)
            try:
                pred = Predictor(inputs.without(point)).predict(operation, point.precision, "back_to_back", **dims)
            except HwcalError:
                continue  # the only point of its precision: nothing left to predict it from
            trials.append(Trial(group, point, pred.seconds, pred.basis, _interior(point, pool)))
    return trials


def report(trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """Per operation: count, median, p90 and max relative error, over all points and interior ones."""
    out: dict[str, dict[str, Any]] = {}
    for op in dict.fromkeys(t.operation for t in trials):
        errs = [t.error for t in trials if t.operation == op]
        inner = [t.error for t in trials if t.operation == op and t.interior]
        worst = max((t for t in trials if t.operation == op), key=lambda t: t.error)
        out[op] = {"points": len(errs), "median": quantile(errs, 0.5), "p90": quantile(errs, 0.9), "max": max(errs),
                   "interior_points": len(inner), "interior_median": quantile(inner, 0.5) if inner else None,
                   "interior_p90": quantile(inner, 0.9) if inner else None,
                   "worst": f"{worst.point.precision} {worst.point.label}"}
    return out
