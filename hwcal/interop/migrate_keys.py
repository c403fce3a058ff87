"""What becomes of the converted documents of one key (or one validation file): the newest stays current,
the others go to history, nothing newer already in the registry is lost, nothing is imported twice.

Rules beyond "newest wins" (``hwcal.registry.succession``): a partial run (only all-core STREAM) never
replaces a complete calibration; a run the original registry archived is history, never current; where a
date's zone is unknown the order is stated as uncertain; DLA runs of one key make one document of the
newest run of each engine and precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hwcal.document.format2 import update_to_2
from hwcal.document.schema import schema_errors
from hwcal.interop.legacy_calibration import Converted
from hwcal.interop.legacy_common import ZONE_UNCERTAINTY, LegacyDate, LegacyFormatError
from hwcal.interop.legacy_dla import DlaRun, dla_document
from hwcal.interop.legacy_files import LegacyFile
from hwcal.naming import CalibrationKey, calibration_path, history_dir, history_path, history_stamp
from hwcal.registry.layout import history_files
from hwcal.registry.reader import BadRegistryFile, read_calibration
from hwcal.registry.succession import is_partial, split_newest


@dataclass
class MigrationStep:
    """What happens to one source file (or one part of it): ``spec``, ``write``, ``history`` and ``validation``
    write a file; ``unchanged`` (already imported), ``skip``, ``error`` and ``ignored`` (not data) do not."""

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
    family: str = "calibration"
    replaces: Path | None = None  # validation: the older file kept in history first

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "family": self.family, "source": str(self.source),
                "target": str(self.target) if self.target else None,
                "key": self.key.filename if self.key else None, "message": self.message,
                "calibration_date": self.calibration_date.isoformat() if self.calibration_date else None,
                "corrections": self.corrections, "faults": self.faults}


@dataclass
class Held:
    """What the registry already holds for a key: the current file, why it cannot be read, its date, whether
    it is partial, and the (date, source sha256) of everything imported there before."""

    current: Path | None = None
    problem: str | None = None
    date: datetime | None = None
    partial: bool = False
    doc: dict[str, Any] | None = None
    imported: dict[tuple[str, str], Path] = field(default_factory=dict)


def _shas(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(date, sha256) of the original files a document came from: its own, or one per accelerator run."""
    found = [(str(r.get("calibration_date")), str(r["source_sha256"])) for r in doc.get("accelerator_runs") or []
             if isinstance(r, dict) and r.get("source_sha256")]
    sha = (doc["metadata"].get("imported") or {}).get("source_sha256")
    return found + ([(doc["metadata"]["calibration_date"], sha)] if sha else [])


def held(registry: Path, key: CalibrationKey) -> Held:
    """The key's current calibration and history, read through the checked reader."""
    out = Held()
    path = calibration_path(registry, key)
    files = [path, *history_files(history_dir(registry, key), key.filename.removesuffix(".json"))]
    for f in files:
        if not f.exists():
            continue
        try:
            entry = read_calibration(f, registry)
        except BadRegistryFile as exc:
            if f == path:
                out.problem = exc.reason
            continue
        if f == path:
            out.current, out.date, out.doc, out.partial = f, entry.calibration_date, entry.doc, is_partial(entry.doc)
        for date, sha in _shas(entry.doc):
            out.imported[(_norm(date), sha)] = f
    return out


