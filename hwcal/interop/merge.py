"""Merging calibrations from many runners into one registry: decide everything before writing (what is
refused, what conflicts, what becomes current, what goes to history), then write through the writer.

Nothing is lost: an unusable file is refused with the reason; a key two new files claim is a conflict
(the newer by ``calibration_date`` becomes current, the other history, both reported); a file older
than the registry's current one goes to history; a file the registry already holds is not filed twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hwcal.errors import HwcalError
from hwcal.naming import CalibrationKey, calibration_path, history_dir, spec_path
from hwcal.registry.fsio import GZ_SUFFIX
from hwcal.registry.layout import history_files
from hwcal.registry.reader import BadRegistryFile, parse_date, read_calibration, read_json, read_spec
from hwcal.registry.succession import held_back, is_partial, split_newest
from hwcal.registry.writer import write_calibration, write_history


@dataclass
class Candidate:
    """One usable input calibration."""

    source: Path
    key: CalibrationKey
    date: datetime
    doc: dict[str, Any] = field(repr=False)


@dataclass
class MergeStep:
    """What happens to one input: filed (becomes current), history, unchanged (already held)."""

    action: str
    source: Path
    key: CalibrationKey
    target: Path
    reason: str
    spec: dict[str, Any] | None = field(default=None, repr=False)
    doc: dict[str, Any] | None = field(default=None, repr=False)
    date: datetime | None = None
    previous_kept: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "source": str(self.source), "key": self.key.as_dict(),
                "target": str(self.target), "reason": self.reason,
                "previous_kept": str(self.previous_kept) if self.previous_kept else None}


@dataclass
class Conflict:
    key: CalibrationKey
    kept: Candidate
    others: list[Candidate]

    def describe(self) -> str:
        same = " with the same calibration_date" if any(o.date == self.kept.date for o in self.others) else ""
        others = ", ".join(f"{o.source} ({o.date.isoformat()})" for o in self.others)
        return (f"{self.key.device_type}/{self.key.hardware_id}/{self.key.filename}: {1 + len(self.others)} new "
                f"calibrations{same}; current: {self.kept.source} ({self.kept.date.isoformat()}); "
                f"to history: {others}")

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key.as_dict(), "kept": str(self.kept.source), "kept_date": self.kept.date.isoformat(),
                "others": [{"source": str(o.source), "calibration_date": o.date.isoformat()} for o in self.others]}


@dataclass
class Plan:
    actions: list[MergeStep] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.conflicts


def find_inputs(paths: list[Path]) -> tuple[list[Path], list[Path], list[str]]:
    """(calibration files, spec files, notes) below the given paths; a missing path is a usage error."""
    calibrations: list[Path] = []
    specs: list[Path] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise HwcalError(f"{path}: no such file or folder")
        if path.is_dir():
            found = []
            for p in sorted([*path.rglob("*.json"), *path.rglob("*" + GZ_SUFFIX)]):
                rel = p.relative_to(path).parts
                if any(part.startswith(".") for part in rel):
                    continue
                if "history" in rel[:-1]:
                    notes.append(f"{p}: in a history/ folder; not merged (superseded where it came from)")
                    continue
                found.append(p)
            if not found:
                notes.append(f"{path}: no .json files below it")
        else:
            found = [path]
        for p in found:
            if p.resolve() in seen:
                continue
            seen.add(p.resolve())
            (specs if p.name == "spec.json" else calibrations).append(p)
    return calibrations, specs, notes


def read_candidate(path: Path) -> Candidate:
    """A usable calibration, or BadRegistryFile saying why not (one line)."""
    entry = read_calibration(path)  # JSON, format version, schema, and folder names where in registry layout
    if path.name != entry.key.filename:
        raise BadRegistryFile(path, f"file name disagrees with its key: the key says {entry.key.filename!r}")
    return Candidate(path, entry.key, entry.calibration_date, entry.doc)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _held(registry: Path, key: CalibrationKey) -> tuple[dict[str, Any] | None, datetime | None, list[dict[str, Any]]]:
    """The registry's current document of a key (None if absent or unreadable), its date, and its history."""
    current: dict[str, Any] | None = None
    date: datetime | None = None
    path = calibration_path(registry, key)
    if path.exists():
        try:
            current = read_json(path, registry)
            date = parse_date(current["metadata"]["calibration_date"])
        except (BadRegistryFile, ValueError, KeyError, TypeError):
            current, date = None, None  # the writer keeps it in history as .corrupt when it is replaced
    history: list[dict[str, Any]] = []
    hist = history_dir(registry, key)
    for p in history_files(hist, key.filename[:-5]):
        try:
            history.append(read_json(p, registry))
        except BadRegistryFile:
            continue
    return current, date, history


def _spec_for(key: CalibrationKey, source: Path, specs: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]]
              ) -> dict[str, Any] | None:
    """The input spec.json of new hardware: the one beside the calibration's folder first."""
    found = specs.get((key.device_type, key.hardware_id), [])
    for path, spec in found:
        if path.parent == source.parent.parent:
            return spec
    return found[0][1] if found else None


