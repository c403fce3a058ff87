"""Import the original system's registry (specs, calibrations, DLA runs, efficiency curves) into an hwcal
registry: measurements kept, faults flagged, nothing newer overwritten, every file accounted for."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from hwcal.cli.common import add_json_option, add_registry_option, make_parser, print_json, table
from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, Tool, say, tell
from hwcal.interop.migrate import ACTIONS, MigrationStep, counts_by_family, execute, make_strict, plan_migration
from hwcal.registry.layout import default_registry

EXAMPLES = """
  python tools/migrate_calibrations.py ../shared/seed-registry --dry-run      # what it would do
  python tools/migrate_calibrations.py ../shared/seed-registry --registry /tmp/reg
  python tools/migrate_calibrations.py old/gpu/jetson_orin_nano_gpu/calibration.json -v
  python tools/migrate_calibrations.py old-registry --strict    # exit 1 unless every data file is imported
  python tools/migrate_calibrations.py old-registry --json | jq '.actions[] | select(.action=="error")'
"""
_VERB = {"spec": ("spec", "would write spec"), "write": ("write", "would write"),
         "history": ("history", "would file as history"), "validation": ("valid.", "would write validation"),
         "unchanged": ("same", "unchanged"), "skip": ("skip", "would skip"), "error": ("error", "error"),
         "ignored": ("ignored", "ignored")}


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(
        prog, "Import the original registry into this project's format: specs (cpu, gpu, board, accelerator, dsp), "
              "calibrations (the newest of a key current, older ones in calibrations/history/; a newer one already "
              "in the registry is never overwritten), DLA runs (device type accelerator, framework tensorrt) and "
              "efficiency curves (validation data in <type>/<id>/validation/). Every file under SOURCE is accounted "
              "for, with counts per family. Exit 1 when a file could not be imported (the others still are).",
        EXAMPLES)
    parser.add_argument("source", type=Path, metavar="SOURCE",
                        help="original registry folder, one hardware folder of it, or one file")
    parser.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing. "
                                                               "Default: off")
    parser.add_argument("--strict", action="store_true",
                        help="a data file that would be skipped (empty run, no hardware for it, a spec already "
                             "there ...) is an error instead; logs, figures and notes (ignored) are not data. "
                             "Default: off")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print every correction made and every ignored file, not only the faults found. "
                             "Default: off")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def _line(a: MigrationStep, registry: Path, dry_run: bool) -> str:
    verb = _VERB[a.action][1 if dry_run else 0].ljust(22 if dry_run else 7)
    if a.action in ("error", "ignored"):
        return f"{verb} {a.rel}: {a.message}"
    target = ""
    if a.target is not None:
        try:
            target = f" -> {a.target.relative_to(registry)}"
        except ValueError:
            target = f" -> {a.target}"
    return f"{verb} {a.rel}{target} ({a.message})"


def _steps(actions: list[MigrationStep], registry: Path, args: argparse.Namespace) -> list[str]:
    lines = []
    for a in actions:
        if a.action == "ignored" and not args.verbose:
            continue
        lines.append(_line(a, registry, args.dry_run))
        if a.action in ("skip", "error", "ignored", "unchanged"):
            continue
        lines += [f"    fault: {fault}" for fault in a.faults]
        lines += [f"    corrected: {c}" for c in a.corrections] if args.verbose else []
    return lines


def _counts(actions: list[MigrationStep], dry_run: bool) -> list[str]:
    per_family = counts_by_family(actions)
    shown = [act for act in ACTIONS if any(row[act] for row in per_family.values())]
    rows = [("family", "files", *shown)] + [(family, str(row["files"]), *(str(row[act]) for act in shown))
                                            for family, row in per_family.items()]
    files = sum(row["files"] for row in per_family.values())
    rows.append(("all", str(files), *(str(sum(row[act] for row in per_family.values())) for act in shown)))
    return [f"{files} file(s) seen{' (dry run: nothing written)' if dry_run else ''}; per family:",
            *table(rows, right=tuple(range(1, len(shown) + 2)), indent="  ")]


def _report(args: argparse.Namespace, registry: Path, actions: list[MigrationStep]) -> list[str]:
    counts = Counter(a.action for a in actions)
    mode = " (dry run: nothing written)" if args.dry_run else ""
    lines = [f"importing {args.source} into {registry}{mode}", *_steps(actions, registry, args)]
    if not actions:
        lines.append("no files found under the source")
    elif counts["ignored"] and not args.verbose:
        lines.append(f"{counts['ignored']} file(s) ignored: not registry data (logs, figures, notes); -v lists them")
    would = "would be " if args.dry_run else ""
    lines.append(f"{counts['write']} calibration(s) {would}filed as current, {counts['history']} {would}filed as "
                 f"history, {counts['spec']} spec(s) {would}written, {counts['validation']} validation file(s) "
                 f"{would}written, {counts['unchanged']} already imported, {counts['skip']} skipped, "
                 f"{counts['error']} error(s), {counts['ignored']} ignored")
    return lines + _counts(actions, args.dry_run)


def body(args: argparse.Namespace) -> int:
    registry = args.registry if args.registry is not None else default_registry()
    actions = plan_migration(args.source, registry, datetime.now(timezone.utc))
    if args.strict:
        make_strict(actions)
    if not args.dry_run:
        execute(actions, registry)
    if args.json:
        print_json({"source": str(args.source), "registry": str(registry), "dry_run": args.dry_run,
                    "strict": args.strict, "counts": dict(Counter(a.action for a in actions)),
                    "by_family": counts_by_family(actions), "actions": [a.as_dict() for a in actions]})
    else:
        say(*_report(args, registry, actions))
    errors = [a for a in actions if a.action == "error"]
    tell(*(f"{args.prog}: error: {a.source}: {a.message}" for a in errors))
    return EXIT_FAIL if errors else EXIT_OK


TOOL = Tool("migrate_calibrations.py", build_parser, body, command="hwcal-migrate")
main = TOOL.main
