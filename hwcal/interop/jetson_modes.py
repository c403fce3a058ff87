"""The nvpmodel power modes of the Jetson boards the original registry holds: the id of each mode and the
clock limits it sets, so an imported mode id or clock ceiling is checked against the board rather than
copied. Only boards whose table hwcal can cite are here; for the others an id is flagged, not checked.

Ids depend on the board and the JetPack release (Orin Nano: 15W is 0 on JetPack 5 and 6.2, 7W is 1 on
JetPack 5 and 3 on 6.2), so every table names its source and release.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hwcal.naming import power_mode_token

NO_LIMIT = math.inf  # nvpmodel's 9223372036854775807: the mode leaves that clock at the hardware's maximum


@dataclass(frozen=True)
class JetsonMode:
    """One nvpmodel mode: its id and limits (MHz; NO_LIMIT: none set; None: not known to hwcal)."""

    name: str
    mode_id: int
    cpu_max_mhz: float | None = None
    gpu_max_mhz: float | None = None
    dla_max_mhz: float | None = None
    cpus_online: int | None = None


@dataclass(frozen=True)
class JetsonBoard:
    """A board's nvpmodel table and where it comes from."""

    name: str
    pattern: re.Pattern[str]
    modes: tuple[JetsonMode, ...]
    source: str
    short_source: str

    def mode(self, name: str) -> JetsonMode | None:
        token = power_mode_token(name).casefold()
        return next((m for m in self.modes if power_mode_token(m.name).casefold() == token), None)

    def mode_by_watts(self, watts: int) -> JetsonMode | None:
        """The mode whose name states ``watts`` (``50`` -> MODE_50W), for folders named by watts."""
        return next((m for m in self.modes if re.fullmatch(rf"(MODE_?)?{watts}W", m.name, re.I)), None)


AGX_ORIN = JetsonBoard(
    "Jetson AGX Orin 64GB",
    re.compile(r"jetson[\s_-]*(agx[\s_-]*orin|orin[\s_-]*agx)", re.I),
    (JetsonMode("MAXN", 0, NO_LIMIT, NO_LIMIT, NO_LIMIT, 12),
     JetsonMode("MODE_15W", 1, 1113.6, 408.0, 614.4, 4),
     JetsonMode("MODE_30W", 2, 1728.0, 612.0, 1369.6, 8),
     JetsonMode("MODE_50W", 3, 1497.6, 816.0, 1369.6, 12)),
    "`nvpmodel -p --verbose` on the board (JetPack 5; the original registry's "
    "boards/jetson_orin_agx/agx_power_modes.txt): POWER_MODEL ids, CPU_ONLINE, CPU_A78 / GPU / DLA0_CORE MAX_FREQ",
    "its nvpmodel table, JetPack 5",
)
ORIN_NANO_SUPER = JetsonBoard(
    "Jetson Orin Nano 8GB (JetPack 6.2, Super)",
    re.compile(r"jetson[\s_-]*orin[\s_-]*nano", re.I),
    (JetsonMode("15W", 0), JetsonMode("25W", 1), JetsonMode("MAXN_SUPER", 2), JetsonMode("7W", 3)),
    "/etc/nvpmodel.conf of JetPack 6.2 on the Orin Nano 8GB (POWER_MODEL ID=0 15W, 1 25W, 2 MAXN_SUPER, 3 7W); "
    "clock limits not tabulated here",
    "its nvpmodel.conf, JetPack 6.2",
)
BOARDS = (AGX_ORIN, ORIN_NANO_SUPER)
_JETSON_RE = re.compile(r"jetson|tegra", re.I)


def board_of(*names: object) -> JetsonBoard | None:
    """The board whose table applies to a hardware id or name (the first that matches any of ``names``)."""
    for name in names:
        for board in BOARDS:
            if isinstance(name, str) and board.pattern.search(name):
                return board
    return None


def is_jetson(*names: object) -> bool:
    """Whether a hardware id, name or cpufreq driver (``tegra194``) says the device is a Jetson."""
    return any(isinstance(n, str) and _JETSON_RE.search(n) for n in names)


def check_mode_id(recorded: object, where: str, mode_name: str, board: JetsonBoard | None
                  ) -> tuple[int | None, str | None]:
    """(the id to keep or None, a fault or None) for a recorded nvpmodel mode id.

    An id equal to the number in the mode's name (15 for MODE_15W) is the watts the original tool parsed
    from the name: dropped. An id the board's table contradicts: dropped. An id that cannot be checked
    (no table for the board, or the mode is not in it) is kept, flagged.
    """
    if isinstance(recorded, bool) or not isinstance(recorded, int):
        return None, None
    digits = re.search(r"\d+", mode_name)
    watts = digits is not None and int(digits.group()) == recorded
    mode = board.mode(mode_name) if board is not None else None
    if board is not None and mode is not None:
        if mode.mode_id == recorded:
            return recorded, None
        why = "the watts in its name" if watts else "not this mode's id"
        return None, (f"{where} {recorded} is {why}: {mode.name} is id {mode.mode_id} on the {board.name} "
                      f"({board.short_source}); dropped")
    if watts:
        return None, (f"{where} {recorded} is the number in the mode name {mode_name!r} (watts), not an nvpmodel "
                      "mode id (the original tool parsed the name); dropped")
    table = f"the {board.name} table has no mode {mode_name!r}" if board else \
        "hwcal has no nvpmodel table for this board"
    return recorded, f"{where} {recorded} kept but not checked: {table}"


def ceiling_fault(kind: str, ceiling_mhz: float, mode_name: str, board: JetsonBoard | None) -> str | None:
    """A fault when a recorded clock ceiling (``kind``: cpu, gpu, dla) is not the limit the mode sets."""
    mode = board.mode(mode_name) if board is not None else None
    if board is None or mode is None:
        return None
    limit = {"cpu": mode.cpu_max_mhz, "gpu": mode.gpu_max_mhz, "dla": mode.dla_max_mhz}[kind]
    if limit is None or limit == NO_LIMIT or abs(limit - ceiling_mhz) <= 1.0:
        return None
    return (f"{kind} clock ceiling {ceiling_mhz:g} MHz is not the {limit:g} MHz that {mode.name} sets on the "
            f"{board.name}: the board was not in that mode when this ran, or its table differs")
