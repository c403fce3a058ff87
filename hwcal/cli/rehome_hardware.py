"""Move a hardware folder to the id its own files support (``cpu/amd_epyc`` -> ``cpu/amd_epyc_zen3``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwcal.cli.common import EXIT_OK, add_json_option, add_registry_option, make_parser, print_json, run
from hwcal.interop.rehome import execute_rehome, plan_rehome
from hwcal.registry.layout import default_registry

PROG = "rehome_hardware.py"
EXAMPLES = """
  python tools/rehome_hardware.py cpu/amd_epyc --dry-run               # what the files support, what moves
  python tools/rehome_hardware.py cpu/amd_epyc --to amd_epyc_zen3      # move current + history + spec.json
  python tools/rehome_hardware.py cpu/amd_epyc --to amd_epyc_zen3 --registry /tmp/reg --json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        PROG, "Move a hardware folder filed under a generic model name (a VM's 'AMD EPYC') to an id with its "
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


def main_inner(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
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
    print(f"{plan.device_type}/{plan.old_id} -> {plan.device_type}/{plan.new_id}"
          f"{' (dry run: nothing written)' if args.dry_run else ''}")
    for line in plan.inference.evidence:
        print(f"  evidence: {line}")
    print(f"  chosen by: {plan.chosen_by}")
    for old, new in moved:
        print(f"{verb} {rel(old)} -> {rel(new)}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run(main_inner, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
