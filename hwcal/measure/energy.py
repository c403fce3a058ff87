"""Energy per operation: the average power of a device while it runs one workload back to back, over a
window long enough for its sensor (>= 1 s and >= 10 sensor updates), divided by the rate the same window
sustained. Cases, in run order: idle after a rest, the STREAM copy at a DRAM size, the GEMM of every
precision at its sustained shape, then STREAM triad (the max-achievable search's shape on a GPU, else the square size
that peaked). On a GPU the search has already run that shape back to back, metered (``hwcal.measure.back_to_back``):
its sustained window is the GEMM case, not run twice. Each case is verified as its family verifies it; the whole
family stays within a time budget.

The meter (``hwcal.machine.energy``) is found once per run (``run_meter``); where none can be read the run goes on
and the calibration says why (``EnergyRun.unavailable``). The static/dynamic split is fitted from these cases by
``hwcal.document.energy``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import pytest

from hwcal.machine.energy import EnergyMeter, MeterChoice, describe, find_meter
from hwcal.machine.energy_sampler import EnergySampler, WindowEnergy
from hwcal.measure import back_to_back
from hwcal.measure.back_to_back import Window, run_window, sampled_window, window_done
from hwcal.measure.case import best_call_s
from hwcal.measure.energy_records import MIN_UPDATES, MIN_WINDOW_S, EnergyCase, EnergyRun
from hwcal.measure.gemm import session_layout
from hwcal.measure.records import (
    STREAM_EPSILON,
    STREAM_INITIAL,
    STREAM_SCALAR,
    after_kernel,
    stream_bytes,
    validation_error,
)
from hwcal.measure.session import CalibrationSession
from hwcal.measure.verify import verify_gemm
from hwcal.precisions import PRECISIONS

MEMORY_KERNELS = ("copy", "triad")  # two arrays and three: the DRAM energy per byte of each traffic pattern
BUDGET_S = 15.0  # the whole family, rest included
REST_S = 1.0  # idle before the idle window: clocks and power fall back within ~0.1 s of the last kernel
WARM_S = 0.2  # the workload before its window: power settles where the new load holds it
GPU_ARRAY_BYTES = 2**30  # the STREAM arrays on a GPU: 1 GiB each, far beyond any L2
SEED = 23
ADOPTED = "the max-achievable search's sustained window (after its bursts and warm-up)"
T = TypeVar("T")


def energy_cases(session: CalibrationSession) -> list[tuple[tuple[str, str], str]]:
    """(case, name) parameters and test ids, in run order: idle, copy, the GEMM of each precision, triad
    (where the budget runs out, triad, the second memory point, goes first)."""
    first, *rest = MEMORY_KERNELS
    gemm = [(("gemm", p), f"gemm-{p}") for p in session.backend.precisions()]
    return [(("idle", ""), "idle"), (("stream", first), f"stream-{first}"), *gemm,
            *[(("stream", k), f"stream-{k}") for k in rest]]


def run_meter(session: CalibrationSession) -> MeterChoice:
    """The run's energy meter (NVML, RAPL, INA3221 or tegrastats), found on first use and kept until
    ``close_run_meter``: the max-achievable search meters its sustained windows before the energy tests run."""
    if session.energy_meter is None:
        backend = session.backend
        session.energy_meter = find_meter(backend.device_type, backend.device)
    return session.energy_meter


def close_run_meter(session: CalibrationSession) -> None:
    choice, session.energy_meter = session.energy_meter, None
    if choice is not None and choice.meter is not None:
        choice.meter.close()


@dataclass
class EnergyState:
    """The meter of one run, open for the energy tests of the module and closed after them."""

    session: CalibrationSession
    meter: EnergyMeter | None = None
    started: float | None = None

    @property
    def run(self) -> EnergyRun:
        run = self.session.results.energy
        if run is None:
            raise RuntimeError("EnergyState.open() was not called")
        return run

    def open(self) -> None:
        choice = run_meter(self.session)
        self.meter = choice.meter
        if choice.meter is None:
            self.session.results.energy = EnergyRun(unavailable=choice.reason, budget_s=BUDGET_S)
        else:
            self.session.results.energy = EnergyRun(meter=describe(choice.meter), budget_s=BUDGET_S)

    def close(self) -> None:
        close_run_meter(self.session)
        self.meter = None

    def spent_s(self) -> float:
        return time.perf_counter() - self.started if self.started is not None else 0.0


def _skip(run: EnergyRun, reason: str) -> NoReturn:
    run.skipped.append(reason)
    pytest.skip(reason)


def _check_can_run(state: EnergyState, timed: bool, label: str, costs_time: bool = True) -> EnergyMeter:
    run = state.run
    if state.meter is None:
        pytest.skip(f"energy unavailable: {run.unavailable}")
    if not timed:
        pytest.skip("--benchmark-disable: correctness only, no energy windows")
    if run.failure:
        _skip(run, f"{label}: the energy meter failed earlier ({run.failure})")
    needed = (REST_S if label == "idle" else WARM_S) + run.window_s + 0.3
    if costs_time and state.spent_s() + needed > BUDGET_S:
        _skip(run, f"{label}: the energy budget of {BUDGET_S:g} s is spent ({state.spent_s():.1f} s)")
    if state.started is None:
        state.started = time.perf_counter()
    return state.meter


def _measured(run: EnergyRun, window: Window, label: str) -> WindowEnergy:
    if window.failure:
        run.failure = window.failure
        pytest.fail(f"{label}: the energy meter failed during the window: {window.failure}")
    got = window.energy
    if got is None or got.updates < MIN_UPDATES:
        seen = got.updates if got is not None else 0
        _skip(run, f"{label}: the sensor updated {seen} times in {window.seconds:.1f} s (< {MIN_UPDATES}): too "
                   "slow for a window of this length")
    return got


def watched(state: EnergyState, label: str, measure: Callable[[], T]) -> T:
    """A window under the run's interference watch (``hwcal.measure.watch``): measured again once the machine
    is quiet when other work disturbed it, else filed flagged with the evidence."""
    watch = state.session.watch
    if watch is None:
        return measure()
    start = watch.start()
    return watch.settle(f"energy[{label}]", start, measure(), measure)


def _idle_once(state: EnergyState, meter: EnergyMeter) -> WindowEnergy:
    state.session.backend.synchronize()
    time.sleep(REST_S)
    with EnergySampler(meter) as sampler:
        t0 = time.perf_counter()
        while not window_done(sampler, t0, MIN_WINDOW_S) and time.perf_counter() - t0 < back_to_back.MAX_WINDOW_S:
            time.sleep(0.05)
        t1 = time.perf_counter()
    return _measured(state.run, sampled_window(sampler, meter, 0, t0, t1), "idle")


def idle_window(state: EnergyState, timed: bool) -> None:
    """The idle power after REST_S of rest; its sensor update rate sets every later window's length."""
    meter = _check_can_run(state, timed, "idle")
    run = state.run
    got = watched(state, "idle", lambda: _idle_once(state, meter))
    run.window_s = max(MIN_WINDOW_S, round(MIN_UPDATES * 1.1 / got.update_hz, 2))
    run.cases.append(EnergyCase(case="idle", label="idle", seconds=got.seconds, watts=got.watts,
                                updates=got.updates, update_hz=got.update_hz, domains_w=got.domains_w,
                                rest_s=REST_S))


