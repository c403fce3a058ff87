"""The fleet: which self-hosted runners calibrate what, read from ``fleet/fleet.toml``.

The config lists runners; each runner has power modes and frameworks, so the fleet is a matrix of
runner x power mode x framework cells. GitHub Actions gets one job per runner, not per cell: a
per-runner ``concurrency`` group keeps at most one *pending* job and cancels the others, so six
per-cell jobs of one board would become one running, one pending and four cancelled. The runner's
job walks its cells in sequence instead (``fleet/calibrate.py``), under a host lock.

Power modes are switched only where the runner says it can (``power_switch = "nvpmodel"``): the
mode is found by name in ``/etc/nvpmodel.conf`` (ids differ between boards and JetPack releases)
and set with ``sudo -n nvpmodel -m ID``, which a sudoers rule allows (docs/fleet.md).
"""

from __future__ import annotations

import argparse
import builtins
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypedDict

from hwcal.errors import HwcalError
from hwcal.naming import check_device, check_hardware_id, check_power_mode, normalise_framework, power_mode_token

FLEET_FORMAT_VERSION = 1
DEFAULT_FLEET = Path(__file__).resolve().parents[2] / "fleet" / "fleet.toml"
AUTO = "auto"  # power mode "auto": no --power-mode, hwcal detects it (governor, NVML power limit)
POWER_SWITCHES = ("none", "nvpmodel")
_RUNNER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_NVPMODEL_CONF_RE = re.compile(r"<\s*POWER_MODEL\s+ID=(?P<id>\d+)\s+NAME=(?P<name>[^\s>]+)\s*>")


class MatrixEntry(TypedDict):
    """One job of the calibrate workflow's matrix: a runner and the cells it walks."""

    runner: str
    labels: list[str]  # runs-on
    python: str  # actions/setup-python version, or "system"
    install: str  # pip install target, e.g. ".[torch]"
    pip_args: str
    timeout_minutes: int
    cells: str  # "7W/pytorch, MAXN_SUPER/pytorch", for people reading the run


class FleetConfigError(HwcalError):
    """The fleet file is unreadable or a value in it is wrong; names the file and the entry."""


@dataclass(frozen=True)
class Runner:
    """One self-hosted runner: the machine it is, and the cells it calibrates."""

    name: str
    labels: tuple[str, ...]
    description: str = ""
    device: str = "cpu"
    python: str = "3.11"  # a version for actions/setup-python, or "system" (vendor torch, e.g. JetPack)
    extras: tuple[str, ...] = ()
    pip_args: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ("numpy",)
    power_switch: str = "none"
    power_modes: tuple[str, ...] = (AUTO,)
    nvpmodel_ids: Mapping[str, int] = field(default_factory=dict)
    hardware_ids: Mapping[str, str] = field(default_factory=dict)  # framework -> registry id
    pytest_args: tuple[str, ...] = ()
    device_lock: str = "host"
    timeout_minutes: int = 180

    def device_for(self, framework: str) -> str:
        """numpy calibrates the host CPU even on a GPU runner; pytorch uses the runner's device."""
        return "cpu" if framework == "numpy" else self.device


@dataclass(frozen=True)
class Cell:
    """One calibration of the fleet: runner x power mode x framework."""

    runner: Runner
    power_mode: str  # as written in the config ("MAXN_SUPER"), or "auto"
    framework: str

    @property
    def label(self) -> str:
        return f"{self.runner.name} {self.power_mode} {self.framework}"

    @property
    def slug(self) -> str:
        """A folder name for this cell's job-local registry."""
        return f"{power_mode_token(self.power_mode) or 'auto'}-{self.framework}"

    def pytest_args(self) -> list[str]:
        """The calibrator's options for this cell (registry and --quick are added by the caller)."""
        args = ["--framework", self.framework, "--device", self.runner.device_for(self.framework)]
        if self.power_mode != AUTO:
            args += ["--power-mode", self.power_mode]
        hardware_id = self.runner.hardware_ids.get(self.framework)
        if hardware_id:
            args += ["--hardware-id", hardware_id]
        return args + list(self.runner.pytest_args)


