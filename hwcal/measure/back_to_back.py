"""One workload run back to back for a window, with the energy meter sampled over it where there is one.

The max-achievable GEMM's sustained rate and every loaded energy case come from this one loop, so a GPU
runs its best shape at the power cap once, not twice: the sustained figure and that precision's pJ/FLOP are
the same window. Launches go in chunks of ~CHUNK_S with a synchronisation after each, so the window's work
is known; the window is timed by the host clock between two synchronisations (one chunk's launch gap in
~50 ms: under 0.1 %).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwcal.backends import Backend
from hwcal.machine.energy import EnergyMeter
from hwcal.machine.energy_sampler import EnergySampler, WindowEnergy, window_energy
from hwcal.measure.energy_records import MIN_UPDATES

CHUNK_S = 0.05  # launches between two looks at the clock and the sensor (one synchronisation each)
MAX_WINDOW_S = 6.0  # a sensor slower than MIN_UPDATES updates in this long is too slow for a window


@dataclass(frozen=True)
class Window:
    """What one window ran and, with a meter, what it drew (``energy`` None when the sensor updated fewer
    than twice; ``failure`` when the meter failed mid-window)."""

    launches: int
    seconds: float
    energy: WindowEnergy | None = None
    failure: str | None = None

    def metered(self) -> bool:
        """Whether the window has an energy figure within the window rules (>= MIN_UPDATES updates)."""
        return self.energy is not None and self.failure is None and self.energy.updates >= MIN_UPDATES


def sampled_window(sampler: EnergySampler, meter: EnergyMeter, launches: int, t0: float, t1: float) -> Window:
    """The window [t0, t1] with the energy its sampler saw (and the meter's failure, if any)."""
    got = window_energy(sampler.samples, meter.kind, meter.total, t0, t1)
    return Window(launches, t1 - t0, got, sampler.failure)


def window_done(sampler: EnergySampler | None, t0: float, hold_s: float) -> bool:
    """Whether a window begun at ``t0`` has lasted ``hold_s`` and seen its sensor update enough."""
    # MIN_UPDATES intervals between the first and the last update seen: MIN_UPDATES + 1 changes
    if time.perf_counter() - t0 < hold_s:
        return False
    return sampler is None or sampler.updates_since(t0) > MIN_UPDATES


def run_window(backend: Backend, launch: Callable[[], Any], call_s: float, warm_s: float, hold_s: float,
               meter: EnergyMeter | None = None, max_s: float = MAX_WINDOW_S) -> Window:
    """``warm_s`` of back-to-back launches, then a window of them lasting ``hold_s`` and, with a ``meter``,
    until its sensor has updated more than MIN_UPDATES times (at most ``max_s``)."""
    chunk = max(1, math.ceil(CHUNK_S / max(call_s, 1e-7)))

    def run_chunk() -> None:
        for _ in range(chunk):
            launch()
        backend.synchronize()

    start = time.perf_counter()
    while time.perf_counter() - start < warm_s:
        run_chunk()
    sampler = EnergySampler(meter) if meter is not None else None
    if sampler is not None:
        sampler.start()
    try:
        launches, t0 = 0, time.perf_counter()
        while not window_done(sampler, t0, hold_s) and time.perf_counter() - t0 < max_s:
            run_chunk()
            launches += chunk
        t1 = time.perf_counter()
    finally:
        if sampler is not None:
            sampler.stop()
    if sampler is None or meter is None:
        return Window(launches, t1 - t0)
    return sampled_window(sampler, meter, launches, t0, t1)
