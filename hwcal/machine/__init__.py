"""Machine detection: plain data about the host, gathered in one place and never raising.

Called by the plugin (not by benchmarks). Identity (model, cores, device) is kept apart from
volatile readings (current clock, load) so that only identity decides "same machine".
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass

from hwcal.machine.cpu import collect_cpu, collect_memory, cpufreq_ceiling_mhz, cpufreq_governor
from hwcal.machine.sources import LOCAL, Sources
from hwcal.naming import hardware_id_token

__all__ = ["KeyFacts", "Sources", "collect_blas", "collect_host", "detect_cpu_key"]


@dataclass(frozen=True)
class KeyFacts:
    """What a calibration is filed under, with where each half came from."""

    hardware_id: str
    hardware_name: str
    power_mode: str
    power_mode_source: str
    freq_mhz: int
    freq_source: str


def collect_host(src: Sources = LOCAL) -> dict[str, object]:
    """CPU, memory, OS and Python facts of the host; what cannot be determined is left out."""
    facts: dict[str, object] = {"cpu": collect_cpu(src)}
    facts.update(collect_memory(src))
    facts["os"] = f"{platform.system()} {platform.release()}".strip()
    facts["python_version"] = platform.python_version()
    facts["python_implementation"] = sys.implementation.name
    return facts


def collect_blas() -> list[dict[str, object]]:
    """What BLAS numpy really loaded, its kernel (e.g. OpenBLAS 'Haswell') and thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "prefix", "version", "threading_layer", "architecture", "num_threads",
            "filepath")
    return [{k: entry[k] for k in keep if entry.get(k) is not None} for entry in threadpool_info()]


def detect_cpu_key(src: Sources = LOCAL, cpu: dict[str, object] | None = None) -> KeyFacts:
    """Hardware id, power mode and stable frequency of the host CPU, with the source of each."""
    cpu = cpu if cpu is not None else collect_cpu(src)
    name = str(cpu.get("model") or platform.machine() or "unknown_cpu")
    governor = cpufreq_governor(src)
    power_mode, pm_source = (governor, "cpufreq scaling_governor") if governor else ("default", "none found")
    ceiling, freq_source = cpufreq_ceiling_mhz(src)
    if ceiling is None and isinstance(cpu.get("nominal_mhz"), float):
        ceiling, freq_source = float(cpu["nominal_mhz"]), "/proc/cpuinfo cpu MHz (nominal; no cpufreq)"  # type: ignore[arg-type]
    if ceiling is None:
        ceiling, freq_source = 0.0, "unknown"
    return KeyFacts(
        hardware_id=hardware_id_token(name) or "unknown_cpu",
        hardware_name=name,
        power_mode=power_mode,
        power_mode_source=pm_source,
        freq_mhz=round(ceiling),
        freq_source=freq_source or "unknown",
    )
