"""Sampling the clock under load: probes (CPU add chain, cpufreq, Jetson devfreq, NVML) and a
background sampler that reads one only while a benchmark window is open.

A probe that fails mid-run stops the sampling with a note; samples taken before it are kept. Where
nothing can measure the clock (a VM without cpufreq on a CPU the add-chain probe does not support), the
reason is kept; a clock is never invented.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from hwcal.machine import KeyFacts
from hwcal.machine.clock_ceiling import jetson_gpu_devfreq
from hwcal.machine.cpu import online_cpus
from hwcal.machine.identity import detect_emulator
from hwcal.machine.power import jetson_model
from hwcal.machine.sources import LOCAL, Sources

THROTTLE_FRACTION = 0.75
CPU_INTERVAL_S = 0.1  # the add-chain probe costs ~0.4 ms of one core per sample: well under 1%
GPU_INTERVAL_S = 0.05
# A core counts as working when busy at least this fraction of the last interval (/proc/stat).
BUSY_FRACTION = 0.5


class ClockProbe(Protocol):
    """One clock reading under load: (MHz, reasons) or None when the device is idle; raises on failure."""

    source: str

    def read(self) -> tuple[float, list[str]] | None: ...

    def reset(self) -> None:
        """Forget what the previous window left (a busy-core baseline); a new window starts."""


class CoreBusy:
    """Per-core busy fractions since the previous call, from /proc/stat (None where it is unreadable)."""

    def __init__(self, src: Sources) -> None:
        self._src = src
        self._last: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        self._last = self._snapshot()

    def _snapshot(self) -> dict[str, tuple[float, float]]:
        snap: dict[str, tuple[float, float]] = {}
        for line in (self._src.read("/proc/stat") or "").splitlines():
            parts = line.split()
            if parts and parts[0].startswith("cpu") and parts[0] != "cpu" and len(parts) >= 5:
                ticks = [float(x) for x in parts[1:9] if x.isdigit()]
                idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)  # idle + iowait
                snap[parts[0]] = (sum(ticks), idle)
        return snap

    def busy(self) -> dict[str, float] | None:
        now = self._snapshot()
        if not now:
            return None
        out = {}
        for cpu, (total, idle) in now.items():
            t0, i0 = self._last.get(cpu, (total, idle))
            dt = total - t0
            out[cpu] = 1.0 - (idle - i0) / dt if dt > 0 else 0.0
        self._last = now
        return out


class ChainProbe:
    """CPU: the dependent-add chain, read only while some core is working (the benchmark runs)."""

    def __init__(self, chain: Any, src: Sources) -> None:
        self._chain = chain
        self._busy = CoreBusy(src)
        self.source = f"CPU effective clock: {chain.method}; samples while a core is busy"

    def reset(self) -> None:
        self._busy.reset()

    def read(self) -> tuple[float, list[str]] | None:
        busy = self._busy.busy()
        if busy is not None and max(busy.values(), default=0.0) < BUSY_FRACTION:
            return None
        mhz = self._chain.read_mhz()
        return (mhz, []) if mhz else None


class SysfsCpuProbe:
    """CPU: cpufreq scaling_cur_freq of the cores that are working, median over them."""

    def __init__(self, src: Sources, cpus: list[str]) -> None:
        self._src = src
        self._cpus = cpus
        self._busy = CoreBusy(src)
        self.source = "cpufreq scaling_cur_freq of the busy cores (median over them)"

    def reset(self) -> None:
        self._busy.reset()

    def read(self) -> tuple[float, list[str]] | None:
        busy = self._busy.busy()
        cpus = self._cpus if busy is None else [c for c in self._cpus if busy.get(c, 0.0) >= BUSY_FRACTION]
        khz = [v for c in cpus if (v := self._src.read_number(f"/sys/devices/system/cpu/{c}/cpufreq/scaling_cur_freq"))]
        return (statistics.median(khz) / 1000.0, []) if khz else None


class DevfreqGpuProbe:
    """Jetson GPU: devfreq cur_freq (Hz), kept only while the GPU load (per mille) shows work."""

    def __init__(self, src: Sources, node: str) -> None:
        self._src = src
        self._node = node
        self.source = f"devfreq {node.rsplit('/', 1)[-1]} cur_freq (samples with GPU load < 50% left out)"

    def reset(self) -> None:
        pass

    def read(self) -> tuple[float, list[str]] | None:
        load = self._src.read_number(f"{self._node}/device/load")
        if load is not None and load < 500:
            return None
        hz = self._src.read_number(f"{self._node}/cur_freq")
        if hz is None:
            raise RuntimeError(f"{self._node}/cur_freq unreadable")
        return hz / 1e6, []


class NvmlGpuProbe:
    """Datacenter GPU: NVML SM clock; a sample taken while NVML reports the GPU idle is left out."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.source = reader.source

    def reset(self) -> None:
        pass

    def read(self) -> tuple[float, list[str]] | None:
        mhz, reasons = self._reader.read()
        if "gpu_idle" in reasons:
            return None
        return mhz, reasons


