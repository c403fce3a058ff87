"""Machine detection: plain data about the host, gathered in one place and never raising.

Called by the plugin (not by benchmarks). Identity (model, cores, device) is kept apart from
volatile readings (current clock, load) so that only identity decides "same machine".
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, replace

from hwcal.machine.clock_ceiling import cpu_ceiling_mhz, jetson_gpu_ceiling_mhz, nvml_gpu_ceiling_mhz
from hwcal.machine.cpu import collect_cpu, collect_memory
from hwcal.machine.gpu import collect_gpu, sample_sm_clock_mhz
from hwcal.machine.identity import cpu_identity_conflict, detect_emulator, generic_hardware_id, verify_identity
from hwcal.machine.power import PowerMode, detect_power_mode, jetson_model
from hwcal.machine.sources import LOCAL, Sources
from hwcal.machine.uarch import Microarch, detect_microarchitecture, hardware_id_suffix
from hwcal.naming import hardware_id_token

__all__ = ["KeyFacts", "Microarch", "PowerMode", "Sources", "collect_blas", "collect_gpu", "collect_host",
           "cpu_identity_conflict", "detect_cpu_key", "detect_emulator", "detect_gpu_key", "detect_microarchitecture",
           "detect_power_mode", "registry_hardware_id", "sample_sm_clock_mhz", "verify_identity"]

# Hardware whose registry id predates hwcal's id rule (seed registry): calibrations land next to its spec.
_KNOWN_IDS: dict[str, tuple[tuple[str, str], ...]] = {
    "cpu": (("i7-12700K", "intel_12th_gen_intelr_coretm_i7_12700k"),),
    "gpu": (("H100 80GB HBM3", "h100_sxm5"), ("H100 SXM", "h100_sxm5")),
}


@dataclass(frozen=True)
class KeyFacts:
    """What a calibration is filed under, with where each half came from."""

    hardware_id: str
    hardware_name: str
    power_mode: str
    power_mode_source: str
    freq_mhz: int
    freq_source: str
    power_mode_id: int | None = None
    # What was tried and did not answer (nvpmodel missing, no cpufreq ...): kept in metadata.clock.
    notes: tuple[str, ...] = ()
    # Why this key's CPU identity or speeds cannot be trusted (identity.verify_identity: cpuinfo, platform and
    # id register disagree, or an emulator), with what to do; the preflight stops the run on it.
    identity_problem: str | None = None
    identity_advice: str = ""


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


def registry_hardware_id(name: str, device_type: str, src: Sources = LOCAL, uarch: Microarch | None = None) -> str:
    """Registry id: ``jetson_<family>_<cpu|gpu>`` on a Jetson, a seed-registry id for known hardware,
    else the name reduced to [a-z0-9_]. A CPU whose model string names no chip (a VM's "AMD EPYC")
    gets its microarchitecture appended (``amd_epyc_zen4``): two chips a VM names alike file apart."""
    family = jetson_model(src)
    if family and family != "unknown Jetson":
        return f"jetson_{hardware_id_token(family)}_{device_type}"
    for needle, hardware_id in _KNOWN_IDS.get(device_type, ()):
        if needle.lower() in name.lower():
            return hardware_id
    base = hardware_id_token(name) or f"unknown_{device_type}"
    if device_type != "cpu":
        return base
    suffix = hardware_id_suffix(uarch if uarch is not None else detect_microarchitecture(src), name)
    if not suffix or base == suffix or base.endswith(f"_{suffix}"):
        return base
    return f"{base}_{hardware_id_token(suffix)}"


def _key(hardware_id: str, name: str, mode: PowerMode, ceiling: float | None, freq_source: str) -> KeyFacts:
    return KeyFacts(
        hardware_id=hardware_id,
        hardware_name=name,
        power_mode=mode.name,
        power_mode_source=mode.source,
        freq_mhz=round(ceiling) if ceiling else 0,
        freq_source=freq_source,
        power_mode_id=mode.mode_id,
        notes=mode.notes,
    )


def detect_cpu_key(src: Sources = LOCAL, cpu: dict[str, object] | None = None) -> KeyFacts:
    """Hardware id, power mode and stable frequency of the host CPU, with the source of each."""
    verdict = verify_identity(src)
    uarch = detect_microarchitecture(src)
    cpu = cpu if cpu is not None else collect_cpu(src, uarch)
    name = str(cpu.get("model") or (platform.machine() if src.is_local else "") or "unknown_cpu")
    mode = detect_power_mode(src, device_type="cpu")
    ceiling, freq_source = cpu_ceiling_mhz(src, cpu)
    hardware_id = (generic_hardware_id(verdict.machine) if verdict.conflict
                   else registry_hardware_id(name, "cpu", src, uarch))
    key = _key(hardware_id, name, mode, ceiling, freq_source)
    return replace(key, identity_problem=verdict.problem, identity_advice=verdict.advice if verdict.problem else "")


def detect_gpu_key(gpu: dict[str, object], src: Sources = LOCAL) -> KeyFacts:
    """Hardware id, power mode and stable SM-clock ceiling of a GPU (NVML facts, or a Jetson's sysfs)."""
    name = str(gpu.get("name") or "unknown_gpu")
    mode = detect_power_mode(src, device_type="gpu", gpu=gpu)
    if jetson_model(src):
        ceiling, freq_source = jetson_gpu_ceiling_mhz(src, mode.mode_id)
    else:
        ceiling, freq_source = nvml_gpu_ceiling_mhz(gpu)
    return _key(registry_hardware_id(name, "gpu", src), name, mode, ceiling, freq_source)
