"""The state of one calibration session: its options, the identity detected once at its start, the
run state the benchmark bodies share (backend, early-termination sweep, budgets, failures) and the
typed results they record.

One object per pytest session, kept in ``config.stash``; the plugin creates it and sets its identity,
the benchmark bodies add to ``results``, the builder (``hwcal.document.builder``) reads both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.backends import Backend, Support, make_backend
from hwcal.machine import KeyFacts
from hwcal.machine.energy import MeterChoice
from hwcal.machine.fma_probe import CeilingResult
from hwcal.machine.sampler import MachineState
from hwcal.measure.energy_records import EnergyRun
from hwcal.measure.layouts import LayoutChoice
from hwcal.measure.memsys import MemorySystem
from hwcal.measure.nn_records import NnRecord, NnStatus
from hwcal.measure.records import (
    BlasRecord,
    GemmRecord,
    LaunchFloor,
    MaxAchievableRecord,
    MemorySweep,
    ShapeRecord,
)
from hwcal.measure.schedule import RunSchedule
from hwcal.measure.sweep import Sweep, SweepPolicy
from hwcal.measure.watch import InterferenceLog, Watch
from hwcal.naming import CalibrationKey


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
    file_disturbed: bool = False  # a disturbed run may replace a quieter calibration (succession.held_back)
    # --shapes: (batch, m, n, k) GEMM shapes replacing the shape families' default list
    shapes: list[tuple[int, int, int, int]] | None = None
    # --full: every layer, layout and float precision of the convolution, attention and fused-op grids
    full: bool = False
    # --kernel-names: the CUDA kernels of each NN case through the profiler (its first start costs ~5 s)
    kernel_names: bool = False
    memory_s: float | None = None  # --memory-seconds: the memory system's budget (its default when None)
    target_s: float | None = None  # --target-seconds: the run's wall-clock target (0: none; None: the default)


@dataclass(frozen=True)
class RunIdentity:
    """What the run is filed as, detected once at session start from one source (the session's Sources,
    NVML, the backend), each value with where it came from.

    ``facts`` are the key facts after --power-mode / --frequency-mhz / --hardware-id (their sources say
    so); ``detected_hardware_id`` is the machine's own id before --hardware-id. ``spec`` is the folder's
    spec.json when there is one, else None (the first calibration files a new one)."""

    key: CalibrationKey
    facts: KeyFacts
    detected_hardware_id: str
    host: dict[str, Any]
    gpu: dict[str, Any] | None
    blas: list[dict[str, object]]
    framework_facts: dict[str, object]
    device: str
    precisions: list[str]
    spec: dict[str, Any] | None


@dataclass
class Results:
    """Every result of one run, one typed record per kind of measurement, and what the run says of them
    (per-precision support, skipped sizes, warnings): all the builder needs from the benchmarks."""

    gemm: list[GemmRecord] = field(default_factory=list)
    shapes: list[ShapeRecord] = field(default_factory=list)
    blas: list[BlasRecord] = field(default_factory=list)
    floors: dict[str, LaunchFloor] = field(default_factory=dict)  # back to back
    isolated_floors: dict[str, LaunchFloor] = field(default_factory=dict)  # each call synchronised
    memory: MemorySweep | None = None
    memory_system: MemorySystem | None = None  # cache tiers, latency, all-core STREAM (hwcal.measure.memory_system)
    # Per precision, the operand layout chosen (hwcal.measure.layouts) and the max-achievable search (GPUs).
    layouts: dict[str, LayoutChoice] = field(default_factory=dict)
    max_achievable: dict[str, MaxAchievableRecord] = field(default_factory=dict)
    compute_ceiling: CeilingResult | None = None  # CPUs: the measured FMA ceiling on all cores
    # Convolution, conv+BN+ReLU, attention and fused ops (hwcal.measure.nn_*), and what they did not time.
    nn: list[NnRecord] = field(default_factory=list)
    nn_status: list[NnStatus] = field(default_factory=list)
    energy: EnergyRun | None = None  # the energy family's windows, or why no meter could be read
    # What the interference watch saw and did (hwcal.measure.watch); None when no watch ran.
    interference: InterferenceLog | None = None
    supports: dict[str, Support] = field(default_factory=dict)
    skips: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def timed_anything(self) -> bool:
        """Whether any case filed a figure (False when every case was skipped or --benchmark-disable)."""
        stream = self.memory.records if self.memory is not None else []
        system = self.memory_system
        tiers = bool(system.bandwidth or system.latency or system.multicore or system.gpu) if system else False
        return bool(self.gemm or stream or tiers or self.blas or self.shapes or self.floors or self.isolated_floors
                    or self.max_achievable or self.nn)


@dataclass
class CalibrationSession:
    options: CalibrationOptions
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    t0: float = field(default_factory=time.perf_counter)
    results: Results = field(default_factory=Results)
    identity: RunIdentity | None = None
    # The preflight report (``PreflightReport.as_dict()``), filed as metadata.preflight.
    preflight: dict[str, Any] | None = None
    # Run state shared by the benchmark bodies, not filed as such.
    families_run: set[str] = field(default_factory=set)  # operation families a case of ran (hwcal.measure.families)
    failures: dict[str, str] = field(default_factory=dict)
    rechecked: set[str] = field(default_factory=set)  # figures a cross-check had measured again (once each)
    budget_spent_s: dict[str, float] = field(default_factory=dict)  # per time-budgeted sweep
    operation_supports: dict[tuple[str, str], Support] = field(default_factory=dict)  # (operation, precision)
    # Key facts detected at session start and the clock sampler (the plugin's preflight sets it).
    machine_state: MachineState | None = None
    # Watches every timed case for other work on the machine (the plugin sets it at session start).
    watch: Watch | None = None
    # The run's energy meter, found once (hwcal.measure.energy.run_meter): the max-achievable search meters its
    # sustained windows with it before the energy family runs.
    energy_meter: MeterChoice | None = None
    # The run's wall-clock target shared out among the budgeted families (the plugin sets it after collection).
    schedule: RunSchedule | None = None
    # The B operands a CPU's warm GEMM shapes share across their Ms (``hwcal.measure.shape_weights``), once made.
    shape_weights: Any = None
    _grouped: dict[str, tuple[int, list[str]]] = field(default_factory=dict)  # warn_grouped: head -> (index, items)
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
        supports = self.results.supports
        if precision not in supports:
            supports[precision] = self.backend.support(precision)
        return supports[precision]

    def sizes(self) -> list[int]:
        return self.options.sizes or self.backend.default_sizes(self.options.quick)

    def family_budget(self, family: str, nominal_s: float) -> float:
        """A budgeted family's seconds: its nominal budget, or the schedule's share of the run's target."""
        return self.schedule.budget(family, nominal_s) if self.schedule is not None else nominal_s

    def note_skip(self, precision: str, reason: str) -> None:
        self.results.skips.setdefault(precision, []).append(reason)

    def warn(self, message: str) -> None:
        """A warning the calibration files (a figure missing or doubtful), in the order raised."""
        self.results.warnings.append(message)

    def warn_grouped(self, head: str, item: str) -> None:
        """One warning per ``head`` naming every ``item`` (``head (3): a, b, c``), where it was first raised:
        a spent budget leaves out a precision's remaining cases, and one warning each buried the others
        (35 of a numpy run's 84)."""
        where, items = self._grouped.setdefault(head, (len(self.results.warnings), []))
        if not items:
            self.results.warnings.append("")
        items.append(item)
        self.results.warnings[where] = f"{head}: {items[0]}" if len(items) == 1 else \
            f"{head} ({len(items)}): {', '.join(items)}"

    def wall_time_s(self) -> float:
        return time.perf_counter() - self.t0
