"""Import the original system's registry (calibration.json, calibrations/*.json, spec.json) into an
hwcal registry: measurements kept, faults flagged, nothing newer overwritten."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from hwcal.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    add_json_option,
    add_registry_option,
    make_parser,
    print_json,
    run,
)
from hwcal.interop.migrate import MigrationStep, execute, plan_migration
from hwcal.registry.layout import default_registry

PROG = "migrate_calibrations.py"
EXAMPLES = """
  python tools/migrate_calibrations.py ../shared/seed-registry --dry-run      # what it would do
  python tools/migrate_calibrations.py ../shared/seed-registry --registry /tmp/reg
  python tools/migrate_calibrations.py old/gpu/jetson_orin_nano_gpu/calibration.json -v
  python tools/migrate_calibrations.py old-registry --json | jq '.actions[] | select(.action=="error")'
"""
_VERB = {"spec": ("spec", "would write spec"), "write": ("write", "would write"),
         "history": ("history", "would file as history"), "skip": ("skip", "would skip"), "error": ("error", "error")}


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        PROG, "Import calibrations and specs of the original registry into this project's format (version 1). "
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


def main_inner(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    registry = args.registry if args.registry is not None else default_registry()
    actions = plan_migration(args.source, registry, datetime.now(timezone.utc))
    if not args.dry_run:
        execute(actions, registry)
    counts = Counter(a.action for a in actions)
    if args.json:
        print_json({"source": str(args.source), "registry": str(registry), "dry_run": args.dry_run,
                    "counts": dict(counts), "actions": [a.as_dict() for a in actions]})
    else:
        mode = " (dry run: nothing written)" if args.dry_run else ""
        print(f"importing {args.source} into {registry}{mode}")
        for a in actions:
            print(_line(a, registry, args.dry_run))
            if a.action in ("skip", "error"):
                continue
            for fault in a.faults:
                print(f"    fault: {fault}")
            if args.verbose:
                for correction in a.corrections:
                    print(f"    corrected: {correction}")
        if not actions:
            print("no original-registry files found (spec.json, calibration.json, calibrations/*.json)")
        would = "would be " if args.dry_run else ""
        print(f"{counts['write']} calibration(s) {would}filed as current, {counts['history']} {would}filed as "
              f"history, {counts['spec']} spec(s) {would}written, {counts['skip']} skipped, "
              f"{counts['error']} error(s)")
    for a in actions:
        if a.action == "error":
            print(f"{PROG}: error: {a.source}: {a.message}", file=sys.stderr)
    return EXIT_FAIL if counts["error"] else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run(main_inner, argv, PROG)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
