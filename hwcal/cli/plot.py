"""hwcal-plot / tools/plot_calibration.py: one calibration's pictures (``hwcal.report.figures``).

Exit 0 written, 1 a bad file or matplotlib missing, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hwcal.cli.entry import EXIT_OK, Tool, UsageError, say
from hwcal.errors import HwcalError
from hwcal.report.figures import render

EXAMPLES = """
examples:
  python tools/plot_calibration.py registry/cpu/amd_epyc/calibrations/default_2445MHz_numpy.json
  python tools/plot_calibration.py CAL.json --out plots/ --formats png
"""


def load_calibration(path: Path) -> dict[str, Any]:
    """A calibration file the user named: unreadable or invalid fails loudly, every error listed."""
    from hwcal.document.format2 import update_to_2
    from hwcal.document.schema import schema_errors
    from hwcal.registry.reader import read_json

    doc = read_json(path)
    errors = schema_errors(doc, "calibration")
    if errors:
        raise HwcalError(f"{path}: not a valid calibration:\n" + "\n".join(f"{path}: {e}" for e in errors))
    return update_to_2(doc)  # readers see format 2; a format-1 file is upgraded in memory


def _dpi(value: str) -> int:
    try:
        dpi = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 10 <= dpi <= 1200:  # a picture's size grows with dpi squared: bound what a typo allocates
        raise argparse.ArgumentTypeError(f"{dpi} is outside 10..1200")
    return dpi


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Draw one calibration: GEMM throughput against size, STREAM bandwidth against working set "
                    "with the caches marked, and the roofline from the measured ceilings.")
    parser.add_argument("calibration", type=Path, metavar="CALIBRATION.json", help="calibration file to draw")
    parser.add_argument("--out", type=Path, default=Path("plots"), metavar="DIR",
                        help="folder for the pictures (created). Default: plots")
    parser.add_argument("--formats", default="png,svg", metavar="FMT,FMT",
                        help="picture formats, any matplotlib writes. Default: png,svg")
    parser.add_argument("--dpi", type=_dpi, default=150, metavar="N", help="PNG resolution, 10..1200. Default: 150")
    return parser


def body(args: argparse.Namespace) -> int:
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    if not formats or any(not f.isalnum() for f in formats):
        raise UsageError(f"--formats {args.formats!r}: give picture formats such as png,svg")
    doc = load_calibration(args.calibration)
    try:
        written = render(doc, args.out, args.calibration.stem, formats, args.dpi)
    except ValueError as exc:  # matplotlib: a format it does not write
        raise HwcalError(f"cannot draw {args.calibration}: {exc}") from None
    say(*map(str, written))
    return EXIT_OK


TOOL = Tool("plot_calibration.py", build_parser, body, command="hwcal-plot")
main = TOOL.main
