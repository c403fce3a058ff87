"""The registry writer: only what ``hwcal-validate`` would accept where it lands (one rule,
``validity.problems``), atomic replace, one writer at a time per hardware folder, and the calibration a
key held before kept under ``calibrations/history/`` (packed, ``.json.gz``, in the current format)."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from hwcal.document.schema import CALIBRATION_FORMAT_VERSION, non_json_path
from hwcal.errors import HwcalError
from hwcal.naming import (
    CalibrationKey,
    calibration_path,
    hardware_dir,
    history_path,
    history_stamp,
    packed_history_path,
    spec_path,
)
from hwcal.registry import fsio
from hwcal.registry.fsio import UnsafePathError, check_write_target
from hwcal.registry.reader import BadRegistryFile, parse_date, parse_json_text, read_json
from hwcal.registry.succession import FUTURE_SKEW_S, held_back, is_future, split_newest
from hwcal.registry.validity import Problem, problems

LOCK_TIMEOUT_S = 120.0


class RegistryWriteWarning(UserWarning):
    """Something the writer did that the user should know (a future-dated calibration replaced)."""


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_text(path: Path, text: str, root: Path | None = None) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: readers never see half a file.

    With ``root`` the target must resolve inside that registry and not be a special file."""
    fsio.atomic_write_text(Path(path), text, root)


def calibration_date(doc: Any) -> datetime | None:
    """A document's calibration_date as an aware UTC datetime (naive dates are read as UTC)."""
    try:
        return parse_date(doc["metadata"]["calibration_date"])
    except (ValueError, KeyError, TypeError):
        return None


def _read_existing(existing: Path, registry: Path | None = None) -> tuple[datetime | None, str]:
    """The superseded file's date and history stamp; an unreadable file is stamped by mtime."""
    date, stamp, _ = _superseded(existing, registry)
    return date, stamp


def _superseded(existing: Path, registry: Path | None = None) -> tuple[datetime | None, str, bool]:
    """``_read_existing``, and whether the file is a calibration in the current format (history packs those)."""
    try:
        doc = read_json(existing, registry)
    except BadRegistryFile:
        doc = None
    date = calibration_date(doc)
    if date is not None:
        return date, history_stamp(date), _current_format(doc)
    return None, history_stamp(datetime.fromtimestamp(existing.lstat().st_mtime, timezone.utc)), False


def _keep_in_history(registry: Path, key: CalibrationKey, existing: Path) -> Path:
    """Copy the current file into history through the one write path (never a plain copy: a kill must not
    leave half a history file, and a link or special file must not have its target copied in). A calibration
    in the current format is packed as it goes (``<name>.json.gz``, as ``hwcal-upgrade --compress-history``
    packs it: gzip takes a CPU torch run's 1.2 MB to about a tenth); an unreadable one is kept as its bytes
    (``.corrupt``), an older format as it is, for ``hwcal-upgrade`` to rewrite."""
    check_write_target(existing, registry)  # a symlink leading out, a FIFO: refused, nothing written
    try:
        data = fsio.read_regular_bytes(existing)
    except UnsafePathError as exc:
        raise UnsafePathError(f"{existing} {exc}; nothing written") from None
    date, stamp, current = _superseded(existing, registry)
    if current:
        return _pack(packed_history_path(registry, key, stamp), data, registry)
    target = history_path(registry, key, stamp, "" if date else ".corrupt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")  # kept as .corrupt: its bytes were not text anyway
    atomic_write_text(target, text, registry)
    return target


def lock_for(registry: Path, device_type: str, hardware_id: str) -> FileLock:
    folder = hardware_dir(registry, device_type, hardware_id)
    if not fsio.contained(folder, registry):
        raise UnsafePathError(f"{folder} leads outside the registry {registry} (a symlink?); nothing written")
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / ".lock"), timeout=LOCK_TIMEOUT_S, mode=0o666 & ~fsio.current_umask())


def _hardware_folders(registry: Path, device_type: str, hardware_id: str) -> list[Path]:
    folder = hardware_dir(registry, device_type, hardware_id)
    return [folder, folder / "calibrations", folder / "calibrations" / "history"]


def clean_leftovers(registry: Path, device_type: str, hardware_id: str) -> list[Path]:
    """Remove the temp files killed writers left in a hardware folder; call with its lock held."""
    return fsio.remove_stale_temps(_hardware_folders(registry, device_type, hardware_id))


