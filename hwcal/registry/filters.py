"""Filters and ordering of calibrations: power modes compared by their filename token, natural sort."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwcal.errors import HwcalError
from hwcal.naming import CalibrationKey, normalise_framework, power_mode_name_problem, power_mode_token

FILTER_KEYS = ("power_mode", "framework", "freq_mhz")
_NATURAL_RE = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, Any, str], ...]:
    """Sort key reading digit runs as numbers: 7W < 15W < 25W < MAXN < MAXNSUPER.

    Numbers sort before words (a wattage before a named mode); case is ignored, then used to break ties.
    """
    key: list[tuple[int, Any, str]] = []
    for i, part in enumerate(_NATURAL_RE.split(text)):
        if i % 2:
            key.append((0, int(part), part))
        elif part:
            key.append((1, part.casefold(), part))
    return tuple(key)


@dataclass(frozen=True)
class CalibrationFilter:
    """A normalised filter: power mode as its case-folded filename token, framework canonical, MHz int."""

    power_mode: str | None = None
    framework: str | None = None
    freq_mhz: int | None = None

    def matches(self, key: CalibrationKey) -> bool:
        """All given fields must match; both sides of the power mode are normalised the same way."""
        return ((self.power_mode is None or power_mode_token(key.power_mode).casefold() == self.power_mode)
                and (self.framework is None or key.framework == self.framework)
                and (self.freq_mhz is None or key.freq_mhz == self.freq_mhz))

    def describe(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in FILTER_KEYS if getattr(self, k) is not None]
        return ", ".join(parts) or "no filter"


def _parse_freq(value: object) -> int:
    if isinstance(value, bool):
        raise HwcalError(f"freq_mhz filter {value!r} is not a number of MHz")
    if isinstance(value, int):
        mhz = value
    elif isinstance(value, float) and math.isfinite(value) and value == int(value):
        mhz = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*(?:mhz)?\s*", value, re.I):
        mhz = int(re.sub(r"\D", "", value))
    else:
        raise HwcalError(f"freq_mhz filter {value!r} is not a whole number of MHz (e.g. 612 or '612MHz')")
    if mhz <= 0:
        raise HwcalError(f"freq_mhz filter {value!r} must be positive")
    return mhz


def normalise_filter(calibration_filter: Mapping[str, object] | CalibrationFilter | None) -> CalibrationFilter:
    """Check and normalise a filter dict; an unknown key is an error, never silently ignored."""
    if calibration_filter is None:
        return CalibrationFilter()
    if isinstance(calibration_filter, CalibrationFilter):
        return calibration_filter
    if not isinstance(calibration_filter, Mapping):
        raise HwcalError(f"calibration_filter must be a dict with keys {', '.join(FILTER_KEYS)}, "
                         f"not {type(calibration_filter).__name__}")
    unknown = sorted(set(calibration_filter) - set(FILTER_KEYS))
    if unknown:
        raise HwcalError(f"unknown calibration filter key(s) {', '.join(map(repr, unknown))}; "
                         f"supported: {', '.join(FILTER_KEYS)}")
    power_mode = calibration_filter.get("power_mode")
    framework = calibration_filter.get("framework")
    freq = calibration_filter.get("freq_mhz")
    pm_token: str | None = None
    if power_mode is not None:
        problem = power_mode_name_problem(str(power_mode))  # the rule a filed power mode's name follows
        if problem:
            raise HwcalError(f"power_mode filter: {problem}")
        pm_token = power_mode_token(str(power_mode)).casefold()
        if not pm_token:
            raise HwcalError(f"power_mode filter {power_mode!r} has no letters or digits; use e.g. 7W or MAXN")
    return CalibrationFilter(
        power_mode=pm_token,
        framework=normalise_framework(str(framework), stored=True) if framework is not None else None,
        freq_mhz=_parse_freq(freq) if freq is not None else None,
    )


