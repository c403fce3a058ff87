"""Session glue for the clock: detect the machine at session start, open a sampling window around
each benchmark, stop the sampler and check for a mode change at the end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from hwcal.document.clocks import ClockOutcome, clock_summary
from hwcal.machine import KeyFacts, collect_gpu, detect_cpu_key, detect_gpu_key
from hwcal.machine.sampler import CPU_INTERVAL_S, GPU_INTERVAL_S, ClockMonitor, MachineState, Window, make_probe
from hwcal.machine.sources import LOCAL, Sources
from hwcal.measure.session import CalibrationSession


def device_index(device: str) -> int:
    return int(device.split(":")[1]) if ":" in device else 0


def detect_machine(cal: CalibrationSession, src: Sources = LOCAL) -> tuple[KeyFacts, dict[str, Any] | None]:
    """Key facts of the device being calibrated (before --power-mode/--frequency-mhz), and GPU facts."""
    backend = cal.backend
    if backend.device_type == "gpu":
        gpu = collect_gpu(device_index(backend.device))
        if backend.device_name:
            gpu.setdefault("name", backend.device_name)
        return detect_gpu_key(gpu, src), gpu
    return detect_cpu_key(src), None


def start_machine_state(cal: CalibrationSession, src: Sources | None = None) -> MachineState:
    """Detect the key and set up clock sampling; the preflight runs on the result.

    A fresh ``Sources`` per session: its command cache must not carry a mode across sessions.
    """
    t0 = time.perf_counter()
    src = src if src is not None else Sources()
    key, gpu = detect_machine(cal, src)
    ceiling = float(cal.options.frequency_mhz or key.freq_mhz or 0)
    backend = cal.backend
    probe, why = make_probe(backend.device_type, backend.device, src)
    interval = GPU_INTERVAL_S if backend.device_type == "gpu" else CPU_INTERVAL_S
    monitor = ClockMonitor(probe, ceiling, interval, unavailable=why)
    return MachineState(key, gpu, monitor, probe.source if probe else "", time.perf_counter() - t0, src)


def session_key_facts(cal: CalibrationSession) -> KeyFacts:
    """The key facts detected at session start (so NVML failing later cannot change the key), else now."""
    if cal.machine_state is not None:
        return cal.machine_state.key
    return detect_machine(cal)[0]


def session_gpu_facts(cal: CalibrationSession) -> dict[str, Any] | None:
    return cal.machine_state.gpu if cal.machine_state is not None else None


def mode_change_warning(cal: CalibrationSession, state: MachineState) -> str | None:
    """Detect the key again at the end: a power mode or ceiling that changed mid-run mixes two modes.

    Compared only where the same source answered both times (NVML lost at the end is not a change).
    """
    src = replace(state.src, _cache={})  # a fresh command cache: nvpmodel must be asked again
    try:
        end, _ = detect_machine(cal, src)
    except Exception:
        return None
    start = state.key
    changes = []
    if end.power_mode_source == start.power_mode_source and end.power_mode != start.power_mode:
        changes.append(f"power mode {start.power_mode} -> {end.power_mode} ({end.power_mode_source})")
    if end.freq_source == start.freq_source and end.freq_mhz and end.freq_mhz != start.freq_mhz:
        changes.append(f"clock ceiling {start.freq_mhz} -> {end.freq_mhz} MHz ({end.freq_source})")
    if not changes:
        return None
    return ("changed during the run: " + "; ".join(changes) + "; filed under the mode at the start, but results "
            "mix both: calibrate again in one mode")


def attach_window(state: MachineState, window: Window | None, records: list[Any]) -> None:
    """Flag the records a benchmark window produced as throttled or not (left unset without samples)."""
    if window is None:
        return
    window.results += len(records)
    throttled = state.monitor.throttled(window)
    for rec in records:
        if hasattr(rec, "throttled"):
            rec.throttled = throttled
        state.case_windows[(rec.precision, rec.n)] = window


@contextlib.contextmanager
def benchmark_window(cal: CalibrationSession, test: str) -> Iterator[None]:
    """Sample the clock while one benchmark test runs, then flag the records it produced."""
    state = cal.machine_state
    if state is None:
        yield
        return
    # The backend's one-off warm-up (a second of GPU work at the power cap) must not count as this test's clock.
    cal.backend.warm_up()
    before = len(cal.results.gemm)
    state.monitor.open_window(test)
    try:
        yield
    finally:
        attach_window(state, state.monitor.close_window(), cal.results.gemm[before:])


def stop_sampling(cal: CalibrationSession) -> None:
    if cal.machine_state is not None:
        cal.machine_state.monitor.stop()


def finish_clocks(cal: CalibrationSession, key: KeyFacts) -> ClockOutcome:
    """Stop sampling, detect the key again (a mode changed mid-run is a warning), summarise the clocks."""
    state = cal.machine_state
    if state is None:
        return clock_summary(None, cal.results.gemm, key)
    state.monitor.stop()
    return clock_summary(state, cal.results.gemm, key, mode_change_warning(cal, state))
