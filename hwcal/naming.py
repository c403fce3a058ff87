"""Registry naming: the only place that turns user strings into path components.

Every token is reduced to a fixed alphabet before it touches a path, so nothing a user types can
escape the registry folder. Filenames are ``{power_mode}_{freq}MHz_{framework}.json``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hwcal.errors import HwcalError

# accelerator (NPU, TPU, DLA ...) and dsp hold what the original registry filed under those folders.
DEVICE_TYPES = ("cpu", "gpu", "board", "accelerator", "dsp")
FRAMEWORKS = ("numpy", "pytorch")  # what hwcal measures with (the plugin's --framework)
# Frameworks a key may name although hwcal does not run them: the original registry's TensorRT (DLA) runs.
IMPORTED_FRAMEWORKS = ("tensorrt",)
KEY_FRAMEWORKS = FRAMEWORKS + IMPORTED_FRAMEWORKS
FRAMEWORK_ALIASES = {"numpy": "numpy", "np": "numpy", "pytorch": "pytorch", "torch": "pytorch"}

_FILENAME_RE = re.compile(r"(?P<power_mode>[A-Za-z0-9]+)_(?P<freq>[1-9][0-9]*)MHz_(?P<framework>[a-z]+)\.json")
# The schema's limits, enforced when options are parsed rather than after a whole run.
POWER_MODE_MAX_LEN = 64
HARDWARE_ID_MAX_LEN = 120


def power_mode_token(power_mode: str) -> str:
    """Keep only [A-Za-z0-9] (``MAXN_SUPER`` files as ``MAXNSUPER``, as the original registry did)."""
    return re.sub(r"[^A-Za-z0-9]", "", power_mode)


def hardware_id_token(name: str) -> str:
    """Lower-case [a-z0-9_] id, compatible with the original registry's ids."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", name.lower())).strip("_")


def _ascii_form(text: str) -> str:
    """What ``text`` reads as in ASCII (full-width ``７Ｗ`` -> ``7W``, ``é`` -> ``e``): a suggestion only."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _odd_characters(text: str) -> tuple[str, str] | None:
    """(what, which) for the first class of character a name may not hold: control and format characters
    (a newline, an escape, a bidi override: they forge or reorder output lines) and letters or digits
    outside ASCII (a token keeps only A-Z, a-z, 0-9, so they would vanish from it silently)."""
    controls = [ch for ch in text if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")]
    if controls:
        return "a control character", ", ".join(f"U+{ord(ch):04X}" for ch in dict.fromkeys(controls))
    foreign = [ch for ch in text if not ch.isascii() and unicodedata.category(ch)[0] in "LNM"]
    if foreign:
        return "letters, digits or accents outside ASCII", ", ".join(
            f"U+{ord(ch):04X}" if unicodedata.category(ch)[0] == "M" else repr(ch) for ch in dict.fromkeys(foreign))
    return None


def power_mode_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a power mode's name wherever it is kept or shown (None when it can): the rule
    for what a user types, for ``metadata.power_mode`` in a file and for a filter.

    Refused rather than cleaned: a newline or a full-width letter is a typing accident, and a name that
    silently files under another token than the one the user sees is worse than a one-line error.
    """
    odd = _odd_characters(name)
    if odd is None:
        return None
    what, which = odd
    hint = power_mode_token(_ascii_form(name)) or "7W"
    return f"power mode {name!r} contains {what} ({which}); a power mode is printable ASCII, e.g. {hint}"


def power_mode_problem(power_mode: str) -> str | None:
    """Why ``power_mode`` cannot name the power mode of a new calibration (None when it can): the name rule
    (``power_mode_name_problem``), and a token that is a file name's part (no path, not empty, not too long)."""
    if any(sep in power_mode for sep in ("/", "\\")) or ".." in power_mode:
        return f"power mode {power_mode!r} contains a path separator or '..'; use a name like 7W or MAXN"
    problem = power_mode_name_problem(power_mode)
    if problem:
        return problem
    token = power_mode_token(power_mode)
    if not token:
        return f"power mode {power_mode!r} has no letters or digits; use a name like 7W or MAXN"
    if len(token) > POWER_MODE_MAX_LEN:
        return f"power mode {power_mode[:20]!r}... is longer than {POWER_MODE_MAX_LEN} characters"
    return None


def check_power_mode(power_mode: str) -> str:
    """Return the power mode's token, or refuse (``power_mode_problem``) a value that cannot name one."""
    problem = power_mode_problem(power_mode)
    if problem:
        raise HwcalError(problem)
    return power_mode_token(power_mode)


def check_hardware_id(hardware_id: str) -> str:
    if len(hardware_id) > HARDWARE_ID_MAX_LEN:
        raise HwcalError(f"hardware id {hardware_id[:20]!r}... is longer than {HARDWARE_ID_MAX_LEN} characters")
    token = hardware_id_token(hardware_id)
    if not token or token != hardware_id:
        example = token or hardware_id_token(_ascii_form(hardware_id))
        raise HwcalError(
            f"hardware id {hardware_id!r} must be lower-case letters, digits and single underscores"
            + (f" (e.g. {example!r})" if example else "")
        )
    return token


