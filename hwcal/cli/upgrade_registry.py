"""Upgrade every calibration of a registry to the current format, in place, originals kept in history; with
``--compress-history``, pack the superseded calibrations (``hwcal.registry.compress``)."""

from __future__ import annotations

import argparse
from collections import Counter

from hwcal.cli.common import add_json_option, add_registry_option, make_parser, print_json
from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, Tool, say
from hwcal.interop.upgrade import upgrade_registry
from hwcal.registry.compress import Compression, compress_history
from hwcal.registry.layout import default_registry

EXAMPLES = """
  python tools/upgrade_registry.py --dry-run          # what would be upgraded, nothing written
  python tools/upgrade_registry.py --registry registry
  python tools/upgrade_registry.py --compress-history # and pack superseded calibrations (history/*.json.gz)
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Rewrite every format-1 calibration (current and history) as format 2, keeping the "
                               "original bytes as calibrations/history/<name>.<stamp>.format1.json. Safe to "
                               "interrupt and to run again. Exit 0 when every file is current, 1 when one could "
                               "not be upgraded, 2 for bad usage.", EXAMPLES)
    parser.add_argument("--dry-run", action="store_true", help="say what would change, write nothing. Default: off")
    parser.add_argument("--compress-history", action="store_true",
                        help="then gzip every readable history calibration (history/<name>.json -> .json.gz, "
                             "about 11x smaller; every hwcal reader takes both). Default: off")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def body(args: argparse.Namespace) -> int:
    registry = args.registry or default_registry()
    steps = upgrade_registry(registry, dry_run=args.dry_run)
    packed = compress_history(registry, dry_run=args.dry_run) if args.compress_history else []
    if args.json:
        print_json({"registry": str(registry), "dry_run": args.dry_run, "steps": [s.as_dict() for s in steps],
                    "compressed": [c.as_dict() for c in packed]})
    else:
        for s in steps:
            if s.action != "current":
                kept = f"  (original kept as {s.kept})" if s.kept else ""
                say(f"{s.action:>9}  {s.path}  {s.message}{kept}")
        counts = Counter(s.action for s in steps)
        say(("dry run, nothing written: " if args.dry_run else "") + f"{registry}: {counts['upgraded']} upgraded, "
            f"{counts['current']} already current, {counts['error']} failed")
        if args.compress_history:
            _say_compressed(packed, args.dry_run)
    failed = any(s.action == "error" for s in steps) or any(c.action == "error" for c in packed)
    return EXIT_FAIL if failed else EXIT_OK


def _say_compressed(packed: list[Compression], dry_run: bool) -> None:
    for c in packed:
        if c.action in ("left", "error"):
            say(f"{c.action:>9}  {c.path}  {c.message}")
    done = [c for c in packed if c.action in ("compressed", "would compress")]
    before, after = sum(c.before for c in done), sum(c.after for c in done)
    say(f"history: {len(done)} file(s) {'would be ' if dry_run else ''}compressed, {before / 2**20:,.1f} MiB -> "
        f"{after / 2**20:,.1f} MiB; {sum(c.action == 'left' for c in packed)} left as they are, "
        f"{sum(c.action == 'error' for c in packed)} failed")


TOOL = Tool("upgrade_registry.py", build_parser, body, command="hwcal-upgrade")
main = TOOL.main
