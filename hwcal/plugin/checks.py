"""Preflight checks: small objects that each look at one thing that spoils a calibration.

Each reports passed / warning / failed / skipped with advice (pyperf's ``system`` checks are the
model). Checks read the machine only through ``Sources`` (and the interference monitor); the report and
the session glue are in ``hwcal.plugin.preflight``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hwcal.machine import KeyFacts
from hwcal.machine.clock_ceiling import jetson_gpu_devfreq
from hwcal.machine.cpu import cpufreq_driver, cpufreq_governor, turbo_state
from hwcal.machine.gpu import SLOWDOWN_REASONS
from hwcal.machine.interference import Monitor
from hwcal.machine.power import jetson_model, parse_nvpmodel
from hwcal.machine.sources import Sources
from hwcal.naming import power_mode_token

PASSED, WARNING, FAILED, SKIPPED = "passed", "warning", "failed", "skipped"
WARN_TEMP_C = 80.0
FAIL_TEMP_C = 95.0
BUSY_WARN_FRACTION = 0.5


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    message: str
    advice: str = ""
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "status": self.status, "message": self.message}
        if self.advice:
            d["advice"] = self.advice
        if self.value is not None:
            d["value"] = self.value
        return d


@dataclass
class PreflightContext:
    """What the checks look at: the machine, the device, the detected key and the options given."""

    device_type: str
    key: KeyFacts
    src: Sources = field(default_factory=Sources)
    gpu: dict[str, Any] | None = None
    power_mode_override: str | None = None
    frequency_override: int | None = None
    load_sample_s: float = 0.1
    monitor: Monitor | None = None  # the interference monitor the cases are watched with


class Check:
    name: ClassVar[str] = ""

    def run(self, ctx: PreflightContext) -> CheckResult:
        raise NotImplementedError

    def result(self, status: str, message: str, advice: str = "", value: Any = None) -> CheckResult:
        return CheckResult(self.name, status, message, advice, value)


class RegistryKeyCheck(Check):
    """Both halves of the key must be known before an hour of benchmarks, not after."""

    name = "registry_key"

    def run(self, ctx: PreflightContext) -> CheckResult:
        mode = ctx.power_mode_override or ctx.key.power_mode
        freq = ctx.frequency_override or ctx.key.freq_mhz
        if not freq or freq <= 0:
            return self.result(FAILED, f"clock ceiling unknown ({ctx.key.freq_source})",
                               "give the clock ceiling of this power mode with --frequency-mhz MHZ",
                               {"power_mode": mode})
        source = "--frequency-mhz" if ctx.frequency_override else ctx.key.freq_source
        pm_source = "--power-mode" if ctx.power_mode_override else ctx.key.power_mode_source
        return self.result(PASSED, f"{power_mode_token(mode) or mode}_{freq}MHz (power mode: {pm_source}; "
                                   f"clock: {source})", value={"power_mode": mode, "freq_mhz": freq})


class GovernorCheck(Check):
    name = "cpu_governor"

    def run(self, ctx: PreflightContext) -> CheckResult:
        if ctx.device_type != "cpu":
            return self.result(SKIPPED, "not a CPU calibration")
        governor = cpufreq_governor(ctx.src)
        if governor is None:
            return self.result(SKIPPED, "no cpufreq governor (no cpufreq driver, e.g. a VM whose host sets the clock)")
        if governor == "performance":
            return self.result(PASSED, "performance", value=governor)
        driver = cpufreq_driver(ctx.src)
        advice = "sudo jetson_clocks" if jetson_model(ctx.src) else "sudo cpupower frequency-set -g performance"
        return self.result(WARNING, f"{governor}{f' ({driver})' if driver else ''}: the clock follows the load, "
                                    "so short benchmarks may run before it ramps up",
                           f"for steady clocks: {advice}", governor)


class TurboCheck(Check):
    name = "turbo_boost"

    def run(self, ctx: PreflightContext) -> CheckResult:
        if ctx.device_type != "cpu":
            return self.result(SKIPPED, "not a CPU calibration")
        enabled, where = turbo_state(ctx.src)
        if enabled is None:
            return self.result(SKIPPED, f"turbo state unknown ({where})")
        if not enabled:
            return self.result(PASSED, f"turbo off ({where})", value=False)
        off = ("echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate/no_turbo" if "no_turbo" in where
               else "echo 0 | sudo tee /sys/devices/system/cpu/cpufreq/boost")
        return self.result(WARNING, f"turbo on ({where}): the clock under load depends on temperature and on how "
                                    "many cores are busy, so results vary more between runs",
                           f"for repeatable numbers turn it off ({off}); the key then carries the base clock", True)


def _busy_fraction(src: Sources, interval_s: float) -> tuple[float | None, str]:
    """Share of all CPU time used by other processes while we sleep; load average per core as fallback."""

    def snap() -> tuple[float, float] | None:
        line = (src.read("/proc/stat") or "").split("\n", 1)[0].split()
        if not line or line[0] != "cpu":
            return None
        ticks = [float(x) for x in line[1:9] if x.isdigit()]
        return sum(ticks), ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)

    if src.is_local:
        first = snap()
        time.sleep(interval_s)
        second = snap()
        if first and second and second[0] > first[0]:
            return 1.0 - (second[1] - first[1]) / (second[0] - first[0]), f"/proc/stat over {interval_s:g} s"
    load = src.read_first_line("/proc/loadavg")
    cores = len([c for c in src.list_dir("/sys/devices/system/cpu") if re.fullmatch(r"cpu[0-9]+", c)]) or (
        os.cpu_count() if src.is_local else 0)
    if load and cores:
        try:
            return float(load.split()[0]) / cores, "1-minute load average per CPU"
        except ValueError:
            pass
    return None, "no /proc/stat or /proc/loadavg"


class LoadCheck(Check):
    name = "system_load"

    def run(self, ctx: PreflightContext) -> CheckResult:
        busy, how = _busy_fraction(ctx.src, ctx.load_sample_s)
        if busy is None:
            return self.result(SKIPPED, f"system load unknown ({how})")
        value = round(busy, 3)
        if busy >= BUSY_WARN_FRACTION:
            return self.result(WARNING, f"other processes keep the CPUs {busy:.0%} busy ({how})",
                               "stop other work on this machine, or the benchmarks share it", value)
        return self.result(PASSED, f"{busy:.0%} busy ({how})", value=value)


class TemperatureCheck(Check):
    name = "temperature"

    def run(self, ctx: PreflightContext) -> CheckResult:
        hottest: tuple[float, str, float | None] | None = None
        base = "/sys/class/thermal"
        for zone in ctx.src.list_dir(base):
            if not zone.startswith("thermal_zone"):
                continue
            milli = ctx.src.read_number(f"{base}/{zone}/temp")
            if milli is None or not -40_000 < milli < 150_000:  # disconnected sensors read -40 C or 255 C
                continue
            trips = []
            for i in range(16):
                kind = ctx.src.read_first_line(f"{base}/{zone}/trip_point_{i}_type")
                if kind is None:
                    break
                t = ctx.src.read_number(f"{base}/{zone}/trip_point_{i}_temp")
                if kind in ("passive", "hot", "critical") and t and t > 0:
                    trips.append(t / 1000.0)
            label = ctx.src.read_first_line(f"{base}/{zone}/type") or zone
            c = milli / 1000.0
            if hottest is None or c > hottest[0]:
                hottest = (c, label, min(trips) if trips else None)
        if hottest is None:
            return self.result(SKIPPED, "no thermal zone readable (e.g. a VM)")
        c, label, trip = hottest
        limit = min(FAIL_TEMP_C, trip) if trip else FAIL_TEMP_C
        if c >= limit:
            return self.result(FAILED, f"{label} at {c:.0f} °C, at or above {limit:.0f} °C: the clock is being "
                                       "pulled down now", "let the machine cool down, check fans and airflow", c)
        if c >= WARN_TEMP_C:
            return self.result(WARNING, f"{label} at {c:.0f} °C: little headroom before thermal throttling",
                               "let the machine cool down first", c)
        return self.result(PASSED, f"{label} at {c:.0f} °C (hottest zone)", value=c)


def _is_nvml_gpu(ctx: PreflightContext) -> bool:
    return ctx.device_type == "gpu" and not jetson_model(ctx.src)


class GpuPersistenceCheck(Check):
    name = "gpu_persistence_mode"

    def run(self, ctx: PreflightContext) -> CheckResult:
        if not _is_nvml_gpu(ctx):
            return self.result(SKIPPED, "not a discrete NVIDIA GPU calibration")
        mode = (ctx.gpu or {}).get("persistence_mode")
        if mode is None:
            return self.result(SKIPPED, "persistence mode unknown (NVML unavailable)")
        if mode:
            return self.result(PASSED, "persistence mode on", value=True)
        return self.result(WARNING, "persistence mode off: the driver unloads between runs and the GPU starts cold",
                           "sudo nvidia-smi -pm 1", False)


class GpuNeighboursCheck(Check):
    """Another process computing on the GPU (a neighbour on a shared runner) takes its share of every case:
    its figures would be filed as this GPU's."""

    name = "gpu_other_processes"

    def run(self, ctx: PreflightContext) -> CheckResult:
        if not _is_nvml_gpu(ctx) or ctx.monitor is None:
            return self.result(SKIPPED, "not a discrete NVIDIA GPU calibration")
        pids = ctx.monitor.snapshot().gpu_other_pids
        if pids:
            return self.result(FAILED, f"other compute processes on this GPU (pids {', '.join(map(str, pids))}): "
                                       "their work would be filed as this GPU's",
                               "stop them, or --force (every case is still watched and flagged)", list(pids))
        return self.result(PASSED, "no other compute process on this GPU (NVML)", value=[])


