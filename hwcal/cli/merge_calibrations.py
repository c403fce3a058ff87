"""Merge calibrations from many runners into one registry: each file under its key, history kept.

Inputs are calibration files, or folders of them (a downloaded artifact in registry layout, a flat
folder, anything): every ``*.json`` below is read, ``spec.json`` files as specs, the rest as
calibrations; ``history/`` folders and hidden files are left alone. Nothing is lost:

- a file that cannot be used (not JSON, not a calibration, schema-invalid, named unlike its key,
  hardware the registry does not know) is refused with the reason and left where it is;
- a key that two new files claim is a conflict: the newer by ``metadata.calibration_date`` becomes
  the current calibration, the other goes to ``calibrations/history/``, and both are reported;
- a file older than the registry's current calibration of its key goes to history, not over it;
- a file the registry already holds (same content, current or in history) is not filed twice, so
  merging the same artifacts again changes nothing.

Writes go through ``hwcal.writer`` (validated, atomic, locked per hardware folder). Exit 0 when
everything was merged, 1 when something was refused or conflicted (the rest is still merged), 2 for
bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hwcal.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE, add_json_option, add_registry_option, make_parser, print_json, run
from hwcal.errors import HwcalError
from hwcal.naming import CalibrationKey, calibration_path, history_dir, history_path, history_stamp, spec_path
from hwcal.registry import BadRegistryFile, default_registry, parse_date, read_calibration, read_json, read_spec
from hwcal.writer import atomic_write_text, lock_for, write_calibration

PROG = "merge_calibrations.py"
EXAMPLES = """
  python tools/merge_calibrations.py artifacts/ --registry registry          # every runner's artifact folder
  python tools/merge_calibrations.py a/7W_612MHz_pytorch.json b/ --dry-run  # what would happen, nothing written
  python tools/merge_calibrations.py artifacts/ --allow-new-hardware         # a new board's first calibration
  python tools/merge_calibrations.py artifacts/ --json | jq '.conflicts'
"""


@dataclass
class Candidate:
    """One usable input calibration."""

    source: Path
    key: CalibrationKey
    date: datetime
    doc: dict[str, Any] = field(repr=False)


@dataclass
class Action:
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
    actions: list[Action] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.conflicts


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(PROG, "File calibrations from many runners (files, or folders such as downloaded "
                               "artifacts) under their keys in a registry, keeping history; refuse unusable files "
                               "and report two new calibrations of one key. Exit 0 when all merged, 1 when something "
                               "was refused or conflicted, 2 for bad usage.", EXAMPLES)
    parser.add_argument("inputs", nargs="+", metavar="PATH", type=Path,
                        help="calibration files or folders of them (searched recursively)")
    parser.add_argument("--allow-new-hardware", action="store_true",
                        help="accept hardware the registry does not hold yet; its spec.json must be among the "
                             "inputs (a runner's artifact carries it). Default: off, such files are refused")
    parser.add_argument("--dry-run", action="store_true", help="say what would happen, write nothing. Default: off")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


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
            for p in sorted(path.rglob("*.json")):
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
    if hist.is_dir():
        for p in sorted(hist.glob(f"{key.filename[:-5]}.*.json")):
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


def plan_merge(registry: Path, inputs: list[Path], allow_new_hardware: bool) -> Plan:
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
                spec = _spec_for(key, by_key[key][0].source, specs)
                if spec is None:
                    for cand in by_key[key]:
                        plan.refused.append((cand.source, f"new hardware {key.hardware_id!r} ({key.device_type}) "
                                             "has no spec.json among the inputs; nothing to file it with"))
                    continue
                known[hw] = spec
        _plan_key(plan, registry, key, by_key[key], known[hw])
    return plan


def _plan_key(plan: Plan, registry: Path, key: CalibrationKey, cands: list[Candidate],
              spec: dict[str, Any] | None) -> None:
    """The newest new calibration becomes current if newer than the registry's; every other one goes to history."""
    current, current_date, history = _held(registry, key)
    target = calibration_path(registry, key)
    fresh: list[Candidate] = []
    for cand in sorted(cands, key=lambda c: (c.date, str(c.source))):
        twin = next((f for f in fresh if _same(f.doc, cand.doc)), None)
        if twin is not None:
            plan.notes.append(f"{cand.source}: same calibration as {twin.source}; filed once")
        elif current is not None and _same(current, cand.doc):
            plan.actions.append(Action("unchanged", cand.source, key, target, "the registry's current calibration"))
        elif any(_same(h, cand.doc) for h in history):
            plan.actions.append(Action("unchanged", cand.source, key, history_dir(registry, key),
                                       "already in the registry's history"))
        else:
            fresh.append(cand)
    if len(fresh) > 1:  # two runners claimed one key: the newer wins, the other is kept, both are reported
        plan.conflicts.append(Conflict(key, fresh[-1], fresh[:-1]))
    if not fresh:
        return
    newest, older = fresh[-1], fresh[:-1]
    if current_date is None or newest.date > current_date:
        why = "new key" if not target.exists() else \
            f"newer than the current calibration ({current_date.isoformat() if current_date else 'unreadable'})"
        # Filed first: new hardware gets its spec.json before anything lands in its history/.
        plan.actions.append(Action("filed", newest.source, key, target, why, spec=spec, doc=newest.doc))
    else:
        older.append(newest)
    for cand in older:
        why = f"not newer than the current calibration ({current_date.isoformat()})" \
            if current_date is not None and cand.date <= current_date else f"older than {newest.source}"
        plan.actions.append(Action("history", cand.source, key, history_dir(registry, key), why, date=cand.date))


