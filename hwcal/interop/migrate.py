"""Importing the original system's registry: plan what each file becomes (spec, current calibration,
history, skip, error) without writing, then write through the registry writer."""


from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.document.format2 import update_to_2
from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.interop.legacy_calibration import Converted, legacy_calibration_to_v1
from hwcal.interop.legacy_files import LegacyFile, LegacyFormatError, find_legacy_files, legacy_spec_to_v1
from hwcal.naming import (
    CalibrationKey,
    calibration_path,
    history_dir,
    history_path,
    history_stamp,
    spec_path,
)
from hwcal.registry.reader import BadRegistryFile, read_calibration, read_json
from hwcal.registry.succession import split_newest
from hwcal.registry.writer import check_valid, dumps, write_calibration, write_history, write_spec

# ---- planning and writing ----------------------------------------------------------------------

@dataclass
class MigrationStep:
    """One step of a migration: ``spec``/``write``/``history`` write a file, ``skip`` and ``error`` do not."""

    action: str
    source: Path
    rel: str
    target: Path | None = None
    message: str = ""
    key: CalibrationKey | None = None
    doc: dict[str, Any] | None = field(default=None, repr=False)
    calibration_date: datetime | None = None
    corrections: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "source": str(self.source), "target": str(self.target) if self.target
                else None, "key": self.key.filename if self.key else None, "message": self.message,
                "calibration_date": self.calibration_date.isoformat() if self.calibration_date else None,
                "corrections": self.corrections, "faults": self.faults}


def _history_target(registry: Path, key: CalibrationKey, date: datetime, taken: set[Path]) -> Path:
    target, n = history_path(registry, key, history_stamp(date)), 1
    while target in taken:
        target, n = history_path(registry, key, f"{history_stamp(date)}.{n}"), n + 1
    taken.add(target)
    return target


def _existing(registry: Path, key: CalibrationKey) -> tuple[tuple[Path, datetime] | None, str | None,
                                                          dict[tuple[str, str], Path]]:
    """The key's current calibration (path, date), why it cannot be read, and what is already imported."""
    imported: dict[tuple[str, str], Path] = {}
    current, problem = None, None
    path = calibration_path(registry, key)
    files = [path, *sorted(history_dir(registry, key).glob(f"{key.filename.removesuffix('.json')}.*.json"))]
    for f in files:
        if not f.exists():
            continue
        try:
            entry = read_calibration(f, registry)
        except BadRegistryFile as exc:
            if f == path:
                problem = exc.reason
            continue
        if f == path:
            current = (f, entry.calibration_date)
        source = entry.doc["metadata"].get("imported", {}).get("source_sha256")
        if source:
            imported[(entry.calibration_date.isoformat(), source)] = f
    return current, problem, imported