class GpuClocksCheck(Check):
    name = "gpu_clocks"

    def run(self, ctx: PreflightContext) -> CheckResult:
        if not _is_nvml_gpu(ctx):
            return self.result(SKIPPED, "not a discrete NVIDIA GPU calibration")
        gpu = ctx.gpu or {}
        if gpu.get("source") != "nvml":
            return self.result(WARNING, "NVML unavailable: power limit, clock ceiling and clock under load "
                                        "cannot be read", "pip install nvidia-ml-py (and check the driver)")
        reasons = set(gpu.get("clock_event_reasons") or [])
        slow = sorted(reasons & SLOWDOWN_REASONS)
        temp, limit = gpu.get("temperature_c"), gpu.get("temperature_slowdown_c")
        value = {k: gpu.get(k) for k in ("sm_clock_now_mhz", "sm_clock_application_mhz", "sm_clock_max_mhz",
                                         "temperature_c", "power_limit_w") if gpu.get(k) is not None}
        if slow:
            return self.result(FAILED, f"the GPU is slowing its clock now ({', '.join(slow)})",
                               "let it cool, check cooling and power cables (nvidia-smi -q -d PERFORMANCE)", value)
        if isinstance(temp, (int, float)) and isinstance(limit, (int, float)) and temp >= limit:
            return self.result(FAILED, f"{temp} °C, at the {limit} °C slowdown threshold",
                               "let the GPU cool down first", value)
        app, top = gpu.get("sm_clock_application_mhz"), gpu.get("sm_clock_max_mhz")
        if isinstance(app, (int, float)) and isinstance(top, (int, float)) and 0 < app < top:
            return self.result(WARNING, f"applications clocks cap the SM clock at {app} MHz (max {top} MHz); "
                                        "the key carries the cap",
                               "sudo nvidia-smi -rac to calibrate at the full clock", value)
        return self.result(PASSED, f"no slowdown reason active; SM clock max {top} MHz", value=value)


