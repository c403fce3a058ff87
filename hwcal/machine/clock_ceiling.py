"""The clock ceiling that keys a calibration: stable from run to run in one power mode.

An idle clock sample is never a key (the old registry filed one CPU in one mode as 900, 908, 929,
942, 1109, 1136, 1286 and 1531 MHz). The ceiling is what the mode allows: cpufreq
``scaling_max_freq``, the Jetson mode's GPU ``max_freq``, the GPU's applications or max SM clock.
"""

from __future__ import annotations

import re

from hwcal.machine.sources import Sources

_DEVFREQ = "/sys/class/devfreq"
# Jetson GPU devfreq nodes: 17000000.ga10b (Orin, JetPack 5), 17000000.gpu (JetPack 6), gv11b (Xavier) ...
_GPU_NODE_RE = re.compile(r"\.(gpu|g[a-z]?[0-9]+b)$")


def cpu_ceiling_mhz(src: Sources, cpu: dict[str, object]) -> tuple[float | None, str]:
    """cpufreq max (Windows: MaxClockSpeed; Intel macOS: hw.cpufrequency_max), else the nominal clock in
    the model name, else /proc/cpuinfo MHz; with the source."""
    from hwcal.machine.cpu import cpufreq_ceiling_mhz, other_os_ceiling_mhz

    ceiling, source = cpufreq_ceiling_mhz(src)
    if ceiling is None:
        ceiling, source = other_os_ceiling_mhz(src)
    if ceiling is not None:
        return ceiling, source or "cpufreq"
    m = re.search(r"@\s*([0-9.]+)\s*GHz", str(cpu.get("model") or ""))
    if m:
        return float(m.group(1)) * 1000.0, "nominal clock in the CPU model name (no cpufreq)"
    nominal = cpu.get("nominal_mhz")
    if isinstance(nominal, float) and nominal > 0:
        return nominal, "/proc/cpuinfo cpu MHz (nominal; no cpufreq)"
    return None, "unknown (no cpufreq, no nominal clock)"


def jetson_gpu_devfreq(src: Sources) -> str | None:
    """sysfs folder of the Jetson GPU's devfreq node, or None."""
    for name in src.list_dir(_DEVFREQ):
        if _GPU_NODE_RE.search(name):
            return f"{_DEVFREQ}/{name}"
    return None


def nvpmodel_conf_gpu_max_mhz(src: Sources, mode_id: int | None) -> float | None:
    """GPU MAX_FREQ (Hz) of power model ``mode_id`` in /etc/nvpmodel.conf; None if absent or 'no limit'."""
    text = src.read("/etc/nvpmodel.conf")
    if not text or mode_id is None:
        return None
    in_mode = False
    for line in text.splitlines():
        head = re.match(r"^\s*<\s*POWER_MODEL\s+ID\s*=\s*([0-9]+)", line)
        if head:
            in_mode = int(head.group(1)) == mode_id
            continue
        if line.strip().startswith("<"):
            in_mode = False
        m = re.match(r"^\s*GPU\s+MAX_FREQ\s+(-?[0-9]+)", line)
        if in_mode and m and int(m.group(1)) > 0:
            return int(m.group(1)) / 1e6
    return None


def jetson_gpu_ceiling_mhz(src: Sources, mode_id: int | None) -> tuple[float | None, str]:
    """The Jetson mode's GPU max: devfreq max_freq (Hz), else the mode's GPU MAX_FREQ in nvpmodel.conf."""
    node = jetson_gpu_devfreq(src)
    if node:
        hz = src.read_number(f"{node}/max_freq")
        if hz and hz > 0:
            return hz / 1e6, f"devfreq {node.rsplit('/', 1)[-1]} max_freq"
    mhz = nvpmodel_conf_gpu_max_mhz(src, mode_id)
    if mhz:
        return mhz, f"/etc/nvpmodel.conf GPU MAX_FREQ of mode {mode_id}"
    return None, "unknown (no GPU devfreq node, no nvpmodel.conf limit)"


def nvml_gpu_ceiling_mhz(gpu: dict[str, object]) -> tuple[float | None, str]:
    """Applications clock where it is set below the max (the GPU will not exceed it), else the max SM clock."""
    app, top = gpu.get("sm_clock_application_mhz"), gpu.get("sm_clock_max_mhz")
    if isinstance(app, (int, float)) and isinstance(top, (int, float)) and 0 < app < top:
        return float(app), "NVML applications SM clock (set below the max)"
    if isinstance(top, (int, float)) and top > 0:
        return float(top), "NVML max SM clock"
    return None, "unknown (NVML unavailable)"