def printable(value: object, max_chars: int = 80) -> str:
    """``value`` made safe to print on one line: what came from a file or another user (a lock's holder,
    a name) has every non-printable character escaped (a newline as ``\\n``, an escape sequence as
    ``\\x1b``, a bidi override as ``\\u202e``) and is cut at ``max_chars``."""
    text = value if isinstance(value, str) else str(value)
    escaped = "".join(ch if ch.isprintable() and ch != "\\" else repr(ch)[1:-1] for ch in text[: max_chars + 1])
    return escaped if len(escaped) <= max_chars else escaped[: max_chars - 1] + "…"


def check_device(value: str) -> str:
    """``cpu``, ``cuda`` (= ``cuda:0``) or ``cuda:N``, normalised; anything else is a one-line error."""
    v = value.strip().lower()
    if v == "cpu" or v == "cuda" or (v.startswith("cuda:") and v[5:].isascii() and v[5:].isdigit()):
        return "cuda:0" if v == "cuda" else v
    raise HwcalError(f"device {value!r} is not cpu, cuda or cuda:N")


def normalise_framework(framework: str, *, stored: bool = False) -> str:
    """A framework hwcal measures with, by name or alias; with ``stored`` also one a registry key may name
    (``tensorrt``, imported only), so a filter can find those calibrations."""
    value = framework.strip().lower()
    if value in FRAMEWORK_ALIASES:
        return FRAMEWORK_ALIASES[value]
    if value in IMPORTED_FRAMEWORKS:
        if stored:
            return value
        raise HwcalError(f"framework {framework!r} is only in calibrations imported from the original registry; "
                         f"hwcal measures with {', '.join(FRAMEWORKS)}")
    raise HwcalError(f"unknown framework {framework!r}; supported: {', '.join(FRAMEWORKS)} (alias: torch)")


@dataclass(frozen=True)
class CalibrationKey:
    """What identifies one calibration of one device; also the registry file's name."""

    device_type: str
    hardware_id: str
    power_mode: str  # the token, [A-Za-z0-9]+
    freq_mhz: int
    framework: str

    def __post_init__(self) -> None:
        if self.device_type not in DEVICE_TYPES:
            raise HwcalError(f"device type {self.device_type!r} is not one of {', '.join(DEVICE_TYPES)}")
        check_hardware_id(self.hardware_id)
        if power_mode_token(self.power_mode) != self.power_mode or not self.power_mode:
            raise HwcalError(f"power-mode token {self.power_mode!r} must be [A-Za-z0-9]+")
        if not isinstance(self.freq_mhz, int) or isinstance(self.freq_mhz, bool) or self.freq_mhz <= 0:
            raise HwcalError(f"frequency {self.freq_mhz!r} MHz must be a positive whole number")
        if self.framework not in KEY_FRAMEWORKS:
            raise HwcalError(f"unknown framework {self.framework!r}; supported: {', '.join(KEY_FRAMEWORKS)}")

    @property
    def filename(self) -> str:
        return f"{self.power_mode}_{self.freq_mhz}MHz_{self.framework}.json"

    def as_dict(self) -> dict[str, object]:
        return {
            "device_type": self.device_type,
            "hardware_id": self.hardware_id,
            "power_mode": self.power_mode,
            "freq_mhz": self.freq_mhz,
            "framework": self.framework,
        }


def parse_calibration_filename(filename: str) -> tuple[str, int, str]:
    """``7W_306MHz_pytorch.json`` -> ("7W", 306, "pytorch"); a name off the pattern is an error."""
    match = _FILENAME_RE.fullmatch(filename)
    if not match or match["framework"] not in KEY_FRAMEWORKS:
        raise HwcalError(f"{filename!r} is not named {{power_mode}}_{{freq}}MHz_{{framework}}.json")
    return match["power_mode"], int(match["freq"]), match["framework"]


def hardware_dir(registry: Path, device_type: str, hardware_id: str) -> Path:
    if device_type not in DEVICE_TYPES:
        raise HwcalError(f"device type {device_type!r} is not one of {', '.join(DEVICE_TYPES)}")
    return Path(registry) / device_type / check_hardware_id(hardware_id)


def calibration_path(registry: Path, key: CalibrationKey) -> Path:
    """The one function that says where a calibration lives."""
    return hardware_dir(registry, key.device_type, key.hardware_id) / "calibrations" / key.filename


def history_dir(registry: Path, key: CalibrationKey) -> Path:
    return calibration_path(registry, key).parent / "history"


def history_stamp(date: datetime) -> str:
    """Sortable UTC stamp of a superseded calibration's history name."""
    return date.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def history_path(registry: Path, key: CalibrationKey, stamp: str, suffix: str = "") -> Path:
    """A free ``calibrations/history/<stem>.<stamp>[.<n>]<suffix>.json`` for a superseded calibration."""
    folder = history_dir(registry, key)
    stem = key.filename.removesuffix(".json")
    target, n = folder / f"{stem}.{stamp}{suffix}.json", 1
    while target.exists() or target.with_name(target.name + ".gz").exists():  # a packed one holds the name too
        target, n = folder / f"{stem}.{stamp}.{n}{suffix}.json", n + 1
    return target


def packed_history_path(registry: Path, key: CalibrationKey, stamp: str, suffix: str = "") -> Path:
    """``history_path`` as the writer files it, gzipped: ``<stem>.<stamp>[.<n>]<suffix>.json.gz``."""
    target = history_path(registry, key, stamp, suffix)
    return target.with_name(target.name + ".gz")


def spec_path(registry: Path, device_type: str, hardware_id: str) -> Path:
    return hardware_dir(registry, device_type, hardware_id) / "spec.json"