def make_probe(device_type: str, device: str, src: Sources = LOCAL) -> tuple[ClockProbe | None, str]:
    """The best clock probe for the device, or None with the reason nothing can measure it."""
    if device_type == "gpu":
        if jetson_model(src):
            node = jetson_gpu_devfreq(src)
            return (DevfreqGpuProbe(src, node), "") if node else (None, "no Jetson GPU devfreq node")
        try:
            from hwcal.machine.gpu import SmClockReader

            index = int(device.split(":")[1]) if ":" in device else 0
            return NvmlGpuProbe(SmClockReader(index)), ""
        except Exception as exc:
            return None, f"NVML cannot read the SM clock ({exc})"
    reasons = []
    emulator = detect_emulator(src) if src.is_local else None
    if emulator:
        # QEMU translates the add chain into host code: its rate is the emulator's, not a clock (and it would
        # scale the peaks up to a clock no core ran at).
        reasons.append(f"dependent-add chain not used under an emulator ({emulator}): it would time the emulator")
    elif src.is_local:
        from hwcal.machine.cpuclock import ChainClock

        chain, why = ChainClock.create()
        if chain is not None:
            return ChainProbe(chain, src), ""
        reasons.append(why)
    cpus = [c for c in online_cpus(src) if src.read_number(f"/sys/devices/system/cpu/{c}/cpufreq/scaling_cur_freq")]
    if cpus:
        return SysfsCpuProbe(src, cpus), ""
    reasons.append("no cpufreq scaling_cur_freq (no cpufreq driver, e.g. a VM: /proc/cpuinfo MHz there is the "
                   "nominal clock, not a measurement)")
    return None, "; ".join(reasons)


@dataclass
class Window:
    """The samples of one benchmark test."""

    test: str
    samples: list[float] = field(default_factory=list)
    reasons: set[str] = field(default_factory=set)
    # Results the test filed; a skipped test's samples (the previous test's tail) describe no result.
    results: int = 0


def _robust_min(samples: list[float]) -> float:
    """Lowest sample, ignoring one outlier when there are three or more (a probe preempted once)."""
    ordered = sorted(samples)
    return ordered[1] if len(ordered) >= 3 else ordered[0]


def summarise(samples: list[float]) -> dict[str, Any]:
    return {"samples": len(samples), "min_mhz": round(min(samples), 1),
            "median_mhz": round(statistics.median(samples), 1), "max_mhz": round(max(samples), 1)}


class ClockMonitor:
    """Samples a probe in a daemon thread, only while a benchmark window is open.

    A probe that fails mid-run (NVML lost, a sysfs file gone) stops the sampling with a note; the
    samples taken before it are kept and the run goes on.
    """

    def __init__(self, probe: ClockProbe | None, ceiling_mhz: float, interval_s: float, unavailable: str = "") -> None:
        self.probe = probe
        self.ceiling_mhz = ceiling_mhz
        self.interval_s = interval_s
        self.unavailable = unavailable
        self.failure: str | None = None
        self.windows: list[Window] = []
        self._current: Window | None = None
        self._lock = threading.Lock()
        self._active = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- windows ----------------------------------------------------------------------------------
    def open_window(self, test: str) -> None:
        if self.probe is None:
            return
        with self._lock:
            self._current = Window(test)
        self.probe.reset()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hwcal-clock-sampler", daemon=True)
            self._thread.start()
        self._active.set()

    def close_window(self) -> Window | None:
        self._active.clear()
        with self._lock:
            window, self._current = self._current, None
        if window is not None:
            self.windows.append(window)
        return window

    def stop(self) -> None:
        self._active.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._active.wait(timeout=0.2):
                continue
            self._stop.wait(self.interval_s)
            self.sample_once()

    def sample_once(self) -> None:
        """Take one reading into the open window (the thread's step; tests call it directly)."""
        if not self._active.is_set() or self.probe is None:
            return
        try:
            reading = self.probe.read()
        except Exception as exc:  # NVML lost mid-run, a sysfs file gone: keep what we have
            self.failure = f"{type(exc).__name__}: {exc}"
            self.probe = None
            return
        if reading is None:
            return
        with self._lock:
            if self._current is not None and self._active.is_set():
                self._current.samples.append(reading[0])
                self._current.reasons.update(r for r in reading[1] if r != "gpu_idle")

    # ---- results ----------------------------------------------------------------------------------
    def throttled(self, window: Window) -> bool | None:
        """Whether the clock fell below 75% of the ceiling in the window; None without samples."""
        if not window.samples or self.ceiling_mhz <= 0:
            return None
        return _robust_min(window.samples) < THROTTLE_FRACTION * self.ceiling_mhz

    def measured_windows(self) -> list[Window]:
        """Windows of tests that filed a result; the session's clock statistics come from these only."""
        return [w for w in self.windows if w.results]

    def all_samples(self) -> list[float]:
        return [s for w in self.measured_windows() for s in w.samples]


@dataclass
class MachineState:
    """What the plugin detected at session start, for preflight, sampling and filing."""

    key: KeyFacts
    gpu: dict[str, Any] | None
    monitor: ClockMonitor
    probe_source: str
    detect_s: float
    src: Sources = field(default_factory=Sources)
    clock_warnings: list[str] = field(default_factory=list)
    # The window each (precision, n) result was measured in: its peak is scaled to that window's clock.
    case_windows: dict[tuple[str, int], Window] = field(default_factory=dict)


