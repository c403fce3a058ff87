"""The one rule for whether a document is valid where it sits: ``problems(doc, kind, path)``.

The writer refuses what it returns before filing, the reader skips (listing) or refuses (a file the user
named) on its first entry, and ``hwcal-validate`` prints every entry as ``file: json_path: message``;
so a document the writer files is one every reader takes, and one a reader skips was never filed.

In order: the format version (a version this hwcal cannot read is not checked further), the schema, then
names: the file name and folders against the key (inside a registry's layout), the metadata against the
key (``metadata.hardware_id`` and the rest say the same as the key), and the power mode's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwcal.document.format2 import legacy_device_type
from hwcal.document.schema import (
    CALIBRATION_FORMAT_VERSION,
    OLDEST_CALIBRATION_FORMAT,
    SPEC_FORMAT_VERSION,
    VALIDATION_FORMAT_VERSION,
    schema_problems,
)
from hwcal.errors import HwcalError
from hwcal.naming import DEVICE_TYPES, parse_calibration_filename, power_mode_name_problem, power_mode_token
from hwcal.registry.layout import MIGRATE_HINT, UPGRADE_HINT, layout_of

KINDS = ("calibration", "spec", "validation")
_CURRENT = {"calibration": CALIBRATION_FORMAT_VERSION, "spec": SPEC_FORMAT_VERSION,
            "validation": VALIDATION_FORMAT_VERSION}
_OLDEST = {"calibration": OLDEST_CALIBRATION_FORMAT, "spec": SPEC_FORMAT_VERSION,
           "validation": VALIDATION_FORMAT_VERSION}


@dataclass(frozen=True)
class Problem:
    """One reason a document is not valid: where in it (a JSON path), what, and which rule (``version``,
    ``schema`` or ``naming``) says so."""

    json_path: str
    message: str
    rule: str = "schema"

    def __str__(self) -> str:
        return f"{self.json_path}: {self.message}"


def is_legacy_calibration(doc: object) -> bool:
    """A calibration written by the original system (no schema_version, operation profiles)."""
    return isinstance(doc, dict) and "schema_version" not in doc and (
        "operation_profiles" in doc or ("metadata" in doc and "precision_matrix" in doc))


def version_problem(doc: object, kind: str = "calibration") -> str | None:
    """Refuse a format this hwcal cannot read, with the command that fixes it (asv's habit)."""
    current = _CURRENT[kind]
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
        return f"schema_version {version} is newer than this hwcal reads ({current}); refused, {UPGRADE_HINT}"
    oldest = _OLDEST[kind]
    if version < oldest:
        return f"schema_version {version} is older than {oldest}; update it: {MIGRATE_HINT}"
    return None


def _naming(json_path: str, message: str) -> Problem:
    return Problem(json_path, message, "naming")


def _key_of(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["key"] if isinstance(doc.get("key"), dict) else {}


def _file_name_problems(path: Path, where: str, stem: str | None, key: dict[str, Any]) -> list[Problem]:
    if stem is None:
        pattern = "{stem}.{YYYYmmddTHHMMSSffffffZ}.json[.gz]" if where == "history" else \
            "{power_mode}_{freq}MHz_{framework}.json"
        return [_naming("$", f"file name {path.name!r} is not {pattern}")]
    try:
        power_mode, freq, framework = parse_calibration_filename(stem + ".json")
    except HwcalError:
        return [_naming("$", f"file name {path.name!r} is not named {{power_mode}}_{{freq}}MHz_{{framework}}.json")]
    return [_naming(f"$.key.{name}", f"{key.get(name)!r} disagrees with the file name {path.name!r} ({expected!r})")
            for name, expected in (("power_mode", power_mode), ("freq_mhz", freq), ("framework", framework))
            if key.get(name) != expected]


def path_problems(path: Path, doc: dict[str, Any]) -> list[Problem]:
    """Where a calibration's file name or folders disagree with its key (only inside a registry's layout:
    ``calibrations/`` or ``calibrations/history/``; a file elsewhere has no name to agree with)."""
    where, stem = layout_of(path)
    if where == "other":
        return []
    key = _key_of(doc)
    found = _file_name_problems(path, where, stem, key)
    if found and found[0].json_path == "$":
        return found
    hw_dir = path.parent.parent if where == "current" else path.parent.parent.parent
    for name, folder in (("hardware_id", hw_dir.name), ("device_type", hw_dir.parent.name)):
        if key.get(name) != folder:
            found.append(_naming(f"$.key.{name}", f"{key.get(name)!r} disagrees with the folder {folder!r}"))
    return found


def metadata_problems(doc: dict[str, Any]) -> list[Problem]:
    """Where the metadata says another key than ``key`` does, and a power-mode name that cannot be one.

    A document whose metadata disagrees with its key would be filed under one key and read as another;
    every reader skips it, so the writer refuses it."""
    key = _key_of(doc)
    meta: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    found = []
    for name in ("hardware_id", "device_type", "freq_mhz", "framework"):
        if name not in meta:
            continue
        from_key = key.get(name)
        if name == "device_type" and doc.get("schema_version") != 1:
            # format 2 speaks the original loader's "cpu" / "cuda" there
            from_key = legacy_device_type({"key": key, "metadata": meta})
        if meta[name] != from_key:
            found.append(_naming(f"$.metadata.{name}", f"{meta[name]!r} disagrees with the key ({from_key!r})"))
    mode = meta.get("power_mode")
    if isinstance(mode, str):
        problem = power_mode_name_problem(mode)
        if problem:
            found.append(_naming("$.metadata.power_mode", problem))
        elif power_mode_token(mode) != key.get("power_mode"):
            found.append(_naming("$.metadata.power_mode", f"{mode!r} does not reduce to the key's power mode "
                                                           f"{key.get('power_mode')!r}"))
    return found


def spec_path_problems(path: Path, spec: dict[str, Any]) -> list[Problem]:
    """Where a ``<device_type>/<hardware_id>/spec.json`` disagrees with its folders."""
    hw_dir = path.parent
    if path.name != "spec.json" or hw_dir.parent.name not in DEVICE_TYPES:
        return []
    return [_naming(f"$.{name}", f"{spec.get(name)!r} disagrees with the folder {folder!r}")
            for name, folder in (("id", hw_dir.name), ("device_type", hw_dir.parent.name)) if spec.get(name) != folder]


def validation_path_problems(path: Path, doc: dict[str, Any]) -> list[Problem]:
    """Where a ``<device_type>/<hardware_id>/validation/[history/]*.json`` disagrees with its folders."""
    folder = path.parent.parent if path.parent.name == "history" else path.parent
    hw_dir = folder.parent
    if folder.name != "validation" or hw_dir.parent.name not in DEVICE_TYPES:
        return []
    return [_naming(f"$.{name}", f"{doc.get(name)!r} disagrees with the folder {expected!r}")
            for name, expected in (("hardware_id", hw_dir.name), ("device_type", hw_dir.parent.name))
            if doc.get(name) != expected]


def problems(doc: Any, kind: str, path: Path | None = None) -> list[Problem]:
    """Every reason ``doc`` (JSON data, as ``json.loads`` returns it) is not a valid ``kind`` at ``path``;
    empty when it is. Without ``path`` the document is judged on its own (no file name to agree with)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    version = version_problem(doc, kind)
    if version:
        where = "$.schema_version" if isinstance(doc, dict) and "schema_version" in doc else "$"
        return [Problem(where, version, "version")]
    found = [Problem(json_path, message) for json_path, message in schema_problems(doc, kind)]
    if kind == "calibration":
        found += path_problems(path, doc) if path is not None else []
        found += metadata_problems(doc)
    elif path is not None:
        found += spec_path_problems(path, doc) if kind == "spec" else validation_path_problems(path, doc)
    return found
