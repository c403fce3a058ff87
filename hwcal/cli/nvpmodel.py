"""Switching a Jetson's power mode for the fleet driver (``nvpmodel``), and restoring it afterwards."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hwcal.cli.fleet import _NVPMODEL_CONF_RE
from hwcal.errors import HwcalError
from hwcal.naming import power_mode_token


@dataclass
class Nvpmodel:
    """Reads and sets the Jetson power mode by name; the command prefix is configurable for tests."""

    command: Sequence[str] = ("/usr/sbin/nvpmodel",)
    sudo: Sequence[str] = ("sudo", "-n")
    conf: Path = Path("/etc/nvpmodel.conf")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Nvpmodel:
        """HWCAL_NVPMODEL, HWCAL_SUDO and HWCAL_NVPMODEL_CONF override the defaults (empty sudo: none)."""
        env = os.environ if environ is None else environ
        return cls(command=tuple((env.get("HWCAL_NVPMODEL") or "/usr/sbin/nvpmodel").split()),
                   sudo=tuple(env.get("HWCAL_SUDO", "sudo -n").split()),
                   conf=Path(env.get("HWCAL_NVPMODEL_CONF") or "/etc/nvpmodel.conf"))

    def modes(self) -> dict[str, int]:
        """NAME -> ID from nvpmodel.conf (``< POWER_MODEL ID=2 NAME=MAXN_SUPER >``)."""
        try:
            text = self.conf.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise HwcalError(f"cannot read {self.conf}: {exc.strerror or exc}; is this a Jetson?") from None
        return {m["name"]: int(m["id"]) for m in _NVPMODEL_CONF_RE.finditer(text)}

    def mode_id(self, name: str, pinned: Mapping[str, int] | None = None) -> int:
        """The id of a mode: pinned in the fleet file, else found by name (or file-name token) in the conf."""
        if pinned and name in pinned:
            return int(pinned[name])
        modes = self.modes()
        if name in modes:
            return modes[name]
        by_token = {power_mode_token(n).casefold(): i for n, i in modes.items()}
        if power_mode_token(name).casefold() in by_token:
            return by_token[power_mode_token(name).casefold()]
        raise HwcalError(f"power mode {name!r} is not in {self.conf} (it has: {', '.join(modes) or 'none'}); "
                         "fix power_modes or pin an id in nvpmodel_ids")

    def _run(self, args: Sequence[str], sudo: bool) -> str:
        argv = [*(self.sudo if sudo else ()), *self.command, *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HwcalError(f"{' '.join(argv)}: {exc}") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            hint = " (sudo needs the rule in docs/fleet.md)" if sudo and "password" in " ".join(why).lower() else ""
            raise HwcalError(f"{' '.join(argv)} exited {done.returncode}: {why[-1] if why else 'no output'}{hint}")
        return done.stdout

    def current(self) -> tuple[str, int | None]:
        """(name, id) of the mode as ``nvpmodel -q`` reports it (readable without root)."""
        from hwcal.machine.power import parse_nvpmodel  # lazy: the plan job imports this module with no deps

        out = self._run(["-q"], sudo=False)
        parsed = parse_nvpmodel(out)
        if parsed is None:
            raise HwcalError(f"cannot read the power mode from `nvpmodel -q`: {out.strip()[:200]!r}")
        return parsed

    def restore(self, mode: tuple[str, int | None]) -> None:
        """Put the board back in the mode it was in (by id when -q gave one: the name may not be in the conf)."""
        name, mode_id = mode
        if mode_id is None:
            self.switch(name)
        elif self.current() != mode:
            self._run(["-m", str(mode_id)], sudo=True)

    def check_switch(self, name: str, pinned: Mapping[str, int] | None = None) -> int:
        """Preflight: the mode has an id and sudo allows setting it without a password (``sudo -n -l``)."""
        mode_id = self.mode_id(name, pinned)
        self.current()
        if self.sudo:
            argv = [*self.sudo, "-l", *self.command, "-m", str(mode_id)]
            done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                                  check=False)
            if done.returncode != 0:
                raise HwcalError(f"sudo does not allow `{' '.join(self.command)} -m {mode_id}` without a password "
                                 "for this user; add the sudoers rule in docs/fleet.md")
        return mode_id

    def switch(self, name: str, pinned: Mapping[str, int] | None = None) -> str:
        """Set the mode and check it took effect; returns the name of the mode it was in before."""
        before, _ = self.current()
        if power_mode_token(before).casefold() == power_mode_token(name).casefold():
            return before
        self._run(["-m", str(self.mode_id(name, pinned))], sudo=True)
        after, _ = self.current()
        if power_mode_token(after).casefold() != power_mode_token(name).casefold():
            raise HwcalError(f"switched to power mode {name!r} but nvpmodel -q reports {after!r}; this change "
                             "may need a reboot on this board (nvpmodel asks; it was answered 'no')")
        return before
