"""Import the original system's registry (calibration.json, calibrations/*.json, spec.json) into an
hwcal registry: measurements kept, faults flagged, nothing newer overwritten."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from hwcal.cli.common import add_json_option, add_registry_option, make_parser, print_json
from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, Tool, say, tell
from hwcal.interop.migrate import MigrationStep, execute, plan_migration
from hwcal.registry.layout import default_registry

EXAMPLES = """
  python tools/migrate_calibrations.py ../shared/seed-registry --dry-run      # what it would do
  python tools/migrate_calibrations.py ../shared/seed-registry --registry /tmp/reg
  python tools/migrate_calibrations.py old/gpu/jetson_orin_nano_gpu/calibration.json -v
  python tools/migrate_calibrations.py old-registry --json | jq '.actions[] | select(.action=="error")'
"""
_VERB = {"spec": ("spec", "would write spec"), "write": ("write", "would write"),
         "history": ("history", "would file as history"), "skip": ("skip", "would skip"), "error": ("error", "error")}


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(
        prog, "Import calibrations and specs of the original registry into this project's format (version 1). "
              "The newest calibration of a key stays current, older ones go to calibrations/history/; a newer "
              "calibration already in the registry is never overwritten. Exit 1 when a file could not be "
              "imported (the others still are).", EXAMPLES)
    parser.add_argument("source", type=Path, metavar="SOURCE",
                        help="original registry folder, one hardware folder of it, or one file")
    parser.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing. "
                                                               "Default: off")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print every correction made, not only the faults found. Default: off")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def _line(a: MigrationStep, registry: Path, dry_run: bool) -> str:
    verb = _VERB[a.action][1 if dry_run else 0].ljust(21 if dry_run else 7)
    if a.action == "error":
        return f"{verb} {a.rel}: {a.message}"
    target = ""
    if a.target is not None:
        try:
            target = f" -> {a.target.relative_to(registry)}"
        except ValueError:
            target = f" -> {a.target}"
    return f"{verb} {a.rel}{target} ({a.message})"


def _report(args: argparse.Namespace, registry: Path, actions: list[MigrationStep]) -> list[str]:
    counts = Counter(a.action for a in actions)
    mode = " (dry run: nothing written)" if args.dry_run else ""
    lines = [f"importing {args.source} into {registry}{mode}"]
    for a in actions:
        lines.append(_line(a, registry, args.dry_run))
        if a.action not in ("skip", "error"):
            lines += [f"    fault: {fault}" for fault in a.faults]
            lines += [f"    corrected: {c}" for c in a.corrections] if args.verbose else []
    if not actions:
        lines.append("no original-registry files found (spec.json, calibration.json, calibrations/*.json)")
    would = "would be " if args.dry_run else ""
    lines.append(f"{counts['write']} calibration(s) {would}filed as current, {counts['history']} {would}filed as "
                 f"history, {counts['spec']} spec(s) {would}written, {counts['skip']} skipped, "
                 f"{counts['error']} error(s)")
    return lines


def body(args: argparse.Namespace) -> int:
    registry = args.registry if args.registry is not None else default_registry()
    actions = plan_migration(args.source, registry, datetime.now(timezone.utc))
    if not args.dry_run:
        execute(actions, registry)
    if args.json:
        print_json({"source": str(args.source), "registry": str(registry), "dry_run": args.dry_run,
                    "counts": dict(Counter(a.action for a in actions)), "actions": [a.as_dict() for a in actions]})
    else:
        say(*_report(args, registry, actions))
    errors = [a for a in actions if a.action == "error"]
    tell(*(f"{args.prog}: error: {a.source}: {a.message}" for a in errors))
    return EXIT_FAIL if errors else EXIT_OK


TOOL = Tool("migrate_calibrations.py", build_parser, body, command="hwcal-migrate")
main = TOOL.main
