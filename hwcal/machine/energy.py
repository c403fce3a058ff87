"""Energy meters: one reader per source, each reading a cumulative energy counter where the hardware
keeps one, and instantaneous power only where it does not.

- NVML ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded; Volta and newer): the board.
- powercap/RAPL ``energy_uj`` (Intel, and AMD through the same driver): one package domain per socket and
  the DRAM domains where the CPU has them (server Intel; client Intel and AMD have none). The counter wraps
  at ``max_energy_range_uj``; the sampler unwraps it between reads (``counter_delta``).
- Jetson INA3221 rails (``hwcal.machine.jetson_power``): power, no counter, so the sampler integrates.

``find_meter`` picks the one for the device being calibrated, or says, per source tried, why none can be
read (missing, readable only by root, no NVML ...). Nothing here raises for a missing file or library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from hwcal.machine.power import jetson_model
from hwcal.machine.sources import LOCAL, Sources

POWERCAP = "/sys/class/powercap"
# Since Linux 5.10 energy_uj is mode 0400 (CVE-2020-8694, the Platypus power side channel).
ROOT_ONLY = ("readable only by root (mode 0400 since Linux 5.10, CVE-2020-8694): run as root, or "
             "`sudo chmod o+r /sys/class/powercap/*/energy_uj` for the run")


class EnergyMeter(Protocol):
    """What the sampler reads. ``kind`` "counter": ``read`` gives cumulative joules per domain (wrapping at
    ``wrap_j`` where set); "power": watts per domain. ``total`` names the domain the figures are of."""

    kind: str
    sensor: str
    method: str
    total: str
    wrap_j: dict[str, float]
    interval_s: float  # how often the sampler reads it
    update_note: str  # what the hardware says of its own update rate, "" if nothing

    def read(self) -> dict[str, float]: ...

    def close(self) -> None: ...


def counter_delta(before: float, after: float, wrap: float | None) -> float:
    """Joules between two reads of one counter; a counter that went down wrapped once at ``wrap``
    (RAPL's ``max_energy_range_uj``). Reads are milliseconds apart, so more than one wrap cannot hide."""
    delta = after - before
    if delta < 0 and wrap:
        delta += wrap
    return delta


# ---- NVML -----------------------------------------------------------------------------------------
class NvmlEnergyMeter:
    """The GPU board's total-energy counter (mJ), read through the same NVML handle as its clocks."""

    kind = "counter"
    total = "board"
    interval_s = 0.002  # ~20 us a call: 1% of one host core
    update_note = ""

    def __init__(self, index: int) -> None:
        from hwcal.machine import gpu

        nv = gpu._nvml()
        if nv is None:
            raise RuntimeError("no NVML (nvidia-ml-py missing, no driver, or nvmlInit refused)")
        self._nv, self._h = nv, gpu._handle_for(nv, index)
        self.wrap_j: dict[str, float] = {}
        try:
            self.read()
        except Exception as exc:  # pre-Volta GPUs, MIG instances: no counter
            raise RuntimeError(f"NVML has no total-energy counter for GPU {index} ({type(exc).__name__}: {exc}; "
                               "Volta and newer have one)") from None
        self.sensor = f"NVML total energy of GPU {index} (whole board: chip, HBM, regulators)"
        self.method = ("nvmlDeviceGetTotalEnergyConsumption (mJ, cumulative) read every "
                       f"{self.interval_s * 1e3:g} ms in a thread")

    def read(self) -> dict[str, float]:
        return {"board": float(self._nv.nvmlDeviceGetTotalEnergyConsumption(self._h)) / 1e3}

    def close(self) -> None:
        pass


# ---- powercap / RAPL ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RaplDomain:
    name: str  # "package-0", "dram-0"
    path: str  # the zone folder
    max_range_uj: float | None


@dataclass
class RaplScan:
    domains: list[RaplDomain] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _zone_kind(name: str) -> str | None:
    if re.fullmatch(r"package-\d+(-die-\d+)?", name):
        return "package"
    return "dram" if name == "dram" else None


def scan_rapl(src: Sources) -> RaplScan:
    """Package and DRAM zones of ``/sys/class/powercap`` (``intel-rapl:N`` packages, ``intel-rapl:N:M``
    subzones named ``dram``); core/uncore subzones are inside the package and psys contains it: both left out."""
    scan = RaplScan()
    zones = [z for z in src.list_dir(POWERCAP) if re.fullmatch(r"intel-rapl:\d+(:\d+)?", z)]
    for zone in zones:
        folder = f"{POWERCAP}/{zone}"
        name = src.read_first_line(f"{folder}/name") or ""
        kind = _zone_kind(name)
        if kind is None:
            if name == "psys":
                scan.notes.append(f"{zone} (psys, the whole platform) left out: it contains the packages")
            continue
        socket = zone.split(":")[1]
        label = name if kind == "package" else f"dram-{socket}"
        if src.read_number(f"{folder}/energy_uj") is None:
            if "energy_uj" in src.list_dir(folder):
                scan.unreadable.append(f"{folder}/energy_uj")
            continue
        scan.domains.append(RaplDomain(label, folder, src.read_number(f"{folder}/max_energy_range_uj")))
    return scan


class RaplMeter:
    """Every package domain and every DRAM domain of the host, summed into ``total`` (package + DRAM)."""

    kind = "counter"
    total = "total"
    interval_s = 0.005  # RAPL updates about every 1 ms; a sysfs read costs ~10 us
    update_note = "RAPL updates its counters about every 1 ms"

    def __init__(self, src: Sources, domains: list[RaplDomain]) -> None:
        self._src = src
        self.domains = domains
        self.wrap_j = {d.name: d.max_range_uj / 1e6 for d in domains if d.max_range_uj}
        names = [d.name for d in domains]
        dram = [n for n in names if n.startswith("dram")]
        self.sensor = "RAPL " + " + ".join(names) + ("" if dram else " (no DRAM domain on this CPU: package only)")
        self.method = (f"powercap energy_uj (uJ, cumulative, unwrapped at max_energy_range_uj) of {', '.join(names)}, "
                       f"read every {self.interval_s * 1e3:g} ms in a thread; total = their sum")

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for d in self.domains:
            uj = self._src.read_number(f"{d.path}/energy_uj")
            if uj is None:
                raise RuntimeError(f"{d.path}/energy_uj became unreadable")
            out[d.name] = uj / 1e6
        return out

    def close(self) -> None:
        pass


def rapl_meter(src: Sources) -> tuple[RaplMeter | None, str]:
    scan = scan_rapl(src)
    if not scan.domains:
        if scan.unreadable:
            return None, f"RAPL: {', '.join(scan.unreadable)} {ROOT_ONLY}"
        if not src.list_dir(POWERCAP):
            return None, f"RAPL: no {POWERCAP} (no powercap driver: a VM, or a kernel without intel_rapl)"
        return None, f"RAPL: no package zone under {POWERCAP}"
    return RaplMeter(src, scan.domains), ""


# ---- choosing one ---------------------------------------------------------------------------------
@dataclass
class MeterChoice:
    """The meter for a device, or None with every reason a source gave (in the order tried)."""

    meter: EnergyMeter | None
    tried: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.tried) or "no energy source known for this device"


