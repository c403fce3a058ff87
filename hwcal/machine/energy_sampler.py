"""Sampling an energy meter while a workload runs, and the average power of a window from the samples.

A counter (NVML, RAPL) is read every few milliseconds; its value changes only when the hardware updates
it (NVML: every few to 100 ms, depending on the GPU). The window's power is the energy between the first
and the last update seen inside the window over the time between them: the edges are the counter's own
update instants (observed within one read interval), not the window's, so a window of N updates is not off
by up to one update's energy at each end. A power meter (INA3221, tegrastats) is integrated over time.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from hwcal.machine.energy import EnergyMeter, counter_delta


@dataclass(frozen=True)
class Sample:
    t_s: float  # time.perf_counter()
    values: dict[str, float]  # counter: joules since the first read (unwrapped); power: watts


@dataclass(frozen=True)
class WindowEnergy:
    """Average power over one window, from ``updates`` sensor updates over ``span_s`` seconds."""

    watts: float
    seconds: float  # the window (workload start to end)
    span_s: float  # from the first to the last sensor update used
    updates: int
    update_hz: float
    domains_w: dict[str, float] = field(default_factory=dict)


class EnergySampler:
    """Reads ``meter`` in a daemon thread between ``start`` and ``stop``. A meter that fails mid-window
    stops the sampling and leaves ``failure`` set; the samples taken before it are kept."""

    def __init__(self, meter: EnergyMeter) -> None:
        self.meter = meter
        self.failure: str | None = None
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hwcal-energy-sampler", daemon=True)
        self._raw: dict[str, float] = {}
        self._acc: dict[str, float] = {}

    def __enter__(self) -> EnergySampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.take()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def take(self) -> None:
        """One reading into the series (the thread's step; tests call it directly)."""
        try:
            raw = self.meter.read()
        except Exception as exc:  # NVML lost, a sysfs file gone: keep what was sampled
            self.failure = f"{type(exc).__name__}: {exc}"
            self._stop.set()
            return
        now = time.perf_counter()
        if self.meter.kind == "counter":
            for name, value in raw.items():
                if name in self._raw:
                    self._acc[name] += counter_delta(self._raw[name], value, self.meter.wrap_j.get(name))
                else:
                    self._acc[name] = 0.0
                self._raw[name] = value
            if self.meter.total not in raw:  # the meter's total is the sum of its domains
                self._acc[self.meter.total] = sum(v for k, v in self._acc.items() if k != self.meter.total)
            values = dict(self._acc)
        else:
            values = dict(raw)
        with self._lock:
            self._samples.append(Sample(now, values))

    def _run(self) -> None:
        while not self._stop.wait(self.meter.interval_s):
            self.take()

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def updates_since(self, t0: float) -> int:
        """Sensor updates of the total seen after ``t0`` (changes of its value)."""
        pts = [(s.t_s, s.values.get(self.meter.total)) for s in self.samples]
        return sum(1 for i in range(1, len(pts)) if pts[i][0] >= t0 and pts[i][1] != pts[i - 1][1])


def _counter_watts(pts: list[tuple[float, float]], t0: float, t1: float) -> tuple[float, float, int] | None:
    """(watts, span, updates) between the first and last counter update seen in [t0, t1]."""
    changes = [i for i in range(1, len(pts)) if pts[i][1] != pts[i - 1][1] and t0 <= pts[i][0] <= t1]
    if len(changes) < 2:
        return None
    (ta, ea), (tb, eb) = pts[changes[0]], pts[changes[-1]]
    if tb <= ta:
        return None
    return (eb - ea) / (tb - ta), tb - ta, len(changes) - 1


def _power_watts(pts: list[tuple[float, float]], t0: float, t1: float) -> tuple[float, float, int] | None:
    """(watts, span, updates): power samples in [t0, t1] integrated by trapezoids, over their span."""
    inside = [(t, w) for t, w in pts if t0 <= t <= t1]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    joules = sum((w0 + w1) / 2 * (t1_ - t0_) for (t0_, w0), (t1_, w1) in itertools.pairwise(inside))
    span = inside[-1][0] - inside[0][0]
    updates = sum(1 for a, b in itertools.pairwise(inside) if a[1] != b[1])
    return joules / span, span, updates


def window_energy(samples: list[Sample], kind: str, total: str, t0: float, t1: float) -> WindowEnergy | None:
    """Average power of the window [t0, t1] (the meter's ``total``, and each domain); None when the sensor
    updated fewer than twice inside it."""
    measure = _counter_watts if kind == "counter" else _power_watts
    names = sorted({k for s in samples for k in s.values})
    by_domain: dict[str, tuple[float, float, int]] = {}
    for name in names:
        pts = [(s.t_s, s.values[name]) for s in samples if name in s.values]
        got = measure(pts, t0, t1)
        if got is not None:
            by_domain[name] = got
    if total not in by_domain:
        return None
    watts, span, updates = by_domain[total]
    return WindowEnergy(watts, t1 - t0, span, updates, updates / span,
                        {k: v[0] for k, v in by_domain.items() if k != total})