def plan_migration(source: Path, registry: Path, imported_at: datetime | None = None) -> list[MigrationStep]:
    """Decide, without writing, what importing ``source`` into ``registry`` does to each file."""
    imported_at = imported_at or datetime.now(timezone.utc)
    actions: list[MigrationStep] = []
    converted: list[tuple[LegacyFile, Converted]] = []
    spec_targets: set[Path] = set()
    for lf in find_legacy_files(source):
        try:
            raw = lf.path.read_bytes()
            legacy = read_json(lf.path)
        except (BadRegistryFile, OSError) as exc:
            reason = exc.reason if isinstance(exc, BadRegistryFile) else (exc.strerror or str(exc))
            actions.append(MigrationStep("error", lf.path, lf.rel, message=f"cannot read: {reason}"))
            continue
        try:
            if lf.kind == "spec":
                if isinstance(legacy, dict) and "schema_version" in legacy:
                    actions.append(MigrationStep("skip", lf.path, lf.rel,
                                                 message="already an hwcal spec; not imported"))
                    continue
                spec, notes, spec_faults = legacy_spec_to_v1(legacy, rel=lf.rel, type_folder=lf.type_folder,
                                                hardware_folder=lf.hardware_folder, imported_at=imported_at)
                errors = schema_errors(spec, "spec")
                if errors:
                    raise LegacyFormatError("converted spec is not valid: " + "; ".join(errors))
                target = spec_path(registry, spec["device_type"], spec["id"])
                if target.exists() or target in spec_targets:
                    actions.append(MigrationStep("skip", lf.path, lf.rel, target, "spec.json already there; kept"))
                else:
                    spec_targets.add(target)
                    actions.append(MigrationStep("spec", lf.path, lf.rel, target, "imported spec", doc=spec,
                                          corrections=notes, faults=spec_faults))
                continue
            if isinstance(legacy, dict) and "schema_version" in legacy:
                actions.append(MigrationStep("skip", lf.path, lf.rel, message="already in hwcal format; not imported"))
                continue
            conv = legacy_calibration_to_v1(legacy, rel=lf.rel, type_folder=lf.type_folder,
                                            hardware_folder=lf.hardware_folder, imported_at=imported_at,
                                            source_sha256=hashlib.sha256(raw).hexdigest())
            conv.doc = update_to_2(conv.doc)  # imported straight into the current format
            errors = schema_errors(conv.doc, "calibration")
            if errors:
                raise LegacyFormatError("converted calibration is not valid: " + "; ".join(errors[:5]))
            converted.append((lf, conv))
        except HwcalError as exc:
            actions.append(MigrationStep("error", lf.path, lf.rel, message=str(exc)))
    by_key: dict[CalibrationKey, list[tuple[LegacyFile, Converted]]] = defaultdict(list)
    for lf, conv in converted:
        by_key[conv.key].append((lf, conv))
    taken: set[Path] = set()
    for key in sorted(by_key, key=lambda k: (k.hardware_id, k.filename)):
        actions += _plan_key(registry, key, by_key[key], taken)
    return actions


def _plan_key(registry: Path, key: CalibrationKey, items: list[tuple[LegacyFile, Converted]],
              taken: set[Path]) -> list[MigrationStep]:
    """The newest of (existing, imported) stays current; older imports go to history; nothing newer is lost."""
    current, problem, already = _existing(registry, key)
    out: list[MigrationStep] = []

    def act(kind: str, lf: LegacyFile, conv: Converted, target: Path | None, message: str) -> MigrationStep:
        return MigrationStep(kind, lf.path, lf.rel, target, message, conv.key, conv.doc, conv.calibration_date,
                      conv.corrections, conv.faults)

    fresh = []
    for lf, conv in items:
        sha = conv.doc["metadata"]["imported"]["source_sha256"]
        done = already.get((conv.calibration_date.isoformat(), sha))
        if done:
            out.append(act("skip", lf, conv, done, "already imported"))
        else:
            fresh.append((lf, conv))
    if problem and fresh:
        return out + [act("error", lf, conv, calibration_path(registry, key),
                          f"cannot compare dates with the unreadable {key.filename} there ({problem}); "
                          "fix or remove it first") for lf, conv in fresh]
    newest_date = current[1] if current else None
    winner, older = split_newest(fresh, lambda item: item[1].calibration_date, newest_date)
    for lf, conv in older:
        newer = winner[1].calibration_date if winner else newest_date
        out.append(act("history", lf, conv, _history_target(registry, key, conv.calibration_date, taken),
                       f"older than the {newer:%Y-%m-%d %H:%M} calibration of {key.filename}; kept as history"
                       if newer else "kept as history"))
    if winner:
        lf, conv = winner
        note = "replaces an older calibration (kept in history)" if current else "new calibration"
        out.append(act("write", lf, conv, calibration_path(registry, key), note))
    return out


def execute(actions: list[MigrationStep], registry: Path) -> list[MigrationStep]:
    """Write what the plan says through the writer; a failed write turns its step into an ``error`` and
    the rest go on."""
    for a in actions:
        if a.action not in ("spec", "write", "history") or a.doc is None or a.target is None:
            continue
        try:
            if a.action == "write" and a.key is not None:
                write_calibration(registry, a.key, a.doc)
            elif a.action == "history" and a.key is not None and a.calibration_date is not None:
                check_valid(a.doc, "calibration")
                a.target = write_history(registry, a.key, dumps(a.doc), a.calibration_date)
            elif a.action == "spec" and not write_spec(registry, a.doc):
                raise HwcalError(f"{a.target} appeared meanwhile; not overwritten")
        except (HwcalError, OSError) as exc:
            a.action, a.message = "error", str(exc)
    return actions
