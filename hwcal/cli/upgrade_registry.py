"""Upgrade every calibration of a registry to the current format, in place, originals kept in history."""

from __future__ import annotations

import argparse
from collections import Counter

from hwcal.cli.common import add_json_option, add_registry_option, make_parser, print_json
from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, Tool, say
from hwcal.interop.upgrade import upgrade_registry
from hwcal.registry.layout import default_registry

EXAMPLES = """
  python tools/upgrade_registry.py --dry-run          # what would be upgraded, nothing written
  python tools/upgrade_registry.py --registry registry
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Rewrite every format-1 calibration (current and history) as format 2, keeping the "
                               "original bytes as calibrations/history/<name>.<stamp>.format1.json. Safe to "
                               "interrupt and to run again. Exit 0 when every file is current, 1 when one could "
                               "not be upgraded, 2 for bad usage.", EXAMPLES)
    parser.add_argument("--dry-run", action="store_true", help="say what would change, write nothing. Default: off")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def body(args: argparse.Namespace) -> int:
    registry = args.registry or default_registry()
    steps = upgrade_registry(registry, dry_run=args.dry_run)
    if args.json:
        print_json({"registry": str(registry), "dry_run": args.dry_run, "steps": [s.as_dict() for s in steps]})
    else:
        for s in steps:
            if s.action != "current":
                kept = f"  (original kept as {s.kept})" if s.kept else ""
                say(f"{s.action:>9}  {s.path}  {s.message}{kept}")
        counts = Counter(s.action for s in steps)
        say(("dry run, nothing written: " if args.dry_run else "") + f"{registry}: {counts['upgraded']} upgraded, "
            f"{counts['current']} already current, {counts['error']} failed")
    return EXIT_FAIL if any(s.action == "error" for s in steps) else EXIT_OK


TOOL = Tool("upgrade_registry.py", build_parser, body, command="hwcal-upgrade")
main = TOOL.main
