"""NVIDIA GPU facts through NVML (nvidia-ml-py), falling back to torch.cuda; never raises.

Identity (name, compute capability, SMs, memory) is kept apart from readings (clocks, power,
temperature). The registry key of a datacenter GPU is its enforced power limit (e.g. ``700W``)
and its maximum SM clock: both stable from run to run, unlike an idle clock sample.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any


def _nvml() -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no library, no driver, or NVML refused: facts come from torch alone
        return None


def _handle_for(nv: Any, index: int) -> Any:
    """The NVML handle of torch's device ``index``, matched by PCI bus id where CUDA_VISIBLE_DEVICES remaps."""
    try:
        import torch

        # Any: torch's stubs omit pci_domain_id/pci_bus_id/pci_device_id, which the runtime object has.
        props: Any = torch.cuda.get_device_properties(index)
        bus = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        return nv.nvmlDeviceGetHandleByPciBusId(bus.encode())
    except Exception:
        return nv.nvmlDeviceGetHandleByIndex(index)


def collect_gpu(index: int) -> dict[str, Any]:
    """Name, compute capability, SM count, memory, driver/CUDA versions, clocks, power, temperature."""
    facts: dict[str, Any] = {"index": index}
    with suppress(Exception):
        import torch

        p = torch.cuda.get_device_properties(index)
        facts.update({"name": p.name, "compute_capability": f"{p.major}.{p.minor}",
                      "sm_count": p.multi_processor_count, "memory_gb": round(p.total_memory / 1e9, 2),
                      "cuda_runtime_version": torch.version.cuda, "source": "torch.cuda"})
        l2 = getattr(p, "L2_cache_size", None)
        if l2:
            facts["l2_cache_bytes"] = int(l2)
    nv = _nvml()
    if nv is None:
        return facts
    facts["source"] = "nvml"
    h = _handle_for(nv, index)
    readers = {
        "name": lambda: _s(nv.nvmlDeviceGetName(h)),
        "driver_version": lambda: _s(nv.nvmlSystemGetDriverVersion()),
        "cuda_driver_version": lambda: _cuda_version(nv.nvmlSystemGetCudaDriverVersion_v2()),
        "uuid": lambda: _s(nv.nvmlDeviceGetUUID(h)),
        "sm_clock_max_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
        "mem_clock_max_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM),
        "sm_clock_now_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
        "sm_clock_application_mhz": lambda: nv.nvmlDeviceGetApplicationsClock(h, nv.NVML_CLOCK_SM),
        "power_limit_w": lambda: round(nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0, 1),
        "power_default_limit_w": lambda: round(nv.nvmlDeviceGetPowerManagementDefaultLimit(h) / 1000.0, 1),
        "power_draw_w": lambda: round(nv.nvmlDeviceGetPowerUsage(h) / 1000.0, 1),
        "temperature_c": lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
        "persistence_mode": lambda: bool(nv.nvmlDeviceGetPersistenceMode(h)),
        "memory_bus_width_bits": lambda: nv.nvmlDeviceGetMemoryBusWidth(h),
        "temperature_slowdown_c": lambda: nv.nvmlDeviceGetTemperatureThreshold(h, 1),  # ..._THRESHOLD_SLOWDOWN
        "clock_event_reasons": lambda: clock_event_reasons(_event_mask(nv, h)),
    }
    for key, read in readers.items():
        with suppress(Exception):
            facts[key] = read()
    return facts


# NVML clocks-event ("throttle") reason bits; stable across driver versions.
EVENT_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}
# Reasons that mean the clock is being pulled down by heat or an external brake: results would be wrong.
SLOWDOWN_REASONS = frozenset({"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"})


def clock_event_reasons(mask: int) -> list[str]:
    return [name for bit, name in EVENT_REASONS.items() if mask & bit]


def _event_mask(nv: Any, h: Any) -> int:
    fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or nv.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(fn(h))


class SmClockReader:
    """Reads the SM clock of one GPU under load: NVML initialised once, the handle kept.

    ``read`` returns (MHz, reasons) or raises; the sampler turns a failure mid-run into a note.
    """

    def __init__(self, index: int) -> None:
        nv = _nvml()
        if nv is None:
            raise RuntimeError("NVML unavailable (no nvidia-ml-py, no driver, or nvmlInit refused)")
        self._nv = nv
        self._h = _handle_for(nv, index)
        self.source = f"NVML SM clock of GPU {index} (samples with the GPU idle are left out)"

    def read(self) -> tuple[float, list[str]]:
        mhz = float(self._nv.nvmlDeviceGetClockInfo(self._h, self._nv.NVML_CLOCK_SM))
        try:
            reasons = clock_event_reasons(_event_mask(self._nv, self._h))
        except Exception:  # older drivers: the clock alone still counts
            reasons = []
        return mhz, reasons


def sample_sm_clock_mhz(index: int) -> float | None:
    """One reading of the SM clock, for sampling under load; None if NVML cannot say."""
    try:
        return SmClockReader(index).read()[0]
    except Exception:
        return None


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


class ClockPowerSampler:
    """SM clock and board power of one GPU, sampled in a thread while a measurement runs.

    NVML missing, or lost mid-run, never stops the measurement: the summary then says so (``status``
    "missing" or "partial") and keeps what was sampled before.
    """

    def __init__(self, index: int, interval_s: float = 0.05) -> None:
        import threading

        self.interval_s = interval_s
        self.clock: list[float] = []
        self.power: list[float] = []
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hwcal-gpu-sampler", daemon=True)
        try:
            nv = _nvml()
            if nv is None:
                raise RuntimeError("NVML unavailable (no nvidia-ml-py, no driver, or nvmlInit refused)")
            self._nv, self._h = nv, _handle_for(nv, index)
        except Exception as exc:
            self._nv = None
            self.failure = f"{type(exc).__name__}: {exc}"

    def __enter__(self) -> ClockPowerSampler:
        if self._nv is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.clock.append(float(self._nv.nvmlDeviceGetClockInfo(self._h, self._nv.NVML_CLOCK_SM)))
                self.power.append(self._nv.nvmlDeviceGetPowerUsage(self._h) / 1000.0)
            except Exception as exc:  # NVML lost mid-run: keep what was sampled
                self.failure = f"{type(exc).__name__}: {exc}"
                return
            self._stop.wait(self.interval_s)

    def summary(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(clock, power): median/min/max and sample count of each, with a status and any failure."""
        import statistics

        def one(values: list[float], digits: int) -> dict[str, Any]:
            status = "measured" if values and not self.failure else ("partial" if values else "missing")
            out: dict[str, Any] = {"status": status, "samples": len(values)}
            if values:
                out.update(median=round(statistics.median(values), digits), min=round(min(values), digits),
                           max=round(max(values), digits))
            if self.failure:
                out["reason"] = self.failure
            return out

        return one(self.clock, 1), one(self.power, 1)
