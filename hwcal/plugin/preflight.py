"""The preflight: run every check (``hwcal.plugin.checks``) at session start, after detecting the key and
setting up the clock sampler and the interference watch. A failed check stops the run with what to do,
unless ``--force``, which is recorded; every result goes into ``metadata.preflight``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hwcal.backends import Backend
from hwcal.machine.host_share import HostShareProbe
from hwcal.machine.interference import Monitor
from hwcal.machine.launch_share import LaunchProbe
from hwcal.machine.sources import Sources
from hwcal.measure.session import CalibrationSession
from hwcal.measure.watch import Watch
from hwcal.plugin.checks import CHECKS, FAILED, PASSED, SKIPPED, WARNING, CheckResult, PreflightContext
from hwcal.plugin.clocks import device_index, start_machine_state


@dataclass
class PreflightReport:
    checks: list[CheckResult]
    forced: bool
    duration_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == FAILED]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def stops_run(self) -> bool:
        return bool(self.failed) and not self.forced

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "forced": self.forced, "checks": [c.as_dict() for c in self.checks],
                "duration_s": round(self.duration_s, 3)}

    def failure_message(self) -> str:
        lines = ["hwcal preflight failed, no benchmark run:"]
        lines += [f"  {c.name}: {c.message}" + (f" -> {c.advice}" if c.advice else "") for c in self.failed]
        lines.append("Fix the above, or pass --force to calibrate anyway (recorded in the calibration).")
        return "\n".join(lines)

    def summary_lines(self) -> list[str]:
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in (PASSED, WARNING, FAILED, SKIPPED)}
        head = (f"hwcal preflight: {counts[PASSED]} passed, {counts[WARNING]} warning(s), {counts[FAILED]} failed, "
                f"{counts[SKIPPED]} skipped ({self.duration_s:.2f} s with detection)")
        if self.failed and self.forced:
            head += "; --force given: calibrating anyway, recorded"
        lines = [head]
        # A failure that stops the run is told once, in the error message (failure_message).
        shown = (WARNING, FAILED) if self.forced else (WARNING,)
        for c in self.checks:
            if c.status in shown:
                lines.append(f"  {c.status} {c.name}: {c.message}" + (f" -> {c.advice}" if c.advice else ""))
        return lines

    def warnings_for_document(self) -> list[str]:
        """What a reader of the calibration must know: failed checks overridden by --force."""
        return [f"preflight check {c.name} failed and --force was given: {c.message}" for c in self.failed]


def run_preflight(ctx: PreflightContext, force: bool) -> PreflightReport:
    """Run every check; a check that breaks reports a warning instead of stopping the run."""
    t0 = time.perf_counter()
    results = []
    for check in CHECKS:
        try:
            results.append(check.run(ctx))
        except Exception as exc:  # a bug in one check must not hide the others or crash the run
            results.append(CheckResult(check.name, WARNING, f"check could not run: {type(exc).__name__}: {exc}"))
    return PreflightReport(results, forced=force, duration_s=time.perf_counter() - t0)


def launch_probe(backend: Backend) -> LaunchProbe | None:
    """GPU runs: a launch look on the backend's own add floor call (16 elements), seeded now. CPU runs whose
    framework splits a call over threads (torch): a fork-join look on such a call; whose BLAS alone does
    (numpy on a threaded OpenBLAS): a thread-pool look on a GEMM it splits. Other CPU runs have none (every CPU
    run has a call look besides, ``call_probe``)."""
    if backend.device_type == "gpu":
        add = backend.floor_calls().get("add")
        if add is None:
            return None
        backend.warm_up()
        probe = LaunchProbe(add.launch, backend.synchronize, f"{backend.framework} {add.description}")
    elif (forked := backend.fork_join_call()) is not None:
        probe = LaunchProbe(forked.launch, backend.synchronize, f"{backend.framework} {forked.description}",
                            fork_join=True)
    elif (pooled := backend.pool_call()) is not None:
        probe = LaunchProbe(pooled.launch, backend.synchronize, f"{backend.framework} {pooled.description}",
                            pool=True)
    else:
        return None
    probe.seed()
    return probe


def call_probe(backend: Backend) -> LaunchProbe | None:
    """CPU runs: a call look on the backend's own add floor call (16 elements, one thread), seeded now: every
    tiny call's dispatch slows together in the host's slow episodes, which no other look sees."""
    add = backend.floor_calls().get("add") if backend.device_type == "cpu" else None
    if add is None:
        return None
    probe = LaunchProbe(add.launch, backend.synchronize, f"{backend.framework} {add.description}", single=True)
    probe.seed()
    return probe


def preflight_session(cal: CalibrationSession, src: Sources | None = None) -> PreflightReport:
    """Session start: detect the key, set up clock sampling, run the checks; results go into the session.

    The caller (the plugin) stops the run when ``report.stops_run``.
    """
    t0 = time.perf_counter()
    state = start_machine_state(cal, src)
    device_type = cal.backend.device_type
    # The host-share looks only on CPU runs: there the figures are the CPUs' and the LLC's own work; a GPU
    # run's host has cores to spare and would pay a look of 16 threads for nothing it files.
    probe, why = HostShareProbe.for_this_machine(state.src) if device_type == "cpu" else (None, "")
    monitor = Monitor(state.src, device_index(cal.backend.device) if device_type == "gpu" else None,
                      host_share=probe, host_share_why=why, launch=launch_probe(cal.backend),
                      call=call_probe(cal.backend))
    cal.watch = Watch(monitor, device_type)
    cal.results.interference = cal.watch.log
    ctx = PreflightContext(device_type=device_type, key=state.key, src=state.src, gpu=state.gpu,
                           power_mode_override=cal.options.power_mode, frequency_override=cal.options.frequency_mhz,
                           monitor=monitor)
    report = run_preflight(ctx, cal.options.force)
    report.duration_s = time.perf_counter() - t0
    cal.machine_state = state
    cal.preflight = report.as_dict()
    cal.results.warnings.extend(report.warnings_for_document())
    return report
