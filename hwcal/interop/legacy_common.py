"""What every converter of the original registry's files shares: its error, number helpers, its file-name
pattern and its dates (which mostly carry no time zone)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hwcal.errors import HwcalError

# {mode}_{freq}MHz_{framework}[_{UTC stamp}][_{tag}].json: the stamp is when the file was written (UTC);
# a tag ("throttled") marks files the original registry set aside.
_NAME_RE = re.compile(r"^(?P<mode>.+?)_(?P<freq>\d+)MHz_(?P<framework>[A-Za-z]+)(?:_(?P<stamp>\d{8}T\d{6}Z))?"
                      r"(?:_(?P<tag>[A-Za-z0-9_]+?))?\.json$")
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# A run lasts minutes; a file-name stamp more than this after the run's own (zone-less) date, beyond
# whole hours, does not pin down the zone.
_MAX_RUN_S = 1800.0
_MAX_OFFSET_H = 14
# Local dates read as UTC can be off by -12 h .. +14 h: two such dates closer than this may be in either order.
ZONE_UNCERTAINTY = timedelta(hours=26)
UNKNOWN_ZONE = "unknown"


class LegacyFormatError(HwcalError):
    """An original-registry file that cannot be converted; the message says what is missing."""


def pos(value: object) -> float | None:
    """A positive finite number, else None (the original tool wrote 0.0 for "unknown")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def rounded(x: float, digits: int = 5) -> float:
    return float(f"{x:.{digits}g}")


@dataclass(frozen=True)
class LegacyName:
    """What the original tool's file name says: mode token, sampled clock, framework, UTC stamp, tag."""

    mode: str
    freq_mhz: int
    framework: str
    stamp: datetime | None
    tag: str | None


def parse_legacy_name(name: str) -> LegacyName | None:
    m = _NAME_RE.match(name)
    if not m:
        return None
    stamp = datetime.strptime(m["stamp"], _STAMP_FORMAT).replace(tzinfo=timezone.utc) if m["stamp"] else None
    return LegacyName(m["mode"], int(m["freq"]), m["framework"], stamp, m["tag"])


@dataclass(frozen=True)
class LegacyDate:
    """A date of the original registry as UTC, and how its zone is known.

    ``zone``: ``recorded`` (the file had an offset), ``inferred ...`` (from the file name's UTC stamp) or
    ``unknown`` (read as UTC so it can be ordered; the true instant may differ by the host's UTC offset).
    """

    utc: datetime
    zone: str
    original: str

    @property
    def zone_known(self) -> bool:
        return self.zone != UNKNOWN_ZONE

    def iso(self) -> str:
        return self.utc.isoformat()


def _offset_name(offset: timedelta) -> str:
    minutes = round(offset.total_seconds() / 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_legacy_date(value: object, what: str, stamp: datetime | None = None) -> LegacyDate:
    """An original date as UTC. One without an offset takes the zone a UTC file-name stamp shows (the stamp
    minus the date, in whole hours, when the rest is a plausible run time); else its zone is unknown."""
    text = str(value)
    try:
        date = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LegacyFormatError(f"{what} {value!r} is not an ISO 8601 date") from None
    if date.tzinfo is not None:
        return LegacyDate(date.astimezone(timezone.utc), "recorded", text)
    if stamp is not None:
        gap = stamp - date.replace(tzinfo=timezone.utc)
        hours = math.floor(gap.total_seconds() / 3600)
        run_s = gap.total_seconds() - hours * 3600
        if abs(hours) <= _MAX_OFFSET_H and run_s <= _MAX_RUN_S:
            offset = timedelta(hours=-hours)
            utc = date.replace(tzinfo=timezone(offset)).astimezone(timezone.utc)
            return LegacyDate(utc, f"inferred {_offset_name(offset)}: the file name's UTC stamp "
                                   f"{stamp:%Y-%m-%dT%H:%M:%SZ} is {run_s:.0f} s after the run's local date", text)
    return LegacyDate(date.replace(tzinfo=timezone.utc), UNKNOWN_ZONE, text)


# Fields of the original format that hold a measured or derived magnitude: never negative. A negative value
# there is dropped by the conversion, and each one is recorded as a fault (nothing is dropped silently).
_MAGNITUDE_RE = re.compile(r"(latency|_ms$|gops|gflops|gbps|bandwidth|efficiency|peak|size_mb|time_s)")


def negative_values(node: Any, where: str = "$") -> list[str]:
    """Every negative number under a magnitude field of ``node``, as ``json_path (value)``."""
    found: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{where}.{k}"
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if v < 0 and _MAGNITUDE_RE.search(str(k)):
                    found.append(f"{path} ({v:g})")
            else:
                found += negative_values(v, path)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += negative_values(v, f"{where}[{i}]")
    return found
