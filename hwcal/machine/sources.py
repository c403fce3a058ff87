"""The one seam through which probing reads the machine: files under /proc and /sys, and commands.

Tests replace a whole machine by pointing ``Sources`` at a folder of recorded files and a dict of
recorded command outputs. Nothing here raises for a missing file or command: it returns None.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sources:
    """Where probes read from. ``root`` prefixes absolute paths; ``commands`` fakes command output."""

    root: Path = Path("/")
    commands: Mapping[str, str | None] | None = None
    timeout_s: float = 3.0
    # platform.system() of the machine read ("Linux", "Windows", "Darwin"); tests fake a Windows box.
    system: str | None = None
    # platform.machine() of the machine read ("aarch64", "x86_64"); tests fake an emulated process.
    machine: str | None = None
    _cache: dict[str, str | None] = field(default_factory=dict, repr=False)

    def os_name(self) -> str:
        return self.system or platform.system()

    @property
    def is_local(self) -> bool:
        """True when reading this machine (real /proc, real commands): live probes may run too."""
        return self.root == Path("/") and self.commands is None and self.system is None and self.machine is None

    def read(self, path: str) -> str | None:
        """Text of ``path`` (e.g. ``/proc/cpuinfo``), or None when it is missing or unreadable."""
        try:
            return (self.root / path.lstrip("/")).read_text(errors="replace")
        except (OSError, ValueError):
            return None

    def read_first_line(self, path: str) -> str | None:
        text = self.read(path)
        return text.strip().splitlines()[0].strip() if text and text.strip() else None

    def read_number(self, path: str) -> float | None:
        """First line of ``path`` as a number (sysfs kHz, Hz, millidegrees ...), None if absent or not numeric."""
        line = self.read_first_line(path)
        try:
            return float(line) if line is not None else None
        except ValueError:
            return None

    def list_dir(self, path: str) -> list[str]:
        try:
            return sorted(p.name for p in (self.root / path.lstrip("/")).iterdir())
        except OSError:
            return []

    def run(self, *argv: str) -> str | None:
        """stdout of a command, or None if it is missing, fails or hangs."""
        key = " ".join(argv)
        if self.commands is not None:
            return self.commands.get(key)
        if key in self._cache:
            return self._cache[key]
        out: str | None = None
        if shutil.which(argv[0]):
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
                out = proc.stdout if proc.returncode == 0 else None
            except (OSError, subprocess.SubprocessError):
                out = None
        self._cache[key] = out
        return out


LOCAL = Sources()
