"""The power mode and key frequency of an original calibration, from what the file itself recorded.

The mode comes from the file's own fields (the device's clock's ``power_mode_name``, then the other
clock's, then ``metadata.power_mode``), else from its file name, never from a Jetson's cpufreq governor
(``schedutil`` is the same in every mode: keyed by it, a 7 W and a 25 W run collide). The key's frequency
is hwcal's: the clock ceiling of the mode as recorded; the original's sampled clock stays in the record.
Mode ids and ceilings are checked against the board's nvpmodel table where hwcal has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwcal.interop.jetson_modes import JetsonBoard, board_of, ceiling_fault, check_mode_id, is_jetson
from hwcal.interop.legacy_common import LegacyFormatError, LegacyName, pos
from hwcal.naming import power_mode_token

UNKNOWN_MODE = "unknown"


@dataclass
class ModeFacts:
    """The power mode, its id (checked), and the key frequency of one original calibration."""

    power_mode: str
    power_mode_source: str
    freq_mhz: int
    freq_source: str
    mode_id: int | None = None
    board: JetsonBoard | None = None
    corrections: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)


def clocks(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cpu_clock, gpu_clock) of an original metadata object, {} where absent."""
    cpu = meta.get("cpu_clock")
    gpu = meta.get("gpu_clock")
    return (cpu if isinstance(cpu, dict) else {}), (gpu if isinstance(gpu, dict) else {})


def _same(a: str, b: str) -> bool:
    return power_mode_token(a).casefold() == power_mode_token(b).casefold()


def _mode_fields(meta: dict[str, Any], device_type: str) -> list[tuple[str, str]]:
    cpu, gpu = clocks(meta)
    fields = [("gpu_clock.power_mode_name", gpu.get("power_mode_name")),
              ("cpu_clock.power_mode_name", cpu.get("power_mode_name")),
              ("metadata.power_mode", meta.get("power_mode"))]
    if device_type != "gpu":
        fields[0], fields[1] = fields[1], fields[0]
    return [(where, value.strip()) for where, value in fields if isinstance(value, str) and value.strip()]


def _mode_from_fields(found: list[tuple[str, str]], name: LegacyName | None, faults: list[str]) -> tuple[str, str]:
    where, mode = found[0]
    others = [f"{w} {v!r}" for w, v in found[1:] if not _same(v, mode)]
    if others:
        faults.append(f"power mode {mode!r} ({where}) disagrees with {', '.join(others)}; {where} is used")
    if name is not None and not _same(name.mode, mode):
        faults.append(f"the file name says mode {name.mode!r}, the file's {where} {mode!r}; the field is used")
    return mode, f"original file: {where}"


def _mode_without_fields(meta: dict[str, Any], name: LegacyName | None, jetson: bool,
                         faults: list[str]) -> tuple[str, str]:
    governor = clocks(meta)[0].get("governor")
    governor = governor if isinstance(governor, str) and governor else None
    if name is not None:
        if governor and _same(name.mode, governor) and jetson:
            faults.append(f"the file name's mode {name.mode!r} is the cpufreq governor, which is the same in every "
                          "Jetson power mode (the original tool named the file after it); the mode is unknown")
            return UNKNOWN_MODE, "none recorded (the file name holds the cpufreq governor)"
        if governor and _same(name.mode, governor):
            return name.mode, "original file name (the original tool named it after cpu_clock.governor, the " \
                              "power plan on this platform)"
        return name.mode, "original file name"
    if jetson:
        return UNKNOWN_MODE, "none recorded in the original file (a Jetson's governor is not a power mode)"
    if governor:
        return governor, "original file: cpu_clock.governor (no power mode recorded; hwcal also keys a " \
                         "non-Jetson CPU by its governor)"
    return "default", "none recorded in the original file"


def power_mode(meta: dict[str, Any], device_type: str, name: LegacyName | None, jetson: bool,
               faults: list[str]) -> tuple[str, str]:
    """(mode as recorded, where it came from); disagreements between the file's fields and name are faults."""
    found = _mode_fields(meta, device_type)
    if found:
        return _mode_from_fields(found, name, faults)
    return _mode_without_fields(meta, name, jetson, faults)


