"""What the benchmark bodies record: one typed record per kind of measurement, as plain data.

Every timed case shares ``TimedRecord`` (rounds and their statistics), every verified computation
``CaseRecord`` (precision, kernel, the check); the session's ``Results`` holds them and the document
stage reads them. STREAM's counting and validation rules live here because both the body and the analysis use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwcal.machine.caches import CacheInfo

if TYPE_CHECKING:
    from hwcal.measure.back_to_back import Window

KERNELS = ("copy", "scale", "add", "triad")
# STREAM counts the arrays a kernel names: copy/scale read one and write one, add/triad read two and
# write one. Write-allocate traffic is not counted (STREAM's rule), so real traffic is higher.
ARRAYS_COUNTED = {"copy": 2, "scale": 2, "add": 3, "triad": 3}
STREAM_SCALAR = 3.0  # STREAM's ``scalar``
STREAM_INITIAL = (1.0, 2.0, 0.0)  # a, b, c before the first kernel (STREAM fills 1, 2, 0)
STREAM_ARRAY_FACTOR = 4  # STREAM: each array at least 4x the sum of the last-level caches
# STREAM's validation thresholds (epsilon per element type) for the average relative error.
STREAM_EPSILON = {8: 1e-13, 4: 1e-6}


def stream_bytes(kernel: str, n: int, element_bytes: int) -> int:
    """Bytes one pass of ``kernel`` moves as STREAM counts them (arrays named x n x element size)."""
    try:
        return ARRAYS_COUNTED[kernel] * n * element_bytes
    except KeyError:
        raise ValueError(f"unknown STREAM kernel {kernel!r}; one of {', '.join(KERNELS)}") from None


def after_kernel(kernel: str, values: tuple[float, float, float], scalar: float = STREAM_SCALAR
                 ) -> tuple[float, float, float]:
    """(a, b, c) after ``kernel`` ran once or many times: each kernel alone is idempotent, so repeated
    rounds leave the values the single pass leaves (the recurrence STREAM's checker replays)."""
    a, b, c = values
    if kernel == "copy":
        return a, b, a
    if kernel == "scale":
        return a, scalar * c, c
    if kernel == "add":
        return a, b, a + b
    if kernel == "triad":
        return b + scalar * c, b, c
    raise ValueError(f"unknown STREAM kernel {kernel!r}; one of {', '.join(KERNELS)}")


def relative_error(extremes: tuple[float, float], expected: float) -> float:
    """Largest relative deviation of an array whose (min, max) are given from its one expected value."""
    scale = abs(expected) if expected else 1.0
    return max(abs(extremes[0] - expected), abs(extremes[1] - expected)) / scale


def validation_error(extremes: list[tuple[float, float]], expected: tuple[float, float, float]) -> float:
    """Largest relative error over a, b and c: every element is checked, since all lie in [min, max]."""
    return max(relative_error(x, e) for x, e in zip(extremes, expected, strict=True))


@dataclass(kw_only=True)
class TimedRecord:
    """What every timed case files about its timing: the harness's rounds (``hwcal.measure.timing``)."""

    rounds: int
    warmup_rounds: int
    time_s: dict[str, float]  # pytest-benchmark's statistics of the rounds (per call where a record says so)
    cv: float
    device_event_ratio: float | None = None  # GPUs: wall-clock round / CUDA-event round (evidence of sync)
    case: str = ""  # the pytest id that measured it: how the watch's log names it (a flag finds its figure so)


@dataclass(kw_only=True)
class CaseRecord(TimedRecord):
    """A timed case that computes in a precision and is verified: its kernel, launches and check."""

    precision: str
    kernel: str
    launches_per_round: int
    max_error: float
    tolerance: float
    verify_method: str


@dataclass(kw_only=True)
class StreamRecord(TimedRecord):
    """One measured and validated (kernel, array size) case."""

    kernel: str
    n: int
    element_bytes: int
    bytes_per_pass: int  # STREAM's count
    arrays_moved: int  # array traversals the implementation really makes (numpy's triad: 5)
    passes_per_round: int
    gbps_best: float
    gbps_median: float
    max_rel_error: float
    method: str

    @property
    def array_bytes(self) -> int:
        return self.n * self.element_bytes

    @property
    def working_set_bytes(self) -> int:
        return self.bytes_per_pass


@dataclass
class MemorySweep:
    """What the STREAM benchmarks of one session found, as plain data for the builder."""

    caches: CacheInfo
    device: str
    threads: int | None
    element_bytes: int = 8
    dtype: str = "fp64"
    budget_s: float = 0.0
    spent_s: float = 0.0
    records: list[StreamRecord] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)
    skips: list[str] = field(default_factory=list)

    @property
    def stream_min_array_bytes(self) -> int:
        """STREAM's rule: each array at least 4x the sum of the last-level caches."""
        return STREAM_ARRAY_FACTOR * self.caches.llc_total_bytes


