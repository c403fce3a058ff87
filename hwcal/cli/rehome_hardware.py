"""Move a hardware folder to the id its own files support (``cpu/amd_epyc`` -> ``cpu/amd_epyc_zen3``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hwcal.cli.common import add_json_option, add_registry_option, make_parser, print_json
from hwcal.cli.entry import EXIT_OK, Tool, say
from hwcal.interop.rehome import execute_rehome, plan_rehome
from hwcal.registry.layout import default_registry

EXAMPLES = """
  python tools/rehome_hardware.py cpu/amd_epyc --dry-run               # what the files support, what moves
  python tools/rehome_hardware.py cpu/amd_epyc --to amd_epyc_zen3      # move current + history + spec.json
  python tools/rehome_hardware.py cpu/amd_epyc --to amd_epyc_zen3 --registry /tmp/reg --json
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(
        prog, "Move a hardware folder filed under a generic model name (a VM's 'AMD EPYC') to an id with its "
              "microarchitecture, derived from the files' own metadata (recorded microarchitecture or CPUID "
              "family/model; else brand, ISA flags and the measured fp64 GEMM). Refuses, writing nothing, when "
              "the files do not support the target. Current files stay current, history stays history; each "
              "document records the move; the old folder is removed once every new file reads back.", EXAMPLES)
    parser.add_argument("source", metavar="DEVICE_TYPE/HARDWARE_ID", help="the folder to move, e.g. cpu/amd_epyc")
    parser.add_argument("--to", metavar="HARDWARE_ID", default=None,
                        help="the new id; required where the files fit several microarchitectures, and must be "
                             "one of them. Default: derived from the files")
    parser.add_argument("--dry-run", action="store_true", help="print what would move; write nothing. Default: off")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def body(args: argparse.Namespace) -> int:
    registry = args.registry if args.registry is not None else default_registry()
    plan, docs, spec = plan_rehome(registry, args.source, args.to)
    moved = [(old, new) for old, new, _ in plan.moves] if args.dry_run else execute_rehome(registry, plan, docs, spec)

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(registry))
        except ValueError:
            return str(p)

    if args.json:
        print_json({"registry": str(registry), "dry_run": args.dry_run, "from": plan.old_id, "to": plan.new_id,
                    "candidates": plan.inference.candidates, "evidence": plan.inference.evidence,
                    "chosen_by": plan.chosen_by, "moves": [{"from": rel(o), "to": rel(n)} for o, n in moved]})
        return EXIT_OK
    verb = "would move" if args.dry_run else "moved"
    say(f"{plan.device_type}/{plan.old_id} -> {plan.device_type}/{plan.new_id}"
        f"{' (dry run: nothing written)' if args.dry_run else ''}",
        *(f"  evidence: {line}" for line in plan.inference.evidence),
        f"  chosen by: {plan.chosen_by}",
        *(f"{verb} {rel(old)} -> {rel(new)}" for old, new in moved))
    return EXIT_OK


TOOL = Tool("rehome_hardware.py", build_parser, body, command="hwcal-rehome")
main = TOOL.main
