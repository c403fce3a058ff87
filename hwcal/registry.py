"""Reading the registry back: listing, filtering, choosing the most recent calibration, and saying
why a file cannot be used.

asv's rule: a listing skips a bad file with a warning that names it; a file the user names fails
loudly with the reason (``RegistryFileError``, one line). "Most recent" is the newest
``metadata.calibration_date``, never the file's mtime (copies and checkouts rewrite mtimes).

    from hwcal import Registry
    reg = Registry()                                   # $HWCAL_REGISTRY, else the repo's registry/
    profile = reg.get("jetson_orin_nano_gpu", calibration_filter={"power_mode": "MAXN", "framework": "torch"})
    profile.calibration["precision_matrix"]["peak_gflops_by_precision"]["fp16"]
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.errors import HwcalError, RegistryFileError
from hwcal.naming import (
    DEVICE_TYPES,
    CalibrationKey,
    hardware_id_token,
    normalise_framework,
    parse_calibration_filename,
    power_mode_token,
)
from hwcal.schema import CALIBRATION_FORMAT_VERSION, SPEC_FORMAT_VERSION, schema_errors

ENV_REGISTRY = "HWCAL_REGISTRY"
FILTER_KEYS = ("power_mode", "framework", "freq_mhz")
UPGRADE_HINT = "upgrade hwcal (pip install --upgrade hwcal, or git pull in its checkout)"
MIGRATE_HINT = "python tools/migrate_calibrations.py SOURCE --registry REGISTRY"
# calibrations/history/<stem>.<UTC stamp>[.n][.corrupt].json, as hwcal.writer names superseded files.
_HISTORY_RE = re.compile(r"^(?P<stem>[^.]+)\.(?P<stamp>\d{8}T\d{6}\d*Z)(?:\.(?P<n>\d+))?(?P<corrupt>\.corrupt)?\.json$")
_NATURAL_RE = re.compile(r"(\d+)")


class BadRegistryFile(RegistryFileError):
    """A registry file that cannot be used; ``str()`` is ``path: reason``, one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RegistryWarning(UserWarning):
    """A registry file skipped while listing; the message names the file and the reason."""


class UnknownHardwareError(HwcalError):
    """A hardware id the registry does not hold; the message lists the ids it does."""


def default_registry() -> Path:
    """``$HWCAL_REGISTRY``, else the checkout's ``registry/`` folder (the plugin's default too)."""
    env = os.environ.get(ENV_REGISTRY)
    if env:
        return Path(env)
    import hwcal

    return Path(hwcal.__file__).resolve().parent.parent / "registry"


# ---- ordering and filters ----------------------------------------------------------------------

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
        pm_token = power_mode_token(str(power_mode)).casefold()
        if not pm_token:
            raise HwcalError(f"power_mode filter {power_mode!r} has no letters or digits; use e.g. 7W or MAXN")
    return CalibrationFilter(
        power_mode=pm_token,
        framework=normalise_framework(str(framework)) if framework is not None else None,
        freq_mhz=_parse_freq(freq) if freq is not None else None,
    )


# ---- one file ----------------------------------------------------------------------------------