def _norm(date: str) -> str:
    try:
        return datetime.fromisoformat(date.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return date


def _history_target(registry: Path, key: CalibrationKey, date: datetime, taken: set[Path]) -> Path:
    target, n = history_path(registry, key, history_stamp(date)), 1
    while target in taken:
        target, n = history_path(registry, key, f"{history_stamp(date)}.{n}"), n + 1
    taken.add(target)
    return target


def finish(conv: Converted) -> None:
    """Upgrade a converted document to the current format (the upgrade step for files read from disk) and
    check it; raises LegacyFormatError naming the first schema errors."""
    conv.doc = update_to_2(conv.doc)
    errors = schema_errors(conv.doc, "calibration")
    if errors:
        raise LegacyFormatError("converted calibration is not valid: " + "; ".join(errors[:5]))


Item = tuple[LegacyFile, Converted]


def _step(kind: str, item: Item, target: Path | None, message: str) -> MigrationStep:
    lf, conv = item
    family = conv.doc["metadata"].get("imported", {}).get("family", lf.family)
    return MigrationStep(kind, lf.path, lf.rel, target, message, conv.key, conv.doc, conv.calibration_date,
                         conv.corrections, conv.faults, family)


def _uncertain(item: Item, others: list[Item], current: datetime | None) -> str:
    """A note when the order of ``item`` against the others rests on a date without a time zone."""
    dates = [c.calibration_date for _, c in others if c is not item[1]] + ([current] if current else [])
    close = [d for d in dates if abs(d - item[1].calibration_date) < ZONE_UNCERTAINTY]
    unknown = not item[1].zone_known or any(not c.zone_known for _, c in others if c is not item[1])
    if close and unknown:
        return "; the order is uncertain: a date here has no time zone (read as UTC, the truth may differ by hours)"
    return ""


def _fresh(items: list[Item], have: Held, out: list[MigrationStep]) -> list[Item]:
    fresh = []
    for item in items:
        sha = item[1].doc["metadata"].get("imported", {}).get("source_sha256", "")
        done = have.imported.get((item[1].calibration_date.isoformat(), sha))
        if done:
            out.append(_step("unchanged", item, done, "already imported"))
        else:
            fresh.append(item)
    return fresh


def plan_key(registry: Path, key: CalibrationKey, items: list[Item], taken: set[Path]) -> list[MigrationStep]:
    """The newest of (existing, imported) stays current, older imports go to history; a partial or archived
    run never becomes current over a complete one."""
    have = held(registry, key)
    out: list[MigrationStep] = []
    fresh = _fresh(items, have, out)
    if have.problem and fresh:
        return out + [_step("error", i, calibration_path(registry, key),
                            f"cannot compare dates with the unreadable {key.filename} there ({have.problem}); "
                            "fix or remove it first") for i in fresh]
    eligible = [i for i in fresh if not i[1].archived]
    complete = [i for i in eligible if not i[1].partial]
    aside = [i for i in fresh if i[1].archived or (i[1].partial and (complete or (have.current and not have.partial)))]
    contenders = complete if aside or complete else eligible
    winner, older = split_newest(contenders, lambda i: i[1].calibration_date, have.date)
    for item in aside:
        why = "archived by the original registry" if item[1].archived else \
            "a partial run (only all-core STREAM); it does not replace the complete calibration of its key"
        out.append(_step("history", item, _history_target(registry, key, item[1].calibration_date, taken),
                         f"{why}; kept as history"))
    for item in older:
        newer = winner[1].calibration_date if winner else have.date
        out.append(_step("history", item, _history_target(registry, key, item[1].calibration_date, taken),
                         (f"older than the {newer:%Y-%m-%d %H:%M} calibration of {key.filename}; kept as history"
                          if newer else "kept as history") + _uncertain(item, fresh, have.date)))
    if winner:
        note = "replaces an older calibration (kept in history)" if have.current else "new calibration"
        out.append(_step("write", winner, calibration_path(registry, key), note + _uncertain(winner, fresh, have.date)))
    return out


# ---- DLA runs ------------------------------------------------------------------------------------

DlaItem = tuple[LegacyFile, DlaRun]


def _dla_step(kind: str, item: DlaItem, target: Path | None, message: str, doc: dict[str, Any] | None
              ) -> MigrationStep:
    lf, run = item
    return MigrationStep(kind, lf.path, lf.rel, target, message, run.key, doc, run.calibration_date,
                         run.corrections, run.faults, "dla_calibration")


def _dla_doc(runs: list[DlaRun], spec: dict[str, Any] | None, imported_at: datetime) -> dict[str, Any]:
    doc = update_to_2(dla_document(runs, spec, imported_at))
    errors = schema_errors(doc, "calibration")
    if errors:
        raise LegacyFormatError("converted DLA calibration is not valid: " + "; ".join(errors[:5]))
    return doc


def plan_dla_key(registry: Path, key: CalibrationKey, items: list[DlaItem], spec: dict[str, Any] | None,
                 imported_at: datetime, taken: set[Path]) -> list[MigrationStep]:
    """One document of the newest run of each engine and precision (the registry's current runs included);
    a superseded imported run goes to history on its own."""
    have = held(registry, key)
    out: list[MigrationStep] = []
    fresh = []
    for item in items:
        done = have.imported.get((item[1].calibration_date.isoformat(), item[1].run.get("source_sha256", "")))
        if done:
            out.append(_dla_step("unchanged", item, done, "already imported", None))
        else:
            fresh.append(item)
    if have.problem and fresh:
        return out + [_dla_step("error", i, calibration_path(registry, key), f"cannot merge with the unreadable "
                                f"{key.filename} there ({have.problem}); fix or remove it first", None) for i in fresh]
    slots: dict[tuple[str, str], DlaItem] = {}
    for item in sorted(fresh, key=lambda i: i[1].calibration_date):
        previous = slots.get(item[1].slot)
        slots[item[1].slot] = item
        if previous is not None:
            doc = _dla_doc([previous[1]], spec, imported_at)
            out.append(_dla_step("history", previous, _history_target(registry, key, previous[1].calibration_date,
                                                                      taken),
                                 f"{previous[1].slot[0]} {previous[1].slot[1]}: a newer run of this engine and "
                                 "precision exists; kept as history", doc))
    winners = _against_current(have, slots, out, registry, key, spec, imported_at, taken)
    if winners:
        current_runs = _current_runs(have, {i[1].slot for i in winners})
        doc = _dla_doc([w[1] for w in winners] + current_runs, spec, imported_at)
        note = "merged with the current calibration's other runs (the previous file kept in history)" \
            if have.current else "new calibration"
        for n, item in enumerate(winners):
            # One document holds every winning run: the first step writes it, the others are part of it.
            out.append(_dla_step("write", item, calibration_path(registry, key),
                                 note if n == 0 else f"part of the same calibration as {winners[0][0].rel}",
                                 doc if n == 0 else None))
    return out


def _current_runs(have: Held, replaced: set[tuple[str, str]]) -> list[DlaRun]:
    """The registry's current runs that no new run replaces, as runs again (from their filed form)."""
    kept = []
    for run in (have.doc or {}).get("accelerator_runs") or []:
        if (run["engine"], run["precision"]) in replaced:
            continue
        meta = (have.doc or {})["metadata"]
        key = CalibrationKey(**(have.doc or {})["key"])
        date = datetime.fromisoformat(run["calibration_date"])
        kept.append(DlaRun(key, run, LegacyDate(date, "recorded", run["calibration_date"]), meta["power_mode"],
                           meta["power_mode_source"], (meta.get("clock") or {}).get("power_mode_id"),
                           meta["freq_source"], meta["hardware_name"],
                           (meta.get("imported") or {}).get("legacy_metadata") or {}))
    return kept


def _against_current(have: Held, slots: dict[tuple[str, str], DlaItem], out: list[MigrationStep], registry: Path,
                     key: CalibrationKey, spec: dict[str, Any] | None, imported_at: datetime,
                     taken: set[Path]) -> list[DlaItem]:
    """The new runs newer than the current document's run of their slot; older ones go to history."""
    current = {(r["engine"], r["precision"]): datetime.fromisoformat(r["calibration_date"])
               for r in (have.doc or {}).get("accelerator_runs") or []}
    winners = []
    for slot, item in sorted(slots.items()):
        if slot in current and current[slot] > item[1].calibration_date:
            doc = _dla_doc([item[1]], spec, imported_at)
            out.append(_dla_step("history", item, _history_target(registry, key, item[1].calibration_date, taken),
                                 f"{slot[0]} {slot[1]}: older than the run in the current {key.filename}; kept as "
                                 "history", doc))
        else:
            winners.append(item)
    return winners