def apply(registry: Path, plan: Plan) -> None:
    """Carry out the plan; a write that fails becomes a refusal naming the reason (nothing half-written)."""
    for action in plan.actions:
        try:
            if action.action == "filed" and action.doc is not None:
                _path, kept = write_calibration(registry, action.key, action.doc, action.spec)
                action.previous_kept = kept
            elif action.action == "history" and action.date is not None:
                text = action.source.read_text(encoding="utf-8")  # the runner's bytes, as they came
                with lock_for(registry, action.key.device_type, action.key.hardware_id):
                    action.target = history_path(registry, action.key, history_stamp(action.date))
                    atomic_write_text(action.target, text)
        except (HwcalError, OSError) as exc:
            action.action, action.reason = "failed", str(exc)
            plan.refused.append((action.source, f"could not be filed: {exc}"))


def _rel(path: Path, registry: Path) -> str:
    try:
        return str(path.relative_to(registry))
    except ValueError:
        return str(path)


def report_text(registry: Path, plan: Plan, dry_run: bool) -> None:
    verb = {"filed": "would file" if dry_run else "filed", "history": "would keep" if dry_run else "history",
            "unchanged": "unchanged", "failed": "FAILED"}
    for a in plan.actions:
        kept = f"; previous kept as {_rel(a.previous_kept, registry)}" if a.previous_kept else ""
        print(f"{verb[a.action]:>10}  {_rel(a.target, registry)}  <- {a.source}  ({a.reason}{kept})")
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    for c in plan.conflicts:
        print(f"{PROG}: conflict: {c.describe()}", file=sys.stderr)
    for path, reason in plan.refused:
        print(f"{PROG}: refused: {path}: {reason}", file=sys.stderr)
    counts = {k: sum(a.action == k for a in plan.actions) for k in ("filed", "history", "unchanged")}
    print(("dry run, nothing written: " if dry_run else "") + f"{registry}: {counts['filed']} filed, "
          f"{counts['history']} to history, {counts['unchanged']} unchanged, {len(plan.refused)} refused, "
          f"{len(plan.conflicts)} conflict(s)")


def main_inner(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    registry = args.registry or default_registry()
    if registry.exists() and not registry.is_dir():
        raise HwcalError(f"registry {registry} is not a folder")
    plan = plan_merge(registry, args.inputs, args.allow_new_hardware)
    if not args.dry_run:
        apply(registry, plan)
    if args.json:
        print_json({"registry": str(registry), "dry_run": args.dry_run, "ok": plan.ok,
                    "actions": [a.as_dict() for a in plan.actions],
                    "conflicts": [c.as_dict() for c in plan.conflicts],
                    "refused": [{"source": str(p), "reason": r} for p, r in plan.refused], "notes": plan.notes})
    else:
        report_text(registry, plan, args.dry_run)
    return EXIT_OK if plan.ok else EXIT_FAIL


def main(argv: list[str] | None = None) -> int:
    return run(main_inner, argv, PROG, error_code=EXIT_USAGE)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
