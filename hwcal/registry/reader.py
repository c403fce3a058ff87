"""Reading one registry file: the one checked reader. Every failure is a one-line ``RegistryFileError``
naming the file (asv's rule: a file the user names fails loudly with the reason)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.document.format2 import update_to_2
from hwcal.errors import HwcalError, RegistryFileError
from hwcal.naming import CalibrationKey
from hwcal.registry.filters import natural_key
from hwcal.registry.fsio import UnsafePathError, read_registry_bytes
from hwcal.registry.layout import escape_reason, layout_of
from hwcal.registry.validity import Problem, problems


class BadRegistryFile(RegistryFileError):
    """A registry file that cannot be used; ``str()`` is ``path: reason``, one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def parse_date(value: object) -> datetime:
    """An ISO 8601 date as aware UTC; a date without offset is read as UTC (the format requires one)."""
    if not isinstance(value, str):
        raise ValueError(f"calibration_date {value!r} is not a string")
    date = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return date.replace(tzinfo=timezone.utc) if date.tzinfo is None else date.astimezone(timezone.utc)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"number {text[:40]} overflows to {value} (JSON has no Infinity)")
    return value


def parse_json_text(text: str) -> Any:
    """Strict JSON: NaN/Infinity refused, depth and number size bounded; ValueError/RecursionError otherwise."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def read_json(path: Path, registry_root: Path | None = None) -> Any:
    """Parse a registry file; every failure is a one-line RegistryFileError naming the file.

    Only regular files are opened (a FIFO or a device never hangs a reader), at most 64 MiB; a document
    nested too deep, not UTF-8, or with non-finite numbers is refused with the reason.
    """
    escape = escape_reason(path, registry_root)
    if escape:
        raise BadRegistryFile(path, f"{escape}")
    try:
        raw = read_registry_bytes(path)
    except UnsafePathError as exc:
        raise BadRegistryFile(path, str(exc)) from None
    except FileNotFoundError:
        raise BadRegistryFile(path, "no such file") from None
    except IsADirectoryError:
        raise BadRegistryFile(path, "is a folder, not a calibration file") from None
    except OSError as exc:
        raise BadRegistryFile(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRegistryFile(path, "not UTF-8 text (a binary or damaged file)") from None
    try:
        return parse_json_text(text)
    except json.JSONDecodeError as exc:
        what = "empty file" if not text.strip() else "not valid JSON (truncated or corrupt?)"
        raise BadRegistryFile(path, f"{what}: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRegistryFile(path, "JSON nested too deep to be a registry file; not read") from None
    except ValueError as exc:  # NaN/Infinity, an integer of thousands of digits
        raise BadRegistryFile(path, f"not valid JSON for a registry: {exc}") from None


@dataclass(frozen=True)
class CalibrationEntry:
    """One readable, valid calibration file and what identifies it.

    A listing served from the cache carries only ``brief`` (what ``summary()`` and a table need); the
    document itself is read, fully checked, the first time ``doc`` is asked for.
    """

    path: Path
    key: CalibrationKey
    calibration_date: datetime
    loaded: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    superseded: bool = False
    brief: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    registry_root: Path | None = field(default=None, repr=False, compare=False)

    @property
    def doc(self) -> dict[str, Any]:
        if self.loaded is None:
            object.__setattr__(self, "loaded", read_calibration(self.path, self.registry_root).doc)
        assert self.loaded is not None
        return self.loaded

    def _brief(self) -> dict[str, Any]:
        if self.brief is None:
            object.__setattr__(self, "brief", brief_of(self.doc))
        assert self.brief is not None
        return self.brief

    @property
    def power_mode_name(self) -> str:
        """The power mode as given or detected (``MAXN_SUPER``), before reduction to the key token."""
        return str(self._brief()["power_mode_name"] or self.key.power_mode)

    @property
    def imported(self) -> bool:
        return bool(self._brief()["imported"])

    @property
    def peaks(self) -> dict[str, float]:
        return dict(self._brief()["peak_gflops_by_precision"])

    @property
    def measured_bandwidth_gbps(self) -> float | None:
        return self._brief()["measured_bandwidth_gbps"]

    @property
    def warning_count(self) -> int:
        return int(self._brief()["warnings"])

    def sort_key(self) -> tuple[Any, ...]:
        return (self.key.hardware_id, self.key.device_type, natural_key(self.key.power_mode), self.key.freq_mhz,
                self.key.framework, self.superseded, -self.calibration_date.timestamp())

    def summary(self) -> dict[str, Any]:
        """The fields scripts read (``--json``): identity, date, peaks, bandwidth, where the file is."""
        return {
            **self.key.as_dict(),
            "power_mode_name": self.power_mode_name,
            "calibration_date": self.calibration_date.isoformat(),
            "superseded": self.superseded,
            "imported": self.imported,
            "path": str(self.path),
            "peak_gflops_by_precision": self.peaks,
            "measured_bandwidth_gbps": self.measured_bandwidth_gbps,
            "warnings": self.warning_count,
        }


def brief_of(doc: dict[str, Any]) -> dict[str, Any]:
    """What a listing shows of a valid calibration (kept in the listing cache instead of the document)."""
    meta = doc["metadata"]
    return {
        "key": doc["key"],
        "calibration_date": meta["calibration_date"],
        "power_mode_name": meta.get("power_mode"),
        "imported": "imported" in meta,
        "peak_gflops_by_precision": dict(doc["precision_matrix"]["peak_gflops_by_precision"]),
        "measured_bandwidth_gbps": doc.get("measured_bandwidth_gbps"),
        "warnings": len(doc.get("warnings", [])),
    }


def entry_from_brief(path: Path, brief: dict[str, Any], registry_root: Path | None) -> CalibrationEntry:
    """A listing entry from the cache: the document is read (and checked) only when asked for."""
    where, _ = layout_of(path)
    return CalibrationEntry(path=path, key=CalibrationKey(**brief["key"]),
                            calibration_date=parse_date(brief["calibration_date"]), superseded=where == "history",
                            brief=brief, registry_root=registry_root)


def _refusal(path: Path, kind: str, found: list[Problem]) -> BadRegistryFile:
    """One line for the first problem (``validate`` lists them all)."""
    first = found[0]
    more = f" (and {len(found) - 1} more; tools/validate_registry.py lists them)" if len(found) > 1 else ""
    if first.rule == "version":
        return BadRegistryFile(path, first.message)
    what = "misnamed" if first.rule == "naming" else f"not a valid {kind}"
    return BadRegistryFile(path, f"{what}: {first}{more}")


def _read_checked(path: Path, kind: str, registry_root: Path | None) -> dict[str, Any]:
    """JSON of a registry file, refused in one line unless valid where it sits (``validity.problems``)."""
    doc = read_json(path, registry_root)
    found = problems(doc, kind, path)
    if found:
        raise _refusal(path, kind, found)
    return doc


def read_calibration(path: str | Path, registry_root: Path | None = None) -> CalibrationEntry:
    """Read and check one calibration the user named; any problem is a one-line RegistryFileError.

    Inside a registry's ``calibrations/`` folder the name and folders must agree with the key.
    """
    path = Path(path)
    doc = _read_checked(path, "calibration", registry_root)
    try:
        date = parse_date(doc["metadata"]["calibration_date"])
        key = CalibrationKey(**doc["key"])
    except (ValueError, HwcalError) as exc:
        raise BadRegistryFile(path, f"{exc}") from None
    where, _ = layout_of(path)
    # Readers see format 2 only: a format-1 file is upgraded in memory (hwcal-upgrade rewrites it on disk).
    return CalibrationEntry(path=path, key=key, calibration_date=date, loaded=update_to_2(doc),
                            superseded=where == "history", registry_root=registry_root)


def read_spec(path: str | Path, registry_root: Path | None = None) -> dict[str, Any]:
    """Read and check one spec.json; any problem is a one-line RegistryFileError."""
    return _read_checked(Path(path), "spec", registry_root)


