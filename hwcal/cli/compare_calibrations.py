"""Compare two calibrations: per-precision peak, bandwidth and efficiency, the ratio B/A, and whether
the noise the files themselves report (coefficients of variation) can explain the difference.

A difference is called real when |ln(B/A)| exceeds ``k * sqrt(se_A^2 + se_B^2)`` (k = --noise-sigmas,
at least 1 %), where se = cv / sqrt(rounds) is the relative standard error of the round time of the
GEMM result the peak came from (the cv and rounds the files carry). Drift between sessions (thermal,
clocks) is not in the files; the 1 % floor and k = 3 leave room for it. ``--fail-below R`` makes it a
CI gate: exit 1 when a precision (or the bandwidth) is below R times A and noise cannot explain it,
or when A measured a precision that B reports unsupported (one B did not run is listed, not failed).
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict
from pathlib import Path

from hwcal.cli.common import (
    add_json_option,
    add_registry_option,
    fmt_num,
    make_parser,
    open_registry,
    print_json,
    table,
    warn_skipped,
)
from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Tool, printable, quote, say
from hwcal.errors import HwcalError
from hwcal.registry.api import Registry
from hwcal.registry.errata import entry_errata
from hwcal.registry.filters import normalise_filter
from hwcal.registry.reader import CalibrationEntry
from hwcal.report.compare import NOISE_FLOOR, Row, compare
from hwcal.report.energy import energy_lines, energy_rows

EXAMPLES = """
  python tools/compare_calibrations.py jetson_orin_nano_gpu:7W:pytorch jetson_orin_nano_gpu:MAXN:pytorch
  python tools/compare_calibrations.py amd_epyc:default:numpy@previous amd_epyc:default:numpy   # last two
  python tools/compare_calibrations.py baseline.json registry/cpu/amd_epyc/calibrations/default_2445MHz_numpy.json \\
      --fail-below 0.95                                     # CI gate: exit 1 listing each regression
  selectors: HARDWARE_ID:POWER_MODE:FRAMEWORK[:FREQ_MHZ][@N]; @0 (default) is the newest, @1 or @previous the
  one before it (superseded calibrations in calibrations/history/ count); empty fields match anything.
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Compare calibration B against calibration A: per-precision peak GFLOPS, bandwidth, "
                               "efficiency, the ratio B/A, and whether noise explains the difference. Exit 0, "
                               "or 1 when --fail-below finds a regression; 2 when A or B cannot be read.", EXAMPLES)
    parser.add_argument("a", metavar="A", help="baseline: a calibration file or a selector (see below)")
    parser.add_argument("b", metavar="B", help="the calibration compared against A: a file or a selector")
    parser.add_argument("--fail-below", metavar="RATIO", type=_ratio, default=None,
                        help="exit 1 listing each precision whose B/A is below RATIO beyond noise (e.g. 0.95). "
                             "Default: off")
    parser.add_argument("--noise-sigmas", metavar="K", type=_ratio, default=3.0,
                        help="how many combined standard deviations a real difference must exceed. Default: 3")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def _ratio(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{value!r} must be a number > 0")
    return v


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long to be a path: a selector, or nothing
        return False


def resolve(reg: Registry, text: str) -> CalibrationEntry:
    """A path (anything naming an existing file or ending in .json) or a registry selector."""
    path = Path(text)
    if text.endswith(".json") or _exists(path) or "/" in text or "\\" in text:
        return reg.read(path)
    m = re.fullmatch(r"(?P<sel>[^@]+)(?:@(?P<which>\w+))?", text)
    if not m:
        raise HwcalError(f"{quote(text)} is neither a file nor a selector HARDWARE_ID:POWER_MODE:FRAMEWORK[:FREQ][@N]")
    fields = m["sel"].split(":")
    if len(fields) > 4 or not fields[0]:
        raise HwcalError(f"selector {quote(text)} is not HARDWARE_ID:POWER_MODE:FRAMEWORK[:FREQ_MHZ][@N]")
    names = ("power_mode", "framework", "freq_mhz")
    flt = normalise_filter({k: v for k, v in zip(names, fields[1:], strict=False) if v})
    which = (m["which"] or "0").lower()
    index = 1 if which in ("prev", "previous") else 0 if which in ("latest", "newest") else \
        int(which) if which.isascii() and which.isdigit() and len(which) <= 9 else None  # not '²', not 10**5000
    if index is None:
        raise HwcalError(f"{quote(text)}: @{printable(m['which'], 20)} is not @N, @previous or @latest")
    entries = reg.history(fields[0], flt)
    if not entries:
        available = ", ".join(e.path.name for e in reg.list_calibrations(fields[0])) or "none"
        raise HwcalError(f"no calibration of {quote(fields[0])} matches {flt.describe()}; available: {available}")
    keys = {e.key for e in entries}
    if len(keys) > 1:
        raise HwcalError(f"selector {quote(text)} matches {len(keys)} keys ("
                         + ", ".join(sorted(k.filename for k in keys)) + "); give power mode, framework and MHz")
    if index >= len(entries):
        raise HwcalError(f"{quote(text)}: only {len(entries)} calibration(s) of {entries[0].key.filename} exist "
                         f"(@0 .. @{len(entries) - 1})")
    return entries[index]


def _describe(label: str, e: CalibrationEntry) -> str:
    extra = ", superseded" if e.superseded else ""
    extra += ", imported" if e.imported else ""
    return (f"{label}: {e.key.hardware_id} {e.power_mode_name} {e.key.freq_mhz} MHz {e.key.framework}, "
            f"{e.calibration_date:%Y-%m-%d %H:%M} UTC{extra}  ({e.path})")


def body(args: argparse.Namespace) -> int:
    reg = open_registry(args.registry)
    ea, eb = resolve(reg, args.a), resolve(reg, args.b)
    rows = compare(ea.doc, eb.doc, args.noise_sigmas, args.fail_below)
    regressions = [r for r in rows if r.regression]
    if args.json:
        print_json({"a": ea.summary(), "b": eb.summary(), "noise_sigmas": args.noise_sigmas,
                    "fail_below": args.fail_below, "rows": [asdict(r) for r in rows],
                    "energy": [asdict(r) for r in energy_rows(ea.doc, eb.doc)],
                    "regressions": [r.metric for r in regressions]})
    else:
        say(*_report(reg, ea, eb, rows, args.noise_sigmas, args.fail_below))
    warn_skipped(reg.skipped)
    return EXIT_FAIL if regressions else EXIT_OK


def _report(reg: Registry, ea: CalibrationEntry, eb: CalibrationEntry, rows: list[Row], noise_sigmas: float,
            fail_below: float | None) -> list[str]:
    lines = [_describe("A", ea), _describe("B", eb)]
    lines += [f"warning: {label}: {erratum}" for label, e in (("A", ea), ("B", eb))
              for erratum in entry_errata(reg.root, e)]
    if ea.path.resolve() == eb.path.resolve():
        lines.append("note: A and B are the same file")
    cells = [("metric", "unit", "A", "B", "B/A", "eff A", "eff B", "noise ±", "verdict")]
    for r in rows:
        flag = " <- regression" if r.regression else ""
        cells.append((r.metric, r.unit, fmt_num(r.a), fmt_num(r.b),
                      f"{r.ratio:.3f}" if r.ratio is not None else "-",
                      f"{r.efficiency_a:.2f}" if r.efficiency_a is not None else "-",
                      f"{r.efficiency_b:.2f}" if r.efficiency_b is not None else "-",
                      f"{r.noise:.1%}" if r.noise is not None else "?", r.verdict + flag))
    lines += ["", *table(cells, right=(2, 3, 4, 5, 6, 7)), "",
              f"noise: {noise_sigmas:g} combined standard errors (cv / sqrt(rounds) from each file), at "
              f"least {NOISE_FLOOR:.0%}; '?' where a file carries no cv"]
    energy = energy_lines(ea.doc, eb.doc)
    lines += ["", *energy] if energy else []
    if fail_below is None:
        return lines
    regressions = [r for r in rows if r.regression]
    if not regressions:
        return [*lines, "", f"no regression below {fail_below:g}x of A"]
    lines += ["", f"{len(regressions)} regression(s) below {fail_below:g}x of A:"]
    for r in regressions:
        what = (f"{r.ratio:.3f}x ({fmt_num(r.a)} -> {fmt_num(r.b)} {r.unit})" if r.ratio is not None
                else f"measured in A ({fmt_num(r.a)} {r.unit}), {r.verdict}")
        lines.append(f"  {r.metric}: {what}")
    return lines


# An input A or B that cannot be read is exit 2 (the CI gate's "no" is 1).
TOOL = Tool("compare_calibrations.py", build_parser, body, command="hwcal-compare", error_code=EXIT_USAGE)
main = TOOL.main
