"""Command line of hwcal-site / tools/site.py: the registry as a static site (``hwcal.site.build``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hwcal.cli.common import add_registry_option, make_parser
from hwcal.cli.entry import EXIT_OK, Tool, say, tell
from hwcal.site.build import build

EXAMPLES = """
  hwcal-site --out site/                              # the checkout's registry/ into site/
  hwcal-site --registry /data/fleet --out /srv/site   # again later: only what changed is rewritten
  python -m http.server -d site/ 8000                 # or open site/index.html in a browser
"""


def _jobs(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 0 <= n <= 256:
        raise argparse.ArgumentTypeError(f"{n} is outside 0..256")
    return n


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Build the registry as a static site (no server, nothing loaded from outside it): "
                               "an index of every calibration with sorting and filters, a page per calibration "
                               "and per key with its history, a compare view. A second build rewrites only what "
                               "changed. Exit 0 built, 1 the output cannot be written, 2 bad usage.", EXAMPLES)
    add_registry_option(parser)
    parser.add_argument("--out", metavar="DIR", type=Path, required=True,
                        help="folder of the site (created; files the site did not write are left alone)")
    parser.add_argument("--figures", choices=("current", "all", "none"), default="current",
                        help="which calibrations get matplotlib pictures (kept by content hash between builds, so "
                             "a superseded calibration keeps those drawn while it was current). Default: current")
    parser.add_argument("--jobs", metavar="N", type=_jobs, default=0,
                        help="processes drawing pictures; 0 = one per CPU. Default: 0")
    return parser


def body(args: argparse.Namespace) -> int:
    report = build(args.registry, args.out, figures=args.figures, jobs=args.jobs)
    say(f"{args.prog}: {report.calibrations} calibrations -> {args.out}: {len(report.written)} file(s) written, "
        f"{report.kept} unchanged, {len(report.removed)} removed, {report.pages_drawn} calibration page(s) and "
        f"{report.figures_drawn} picture(s) drawn in {report.seconds:.1f} s")
    if report.skipped:
        tell(*(f"warning: skipped {path}: {reason}" for path, reason in report.skipped),
             f"{args.prog}: {len(report.skipped)} file(s) left out: see {args.out / 'unreadable.html'}")
    return EXIT_OK


TOOL = Tool("site.py", build_parser, body, command="hwcal-site")
main = TOOL.main