def plan_merge(registry: Path, inputs: list[Path], allow_new_hardware: bool, allow_partial: bool = False,
               file_disturbed: bool = False) -> Plan:
    """Decide everything before writing anything: what is refused, what conflicts, where each file goes."""
    plan = Plan()
    cal_paths, spec_paths, plan.notes = find_inputs(inputs)
    specs: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]] = {}
    for path in spec_paths:
        try:
            spec = read_spec(path)
        except BadRegistryFile as exc:
            plan.refused.append((path, f"spec: {exc.reason}"))
            continue
        specs.setdefault((str(spec.get("device_type")), str(spec.get("id"))), []).append((path, spec))
    by_key: dict[CalibrationKey, list[Candidate]] = {}
    for path in cal_paths:
        try:
            cand = read_candidate(path)
        except BadRegistryFile as exc:
            plan.refused.append((path, exc.reason))
            continue
        by_key.setdefault(cand.key, []).append(cand)
    known: dict[tuple[str, str], dict[str, Any] | None] = {}  # spec to file with new hardware; None: held
    for key in sorted(by_key, key=lambda k: (k.device_type, k.hardware_id, k.filename)):
        hw = (key.device_type, key.hardware_id)
        if hw not in known:
            if spec_path(registry, *hw).exists():
                known[hw] = None
            elif not allow_new_hardware:
                for cand in by_key[key]:
                    plan.refused.append((cand.source, f"unknown hardware {key.hardware_id!r} ({key.device_type}) "
                                         f"in registry {registry}: add its spec.json there first, or merge with "
                                         "--allow-new-hardware"))
                continue
            else:
                new_spec = _spec_for(key, by_key[key][0].source, specs)
                if new_spec is None:
                    for cand in by_key[key]:
                        plan.refused.append((cand.source, f"new hardware {key.hardware_id!r} ({key.device_type}) "
                                             "has no spec.json among the inputs; nothing to file it with"))
                    continue
                known[hw] = new_spec
        _plan_key(plan, registry, key, by_key[key], known[hw], allow_partial, file_disturbed)
    return plan


def _plan_key(plan: Plan, registry: Path, key: CalibrationKey, cands: list[Candidate],
              spec: dict[str, Any] | None, allow_partial: bool = False, file_disturbed: bool = False) -> None:
    """The newest new calibration becomes current if newer than the registry's; every other one goes to history."""
    current, current_date, history = _held(registry, key)
    target = calibration_path(registry, key)
    fresh: list[Candidate] = []
    for cand in sorted(cands, key=lambda c: (c.date, str(c.source))):
        twin = next((f for f in fresh if _same(f.doc, cand.doc)), None)
        if twin is not None:
            plan.notes.append(f"{cand.source}: same calibration as {twin.source}; filed once")
        elif current is not None and _same(current, cand.doc):
            plan.actions.append(MergeStep("unchanged", cand.source, key, target, "the registry's current calibration"))
        elif any(_same(h, cand.doc) for h in history):
            plan.actions.append(MergeStep("unchanged", cand.source, key, history_dir(registry, key),
                                       "already in the registry's history"))
        else:
            fresh.append(cand)
    if len(fresh) > 1:  # two runners claimed one key: the newer wins, the other is kept, both are reported
        plan.conflicts.append(Conflict(key, fresh[-1], fresh[:-1]))
    newest, older = split_newest(fresh, lambda c: c.date, current_date)
    if newest is not None and is_partial(newest.doc) and current is not None and not is_partial(current) \
            and not allow_partial:
        # The plugin's rule (succession.is_partial): a partial run never silently replaces a complete one.
        why = (newest.doc.get("metadata", {}).get("selection") or {}).get("partial_why", "partial selection")
        plan.refused.append((newest.source, f"a partial run ({why}) would replace the complete calibration "
                                            f"{target}; merge with --allow-partial to let it (the complete one "
                                            "goes to history)"))
        newest = None
    disturbed = held_back(newest.doc, current) if newest is not None and not file_disturbed else None
    if newest is not None and disturbed is not None:
        # The plugin's rule too (succession.held_back): kept, not made current over a quieter calibration.
        plan.actions.append(MergeStep("history", newest.source, key, history_dir(registry, key),
                                      f"a disturbed run: {disturbed}; merge with --file-disturbed to make it "
                                      "current", date=newest.date))
        newest = None
    if newest is not None:
        why = "new key" if not target.exists() else \
            f"newer than the current calibration ({current_date.isoformat() if current_date else 'unreadable'})"
        # Filed first: new hardware gets its spec.json before anything lands in its history/.
        plan.actions.append(MergeStep("filed", newest.source, key, target, why, spec=spec, doc=newest.doc))
    for cand in older:
        why = f"not newer than the current calibration ({current_date.isoformat()})" \
            if current_date is not None and cand.date <= current_date else f"older than {fresh[-1].source}"
        plan.actions.append(MergeStep("history", cand.source, key, history_dir(registry, key), why, date=cand.date))


def apply(registry: Path, plan: Plan) -> None:
    """Carry out the plan; a write that fails becomes a refusal naming the reason (nothing half-written)."""
    for action in plan.actions:
        try:
            if action.action == "filed" and action.doc is not None:
                _path, kept = write_calibration(registry, action.key, action.doc, action.spec)
                action.previous_kept = kept
            elif action.action == "history" and action.date is not None:
                # the runner's bytes, as they came
                action.target = write_history(registry, action.key, action.source.read_text(encoding="utf-8"),
                                              action.date)
        except (HwcalError, OSError) as exc:
            action.action, action.reason = "failed", str(exc)
            plan.refused.append((action.source, f"could not be filed: {exc}"))


