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

Writes go through ``hwcal.registry.writer`` (validated, atomic, locked per hardware folder). A partial run
(``metadata.selection.partial``) does not replace a complete calibration unless ``--allow-partial``; a
disturbed run (over 10 % of its cases flagged) goes to history instead of replacing a clearly quieter one
unless ``--file-disturbed``.

Exit 0 when everything was merged, 1 when something was refused or conflicted (the rest is still
merged), 2 for bad usage (a missing input), 130 when interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hwcal.cli.common import add_json_option, add_registry_option, make_parser, print_json
from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, Tool, UsageError, say, tell
from hwcal.errors import HwcalError
from hwcal.interop.merge import Plan, apply, plan_merge
from hwcal.registry.layout import default_registry

EXAMPLES = """
  python tools/merge_calibrations.py artifacts/ --registry registry          # every runner's artifact folder
  python tools/merge_calibrations.py a/7W_612MHz_pytorch.json b/ --dry-run  # what would happen, nothing written
  python tools/merge_calibrations.py artifacts/ --allow-new-hardware         # a new board's first calibration
  python tools/merge_calibrations.py artifacts/ --json | jq '.conflicts'
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "File calibrations from many runners (files, or folders such as downloaded "
                               "artifacts) under their keys in a registry, keeping history; refuse unusable files "
                               "and report two new calibrations of one key. Exit 0 when all merged, 1 when something "
                               "was refused or conflicted, 2 for bad usage.", EXAMPLES)
    parser.add_argument("inputs", nargs="+", metavar="PATH", type=Path,
                        help="calibration files or folders of them (searched recursively)")
    parser.add_argument("--allow-new-hardware", action="store_true",
                        help="accept hardware the registry does not hold yet; its spec.json must be among the "
                             "inputs (a runner's artifact carries it). Default: off, such files are refused")
    parser.add_argument("--allow-partial", action="store_true",
                        help="let a partial run (-k, -m, --sizes, one benchmark file) replace a complete calibration "
                             "of its key (the complete one goes to history). Default: off, such files are refused")
    parser.add_argument("--file-disturbed", action="store_true",
                        help="let a disturbed run (over 10%% of its cases measured while something else ran) "
                             "replace a clearly quieter calibration of its key. Default: off, it goes to history")
    parser.add_argument("--dry-run", action="store_true", help="say what would happen, write nothing. Default: off")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def _rel(path: Path, registry: Path) -> str:
    try:
        return str(path.relative_to(registry))
    except ValueError:
        return str(path)


def report_lines(prog: str, registry: Path, plan: Plan, dry_run: bool) -> tuple[list[str], list[str]]:
    """What was filed (stdout) and what was refused, conflicted or noted (stderr)."""
    verb = {"filed": "would file" if dry_run else "filed", "history": "would keep" if dry_run else "history",
            "unchanged": "unchanged", "failed": "FAILED"}
    out = []
    for a in plan.actions:
        kept = f"; previous kept as {_rel(a.previous_kept, registry)}" if a.previous_kept else ""
        out.append(f"{verb[a.action]:>10}  {_rel(a.target, registry)}  <- {a.source}  ({a.reason}{kept})")
    err = [f"note: {note}" for note in plan.notes]
    err += [f"{prog}: conflict: {c.describe()}" for c in plan.conflicts]
    err += [f"{prog}: refused: {path}: {reason}" for path, reason in plan.refused]
    counts = {k: sum(a.action == k for a in plan.actions) for k in ("filed", "history", "unchanged")}
    out.append(("dry run, nothing written: " if dry_run else "") + f"{registry}: {counts['filed']} filed, "
               f"{counts['history']} to history, {counts['unchanged']} unchanged, {len(plan.refused)} refused, "
               f"{len(plan.conflicts)} conflict(s)")
    return out, err


def body(args: argparse.Namespace) -> int:
    registry = args.registry or default_registry()
    if registry.exists() and not registry.is_dir():
        raise HwcalError(f"registry {registry} is not a folder")
    missing = [str(p) for p in args.inputs if not p.exists()]
    if missing:
        raise UsageError(f"{', '.join(missing)}: no such file or folder")
    plan = plan_merge(registry, args.inputs, args.allow_new_hardware, args.allow_partial, args.file_disturbed)
    if not args.dry_run:
        apply(registry, plan)
    if args.json:
        print_json({"registry": str(registry), "dry_run": args.dry_run, "ok": plan.ok,
                    "actions": [a.as_dict() for a in plan.actions],
                    "conflicts": [c.as_dict() for c in plan.conflicts],
                    "refused": [{"source": str(p), "reason": r} for p, r in plan.refused], "notes": plan.notes})
    else:
        out, err = report_lines(args.prog, registry, plan, args.dry_run)
        say(*out[:-1])
        tell(*err)
        say(out[-1])
    return EXIT_OK if plan.ok else EXIT_FAIL


TOOL = Tool("merge_calibrations.py", build_parser, body, command="hwcal-merge")
main = TOOL.main
