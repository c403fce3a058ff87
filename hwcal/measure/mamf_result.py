"""What the max-achievable (MAMF) search of one precision found, as plain data for the document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MamfResult:
    """The best shape and what it reached, timed two ways: burst (per call, CUDA events, L2 flushed and the
    output re-written before each call, as mamf-finder times) and sustained (back-to-back launches for
    ``sustained_s`` after a warm-up, one event pair around them). ``peak`` names the figure filed as the
    precision's peak."""

    precision: str
    m: int
    n: int
    k: int
    layout: str
    kernel: str
    burst_mean_gflops: float
    burst_median_gflops: float
    burst_max_gflops: float
    burst_iterations: int
    sustained_gflops: float | None
    sustained_s: float | None
    sustained_launches: int | None
    warmup_s: float | None
    verified: bool
    max_error: float
    tolerance: float
    shapes_tried: int
    search_s: float
    budget_s: float
    clock_mhz: dict[str, Any] = field(default_factory=dict)
    power_w: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    rest_s: float = 0.0
    peak: str = "burst_mean"

    @property
    def peak_gflops(self) -> float:
        return self.burst_mean_gflops

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None, digits: int = 5) -> float | None:
            return float(f"{x:.{digits}g}") if x is not None else None

        return {
            "shape": {"m": self.m, "n": self.n, "k": self.k}, "layout": self.layout, "kernel": self.kernel,
            "peak": self.peak, "peak_gflops": r(self.peak_gflops),
            "burst": {"mean_gflops": r(self.burst_mean_gflops), "median_gflops": r(self.burst_median_gflops),
                      "max_gflops": r(self.burst_max_gflops), "iterations": self.burst_iterations,
                      "rest_s": self.rest_s,
                      "method": "after rest_s idle (a power-capped clock follows recent power), warm-up calls, "
                                "then CUDA events around each call; before each call the L2 is flushed (256 MiB "
                                "written) and the output re-written from a random matrix (mamf-finder's method); "
                                "mean, median and best call over the iterations"},
            "sustained": {"gflops": r(self.sustained_gflops), "seconds": r(self.sustained_s, 4),
                          "launches": self.sustained_launches, "warmup_s": r(self.warmup_s, 3),
                          "method": "back-to-back launches timed by one CUDA event pair, after a warm-up at the "
                                    "same shape: the rate a long GEMM-bound phase holds at the power cap"},
            "verified": self.verified, "max_error": float(f"{self.max_error:.3g}"),
            "tolerance": float(f"{self.tolerance:.3g}"),
            "search": {"shapes_tried": self.shapes_tried, "seconds": r(self.search_s, 4), "budget_s": self.budget_s,
                       "method": "coarse grid of tile-multiple shapes (small M with large N and K included), then "
                                 "refinement around the best three, each timed by the burst method; the best "
                                 "mean is measured again with more iterations"},
            "clock_mhz": self.clock_mhz, "power_w": self.power_w, "skipped": self.skipped,
        }
