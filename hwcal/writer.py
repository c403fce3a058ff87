"""The registry writer: validated documents only, atomic replace, one writer at a time per
hardware folder, and the calibration a key held before kept under ``calibrations/history/``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from hwcal.errors import HwcalError
from hwcal.naming import CalibrationKey, calibration_path, hardware_dir, history_dir, spec_path
from hwcal.schema import schema_errors

LOCK_TIMEOUT_S = 120.0


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _history_stamp(existing: Path) -> tuple[str, bool]:
    """A sortable stamp for the file being superseded: its calibration_date, or mtime if unreadable."""
    try:
        doc = json.loads(existing.read_text())
        date = datetime.fromisoformat(doc["metadata"]["calibration_date"])
        return date.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"), True
    except (OSError, ValueError, KeyError, TypeError):
        mtime = datetime.fromtimestamp(existing.stat().st_mtime, timezone.utc)
        return mtime.strftime("%Y%m%dT%H%M%S%fZ"), False


def _keep_in_history(existing: Path, hist: Path) -> Path:
    stamp, readable = _history_stamp(existing)
    suffix = "" if readable else ".corrupt"
    target = hist / f"{existing.stem}.{stamp}{suffix}.json"
    n = 1
    while target.exists():
        target = hist / f"{existing.stem}.{stamp}.{n}{suffix}.json"
        n += 1
    hist.mkdir(parents=True, exist_ok=True)
    shutil.copy2(existing, target)  # copy, so the key is never missing; the new file replaces it atomically
    return target


def lock_for(registry: Path, device_type: str, hardware_id: str) -> FileLock:
    folder = hardware_dir(registry, device_type, hardware_id)
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / ".lock"), timeout=LOCK_TIMEOUT_S)


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


def write_calibration(registry: Path, key: CalibrationKey, doc: dict[str, Any],
                      spec: dict[str, Any] | None = None) -> tuple[Path, Path | None]:
    """File ``doc`` under ``key`` (and ``spec`` if the hardware has none). Returns (path, history copy)."""
    errors = schema_errors(doc, "calibration")
    if doc.get("key") != key.as_dict():
        errors.append(f"$.key: {doc.get('key')!r} does not match the key it is filed under {key.as_dict()!r}")
    if spec is not None:
        errors += [f"spec.json {e}" for e in schema_errors(spec, "spec")]
    if errors:
        raise HwcalError("calibration is not valid, nothing written:\n  " + "\n  ".join(errors))
    path = calibration_path(registry, key)
    try:
        with lock_for(registry, key.device_type, key.hardware_id):
            kept = _keep_in_history(path, history_dir(registry, key)) if path.exists() else None
            try:
                atomic_write_text(path, dumps(doc))
            except BaseException:
                if kept is not None:
                    kept.unlink(missing_ok=True)  # the old file is still in place: no second copy
                raise
            target = spec_path(registry, key.device_type, key.hardware_id)
            if spec is not None and not target.exists():
                atomic_write_text(target, dumps(spec))
    except Timeout:
        raise HwcalError(f"another calibration holds the lock on {path.parent.parent} for over "
                         f"{LOCK_TIMEOUT_S:g} s; nothing written") from None
    except OSError as exc:
        raise HwcalError(f"cannot write to registry {registry}: {exc.strerror or exc}; nothing written") from None
    return path, kept