def loaded_window(state: EnergyState, meter: EnergyMeter, launch: Callable[[], Any], call_s: float,
                  label: str) -> tuple[WindowEnergy, int]:
    """Back-to-back launches for WARM_S, then a window of them with the meter sampled; (power, launches)
    (``hwcal.measure.back_to_back``)."""
    return watched(state, label, lambda: _loaded_once(state, meter, launch, call_s, label))


def _loaded_once(state: EnergyState, meter: EnergyMeter, launch: Callable[[], Any], call_s: float,
                 label: str) -> tuple[WindowEnergy, int]:
    window = run_window(state.session.backend, launch, call_s, WARM_S, state.run.window_s, meter)
    return _measured(state.run, window, label), window.launches


def _gemm_shape(session: CalibrationSession, run: EnergyRun, precision: str) -> tuple[int, int, int, str]:
    """(m, n, k, layout): the max-achievable shape where the search ran, else the square size that peaked."""
    found = session.results.max_achievable.get(precision)
    if found is not None:
        return found.m, found.n, found.k, found.layout
    records = [r for r in session.results.gemm if r.precision == precision]
    if not records:
        _skip(run, f"gemm-{precision}: no {precision} GEMM was measured in this run to take the sustained shape from")
    best = max(records, key=lambda r: r.gflops_best)
    return best.n, best.n, best.n, best.layout or session_layout(session, precision)