@dataclass(frozen=True)
class Fleet:
    path: Path
    runners: tuple[Runner, ...]
    fail_below: float = 0.95

    def runner(self, name: str) -> Runner:
        for runner in self.runners:
            if runner.name == name:
                return runner
        raise FleetConfigError(f"{self.path}: no runner named {name!r}; known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [r.name for r in self.runners]

    def select(self, runners: str | Sequence[str] | None = None, power_modes: str | Sequence[str] | None = None,
               frameworks: str | Sequence[str] | None = None) -> list[Cell]:
        """The cells the filters pick ("all" or empty: everything); a value that matches nothing is an error."""
        want_runners = _split(runners)
        want_modes = _split(power_modes)
        want_fw = _split(frameworks)
        if want_runners is not None:
            for name in want_runners:
                self.runner(name)  # unknown name: error listing the known ones
        mode_tokens = None if want_modes is None else {_mode_key(m) for m in want_modes}
        if mode_tokens is not None:
            known = {_mode_key(m): m for r in self.runners for m in r.power_modes}
            unknown = sorted(mode_tokens - set(known))
            if unknown:
                raise FleetConfigError(f"power mode(s) {', '.join(unknown)} are not in {self.path}; known: "
                                       + ", ".join(sorted(set(known.values()))))
        fw_set = None
        if want_fw is not None:
            try:
                fw_set = {normalise_framework(f) for f in want_fw}
            except HwcalError as exc:
                raise FleetConfigError(str(exc)) from None
        cells = [Cell(r, m, f) for r in self.runners if want_runners is None or r.name in want_runners
                 for m in r.power_modes if mode_tokens is None or _mode_key(m) in mode_tokens
                 for f in r.frameworks if fw_set is None or f in fw_set]
        if not cells:
            raise FleetConfigError(f"the selection (runners={_show(runners)}, power modes={_show(power_modes)}, "
                                   f"frameworks={_show(frameworks)}) picks no calibration from {self.path}")
        return cells

    def matrix(self, cells: Iterable[Cell]) -> dict[str, list[MatrixEntry]]:
        """The GitHub Actions matrix: one entry per runner that has cells, in config order."""
        by_runner: dict[str, list[Cell]] = {}
        for cell in cells:
            by_runner.setdefault(cell.runner.name, []).append(cell)
        include: list[MatrixEntry] = []
        for runner in self.runners:
            mine = by_runner.get(runner.name)
            if not mine:
                continue
            extras = f".[{','.join(runner.extras)}]" if runner.extras else "."
            include.append({
                "runner": runner.name,
                "labels": list(runner.labels),
                "python": runner.python,
                "install": extras,
                "pip_args": " ".join(runner.pip_args),
                "timeout_minutes": runner.timeout_minutes,
                "cells": ", ".join(f"{c.power_mode}/{c.framework}" for c in mine),
            })
        return {"include": include}


def _mode_key(mode: str) -> str:
    return power_mode_token(mode).casefold()


def _split(value: str | Sequence[str] | None) -> list[str] | None:
    """'a, b c' or ['a', 'b'] -> list; None, '', 'all' -> None (no filter)."""
    if value is None:
        return None
    parts = re.split(r"[,\s]+", value) if isinstance(value, str) else list(value)
    parts = [p.strip() for p in parts if p and p.strip()]
    if not parts or any(p.lower() == "all" for p in parts):
        return None
    return parts


def _show(value: str | Sequence[str] | None) -> str:
    got = _split(value)
    return "all" if got is None else ",".join(got)


# ---- reading the config ------------------------------------------------------------------------

def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise FleetConfigError(f"{path}: reading TOML needs Python 3.11+ or `pip install tomli`") from None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise FleetConfigError(f"{path}: no such fleet file; give --fleet PATH") from None
    except OSError as exc:
        raise FleetConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetConfigError(f"{path}: not valid TOML: {exc}") from None


class _Reader:
    """Pulls typed values out of one table, each error naming the file and the entry."""

    def __init__(self, path: Path, where: str, table: Mapping[str, Any], known: Iterable[str]) -> None:
        self.path, self.where, self.table = path, where, table
        unknown = sorted(set(table) - set(known))
        if unknown:
            self.fail(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")

    def fail(self, message: str) -> NoReturn:
        raise FleetConfigError(f"{self.path}: {self.where}: {message}")

    def str(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or not value:
            self.fail(f"{key} must be a non-empty string, not {value!r}")
        return value

    # builtins.str below: inside this class body the name ``str`` is the method above.
    def strs(self, key: builtins.str, default: Sequence[builtins.str] | None = None,
             allow_empty: bool = False) -> tuple[builtins.str, ...]:
        value = self.table.get(key, default)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value) \
                or (not value and not allow_empty):
            self.fail(f"{key} must be a list of non-empty strings, not {value!r}")
        if len(set(value)) != len(value):
            self.fail(f"{key} lists a value twice: {value!r}")
        return tuple(value)

    def number(self, key: builtins.str, default: float, positive: bool = True) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (positive and not value > 0):
            self.fail(f"{key} must be a positive number, not {value!r}")
        return float(value)

    def mapping(self, key: builtins.str) -> Mapping[builtins.str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, Mapping):
            self.fail(f"{key} must be a table, not {value!r}")
        return value


RUNNER_KEYS = ("name", "description", "labels", "device", "python", "extras", "pip_args", "frameworks",
               "power_switch", "power_modes", "nvpmodel_ids", "hardware_ids", "pytest_args", "device_lock",
               "timeout_minutes")


def _runner(path: Path, index: int, table: Any, defaults: Mapping[str, Any]) -> Runner:
    if not isinstance(table, Mapping):
        raise FleetConfigError(f"{path}: runner[{index}] must be a table ([[runner]])")
    merged = {**defaults, **table}
    name = table.get("name")
    r = _Reader(path, f"runner {name!r}" if isinstance(name, str) else f"runner[{index}]", merged, RUNNER_KEYS)
    name = r.str("name")
    if not _RUNNER_NAME_RE.match(name):
        r.fail("name must be lower-case letters, digits and '-' (it names the concurrency group and artifact)")
    labels = r.strs("labels")
    if "self-hosted" not in labels:
        r.fail("labels must include 'self-hosted': a calibration on a shared hosted VM measures nothing stable")
    device, frameworks, modes, hardware_ids = _targets(r)
    switch, nvpmodel_ids = _power_switching(r, modes)
    python = r.str("python", "3.11")
    if python != "system" and not re.fullmatch(r"3\.\d+", python):
        r.fail(f"python {python!r} is not 3.N (a version for actions/setup-python) or 'system'")
    return Runner(
        name=name, labels=labels, description=str(merged.get("description", "")), device=device, python=python,
        extras=r.strs("extras", [], allow_empty=True), pip_args=r.strs("pip_args", [], allow_empty=True),
        frameworks=frameworks, power_switch=switch, power_modes=modes, nvpmodel_ids=nvpmodel_ids,
        hardware_ids=hardware_ids, pytest_args=r.strs("pytest_args", [], allow_empty=True),
        device_lock=r.str("device_lock", "host"), timeout_minutes=int(r.number("timeout_minutes", 180)),
    )


def _targets(r: _Reader) -> tuple[str, tuple[str, ...], tuple[str, ...], dict[str, str]]:
    """What a runner calibrates: device, frameworks, power modes, and the registry id per framework."""
    try:
        device = check_device(r.str("device", "cpu"))
        frameworks = tuple(normalise_framework(f) for f in r.strs("frameworks", ["numpy"]))
        modes = r.strs("power_modes", [AUTO])
        for mode in modes:
            if mode != AUTO:
                check_power_mode(mode)
        hardware_ids = {}
        for fw, hw_id in r.mapping("hardware_ids").items():
            if not isinstance(hw_id, str):
                r.fail(f"hardware_ids: {fw} = {hw_id!r} must be a string")
            hardware_ids[normalise_framework(fw)] = check_hardware_id(hw_id)
    except (HwcalError, argparse.ArgumentTypeError) as exc:
        r.fail(str(exc))
    if set(hardware_ids) - set(frameworks):
        r.fail(f"hardware_ids names framework(s) {', '.join(sorted(set(hardware_ids) - set(frameworks)))} that "
               "frameworks does not list")
    if len({_mode_key(m) for m in modes}) != len(modes):
        r.fail(f"power_modes {list(modes)!r} name one mode twice (compared as file-name tokens)")
    if "pytorch" not in frameworks and device != "cpu":
        r.fail(f"device {device!r} is calibrated by pytorch only, and frameworks has no pytorch")
    return device, frameworks, modes, hardware_ids


def _power_switching(r: _Reader, modes: tuple[str, ...]) -> tuple[str, dict[str, int]]:
    """How the runner moves between its power modes, and the nvpmodel ids pinned for them."""
    switch = r.str("power_switch", "none")
    if switch not in POWER_SWITCHES:
        r.fail(f"power_switch {switch!r} is not one of {', '.join(POWER_SWITCHES)}")
    if switch == "none" and len(modes) > 1:
        r.fail(f"power_switch 'none' cannot move between {len(modes)} power modes; list the one the machine "
               "is in, or 'auto', or use power_switch = 'nvpmodel'")
    if switch == "nvpmodel" and AUTO in modes:
        r.fail("with power_switch 'nvpmodel' every power mode needs a name, not 'auto'")
    ids = r.mapping("nvpmodel_ids")
    for mode, mode_id in ids.items():
        if mode not in modes or isinstance(mode_id, bool) or not isinstance(mode_id, int) or mode_id < 0:
            r.fail(f"nvpmodel_ids: {mode!r} = {mode_id!r} must name a listed power mode and a whole number >= 0")
    return switch, dict(ids)


def load_fleet(path: str | Path | None = None) -> Fleet:
    """Read and check the fleet file; every problem is one FleetConfigError naming the file and entry."""
    path = Path(path) if path is not None else DEFAULT_FLEET
    data = _load_toml(path)
    top = _Reader(path, "top level", data, ("format_version", "defaults", "runner"))
    version = data.get("format_version")
    if version != FLEET_FORMAT_VERSION:
        top.fail(f"format_version {version!r} is not {FLEET_FORMAT_VERSION}, the format this hwcal reads")
    defaults = dict(top.mapping("defaults"))
    fail_below = _Reader(path, "[defaults]", defaults, (*RUNNER_KEYS, "fail_below")).number("fail_below", 0.95)
    defaults.pop("fail_below", None)
    if "name" in defaults:
        top.fail("[defaults] cannot set a runner's name")
    tables = data.get("runner", [])
    if not isinstance(tables, list) or not tables:
        top.fail("no [[runner]] tables: the fleet has no runner")
    runners = tuple(_runner(path, i, t, defaults) for i, t in enumerate(tables))
    names = [r.name for r in runners]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        top.fail(f"runner name(s) {', '.join(twice)} appear twice")
    return Fleet(path=path, runners=runners, fail_below=fail_below)