def parse_date(value: object) -> datetime:
    """An ISO 8601 date as aware UTC; a date without offset is read as UTC (the format requires one)."""
    if not isinstance(value, str):
        raise ValueError(f"calibration_date {value!r} is not a string")
    date = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return date.replace(tzinfo=timezone.utc) if date.tzinfo is None else date.astimezone(timezone.utc)


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` really (symlinks followed) lies inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _lexically_inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return False
    return True


def _escape_reason(path: Path, root: Path | None) -> str | None:
    """Why a file that sits in the registry may not be read: a symlink leading out of it."""
    if root is None or not _lexically_inside(path, root) or _inside(path, root):
        return None
    return f"symlink pointing outside the registry (to {path.resolve()}); not read"


def read_json(path: Path, registry_root: Path | None = None) -> Any:
    """Parse a registry file; every failure is a one-line RegistryFileError naming the file."""
    escape = _escape_reason(path, registry_root)
    if escape:
        raise BadRegistryFile(path, f"{escape}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadRegistryFile(path, "no such file") from None
    except IsADirectoryError:
        raise BadRegistryFile(path, "is a folder, not a calibration file") from None
    except UnicodeDecodeError:
        raise BadRegistryFile(path, "not UTF-8 text (a binary or damaged file)") from None
    except OSError as exc:
        raise BadRegistryFile(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        what = "empty file" if not text.strip() else "not valid JSON (truncated or corrupt?)"
        raise BadRegistryFile(path, f"{what}: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def is_legacy_calibration(doc: object) -> bool:
    """A calibration written by the original system (no schema_version, operation profiles)."""
    return isinstance(doc, dict) and "schema_version" not in doc and (
        "operation_profiles" in doc or ("metadata" in doc and "precision_matrix" in doc))


def version_problem(doc: object, kind: str = "calibration") -> str | None:
    """Refuse a format this hwcal cannot read, with the command that fixes it (asv's habit)."""
    current = CALIBRATION_FORMAT_VERSION if kind == "calibration" else SPEC_FORMAT_VERSION
    if not isinstance(doc, dict):
        return f"not a JSON object (a {type(doc).__name__})"
    if "schema_version" not in doc:
        if (kind == "calibration" and is_legacy_calibration(doc)) or (kind == "spec" and "theoretical_peaks" in doc):
            return f"in the original registry's format (no schema_version); import it: {MIGRATE_HINT}"
        return "has no schema_version; not an hwcal file"
    version = doc["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"schema_version {version!r} is not a format version hwcal knows"
    if version > current:
        return (f"schema_version {version} is newer than this hwcal reads ({current}); refused, "
                f"{UPGRADE_HINT}")
    if version < current:
        return f"schema_version {version} is older than {current}; update it: {MIGRATE_HINT}"
    return None


def _layout_of(path: Path) -> tuple[str, str | None]:
    """('current'|'history'|'other', expected key stem) from where the file sits."""
    parent = path.parent
    if parent.name == "calibrations":
        return "current", path.name[:-5] if path.name.endswith(".json") else None
    if parent.name == "history" and parent.parent.name == "calibrations":
        m = _HISTORY_RE.match(path.name)
        return "history", m["stem"] if m else None
    return "other", None


def naming_problems(path: Path, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(json_path, message) where the file's name or folder disagrees with the document's key."""
    where, stem = _layout_of(path)
    if where == "other":
        return []
    problems: list[tuple[str, str]] = []
    key = doc.get("key") if isinstance(doc.get("key"), dict) else {}
    if stem is None:
        pattern = "{stem}.{YYYYmmddTHHMMSSffffffZ}.json" if where == "history" else \
            "{power_mode}_{freq}MHz_{framework}.json"
        return [("$", f"file name {path.name!r} is not {pattern}")]
    try:
        power_mode, freq, framework = parse_calibration_filename(stem + ".json")
    except HwcalError:
        return [("$", f"file name {path.name!r} is not named {{power_mode}}_{{freq}}MHz_{{framework}}.json")]
    for field_name, expected in (("power_mode", power_mode), ("freq_mhz", freq), ("framework", framework)):
        if key.get(field_name) != expected:
            problems.append((f"$.key.{field_name}", f"{key.get(field_name)!r} disagrees with the file name "
                                                     f"{path.name!r} ({expected!r})"))
    hw_dir = path.parent.parent if where == "current" else path.parent.parent.parent
    if key.get("hardware_id") != hw_dir.name:
        problems.append(("$.key.hardware_id", f"{key.get('hardware_id')!r} disagrees with the folder "
                                              f"{hw_dir.name!r}"))
    if key.get("device_type") != hw_dir.parent.name:
        problems.append(("$.key.device_type", f"{key.get('device_type')!r} disagrees with the folder "
                                              f"{hw_dir.parent.name!r}"))
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    for field_name in ("hardware_id", "device_type", "freq_mhz", "framework"):
        if field_name in meta and meta[field_name] != key.get(field_name):
            problems.append((f"$.metadata.{field_name}", f"{meta[field_name]!r} disagrees with the key "
                                                         f"({key.get(field_name)!r})"))
    if isinstance(meta.get("power_mode"), str) and power_mode_token(meta["power_mode"]) != key.get("power_mode"):
        problems.append(("$.metadata.power_mode", f"{meta['power_mode']!r} does not reduce to the key's "
                                                  f"power mode {key.get('power_mode')!r}"))
    return problems


@dataclass(frozen=True)
class CalibrationEntry:
    """One readable, valid calibration file and what identifies it."""

    path: Path
    key: CalibrationKey
    calibration_date: datetime
    doc: dict[str, Any] = field(repr=False, compare=False)
    superseded: bool = False

    @property
    def power_mode_name(self) -> str:
        """The power mode as given or detected (``MAXN_SUPER``), before reduction to the key token."""
        return str(self.doc["metadata"].get("power_mode", self.key.power_mode))

    @property
    def imported(self) -> bool:
        return "imported" in self.doc["metadata"]

    @property
    def peaks(self) -> dict[str, float]:
        return dict(self.doc["precision_matrix"]["peak_gflops_by_precision"])

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
            "measured_bandwidth_gbps": self.doc.get("measured_bandwidth_gbps"),
            "warnings": len(self.doc.get("warnings", [])),
        }


def _read_checked(path: Path, kind: str, registry_root: Path | None) -> dict[str, Any]:
    """JSON of a registry file, refused in one line if its format version or its schema is wrong."""
    doc = read_json(path, registry_root)
    problem = version_problem(doc, kind)
    if problem:
        raise BadRegistryFile(path, f"{problem}")
    errors = schema_errors(doc, kind)
    if errors:
        more = f" (and {len(errors) - 1} more; tools/validate_registry.py lists them)" if len(errors) > 1 else ""
        raise BadRegistryFile(path, f"not a valid {kind}: {errors[0]}{more}")
    return doc


def read_calibration(path: str | Path, registry_root: Path | None = None) -> CalibrationEntry:
    """Read and check one calibration the user named; any problem is a one-line RegistryFileError.

    Inside a registry's ``calibrations/`` folder the name and folders must agree with the key.
    """
    path = Path(path)
    doc = _read_checked(path, "calibration", registry_root)
    naming = naming_problems(path, doc)
    if naming:
        json_path, message = naming[0]
        raise BadRegistryFile(path, f"misnamed: {json_path}: {message}")
    try:
        date = parse_date(doc["metadata"]["calibration_date"])
        key = CalibrationKey(**doc["key"])
    except (ValueError, HwcalError) as exc:
        raise BadRegistryFile(path, f"{exc}") from None
    where, _ = _layout_of(path)
    return CalibrationEntry(path=path, key=key, calibration_date=date, doc=doc, superseded=where == "history")


def read_spec(path: str | Path, registry_root: Path | None = None) -> dict[str, Any]:
    """Read and check one spec.json; any problem is a one-line RegistryFileError."""
    return _read_checked(Path(path), "spec", registry_root)


# ---- the registry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class HardwareInfo:
    """One ``<device_type>/<hardware_id>/`` folder: its spec (None when missing or unreadable)."""

    hardware_id: str
    device_type: str
    path: Path
    spec: dict[str, Any] | None = None

    @property
    def model(self) -> str:
        return str((self.spec or {}).get("model") or self.hardware_id)

    def summary(self) -> dict[str, Any]:
        return {"hardware_id": self.hardware_id, "device_type": self.device_type, "model": self.model,
                "path": str(self.path), "has_spec": self.spec is not None}


@dataclass
class Profile:
    """What ``Registry.get`` returns: the hardware's spec with the chosen calibration."""

    hardware_id: str
    device_type: str
    spec: dict[str, Any] | None
    calibration: dict[str, Any]
    path: Path
    calibration_date: datetime

    @property
    def key(self) -> CalibrationKey:
        return CalibrationKey(**self.calibration["key"])

    def peak_gflops(self, precision: str) -> float | None:
        return self.calibration["precision_matrix"]["peak_gflops_by_precision"].get(precision)

    @property
    def measured_bandwidth_gbps(self) -> float | None:
        return self.calibration.get("measured_bandwidth_gbps")


class Registry:
    """Read access to a registry folder (``<device_type>/<hardware_id>/spec.json`` and ``calibrations/``).

    Every call rescans the folder, so a calibration filed meanwhile is seen. Files that cannot be used
    are skipped, reported once each as a ``RegistryWarning`` and kept in ``skipped``.
    """

    def __init__(self, root: str | Path | None = None, *, emit_warnings: bool = True) -> None:
        self.root = Path(root) if root is not None else default_registry()
        self.emit_warnings = emit_warnings
        self.skipped: list[SkippedFile] = []
        self._warned: set[tuple[Path, str]] = set()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # -- scanning --
    def _skip(self, path: Path, reason: str) -> None:
        item = SkippedFile(path, reason)
        if item not in self.skipped:
            self.skipped.append(item)
        if self.emit_warnings and (path, reason) not in self._warned:
            self._warned.add((path, reason))
            warnings.warn(str(item), RegistryWarning, stacklevel=3)

    def _children(self, folder: Path) -> list[Path]:
        try:
            return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        except OSError as exc:
            self._skip(folder, f"cannot list folder: {exc.strerror or exc}")
            return []

    def _hardware_dirs(self) -> list[tuple[str, Path]]:
        if not self.root.exists():
            return []
        if not self.root.is_dir():
            raise HwcalError(f"registry {self.root} is not a folder; give --registry PATH or set {ENV_REGISTRY}")
        found: list[tuple[str, Path]] = []
        for type_dir in self._children(self.root):
            if not type_dir.is_dir():
                continue
            if type_dir.name not in DEVICE_TYPES:
                self._skip(type_dir, f"folder {type_dir.name!r} is not a device type ({', '.join(DEVICE_TYPES)})"
                           + (f"; an original-registry layout? import it: {MIGRATE_HINT}"
                              if type_dir.name in ("boards", "gpus", "cpus") else ""))
                continue
            for hw_dir in self._children(type_dir):
                if not hw_dir.is_dir():
                    continue
                if not _inside(hw_dir, self.root):
                    self._skip(hw_dir, f"symlink pointing outside the registry (to {hw_dir.resolve()}); not read")
                    continue
                if hardware_id_token(hw_dir.name) != hw_dir.name:
                    self._skip(hw_dir, "folder name is not a hardware id (lower-case letters, digits, single "
                                       f"underscores, e.g. {hardware_id_token(hw_dir.name)!r})")
                    continue
                found.append((type_dir.name, hw_dir))
        return found

    def _hardware_info(self, device_type: str, hw_dir: Path) -> HardwareInfo:
        info = HardwareInfo(hw_dir.name, device_type, hw_dir)
        spec_file = hw_dir / "spec.json"
        if not spec_file.exists() and not spec_file.is_symlink():
            self._skip(spec_file, "missing: this hardware has no spec.json (theoretical peaks unknown)")
        else:
            try:
                info.spec = read_spec(spec_file, self.root)
            except BadRegistryFile as exc:
                self._skip(exc.path, exc.reason)
        legacy = hw_dir / "calibration.json"
        if legacy.exists():
            self._skip(legacy, f"single calibration.json of the original registry; import it: {MIGRATE_HINT}")
        return info

    def _calibration_files(self, hw_dir: Path, history: bool) -> list[Path]:
        cal_dir = hw_dir / "calibrations"
        if not cal_dir.is_dir():
            return []
        files: list[Path] = []
        for path in self._children(cal_dir):
            if path.name == "history" and path.is_dir():
                if history:
                    files += [p for p in self._children(path) if not p.is_dir()]
            elif path.is_dir():
                self._skip(path, "unexpected folder in calibrations/ (only history/ belongs there)")
            else:
                files.append(path)
        return files

    def _read_entries(self, hw_dir: Path, history: bool) -> list[CalibrationEntry]:
        entries: list[CalibrationEntry] = []
        for path in self._calibration_files(hw_dir, history):
            if path.suffix != ".json":
                self._skip(path, "not a .json calibration file; ignored")
                continue
            m = _HISTORY_RE.match(path.name)
            if m and m["corrupt"]:
                self._skip(path, "kept by the writer as unreadable when it was superseded; not listed")
                continue
            try:
                entries.append(read_calibration(path, self.root))
            except BadRegistryFile as exc:
                self._skip(exc.path, exc.reason)
        return entries

    # -- public API --
    def hardware(self) -> list[HardwareInfo]:
        """Every hardware folder, sorted by id; a missing or invalid spec.json is warned about."""
        return [self._hardware_info(t, d) for t, d in self._hardware_dirs()]

    def hardware_ids(self) -> list[str]:
        return sorted({d.name for _, d in self._hardware_dirs()})

    def search(self, text: str) -> list[HardwareInfo]:
        """Hardware whose id, model or vendor contains ``text`` (case-insensitive)."""
        needle = text.casefold()
        found = []
        for info in self.hardware():
            spec = info.spec or {}
            hay = " ".join(str(v) for v in (info.hardware_id, spec.get("model"), spec.get("vendor")) if v)
            if needle in hay.casefold():
                found.append(info)
        return found

    def _dirs_for(self, hardware_id: str | None) -> list[tuple[str, Path]]:
        dirs = self._hardware_dirs()
        if hardware_id is None:
            return dirs
        chosen = [(t, d) for t, d in dirs if d.name == hardware_id]
        if not chosen:
            known = sorted({d.name for _, d in dirs})
            raise UnknownHardwareError(
                f"unknown hardware {hardware_id!r} in registry {self.root}; known: "
                + (", ".join(known) if known else "none (the registry is empty)"))
        return chosen

    def list_calibrations(self, hardware_id: str | None = None,
                          calibration_filter: Mapping[str, object] | CalibrationFilter | None = None,
                          *, history: bool = False) -> list[CalibrationEntry]:
        """Valid calibrations (of one hardware, or all), filtered, sorted naturally by power mode.

        With ``history`` the superseded ones under ``calibrations/history/`` are included.
        """
        flt = normalise_filter(calibration_filter)
        entries: list[CalibrationEntry] = []
        for device_type, hw_dir in self._dirs_for(hardware_id):
            self._hardware_info(device_type, hw_dir)  # warns about a missing or broken spec.json
            entries += [e for e in self._read_entries(hw_dir, history) if flt.matches(e.key)]
        return sorted(entries, key=CalibrationEntry.sort_key)

    def history(self, hardware_id: str, calibration_filter: Mapping[str, object] | None = None
                ) -> list[CalibrationEntry]:
        """Current and superseded calibrations matching the filter, newest first."""
        entries = self.list_calibrations(hardware_id, calibration_filter, history=True)
        return sorted(entries, key=lambda e: e.calibration_date, reverse=True)

    def get(self, hardware_id: str, calibration_filter: Mapping[str, object] | None = None) -> Profile:
        """The spec with the most recent (by ``calibration_date``) calibration matching every filter key."""
        flt = normalise_filter(calibration_filter)
        dirs = self._dirs_for(hardware_id)
        candidates = self.list_calibrations(hardware_id, flt)
        if not candidates:
            available = [e.path.name for e in self.list_calibrations(hardware_id)]
            raise HwcalError(f"no calibration of {hardware_id!r} matches {flt.describe()}; available: "
                             + (", ".join(available) if available else "none"))
        best = max(candidates, key=lambda e: e.calibration_date)
        hw_dir = next(d for t, d in dirs if t == best.key.device_type)
        spec = self._hardware_info(best.key.device_type, hw_dir).spec
        return Profile(hardware_id, best.key.device_type, spec, best.doc, best.path, best.calibration_date)

    def read(self, path: str | Path) -> CalibrationEntry:
        """One calibration the user named; fails with the reason (RegistryFileError)."""
        return read_calibration(Path(path), self.root)

    def spec(self, hardware_id: str) -> dict[str, Any]:
        """The hardware's spec.json; fails with the reason when missing or invalid."""
        _device_type, hw_dir = self._dirs_for(hardware_id)[0]
        return read_spec(hw_dir / "spec.json", self.root)



# ---- validation --------------------------------------------------------------------------------

@dataclass
class ValidationReport:
    """Every problem of a registry as ``file: json_path: message``, and how many files were checked."""

    root: Path
    errors: list[str] = field(default_factory=list)
    specs_checked: int = 0
    calibrations_checked: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, path: Path, json_path: str, message: str) -> None:
        self.errors.append(f"{path}: {json_path}: {message}")


def _check_document(report: ValidationReport, path: Path, kind: str) -> dict[str, Any] | None:
    """Schema-check one file, adding every error; the document when it parsed, else None."""
    try:
        doc = read_json(path, report.root)
    except BadRegistryFile as exc:
        report.add(path, "$", exc.reason)
        return None
    problem = version_problem(doc, kind)
    if problem:
        report.add(path, "$.schema_version" if isinstance(doc, dict) and "schema_version" in doc else "$", problem)
        return None
    for error in schema_errors(doc, kind):
        json_path, _, message = error.partition(": ")
        report.add(path, json_path, message)
    return doc


def validate_registry(root: str | Path) -> ValidationReport:
    """Check every spec.json and calibration under ``root`` against the schemas and the naming rules.

    A missing or empty registry is valid (nothing filed yet); files outside the layout are errors.
    """
    root = Path(root)
    report = ValidationReport(root)
    if not root.exists():
        report.notes.append(f"registry {root} does not exist: nothing to validate")
        return report
    if not root.is_dir():
        report.add(root, "$", "registry is not a folder")
        return report
    for type_dir in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not type_dir.is_dir():
            if type_dir.suffix == ".json":
                report.add(type_dir, "$", "JSON file outside <device_type>/<hardware_id>/; not part of the layout")
            continue
        if type_dir.name not in DEVICE_TYPES:
            report.add(type_dir, "$", f"folder {type_dir.name!r} is not a device type ({', '.join(DEVICE_TYPES)})")
            continue
        for hw_dir in sorted(p for p in type_dir.iterdir() if not p.name.startswith(".")):
            if not hw_dir.is_dir():
                report.add(hw_dir, "$", "file where a <hardware_id>/ folder belongs")
                continue
            _validate_hardware(report, type_dir.name, hw_dir)
    return report


def _validate_hardware(report: ValidationReport, device_type: str, hw_dir: Path) -> None:
    if not _inside(hw_dir, report.root):
        report.add(hw_dir, "$", f"symlink pointing outside the registry (to {hw_dir.resolve()})")
        return
    if hardware_id_token(hw_dir.name) != hw_dir.name:
        report.add(hw_dir, "$", "folder name is not a hardware id (lower-case letters, digits, single "
                                f"underscores, e.g. {hardware_id_token(hw_dir.name)!r})")
    spec_file = hw_dir / "spec.json"
    if not spec_file.exists():
        report.add(spec_file, "$", "missing: every hardware folder needs a spec.json")
    else:
        report.specs_checked += 1
        spec = _check_document(report, spec_file, "spec")
        if isinstance(spec, dict):
            if spec.get("id") != hw_dir.name:
                report.add(spec_file, "$.id", f"{spec.get('id')!r} disagrees with the folder {hw_dir.name!r}")
            if spec.get("device_type") != device_type:
                report.add(spec_file, "$.device_type",
                           f"{spec.get('device_type')!r} disagrees with the folder {device_type!r}")
    for path in sorted(p for p in hw_dir.iterdir() if not p.name.startswith(".")):
        if path.name == "calibration.json":
            report.add(path, "$", f"single calibration.json of the original registry; import it: {MIGRATE_HINT}")
        elif path.name not in ("spec.json", "calibrations") and path.suffix == ".json":
            report.add(path, "$", "unexpected JSON file; calibrations belong in calibrations/")
    cal_dir = hw_dir / "calibrations"
    if not cal_dir.is_dir():
        return
    for path in sorted(p for p in cal_dir.iterdir() if not p.name.startswith(".")):
        if path.is_dir():
            if path.name == "history":
                for hist in sorted(p for p in path.iterdir() if not p.name.startswith(".")):
                    _validate_calibration(report, hist)
            else:
                report.add(path, "$", "unexpected folder in calibrations/ (only history/ belongs there)")
        else:
            _validate_calibration(report, path)


def _validate_calibration(report: ValidationReport, path: Path) -> None:
    if path.is_dir():
        report.add(path, "$", "unexpected folder")
        return
    m = _HISTORY_RE.match(path.name)
    if path.parent.name == "history" and m and m["corrupt"]:
        report.notes.append(f"{path}: kept by the writer as unreadable when superseded; not checked")
        return
    report.calibrations_checked += 1
    doc = _check_document(report, path, "calibration")
    if isinstance(doc, dict):
        for json_path, message in naming_problems(path, doc):
            report.add(path, json_path, message)