def _ceiling(meta: dict[str, Any], device_type: str) -> tuple[float | None, str, str]:
    cpu, gpu = clocks(meta)
    if device_type == "gpu" and pos(gpu.get("max_sm_clock_mhz")):
        return float(gpu["max_sm_clock_mhz"]), "original file: gpu_clock.max_sm_clock_mhz (mode ceiling)", "gpu"
    if device_type != "gpu" and pos(cpu.get("max_freq_mhz")):
        return float(cpu["max_freq_mhz"]), "original file: cpu_clock.max_freq_mhz (cpufreq ceiling)", "cpu"
    return None, "", "cpu" if device_type != "gpu" else "gpu"


def key_frequency(meta: dict[str, Any], device_type: str, name: LegacyName | None, facts: ModeFacts) -> None:
    """Set ``facts.freq_mhz`` to the mode's clock ceiling as recorded (else the file name's sampled clock,
    flagged); a ceiling the board's table contradicts is a fault."""
    ceiling, source, kind = _ceiling(meta, device_type)
    if ceiling is None and name is not None:
        ceiling, source = float(name.freq_mhz), "original file name (a clock sample; no ceiling recorded)"
        facts.faults.append(f"no clock ceiling recorded; the key keeps the original sampled {name.freq_mhz} MHz")
    elif ceiling is not None:
        fault = ceiling_fault(kind, ceiling, facts.power_mode, facts.board)
        if fault:
            facts.faults.append(fault)
    if ceiling is None:
        raise LegacyFormatError("no clock recorded (gpu_clock.max_sm_clock_mhz / cpu_clock.max_freq_mhz) "
                                "and no {mode}_{freq}MHz_{framework}.json file name to take it from")
    facts.freq_mhz, facts.freq_source = round(ceiling), source
    if name is not None and name.freq_mhz != facts.freq_mhz:
        cpu, gpu = clocks(meta)
        sampled = gpu.get("sm_clock_mhz") if device_type == "gpu" else cpu.get("current_freq_mhz")
        facts.corrections.append(f"key frequency: the original file name's {name.freq_mhz} MHz was an instantaneous "
                                 f"clock sample (sampled {sampled} MHz); keyed at the mode's ceiling "
                                 f"{facts.freq_mhz} MHz")


def _checked_mode_id(meta: dict[str, Any], device_type: str, facts: ModeFacts) -> None:
    cpu, gpu = clocks(meta)
    order = [("gpu_clock.nvpmodel_mode", gpu), ("cpu_clock.nvpmodel_mode", cpu)]
    ordered = order if device_type == "gpu" else order[::-1]
    recorded = [(where, clock.get("nvpmodel_mode")) for where, clock in ordered if "nvpmodel_mode" in clock]
    if len(recorded) == 2 and recorded[0][1] == recorded[1][1]:  # the same value in both clocks: one verdict
        recorded = [(f"{recorded[0][0]} (and {recorded[1][0].split('.')[0]}'s)", recorded[0][1])]
    for where, value in recorded:
        kept, fault = check_mode_id(value, where, facts.power_mode, facts.board)
        if fault:
            facts.faults.append(fault)
        if kept is not None and facts.mode_id is None:
            facts.mode_id = kept


def mode_facts(meta: dict[str, Any], device_type: str, name: LegacyName | None, hardware: str, *,
               clock_from_name: bool = True) -> ModeFacts:
    """Power mode, checked mode id and key frequency of an original CPU or GPU calibration
    (``clock_from_name`` False: the name's clock belongs to another device of the file)."""
    cpu, _ = clocks(meta)
    jetson = is_jetson(hardware, meta.get("hardware_name"), cpu.get("driver"))
    faults: list[str] = []
    mode, source = power_mode(meta, device_type, name, jetson, faults)
    facts = ModeFacts(mode, source, 0, "", board=board_of(hardware, meta.get("hardware_name")) if jetson else None,
                      faults=faults)
    _checked_mode_id(meta, device_type, facts)
    key_frequency(meta, device_type, name if clock_from_name else None, facts)
    return facts
