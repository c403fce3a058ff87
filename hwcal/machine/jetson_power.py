"""Jetson power rails: the INA3221 monitors on every Jetson module, read through sysfs, and tegrastats as
the fallback. INA3221 keeps no energy counter, so these are power meters: the sampler integrates them.

The layouts L4T has used (tests/data/machines/ and tests/test_energy_meters.py hold one of each):

- L4T r32 (JetPack 4: Nano, TX2, Xavier): the ``ina3221x`` IIO driver,
  ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/rail_name_<i>`` with ``in_power<i>_input``
  (mW), ``in_current<i>_input`` (mA), ``in_voltage<i>_input`` (mV), channels 0..2.
- L4T r35+ (JetPack 5 and 6: Orin): the mainline ``ina3221`` hwmon driver,
  ``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/in<i>_label`` with ``in<i>_input`` (bus mV)
  and ``curr<i>_input`` (mA), channels 1..3 (``power<i>_input``, uW, where a kernel has it), and
  ``update_interval`` (ms); the same folder is ``/sys/class/hwmon/hwmon<N>`` with ``name`` "ina3221".

Which rail is the whole module: the input rail where the board has one (``VDD_IN`` on Orin Nano/NX, Xavier
NX and TX2, ``POM_5V_IN`` on Nano); AGX Xavier and AGX Orin measure no input rail, so their total is the sum
of every named rail (``NC`` channels left out), and the sensor line says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass

from hwcal.machine.sources import Sources

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
IIO_DRIVER = "/sys/bus/i2c/drivers/ina3221x"
HWMON_DRIVER = "/sys/bus/i2c/drivers/ina3221"
SAMPLE_INTERVAL_S = 0.02  # 50 Hz: each sample is 2-3 sysfs reads per rail over I2C, ~1 ms in all
TEGRASTATS_INTERVAL_MS = 100


@dataclass(frozen=True)
class Rail:
    """One INA3221 channel: its label and the files its power is computed from."""

    name: str
    power: str | None = None  # a power file (mW for IIO, uW for hwmon)
    power_scale_w: float = 1e-3
    volts: str | None = None  # mV
    amps: str | None = None  # mA


def _iio_rails(src: Sources) -> tuple[list[Rail], str]:
    rails: list[Rail] = []
    for dev in src.list_dir(IIO_DRIVER):
        base = f"{IIO_DRIVER}/{dev}"
        for sub in [s for s in src.list_dir(base) if s.startswith("iio:device")]:
            folder = f"{base}/{sub}"
            for entry in src.list_dir(folder):
                m = re.fullmatch(r"rail_name_(\d+)", entry)
                name = src.read_first_line(f"{folder}/{entry}") if m else None
                if not m or not name:
                    continue
                i = m.group(1)
                rails.append(Rail(name, power=f"{folder}/in_power{i}_input", power_scale_w=1e-3,
                                  volts=f"{folder}/in_voltage{i}_input", amps=f"{folder}/in_current{i}_input"))
    return rails, "ina3221x IIO (L4T r32)"


def _hwmon_folders(src: Sources) -> list[str]:
    folders = [f"{HWMON_DRIVER}/{dev}/hwmon/{h}" for dev in src.list_dir(HWMON_DRIVER)
               for h in src.list_dir(f"{HWMON_DRIVER}/{dev}/hwmon") if h.startswith("hwmon")]
    if folders:
        return folders
    return [f"/sys/class/hwmon/{h}" for h in src.list_dir("/sys/class/hwmon")
            if src.read_first_line(f"/sys/class/hwmon/{h}/name") == "ina3221"]


def _hwmon_rails(src: Sources) -> tuple[list[Rail], str]:
    rails: list[Rail] = []
    intervals = []
    for folder in _hwmon_folders(src):
        files = set(src.list_dir(folder))
        interval = src.read_number(f"{folder}/update_interval")
        if interval:
            intervals.append(interval)
        for entry in sorted(files):
            m = re.fullmatch(r"in(\d+)_label", entry)
            name = src.read_first_line(f"{folder}/{entry}") if m else None
            if not m or not name:
                continue
            i = m.group(1)
            if f"power{i}_input" in files:
                rails.append(Rail(name, power=f"{folder}/power{i}_input", power_scale_w=1e-6))
            elif f"in{i}_input" in files and f"curr{i}_input" in files:
                rails.append(Rail(name, volts=f"{folder}/in{i}_input", amps=f"{folder}/curr{i}_input"))
    note = f", update_interval {max(intervals):g} ms" if intervals else ""
    return rails, f"ina3221 hwmon (L4T r35+{note})"


def _named(rails: list[Rail]) -> list[Rail]:
    """Rails that measure something: 'NC' (not connected) channels and summation channels left out."""
    return [r for r in rails if r.name.upper() != "NC" and "sum" not in r.name.lower()]


class InaMeter:
    """Power of every INA3221 rail of the board; ``total`` is the input rail, else the sum of the rails."""

    kind = "power"
    total = "total"
    interval_s = SAMPLE_INTERVAL_S
    update_note = ""

    def __init__(self, src: Sources, rails: list[Rail], layout: str) -> None:
        self._src = src
        self.rails = rails
        self.wrap_j: dict[str, float] = {}
        names = [r.name for r in rails]
        self.input_rail = next((n for n in INPUT_RAILS if n in names), None)
        what = (f"{self.input_rail} (the module's input)" if self.input_rail
                else "the sum of " + " + ".join(names) + " (no input rail on this module)")
        self.sensor = f"INA3221 {what}; rails {', '.join(names)}"
        self.update_note = layout
        self.method = (f"INA3221 rail power ({layout}) read every {self.interval_s * 1e3:g} ms in a thread and "
                       "integrated over time (trapezoids): the monitor keeps no energy counter")

    def _watts(self, rail: Rail) -> float:
        if rail.power is not None:
            p = self._src.read_number(rail.power)
            if p is not None:
                return p * rail.power_scale_w
        mv = self._src.read_number(rail.volts) if rail.volts else None
        ma = self._src.read_number(rail.amps) if rail.amps else None
        if mv is None or ma is None:
            raise RuntimeError(f"INA3221 rail {rail.name}: power unreadable")
        return mv * ma / 1e6

    def read(self) -> dict[str, float]:
        out = {r.name: self._watts(r) for r in self.rails}
        out["total"] = out[self.input_rail] if self.input_rail else sum(out.values())
        return out

    def close(self) -> None:
        pass


def ina_meter(src: Sources) -> tuple[InaMeter | None, str]:
    """The board's INA3221 rails (hwmon first, then the older IIO layout), or None and why."""
    for find in (_hwmon_rails, _iio_rails):
        rails, layout = find(src)
        rails = _named(rails)
        if not rails:
            continue
        meter = InaMeter(src, rails, layout)
        try:
            meter.read()
        except RuntimeError as exc:
            return None, f"INA3221 ({layout}): {exc}"
        return meter, ""
    return None, f"INA3221: no rails under {HWMON_DRIVER}, /sys/class/hwmon or {IIO_DRIVER}"


