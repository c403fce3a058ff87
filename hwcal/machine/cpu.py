"""CPU identity (model, cores, ISA) and the clock ceiling that keys a CPU calibration."""

from __future__ import annotations

import contextlib
import os
import platform
import re

from hwcal.machine.identity import IdentityVerdict, generic_model_name, src_machine, verify_identity
from hwcal.machine.sources import Sources
from hwcal.machine.uarch import ISA_FLAGS, Microarch, detect_microarchitecture

# ISA feature names as /proc/cpuinfo spells them (x86 "flags", Arm "Features"): the ones hwcal recorded
# first (their order kept, so old and new files list them alike), then every flag a peak depends on
# (uarch.ISA_FLAGS: AVX-512 subsets, AMX, SVE/SVE2, dot-product asimddp, i8mm, bf16, SME).
_ISA_FLAGS = tuple(dict.fromkeys((
    "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    "avx2", "fma", "f16c", "avx", "sse4_2", "asimd", "asimdhp", "asimddp", "sve", "sve2", "i8mm", "bf16", "fphp",
    *ISA_FLAGS)))


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for chunk in text.strip().split("\n\n"):
        block: dict[str, str] = {}
        for line in chunk.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                block[k.strip()] = v.strip()
        if block:
            blocks.append(block)
    return blocks


def identity_facts(uarch: Microarch) -> dict[str, object]:
    """The microarchitecture and the ids it was decided from (CPUID family/model/stepping, Arm MIDR
    implementer/part): what tells apart chips a VM names alike. Unknown ids are left out."""
    facts: dict[str, object] = {
        "microarchitecture": uarch.name,
        "cpu_family": uarch.family,
        "cpu_model": uarch.model,
        "cpu_stepping": uarch.stepping,
        "cpu_implementer": uarch.implementer,
        "cpu_part": uarch.part,
        "cpu_variant": uarch.variant,
        "cpu_revision": uarch.revision,
        "microarchitecture_source": uarch.source or None,
    }
    return {k: v for k, v in facts.items() if v is not None}


def collect_cpu(src: Sources, uarch: Microarch | None = None) -> dict[str, object]:
    """Model string, vendor, logical/physical cores, ISA flags, microarchitecture and its ids; keys left
    out when unknown. ``uarch`` saves a second parse of /proc/cpuinfo where the caller has it."""
    verdict = verify_identity(src)
    info: dict[str, object] = {"architecture": src_machine(src) or platform.machine() or None}
    if verdict.emulator:
        info["emulator"] = f"{verdict.emulator}: speeds measured under emulation mean nothing"
    return {**info, **(_generic_cpu(verdict, src, uarch) if verdict.conflict else _cpuinfo_cpu(src, uarch))}


def _cpuinfo_cpu(src: Sources, uarch: Microarch | None) -> dict[str, object]:
    info: dict[str, object] = {}
    text = src.read("/proc/cpuinfo") or ""
    blocks = _cpuinfo_blocks(text)
    first = blocks[0] if blocks else {}
    uarch = uarch if uarch is not None else detect_microarchitecture(src)
    model = first.get("model name") or first.get("Model") or first.get("Processor")
    if not model:
        # Arm cpuinfo often lacks a model name; the device tree names the SoC (e.g. a Jetson module).
        dt = src.read("/proc/device-tree/model")
        model = dt.strip("\x00 \n") if dt else None
    if not model:
        model = _other_os_model(src)
    if not model and uarch.model_name:
        # No name line (an Arm server, a board without a device tree): the core named from its MIDR
        # implementer/part ("ARM Neoverse-N1"), never this host's platform.processor().
        model = uarch.model_name
    if not model and src.is_local:
        model = platform.processor() or None
    if model:
        info["model"] = re.sub(r"\s+", " ", model).strip()
    if first.get("vendor_id"):
        info["vendor"] = first["vendor_id"]
    elif uarch.vendor:
        info["vendor"] = uarch.vendor
    logical = sum(1 for b in blocks if "processor" in b) or os.cpu_count()
    if logical:
        info["logical_cores"] = logical
    cores = {(b.get("physical id", "0"), b.get("core id", b.get("processor"))) for b in blocks if "processor" in b}
    if cores and any("core id" in b for b in blocks):
        info["physical_cores"] = len(cores)
    elif logical:
        info["physical_cores"] = logical
    flags = set((first.get("flags") or first.get("Features") or "").split()) or set(uarch.flags)
    info["isa_flags"] = [f for f in _ISA_FLAGS if f in flags]
    info.update(identity_facts(uarch))
    if first.get("cpu MHz"):
        with contextlib.suppress(ValueError):
            info["nominal_mhz"] = float(first["cpu MHz"])
    return info