def _gemm_bytes(precision: str, m: int, n: int, k: int) -> int:
    """Operands read and the result written once per call: the least DRAM traffic a GEMM makes."""
    size = max(1, PRECISIONS[precision].bits // 8)
    out = 4 if precision == "int8" else 2 if precision.startswith("fp8") else size
    return (m * k + k * n) * size + m * n * out


def _check_gemm_support(session: CalibrationSession, run: EnergyRun, precision: str) -> None:
    support = session.support(precision)
    if not support.runnable:
        pytest.skip(f"gemm-{precision}: unsupported: {support.reason}")
    if support.emulation_evidence:
        _skip(run, f"gemm-{precision}: emulated here ({support.emulation_evidence}): energy is measured for "
                   "native kernels")
    if precision in session.failures:
        pytest.skip(f"gemm-{precision}: failed verification earlier: {session.failures[precision]}")


def gemm_window(state: EnergyState, precision: str, timed: bool) -> None:
    """pJ/FLOP of one precision at its sustained shape, the result verified after the window. Where the
    max-achievable search metered its sustained window (same shape, back to back, verified after), that
    window is this case: the shape is not run again."""
    session = state.session
    label = f"gemm-{precision}"
    found = session.results.max_achievable.get(precision)
    adopted = found.energy_window if found is not None else None
    meter = _check_can_run(state, timed, label, costs_time=adopted is None)
    _check_gemm_support(session, state.run, precision)
    if found is not None and adopted is not None and adopted.energy is not None:
        state.run.cases.append(_gemm_case(session, precision, (found.m, found.n, found.k), found.layout,
                                          adopted.energy, adopted.launches, found.max_error,
                                          warm_s=found.warmup_s, source=ADOPTED))
        return
    m, n, k, layout = _gemm_shape(session, state.run, precision)
    backend = session.backend
    with backend.precision_mode(precision):
        ops = backend.make_operands(precision, n, SEED, layout=layout, m=m, k=k)
        call_s = best_call_s(backend, backend.gemm, ops)
        got, launches = loaded_window(state, meter, lambda: backend.gemm(ops), call_s, label)
        check = verify_gemm(backend, ops, ops.out, SEED)
    if not check.ok:
        session.failures[precision] = f"energy window {m}x{n}x{k}: {check.describe()}"
        pytest.fail(f"{precision} GEMM at {m}x{n}x{k} gave wrong results in the energy window: {check.describe()}")
    state.run.cases.append(_gemm_case(session, precision, (m, n, k), layout, got, launches, check.max_error))


def _gemm_case(session: CalibrationSession, precision: str, shape: tuple[int, int, int], layout: str,
               got: WindowEnergy, launches: int, max_error: float, warm_s: float | None = None,
               source: str | None = None) -> EnergyCase:
    m, n, k = shape
    return EnergyCase(
        case="gemm", label=f"{precision} {m}x{n}x{k} {layout}", precision=precision,
        kernel=session.support(precision).kernel, shape={"m": m, "n": n, "k": k}, layout=layout,
        seconds=got.seconds, launches=launches,
        flops_per_s=2.0 * m * n * k * launches / got.seconds,
        bytes_per_s=_gemm_bytes(precision, m, n, k) * launches / got.seconds,
        watts=got.watts, updates=got.updates, update_hz=got.update_hz, domains_w=got.domains_w,
        max_error=max_error, warm_s=warm_s, source=source)


def _array_elements(session: CalibrationSession) -> int:
    """Elements per STREAM array: the sweep's largest where it ran, else STREAM's rule (4x the last-level
    caches; 1 GiB on a GPU), within a fifth of free memory."""
    backend = session.backend
    memory = session.results.memory
    if memory is not None and memory.records:
        return max(r.n for r in memory.records)
    floor = GPU_ARRAY_BYTES if backend.device_type == "gpu" else 64 * 2**20
    wanted = max(floor, 4 * backend.stream_caches().llc_total_bytes)
    return min(wanted, backend.free_memory_bytes() // 5) // 8


def stream_window(state: EnergyState, kernel: str, timed: bool) -> None:
    """pJ/byte of one STREAM kernel at a DRAM size (STREAM's byte count), validated after the window."""
    session = state.session
    label = f"stream-{kernel}"
    meter = _check_can_run(state, timed, label)
    backend = session.backend
    n = _array_elements(session)
    arrays = backend.stream_arrays(n, STREAM_INITIAL)
    launch = backend.stream_call(kernel, arrays, STREAM_SCALAR)
    try:
        call_s = best_call_s(backend, launch)
        got, launches = loaded_window(state, meter, launch, call_s, label)
        extremes = [backend.stream_extremes(x) for x in (arrays.a, arrays.b, arrays.c)]
    finally:
        del launch, arrays  # the device memory goes back before the next case
        backend.stream_release()
    error = validation_error(extremes, after_kernel(kernel, STREAM_INITIAL, STREAM_SCALAR))
    if error > STREAM_EPSILON[8]:
        pytest.fail(f"STREAM {kernel} gave wrong results in the energy window: relative error {error:.3g}")
    size = n * 8
    state.run.cases.append(EnergyCase(
        case="stream", label=f"{kernel} {size / 2**20:.0f}MiB", kernel=backend.stream_method(kernel).description,
        shape={"n": n},
        seconds=got.seconds, launches=launches, bytes_per_s=stream_bytes(kernel, n, 8) * launches / got.seconds,
        watts=got.watts, updates=got.updates, update_hz=got.update_hz, domains_w=got.domains_w, max_error=error))


def run_energy(state: EnergyState, case: tuple[str, str], timed: bool) -> None:
    """One energy case as a calibration test (bench/test_energy.py)."""
    state.session.families_run.add("energy")
    kind, name = case
    if kind == "idle":
        idle_window(state, timed)
    elif kind == "stream":
        stream_window(state, name, timed)
    else:
        gemm_window(state, name, timed)
    state.run.spent_s = round(state.spent_s(), 2)