def check_registry_writable(registry: Path) -> None:
    """Fail before a run, not after it, when the registry cannot take a file."""
    registry = Path(registry)
    if registry.exists() and not registry.is_dir():
        raise HwcalError(f"registry {registry} is not a folder; give --registry a folder")
    folder = registry
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # probe the nearest existing folder: creating the registry now would be a write
    if not folder.is_dir():
        raise HwcalError(f"registry {registry} lies under {folder}, which is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".hwcal-write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HwcalError(f"cannot write to registry {registry}: {exc.strerror or exc}") from None


def judged(doc: Any, kind: str, path: Path | None = None) -> tuple[str, list[Problem]]:
    """(the text the writer would file, every ``validity.problems`` of it at ``path``).

    The verdict is on the text read back, what every reader will see, never on the Python objects (a tuple
    is filed as a list, an int key as a string; NaN cannot be filed at all)."""
    try:
        text = dumps(doc)
    except (TypeError, ValueError) as exc:  # NaN, a numpy scalar, an object JSON has no form for
        where = non_json_path(doc) or "$"
        return "", [Problem(where, f"not JSON data: {exc}")]
    return text, problems(parse_json_text(text), kind, path)


def check_valid(doc: Any, kind: str, path: Path | None = None) -> None:
    """Refuse, in one HwcalError listing every problem, a document the writer would refuse (at ``path``)."""
    _text, found = judged(doc, kind, path)
    if found:
        raise _refusal(kind, found)


def _refusal(kind: str, found: list[Problem] | list[str]) -> HwcalError:
    return HwcalError(f"{kind} is not valid, nothing written:\n  " + "\n  ".join(map(str, found)))


def write_spec(registry: Path, spec: dict[str, Any]) -> bool:
    """File a hardware's spec.json unless it has one (never overwritten); True when written."""
    text, found = judged(spec, "spec")  # valid: its id and device_type name the folder it goes to
    if found:
        raise _refusal("spec", found)
    target = spec_path(registry, spec["device_type"], spec["id"])
    try:
        with lock_for(registry, spec["device_type"], spec["id"]):
            clean_leftovers(registry, spec["device_type"], spec["id"])
            if target.exists() or target.is_symlink():
                return False
            with fsio.interrupts_deferred():
                atomic_write_text(target, text, registry)
            return True
    except Timeout:
        raise HwcalError(f"another writer holds the lock on {target.parent} for over {LOCK_TIMEOUT_S:g} s; "
                         "nothing written") from None


@dataclass(frozen=True)
class Placement:
    """Where a filed calibration went: ``path`` (the key's file, or a history file), the previous current
    file's history copy, and why the document went to history instead of becoming current (or None)."""

    path: Path
    kept: Path | None = None
    held_back: str | None = None


def write_calibration(registry: Path, key: CalibrationKey, doc: dict[str, Any],
                      spec: dict[str, Any] | None = None) -> tuple[Path, Path | None]:
    """File ``doc`` under ``key`` (and ``spec`` if the hardware has none). Returns (path, history copy).

    Refused (nothing written) unless valid at the key's path by the rule ``hwcal-validate`` applies. A
    document older than the key's current one goes straight to history and its path is returned.
    """
    placed = place_calibration(registry, key, doc, spec)
    return placed.path, placed.kept


def place_calibration(registry: Path, key: CalibrationKey, doc: dict[str, Any], spec: dict[str, Any] | None = None,
                      *, keep_quieter: bool = False) -> Placement:
    """``write_calibration``; with ``keep_quieter`` a disturbed run goes to history instead of replacing a
    clearly quieter current calibration (``succession.held_back``), decided under the folder's lock."""
    path = calibration_path(registry, key)
    text, found = judged(doc, "calibration", path)
    errors = [str(p) for p in found]
    spec_text = ""
    if spec is not None:
        spec_text, spec_found = judged(spec, "spec", spec_path(registry, key.device_type, key.hardware_id))
        errors += [f"spec.json {p}" for p in spec_found]
    if errors:
        raise _refusal("calibration", errors)
    try:
        with lock_for(registry, key.device_type, key.hardware_id), fsio.interrupts_deferred():
            # Ctrl-C is held until the step is done: the key is never left with a duplicate history copy.
            clean_leftovers(registry, key.device_type, key.hardware_id)
            target = spec_path(registry, key.device_type, key.hardware_id)
            if spec is not None and not target.exists() and not target.is_symlink():
                # Spec first: a kill between the two leaves a hardware with a spec, never one without.
                atomic_write_text(target, spec_text, registry)
            check_write_target(path, registry)
            new_date = calibration_date(doc)
            if path.exists() and new_date is not None:
                existing_date, _ = _read_existing(path, registry)
                winner, _older = split_newest([new_date], lambda d: d, trusted_date(existing_date, path))
                if winner is None:
                    # "Most recent" is by calibration_date: an older document is history, not current.
                    return Placement(_write_history_locked(registry, key, text, doc, new_date))
            reason = held_back_by_current(registry, path, doc) if keep_quieter else None
            if reason is not None:
                date = new_date or datetime.now(timezone.utc)
                return Placement(_write_history_locked(registry, key, text, doc, date), held_back=reason)
            kept = _keep_in_history(registry, key, path) if path.exists() else None
            try:
                atomic_write_text(path, text, registry)
            except BaseException:
                if kept is not None:
                    kept.unlink(missing_ok=True)  # the old file is still in place: no second copy
                raise
    except Timeout:
        raise HwcalError(f"another calibration holds the lock on {path.parent.parent} for over "
                         f"{LOCK_TIMEOUT_S:g} s; nothing written") from None
    except OSError as exc:
        raise HwcalError(f"cannot write to registry {registry}: {exc.strerror or exc}; nothing written") from None
    return Placement(path, kept)


def held_back_by_current(registry: Path, path: Path, doc: dict[str, Any]) -> str | None:
    """``succession.held_back`` of ``doc`` against the key's current file at ``path``; None where there is
    none or it cannot be read (the writer then keeps it as .corrupt and files ``doc``)."""
    if not path.exists():
        return None
    try:
        return held_back(doc, read_json(path, registry))
    except BadRegistryFile:
        return None


def trusted_date(date: datetime | None, path: Path) -> datetime | None:
    """A current calibration dated in the future (a wrong clock) may not win over every new run: it counts
    as not newer, with a warning naming it."""
    if date is not None and is_future(date):
        warnings.warn(f"{path}: calibration_date {date.isoformat()} is in the future (more than "
                      f"{FUTURE_SKEW_S / 60:g} min ahead of this host's clock); a new calibration replaces it "
                      "(it is kept in history)", RegistryWriteWarning, stacklevel=3)
        return None
    return date


def _write_history_locked(registry: Path, key: CalibrationKey, text: str, doc: Any, date: datetime) -> Path:
    """A valid calibration's text straight into history: packed in the current format, as ``_keep_in_history``
    packs; an older format (a runner's file, a rehomed original) plain, for ``hwcal-upgrade`` to rewrite."""
    clean_leftovers(registry, key.device_type, key.hardware_id)
    target = history_target(registry, key, history_stamp(date), doc)  # ``doc``: ``text`` parsed
    with fsio.interrupts_deferred():
        if target.name.endswith(fsio.GZ_SUFFIX):
            return _pack(target, text.encode("utf-8"), registry)
        atomic_write_text(target, text, registry)
        return target


def history_target(registry: Path, key: CalibrationKey, stamp: str, doc: Any) -> Path:
    """Where the writer files ``doc`` in the key's history: packed in the current format, else plain."""
    return (packed_history_path if _current_format(doc) else history_path)(registry, key, stamp)


def _current_format(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("schema_version") == CALIBRATION_FORMAT_VERSION


def _pack(target: Path, data: bytes, registry: Path) -> Path:
    """``data`` packed at ``target`` (a ``.json.gz`` name), atomically (``fsio.atomic_write_bytes``)."""
    fsio.atomic_write_bytes(target, fsio.packed(data), registry)
    return target


def write_history(registry: Path, key: CalibrationKey, text: str, date: datetime) -> Path:
    """File a superseded calibration (its bytes as given) straight into the key's history, atomically and
    under the hardware folder's lock; returns the free history path it took. Refused, nothing written,
    unless the text is a calibration valid under ``key`` (the rule ``hwcal-validate`` applies to history)."""
    try:
        data = parse_json_text(text)
    except (ValueError, RecursionError) as exc:
        raise HwcalError(f"history copy of {key.filename} is not JSON ({exc}); nothing written") from None
    found = problems(data, "calibration", calibration_path(registry, key))
    if found:
        raise _refusal("calibration", found)
    try:
        with lock_for(registry, key.device_type, key.hardware_id):
            return _write_history_locked(registry, key, text, data, date)
    except Timeout:
        raise HwcalError(f"another writer holds the lock on {hardware_dir(registry, key.device_type, key.hardware_id)} "
                         f"for over {LOCK_TIMEOUT_S:g} s; nothing written") from None
