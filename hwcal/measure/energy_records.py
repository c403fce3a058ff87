"""What the energy family records: one window per case (idle, a GEMM per precision, a STREAM kernel), the
meter that measured them, or why no meter could be read. Plain data for the document stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The window rules: long enough for the sensor to update at least MIN_UPDATES times, and at least MIN_WINDOW_S
# (NVML's counter on some GPUs updates every 100 ms; a window of N updates is known to about 1/N).
MIN_WINDOW_S = 1.0
MIN_UPDATES = 10


@dataclass(kw_only=True)
class EnergyCase:
    """One measured window: the workload, its rate and the average power over it."""

    case: str  # "idle", "gemm" or "stream"
    label: str  # "idle", "bf16 8192x8192x8192 NT", "copy 1GiB"
    precision: str | None = None
    kernel: str | None = None  # the GEMM kernel, or the STREAM kernel's description
    shape: dict[str, int] | None = None  # a GEMM's m, n, k; a STREAM kernel's n (elements per array)
    layout: str | None = None  # a GEMM's operand layout (NN, NT, TN)
    seconds: float  # the window (workload start to end)
    launches: int = 0
    flops_per_s: float = 0.0  # counted FLOPs (OPs for integers) over the window
    bytes_per_s: float = 0.0  # DRAM bytes: STREAM's count, or a GEMM's operands and result once per call
    watts: float
    updates: int  # sensor updates inside the window
    update_hz: float
    domains_w: dict[str, float] = field(default_factory=dict)  # RAPL package/dram, Jetson rails
    max_error: float | None = None  # the check of the window's last result
    rest_s: float | None = None  # idle: seconds of rest before the window
    warm_s: float | None = None  # the warm-up before the window, where not the family's own (WARM_S)
    source: str | None = None  # where the window was run, where not in the energy family (a GEMM's sustained window)

    @property
    def joules(self) -> float:
        return self.watts * self.seconds


@dataclass
class EnergyRun:
    """The energy family's outcome. ``unavailable`` is the reason when no meter could be read (the run
    goes on without energy); otherwise ``meter`` describes the sensor and ``cases`` hold the windows."""

    unavailable: str | None = None
    meter: dict[str, Any] = field(default_factory=dict)
    window_s: float = MIN_WINDOW_S  # the window every loaded case targets (>= MIN_UPDATES sensor updates)
    cases: list[EnergyCase] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    budget_s: float = 0.0
    spent_s: float = 0.0
    failure: str | None = None  # the meter failed mid-run: cases after it skipped

    def case(self, case: str, name: str | None = None) -> EnergyCase | None:
        return next((c for c in self.cases if c.case == case and name in (None, c.precision, c.label.split()[0])),
                    None)
