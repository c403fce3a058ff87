"""Turn fleet/fleet.toml into the calibrate workflow's matrix: one entry per runner with cells.

Runs on a bare hosted runner before anything is installed, so it needs the standard library and
the checkout only. Exit 0 and the matrix JSON on stdout; 1 when the fleet file or a filter is
wrong (one line saying which); 2 for bad usage.

    python fleet/matrix.py                                   # everything, as the schedule runs it
    python fleet/matrix.py --runners orin-nano-01 --power-modes 7W,MAXN_SUPER --frameworks pytorch
    python fleet/matrix.py --github-output "$GITHUB_OUTPUT" --summary "$GITHUB_STEP_SUMMARY"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hwcal.cli.entry import EXIT_OK, Tool
from hwcal.cli.fleet import DEFAULT_FLEET, load_fleet


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Emit the GitHub Actions matrix of the calibration "
                                     "fleet: one entry per runner, filtered by runner, power mode and framework.")
    parser.add_argument("--fleet", metavar="PATH", type=Path, default=DEFAULT_FLEET,
                        help=f"fleet file. Default: {DEFAULT_FLEET}")
    parser.add_argument("--runners", metavar="NAMES", default="all",
                        help="comma-separated runner names, or 'all'. Default: all")
    parser.add_argument("--power-modes", metavar="MODES", default="all",
                        help="comma-separated power modes (MAXN_SUPER and maxnsuper are one), or 'all'. Default: all")
    parser.add_argument("--frameworks", metavar="NAMES", default="all",
                        help="comma-separated frameworks (numpy, pytorch), or 'all'. Default: all")
    parser.add_argument("--github-output", metavar="FILE", type=Path, default=None,
                        help="append matrix=..., fail_below=... and cells=N for a step's outputs. Default: off")
    parser.add_argument("--summary", metavar="FILE", type=Path, default=None,
                        help="append a Markdown table of the planned calibrations. Default: off")
    return parser


def body(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    cells = fleet.select(args.runners, args.power_modes, args.frameworks)
    matrix = fleet.matrix(cells)
    text = json.dumps(matrix, separators=(",", ":"))
    print(json.dumps(matrix, indent=2))
    if args.github_output:
        with open(args.github_output, "a", encoding="utf-8") as fh:
            fh.write(f"matrix={text}\nfail_below={fleet.fail_below:g}\ncells={len(cells)}\n")
    if args.summary:
        rows = ["| runner | power mode | framework | device | labels |", "|---|---|---|---|---|"]
        rows += [f"| {c.runner.name} | {c.power_mode} | {c.framework} | {c.runner.device_for(c.framework)} | "
                 f"{', '.join(c.runner.labels)} |" for c in cells]
        with open(args.summary, "a", encoding="utf-8") as fh:
            fh.write(f"### Planned calibrations ({len(cells)})\n\n" + "\n".join(rows) + "\n\n")
    return EXIT_OK


TOOL = Tool("matrix.py", build_parser, body)
main = TOOL.main

