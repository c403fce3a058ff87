"""The original registry's files: every file under the source, the family it belongs to (from where it
sits; the planner refines by content), and the one guarded way to read one.

Families: ``spec`` (spec.json), ``calibration`` (calibration.json, calibrations/*.json),
``archived_calibration`` (calibrations/archive/*.json: runs the original set aside), ``dla_calibration``
(decided by content), ``efficiency_curves`` (efficiency_curves.json), ``unknown`` (any other JSON) and
``other`` (logs, figures, notes: not registry data). Nothing is left out of the list.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwcal.errors import HwcalError
from hwcal.registry.fsio import UnsafePathError, read_regular_bytes
from hwcal.registry.reader import BadRegistryFile, parse_json_text

# The original registry's folder names for device types (it wrote "boards" and, for its curves, "cuda").
LEGACY_TYPE_FOLDERS = {"cpu": "cpu", "cpus": "cpu", "gpu": "gpu", "gpus": "gpu", "cuda": "gpu", "board": "board",
                       "boards": "board", "accelerator": "accelerator", "accelerators": "accelerator", "dsp": "dsp",
                       "dsps": "dsp"}
DATA_FAMILIES = ("spec", "calibration", "archived_calibration", "dla_calibration", "efficiency_curves", "unknown")
FAMILIES = (*DATA_FAMILIES, "other")


@dataclass(frozen=True)
class LegacyFile:
    """One file of an original registry and the folders that say what it belongs to."""

    path: Path
    family: str
    rel: str  # relative to the original registry's root, for the record
    type_folder: str | None
    hardware_folder: str | None
    reason: str = ""  # for family "other": why it is not data

    @property
    def kind(self) -> str:
        """``spec`` or ``calibration`` (what the converters of the two main families take)."""
        return "spec" if self.family == "spec" else "calibration"


def _family(path: Path) -> tuple[str, str]:
    """(family, reason) from the file's name and place."""
    name, parent = path.name, path.parent.name
    if name.startswith("."):
        return "other", "hidden file; not registry data"
    if not name.endswith(".json"):
        suffix = path.suffix or "no suffix"
        return "other", f"not registry data ({suffix}: the original registry's logs, figures and notes are not " \
                        "imported)"
    if name == "spec.json":
        return "spec", ""
    if name == "efficiency_curves.json":
        return "efficiency_curves", ""
    if parent == "archive" and path.parent.parent.name == "calibrations":
        return "archived_calibration", ""
    if name == "calibration.json" or parent == "calibrations":
        return "calibration", ""
    return "unknown", ""


def _placement(path: Path, source: Path) -> tuple[str, str | None, str | None]:
    """(rel, type folder, hardware folder): the type folder is the nearest ancestor named like one with a
    hardware folder below it, inside the source or at most three folders above it (a hardware folder or one
    file given as the source); rel is taken from the type folder's parent (the original registry's root)."""
    parts = Path(os.path.abspath(path)).parts
    base = Path(os.path.abspath(source if source.is_dir() else source.parent)).parts
    for i in range(len(parts) - 3, max(len(base) - 4, 0) - 1, -1):
        if parts[i] in LEGACY_TYPE_FOLDERS:
            return "/".join(parts[i:]), parts[i], parts[i + 1]
    hw = path.parent.parent if path.parent.name == "calibrations" else path.parent
    try:
        rel = Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(source))).as_posix()
    except ValueError:
        rel = path.name
    in_layout = path.name in ("spec.json", "calibration.json") or path.parent.name == "calibrations"
    return rel or path.name, None, hw.name if in_layout else None


def _walk(source: Path) -> list[tuple[Path, str]]:
    """Every file under ``source`` (hidden and symlinked folders are listed, not entered), sorted."""
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        folder = Path(dirpath)
        hidden = sorted(d for d in dirnames if d.startswith("."))
        linked = sorted(d for d in dirnames if not d.startswith(".") and (folder / d).is_symlink())
        dirnames[:] = sorted(d for d in dirnames if d not in hidden and d not in linked)
        found += [(folder / d, "hidden folder; not entered") for d in hidden]
        found += [(folder / d, "symlinked folder; not followed") for d in linked]
        found += [(folder / f, "") for f in sorted(filenames)]
    return found


def find_legacy_files(source: Path) -> list[LegacyFile]:
    """Every file under ``source`` (a registry, a hardware folder, or one file) with its family."""
    source = Path(source)
    if not os.path.lexists(source):
        raise HwcalError(f"source {source} does not exist; give the original registry's folder")
    entries = _walk(source) if source.is_dir() else [(source, "")]
    found = []
    for path, why in entries:
        rel, type_folder, hardware_folder = _placement(path, source)
        family, reason = ("other", why) if why else _family(path)
        found.append(LegacyFile(path, family, rel, type_folder, hardware_folder, reason))
    return found


def read_source(path: Path) -> tuple[bytes, Any]:
    """(bytes, parsed JSON) of one source file, read once through the registry's guarded reader: only a
    regular file of at most 64 MiB is read (a FIFO or a device never hangs the import); every failure is
    a one-line ``BadRegistryFile``."""
    try:
        raw = read_regular_bytes(path)
    except UnsafePathError as exc:
        raise BadRegistryFile(path, str(exc)) from None
    except FileNotFoundError:
        raise BadRegistryFile(path, "no such file (removed meanwhile?)") from None
    except OSError as exc:
        raise BadRegistryFile(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRegistryFile(path, "not UTF-8 text (a binary or damaged file)") from None
    try:
        return raw, parse_json_text(text)
    except json.JSONDecodeError as exc:
        what = "empty file" if not text.strip() else "not valid JSON (truncated or corrupt?)"
        raise BadRegistryFile(path, f"{what}: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # NaN/Infinity, an integer of thousands of digits
        raise BadRegistryFile(path, f"not valid JSON for a registry: {exc}") from None
    except RecursionError:
        raise BadRegistryFile(path, "JSON nested too deep to be a registry file; not read") from None