@dataclass(kw_only=True)
class GemmRecord(CaseRecord):
    """One measured and verified square GEMM case; ``time_s`` is per round of ``launches_per_round`` calls."""

    n: int
    flops_per_round: int
    gflops_best: float
    gflops_median: float
    modes: dict[str, object] = field(default_factory=dict)
    operand_range: float | None = None
    accumulator_wraps: bool = False
    # Whether the clock fell below 75% of the ceiling while this case ran; None when not sampled.
    throttled: bool | None = None
    # Operand layout as BLAS names it (NN, NT, TN): the fastest the framework offers, chosen per precision.
    layout: str = "NN"


@dataclass(kw_only=True)
class BlasRecord(CaseRecord):
    """One measured and verified BLAS1/BLAS2 case (dot, axpy, scal, gemv); times are per call."""

    operation: str
    n: int
    m: int | None  # gemv's rows
    flops: int  # per call, as BLAS counts
    bytes: int  # per call: the elements BLAS counts x element size (minimal traffic)
    element_bytes: int
    gflops_best: float
    gflops_median: float
    gbps_best: float
    gbps_median: float
    threads: int | None
    llc_bytes: int  # last-level cache (a GPU: L2) the sizes are planned against
    cpu_busy: float | None = None  # CPUs: process CPU seconds per wall second over the rounds (threads busy)

    @property
    def at_dram(self) -> bool:
        """STREAM's rule for this operation's data: at least 4x the last-level caches."""
        return self.bytes >= STREAM_ARRAY_FACTOR * self.llc_bytes

    @property
    def in_place(self) -> bool:
        """scal (x = a x) and axpy (y = a x + y) write back what they read."""
        return self.operation in ("scal", "axpy")

    @property
    def working_set_bytes(self) -> int:
        """Distinct bytes a call touches, which decide the tier it runs from: ``bytes`` counts scal's n
        elements twice (read, written back) and axpy's y twice, but they occupy the cache once."""
        distinct = {"dot": 2 * self.n, "axpy": 2 * self.n, "scal": self.n}.get(self.operation)
        return distinct * self.element_bytes if distinct is not None else self.bytes


@dataclass(kw_only=True)
class ShapeRecord(CaseRecord):
    """One measured and verified GEMM of a shape family (small_m, proj_up, proj_down, batched, pow2_n); per call."""

    family: str
    m: int
    n: int
    k: int
    batch: int
    layout: str
    flops: int  # per call: 2*B*M*N*K
    gflops_best: float
    gflops_median: float
    source: str = "default"  # or "--shapes"
    modes: dict[str, object] = field(default_factory=dict)
    # "warm": the same operands every call (they stay in the cache tier that holds them); "rotated": operand
    # sets rotated so no call finds the last one's in the GPU's L2. None: not said (files before 2026-12).
    operands: str | None = None
    cpu_busy: float | None = None  # CPUs: process CPU seconds per wall second over the rounds (threads busy)