def _generic_cpu(verdict: IdentityVerdict, src: Sources, uarch: Microarch | None) -> dict[str, object]:
    """The facts of a CPU whose identity conflicts: an explicitly generic name, the conflict, the flags this
    CPU executes (AT_HWCAP), the cores this process sees; nothing from the foreign /proc/cpuinfo."""
    uarch = uarch if uarch is not None else detect_microarchitecture(src)
    info: dict[str, object] = {"model": generic_model_name(verdict.machine), "identity_conflict": verdict.conflict,
                               "isa_flags": [f for f in _ISA_FLAGS if f in uarch.flags]}
    if verdict.register:
        info["id_register"] = verdict.register
    cores = os.cpu_count() if src.is_local else None
    if cores:
        info["logical_cores"] = info["physical_cores"] = cores
    return info


def _wmic_value(src: Sources, field: str) -> str | None:
    """``wmic cpu get <field> /value`` prints ``Field=value`` (first CPU package)."""
    out = src.run("wmic", "cpu", "get", field, "/value") or ""
    m = re.search(rf"^{field}=(.+?)\s*$", out, re.M)
    return m.group(1).strip() if m else None


def _other_os_model(src: Sources) -> str | None:
    """CPU name where there is no /proc/cpuinfo: wmic on Windows, sysctl on macOS."""
    system = src.os_name()
    if system == "Windows":
        return _wmic_value(src, "Name")
    if system == "Darwin":
        out = src.run("sysctl", "-n", "machdep.cpu.brand_string")
        return out.strip() if out and out.strip() else None
    return None


def other_os_ceiling_mhz(src: Sources) -> tuple[float | None, str | None]:
    """Windows: Win32_Processor MaxClockSpeed (MHz); Intel macOS: hw.cpufrequency_max (Hz)."""
    system = src.os_name()
    if system == "Windows":
        raw = _wmic_value(src, "MaxClockSpeed")
        if raw and raw.isdigit() and int(raw) > 0:
            return float(raw), "wmic cpu MaxClockSpeed"
    elif system == "Darwin":
        raw = (src.run("sysctl", "-n", "hw.cpufrequency_max") or "").strip()
        if raw.isdigit() and int(raw) > 0:
            return int(raw) / 1e6, "sysctl hw.cpufrequency_max"
    return None, None


def cpufreq_ceiling_mhz(src: Sources) -> tuple[float | None, str | None]:
    """The clock ceiling of the current mode: max over cores of scaling_max_freq (kHz in sysfs)."""
    best: float | None = None
    source: str | None = None
    for name in ("scaling_max_freq", "cpuinfo_max_freq"):
        for cpu in src.list_dir("/sys/devices/system/cpu"):
            if not re.fullmatch(r"cpu[0-9]+", cpu):
                continue
            raw = src.read_first_line(f"/sys/devices/system/cpu/{cpu}/cpufreq/{name}")
            if raw and raw.isdigit():
                mhz = int(raw) / 1000.0
                if best is None or mhz > best:
                    best, source = mhz, f"cpufreq {name}"
        if best is not None:
            return best, source
    return None, None


def cpufreq_governor(src: Sources) -> str | None:
    return src.read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def cpufreq_driver(src: Sources) -> str | None:
    return src.read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_driver")


def online_cpus(src: Sources) -> list[str]:
    """``cpuN`` names of the cores that have a cpufreq folder (offline Jetson cores have none)."""
    return [c for c in src.list_dir("/sys/devices/system/cpu")
            if re.fullmatch(r"cpu[0-9]+", c) and src.list_dir(f"/sys/devices/system/cpu/{c}/cpufreq")]


def turbo_state(src: Sources) -> tuple[bool | None, str]:
    """Whether turbo/boost is enabled, and where that was read (intel_pstate no_turbo, cpufreq boost)."""
    no_turbo = src.read_first_line("/sys/devices/system/cpu/intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return no_turbo == "0", "intel_pstate/no_turbo"
    boost = src.read_first_line("/sys/devices/system/cpu/cpufreq/boost")
    if boost in ("0", "1"):
        return boost == "1", "cpufreq/boost"
    return None, "no intel_pstate/no_turbo or cpufreq/boost"


def collect_memory(src: Sources) -> dict[str, object]:
    text = src.read("/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.M)
    if m:
        return {"total_memory_gb": round(int(m.group(1)) / 1024**2, 3)}
    try:
        import psutil

        return {"total_memory_gb": round(psutil.virtual_memory().total / 1024**3, 3)}
    except Exception:  # psutil is a dependency, but probing never raises
        return {}