def _jetson_meter(src: Sources) -> MeterChoice:
    from hwcal.machine.jetson_power import ina_meter, tegrastats_meter

    choice = MeterChoice(None)
    meter, why = ina_meter(src)
    if meter is not None:
        return MeterChoice(meter)
    choice.tried.append(why)
    stats, why = tegrastats_meter(src)
    if stats is not None:
        return MeterChoice(stats, choice.tried)
    choice.tried.append(why)
    return choice


def _nvml_meter(device: str) -> MeterChoice:
    index = int(device.split(":")[1]) if ":" in device else 0
    try:
        return MeterChoice(NvmlEnergyMeter(index))
    except Exception as exc:
        return MeterChoice(None, [f"NVML: {exc}"])


def find_meter(device_type: str, device: str, src: Sources = LOCAL) -> MeterChoice:
    """The energy meter of the device being calibrated: a Jetson's INA3221 rails (then tegrastats), a
    GPU's NVML counter, a CPU's RAPL domains; never raises."""
    try:
        if jetson_model(src):
            return _jetson_meter(src)
        if device_type == "gpu":
            return _nvml_meter(device)
        meter, why = rapl_meter(src)
        return MeterChoice(meter, [] if meter else [why])
    except Exception as exc:  # a probe must never stop the run
        return MeterChoice(None, [f"{type(exc).__name__}: {exc}"])


def describe(meter: Any) -> dict[str, Any]:
    """What a calibration files about the meter it used."""
    note = meter.update_note if meter.update_note and meter.update_note not in meter.method else ""
    return {"sensor": meter.sensor, "method": meter.method + (f" ({note})" if note else ""), "kind": meter.kind,
            "poll_hz": round(1.0 / meter.interval_s, 1)}