@dataclass
class LaunchFloor:
    """The time of an operation's smallest call, per call: ``back_to_back`` (calls in a stream, one
    synchronisation per round) or ``isolated`` (each call synchronised)."""

    operation: str
    seconds_min: float
    seconds_median: float
    calls: int  # per round
    rounds: int
    method: str
    framework: str
    device: str
    precision: str
    timing: str = "back_to_back"
    case: str = ""  # the pytest id that measured it (as TimedRecord's)


@dataclass
class MaxAchievableRecord:
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
    rest_between_s: float | None = None
    # One entry per burst (mean GFLOPS, median SM clock and board power over it): the peak is their median.
    bursts: list[dict[str, float | None]] = field(default_factory=list)
    peak: str = "median_of_burst_means"
    # The sustained window metered by the run's energy meter: the energy family files it as this precision's
    # GEMM case (hwcal.measure.energy) instead of running the shape again.
    energy_window: Window | None = None

    @property
    def peak_gflops(self) -> float:
        means = sorted(float(b["mean_gflops"] or 0.0) for b in self.bursts)
        if not means:
            return self.burst_mean_gflops
        mid = len(means) // 2
        return means[mid] if len(means) % 2 else (means[mid - 1] + means[mid]) / 2

    @property
    def burst_spread(self) -> float | None:
        """(best - worst) / median of the burst means: how far repeated bursts of one shape agree."""
        means = [float(b["mean_gflops"] or 0.0) for b in self.bursts]
        return (max(means) - min(means)) / self.peak_gflops if len(means) > 1 and self.peak_gflops else None

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None, digits: int = 5) -> float | None:
            return float(f"{x:.{digits}g}") if x is not None else None

        return {
            "shape": {"m": self.m, "n": self.n, "k": self.k}, "layout": self.layout, "kernel": self.kernel,
            "peak": self.peak, "peak_gflops": r(self.peak_gflops),
            "burst": {"mean_gflops": r(self.burst_mean_gflops), "median_gflops": r(self.burst_median_gflops),
                      "max_gflops": r(self.burst_max_gflops), "iterations": self.burst_iterations,
                      "rest_s": self.rest_s,
                      **({"rest_between_s": self.rest_between_s} if self.rest_between_s is not None else {}),
                      **({"bursts": [{k: (r(v) if k == "mean_gflops" else v) for k, v in b.items()}
                                     for b in self.bursts],
                          "spread": r(self.burst_spread, 3) if self.burst_spread is not None else None}
                         if self.bursts else {}),
                      "method": "the first burst after rest_s idle (a power-capped clock follows recent power), each "
                                "later one after rest_between_s (a burst is tens of ms of full power), warm-up "
                                "calls, then CUDA events around each call; before each call the L2 is flushed (256 "
                                "MiB written) and the output re-written from a random matrix (mamf-finder's "
                                "method); the peak is the median of the bursts' means, the spread (best - worst) / "
                                "median; mean, median and best call over all the bursts' calls"},
            "sustained": {"gflops": r(self.sustained_gflops), "seconds": r(self.sustained_s, 4),
                          "launches": self.sustained_launches, "warmup_s": r(self.warmup_s, 3),
                          "method": "back-to-back launches in chunks of ~50 ms, one synchronisation after each, timed "
                                    "by the host clock, after a warm-up at the same shape: the rate a long GEMM-bound "
                                    "phase holds at the power cap; with an energy meter the window lasts until it "
                                    "has updated 10 times (>= 1 s) and is this precision's energy case too"},
            "verified": self.verified, "max_error": float(f"{self.max_error:.3g}"),
            "tolerance": float(f"{self.tolerance:.3g}"),
            "search": {"shapes_tried": self.shapes_tried, "seconds": r(self.search_s, 4), "budget_s": self.budget_s,
                       "method": "coarse grid of tile-multiple shapes (small M with large N and K included), then "
                                 "refinement around the best three, each timed by the burst method; the best "
                                 "mean is measured again with more iterations"},
            "clock_mhz": self.clock_mhz, "power_w": self.power_w, "skipped": self.skipped,
        }