# ---- tegrastats -----------------------------------------------------------------------------------
# JetPack 5/6: "VDD_IN 5021mW/5021mW"; JetPack 4: "POM_5V_IN 2345/2345" (no unit; RAM/SWAP end in MB).
_RAIL_RE = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")


def parse_tegrastats(line: str) -> dict[str, float]:
    """Rail name -> present power (W) of one tegrastats line (the first of each 'now/average' pair)."""
    return {m.group(1): int(m.group(2)) / 1e3 for m in _RAIL_RE.finditer(line)}


class TegrastatsMeter:
    """Rail power from a ``tegrastats --interval 100`` child process, the last line's figures."""

    kind = "power"
    total = "total"
    interval_s = SAMPLE_INTERVAL_S

    def __init__(self, executable: str, interval_ms: int = TEGRASTATS_INTERVAL_MS) -> None:
        self.wrap_j: dict[str, float] = {}
        self.update_note = f"tegrastats prints every {interval_ms} ms"
        self._latest: dict[str, float] = {}
        self._lock = threading.Lock()
        self._proc = subprocess.Popen([executable, "--interval", str(interval_ms)], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._follow, name="hwcal-tegrastats", daemon=True)
        self._thread.start()
        self.sensor = "tegrastats rails"
        self.method = (f"tegrastats --interval {interval_ms} rail power (fallback: no INA3221 sysfs readable), "
                       f"sampled every {self.interval_s * 1e3:g} ms and integrated over time")

    def _follow(self) -> None:
        if self._proc.stdout is None:  # Popen was given stdout=PIPE: never None
            return
        for line in self._proc.stdout:
            rails = parse_tegrastats(line)
            if rails:
                with self._lock:
                    self._latest = rails

    def wait_first(self, timeout_s: float = 3.0) -> dict[str, float]:
        """The first line's rails (tegrastats prints its first line after one interval)."""
        import time

        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self._lock:
                if self._latest:
                    return dict(self._latest)
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("tegrastats printed no rail power")

    def read(self) -> dict[str, float]:
        if self._proc.poll() is not None:
            raise RuntimeError(f"tegrastats exited ({self._proc.returncode})")
        with self._lock:
            rails = dict(self._latest)
        named = {k: v for k, v in rails.items() if k.upper() != "NC"}
        rail_in = next((n for n in INPUT_RAILS if n in named), None)
        rails["total"] = named[rail_in] if rail_in else sum(named.values())
        return rails

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()


def tegrastats_meter(src: Sources, executable: str | None = None) -> tuple[TegrastatsMeter | None, str]:
    """tegrastats as a power meter (only on the machine itself: it is a live process), or None and why."""
    path = executable or (shutil.which("tegrastats") if src.is_local else None)
    if path is None:
        return None, "tegrastats: not found"
    try:
        meter = TegrastatsMeter(path)
        rails = meter.wait_first()
    except (OSError, RuntimeError) as exc:
        return None, f"tegrastats: {exc}"
    names = sorted(k for k in rails if k.upper() != "NC")
    rail_in = next((n for n in INPUT_RAILS if n in rails), None)
    meter.sensor = (f"tegrastats {rail_in} (the module's input)" if rail_in
                    else "tegrastats sum of " + " + ".join(names)) + f"; rails {', '.join(names)}"
    return meter, ""