class JetsonPowerModeCheck(Check):
    name = "jetson_power_mode"

    def run(self, ctx: PreflightContext) -> CheckResult:
        family = jetson_model(ctx.src)
        if not family:
            return self.result(SKIPPED, "not a Jetson")
        parsed = parse_nvpmodel(ctx.src.run("nvpmodel", "-q"))
        given = ctx.power_mode_override
        if parsed is None:
            if given:
                return self.result(WARNING, f"nvpmodel -q unreadable; filing under --power-mode {given}",
                                   "check it is the real mode: sudo nvpmodel -q", given)
            return self.result(FAILED, f"Jetson {family}: nvpmodel -q is missing or printed no mode, so the power "
                                       "mode for the key is unknown",
                               "run `sudo nvpmodel -q` to see the mode, or give --power-mode (e.g. 15W)")
        name, mode_id = parsed
        if given and power_mode_token(given) != power_mode_token(name):
            return self.result(FAILED, f"--power-mode {given} but nvpmodel reports {name} (mode {mode_id}): the "
                                       "calibration would be filed under the wrong mode",
                               f"drop --power-mode, or switch first: sudo nvpmodel -m <id of {given}>",
                               {"given": given, "nvpmodel": name})
        return self.result(PASSED, f"{name} (nvpmodel mode {mode_id})", value={"name": name, "id": mode_id})


class JetsonClocksCheck(Check):
    name = "jetson_clocks"

    def run(self, ctx: PreflightContext) -> CheckResult:
        if not jetson_model(ctx.src):
            return self.result(SKIPPED, "not a Jetson")
        floating = []
        node = jetson_gpu_devfreq(ctx.src)
        if node:
            lo, hi = ctx.src.read_number(f"{node}/min_freq"), ctx.src.read_number(f"{node}/max_freq")
            if lo is not None and hi is not None and lo < hi:
                floating.append(f"GPU {lo / 1e6:.0f}-{hi / 1e6:.0f} MHz")
        cpu = "/sys/devices/system/cpu/cpu0/cpufreq"
        lo, hi = ctx.src.read_number(f"{cpu}/scaling_min_freq"), ctx.src.read_number(f"{cpu}/scaling_max_freq")
        if lo is not None and hi is not None and lo < hi:
            floating.append(f"CPU {lo / 1e3:.0f}-{hi / 1e3:.0f} MHz")
        if floating:
            return self.result(WARNING, f"DVFS active ({'; '.join(floating)}): clocks ramp with the load, so short "
                                        "benchmarks can run below the mode's max",
                               "sudo jetson_clocks pins the clocks at the mode's max", floating)
        return self.result(PASSED, "clocks pinned at the mode's max (jetson_clocks)")


CHECKS: tuple[Check, ...] = (RegistryKeyCheck(), JetsonPowerModeCheck(), JetsonClocksCheck(), GovernorCheck(),
                             TurboCheck(), LoadCheck(), TemperatureCheck(), GpuPersistenceCheck(), GpuNeighboursCheck(),
                             GpuClocksCheck())


