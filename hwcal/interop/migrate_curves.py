"""Where imported validation data (efficiency curves) goes: ``<type>/<id>/validation/<mode>_<precision>_
efficiency_curves.json``, the newest of a target current, older ones (imported or already there) kept in
``validation/history/``; a file imported before is not imported twice."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from hwcal.document.schema import schema_errors
from hwcal.interop.legacy_curves import Curves
from hwcal.interop.legacy_files import LegacyFile
from hwcal.interop.migrate_keys import MigrationStep
from hwcal.naming import history_stamp
from hwcal.registry.reader import BadRegistryFile, parse_date, read_json


def _history(target: Path, date: datetime, taken: set[Path]) -> Path:
    stem = target.name.removesuffix(".json")
    path, n = target.parent / "history" / f"{stem}.{history_stamp(date)}.json", 1
    while path in taken or path.exists():
        path, n = target.parent / "history" / f"{stem}.{history_stamp(date)}.{n}.json", n + 1
    taken.add(path)
    return path


def _step(action: str, lf: LegacyFile, c: Curves, target: Path | None, message: str,
          doc: dict[str, Any] | None = None) -> MigrationStep:
    return MigrationStep(action, lf.path, lf.rel, target, message, None, doc, c.date.utc, c.corrections, c.faults,
                         "efficiency_curves")


def _there(target: Path, registry: Path) -> tuple[datetime | None, str | None, str | None]:
    """(date, source sha256, problem) of the validation file already at ``target``."""
    if not target.exists() and not target.is_symlink():
        return None, None, None
    try:
        doc = read_json(target, registry)
        return parse_date(doc["calibration_date"]), (doc.get("imported") or {}).get("source_sha256"), None
    except (BadRegistryFile, KeyError, TypeError, ValueError, AttributeError) as exc:
        return None, None, getattr(exc, "reason", None) or f"not a validation file ({exc})"


def plan_curves(registry: Path, curves: list[tuple[LegacyFile, Curves]]) -> list[MigrationStep]:
    by_target: dict[Path, list[tuple[LegacyFile, Curves]]] = defaultdict(list)
    out: list[MigrationStep] = []
    for lf, c in curves:
        errors = schema_errors(c.doc, "validation")
        if errors:
            out.append(_step("error", lf, c, None, "converted validation data is not valid: " + "; ".join(errors[:5])))
        else:
            by_target[c.target(registry)].append((lf, c))
    taken: set[Path] = set()
    for target in sorted(by_target):
        out += _plan_target(registry, target, by_target[target], taken)
    return out


def _plan_target(registry: Path, target: Path, items: list[tuple[LegacyFile, Curves]], taken: set[Path]
                 ) -> list[MigrationStep]:
    date, sha, problem = _there(target, registry)
    out: list[MigrationStep] = []
    fresh = []
    for lf, c in items:
        if sha is not None and c.doc["imported"].get("source_sha256") == sha:
            out.append(_step("unchanged", lf, c, target, "already imported"))
        else:
            fresh.append((lf, c))
    if problem and fresh:
        return out + [_step("error", lf, c, target, f"cannot compare with the unreadable {target.name} there "
                                                    f"({problem}); fix or remove it first") for lf, c in fresh]
    fresh.sort(key=lambda i: i[1].date.utc)
    newest = fresh[-1] if fresh and (date is None or fresh[-1][1].date.utc >= date) else None
    for lf, c in fresh:
        if newest is not None and c is newest[1]:
            continue
        out.append(_step("validation", lf, c, _history(target, c.date.utc, taken),
                         "older than the validation data of its target; kept in validation/history", c.doc))
    if newest is not None:
        lf, c = newest
        step = _step("validation", lf, c, target, "validation data (measured efficiency curves)", c.doc)
        if date is not None:
            step.replaces = _history(target, date, taken)
            step.message += f"; replaces the {date:%Y-%m-%d} file there (kept in validation/history)"
        out.append(step)
    return out
