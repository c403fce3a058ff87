"""The state of one calibration session: options, backend, early-termination sweep and results.

One object per pytest session, kept in ``config.stash``; the plugin creates it, the benchmark body
adds to it, the builder reads it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from hwcal.backends import Backend, Support, make_backend
from hwcal.machine.sampler import MachineState
from hwcal.measure.layouts import LayoutChoice
from hwcal.measure.mamf_result import MamfResult
from hwcal.measure.records import BlasRecord, GemmRecord, LaunchFloor, MemorySweep, ShapeRecord
from hwcal.measure.sweep import Sweep, SweepPolicy


@dataclass(frozen=True)
class CalibrationOptions:
    """The resolved settings of one run (the plugin parses and resolves them)."""

    power_mode: str | None
    framework: str
    device: str
    frequency_mhz: int | None
    hardware_id: str | None
    registry: Path
    quick: bool
    sizes: list[int] | None
    min_gflops: float
    max_call_s: float
    dry_run: bool
    force: bool
    allow_partial: bool = False
    # --shapes: (batch, m, n, k) GEMM shapes replacing the shape families' default list
    shapes: list[tuple[int, int, int, int]] | None = None


@dataclass
class CalibrationSession:
    options: CalibrationOptions
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    t0: float = field(default_factory=time.perf_counter)
    records: list[GemmRecord] = field(default_factory=list)
    supports: dict[str, Support] = field(default_factory=dict)
    # Per precision, the operand layout chosen for it (hwcal.measure.layouts) and what each one reached.
    layouts: dict[str, LayoutChoice] = field(default_factory=dict)
    # Per precision, the max-achievable (MAMF) search's result (hwcal.measure.max_achievable).
    max_achievable: dict[str, MamfResult] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skips: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ran_gemm: bool = False
    ran_memory: bool = False  # a STREAM case ran (bench/test_memory.py)
    # BLAS1/BLAS2, GEMM shapes and launch floors (bench/test_blas.py, test_gemm_shapes.py, test_floors.py)
    blas_records: list[BlasRecord] = field(default_factory=list)
    shape_records: list[ShapeRecord] = field(default_factory=list)
    launch_floors: dict[str, LaunchFloor] = field(default_factory=dict)
    ran_operations: set[str] = field(default_factory=set)  # "blas", "gemm_shapes", "launch_floors"
    budget_spent_s: dict[str, float] = field(default_factory=dict)  # per time-budgeted sweep
    operation_supports: dict[tuple[str, str], Support] = field(default_factory=dict)  # (operation, precision)
    # Filled by other stages (memory sweep, clock sampling, preflight, GPU facts) for the builder.
    extra_metadata: dict[str, object] = field(default_factory=dict)
    # STREAM results (hwcal.measure.stream fills a MemorySweep; a dict is a section built elsewhere).
    memory: MemorySweep | dict[str, object] | None = None
    # Key facts detected at session start and the clock sampler (the plugin's preflight sets it).
    machine_state: MachineState | None = None
    _backend: Backend | None = None
    sweep: Sweep = field(init=False)

    def __post_init__(self) -> None:
        self.sweep = Sweep(SweepPolicy(min_gflops=self.options.min_gflops, max_call_s=self.options.max_call_s))

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = make_backend(self.options.framework, self.options.device)
        return self._backend

    def support(self, precision: str) -> Support:
        if precision not in self.supports:
            self.supports[precision] = self.backend.support(precision)
        return self.supports[precision]

    def sizes(self) -> list[int]:
        return self.options.sizes or self.backend.default_sizes(self.options.quick)

    def note_skip(self, precision: str, reason: str) -> None:
        self.skips.setdefault(precision, []).append(reason)

    def wall_time_s(self) -> float:
        return time.perf_counter() - self.t0
