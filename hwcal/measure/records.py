"""What the benchmark bodies record: one measured and verified case each, as plain data.

The GEMM body fills ``GemmRecord``s and the STREAM body a ``MemorySweep``; the document stage reads
them. STREAM's counting and validation rules live here because both the body and the analysis use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwcal.machine.caches import CacheInfo

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


@dataclass
class StreamRecord:
    """One measured and validated (kernel, array size) case."""

    kernel: str
    n: int
    element_bytes: int
    bytes_per_pass: int  # STREAM's count
    arrays_moved: int  # array traversals the implementation really makes (numpy's triad: 5)
    passes_per_round: int
    rounds: int
    warmup_rounds: int
    time_s: dict[str, float]
    gbps_best: float
    gbps_median: float
    cv: float
    max_rel_error: float
    method: str
    device_event_ratio: float | None = None

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


@dataclass
class GemmRecord:
    """One measured and verified GEMM case."""

    precision: str
    n: int
    flops_per_round: int
    launches_per_round: int
    rounds: int
    warmup_rounds: int
    time_s: dict[str, float]
    gflops_best: float
    gflops_median: float
    cv: float
    max_error: float
    tolerance: float
    verify_method: str
    kernel: str
    modes: dict[str, object] = field(default_factory=dict)
    operand_range: float | None = None
    accumulator_wraps: bool = False
    device_event_ratio: float | None = None
    # Whether the clock fell below 75% of the ceiling while this case ran; None when not sampled.
    throttled: bool | None = None
    # Operand layout as BLAS names it (NN, NT, TN): the fastest the framework offers, chosen per precision.
    layout: str = "NN"



@dataclass
class BlasRecord:
    """One measured and verified BLAS1/BLAS2 case (dot, axpy, scal, gemv); times are per call."""

    operation: str
    precision: str
    n: int
    m: int | None  # gemv's rows
    flops: int  # per call, as BLAS counts
    bytes: int  # per call: the elements BLAS counts x element size (minimal traffic)
    element_bytes: int
    launches_per_round: int
    rounds: int
    warmup_rounds: int
    time_s: dict[str, float]
    gflops_best: float
    gflops_median: float
    gbps_best: float
    gbps_median: float
    cv: float
    max_error: float
    tolerance: float
    verify_method: str
    kernel: str
    threads: int | None
    llc_bytes: int  # last-level cache (a GPU: L2) the sizes are planned against
    device_event_ratio: float | None = None

    @property
    def at_dram(self) -> bool:
        """STREAM's rule for this operation's data: at least 4x the last-level caches."""
        return self.bytes >= STREAM_ARRAY_FACTOR * self.llc_bytes


@dataclass
class ShapeRecord:
    """One measured and verified GEMM of a shape family (small_m, proj_up, proj_down, batched); per call."""

    family: str
    precision: str
    m: int
    n: int
    k: int
    batch: int
    layout: str
    flops: int  # per call: 2*B*M*N*K
    launches_per_round: int
    rounds: int
    warmup_rounds: int
    time_s: dict[str, float]
    gflops_best: float
    gflops_median: float
    cv: float
    max_error: float
    tolerance: float
    verify_method: str
    kernel: str
    source: str = "default"  # or "--shapes"
    modes: dict[str, object] = field(default_factory=dict)
    device_event_ratio: float | None = None


@dataclass
class LaunchFloor:
    """The time of an operation's smallest call: back-to-back calls, one synchronisation, / calls."""

    operation: str
    seconds_min: float
    seconds_median: float
    calls: int  # per round
    rounds: int
    method: str
    framework: str
    device: str
    precision: str
