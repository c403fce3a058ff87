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

        props = torch.cuda.get_device_properties(index)
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
    }
    for key, read in readers.items():
        with suppress(Exception):
            facts[key] = read()
    return facts


def sample_sm_clock_mhz(index: int) -> float | None:
    """One reading of the SM clock, for sampling under load; None if NVML cannot say."""
    nv = _nvml()
    if nv is None:
        return None
    try:
        return float(nv.nvmlDeviceGetClockInfo(_handle_for(nv, index), nv.NVML_CLOCK_SM))
    except Exception:
        return None


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"
