"""hwcal-validate-predictions: leave-one-out check of hwcal-predict on calibrations, or (``--model``) the
whole-layer check: a model's operations predicted and run here for real, end to end.

Each measured point (square GEMM, GEMM shape, BLAS call, STREAM array size) is predicted from all the
other points of its calibration; the table gives per operation the median and p90 relative error, over
every point and over the interior ones (a left-out end of a curve is an extrapolation).

    hwcal-validate-predictions h100 amd_epyc --framework numpy
    hwcal-validate-predictions tests/data/predict/*.json --json
    hwcal-validate-predictions intel --framework numpy --model docs/models/llama-3.2-1b-t128.yaml
"""

from __future__ import annotations

import argparse
from typing import Any

from hwcal.cli import whole_layer
from hwcal.cli.common import add_json_option, add_registry_option, make_parser, print_json, table
from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, Tool, UsageError, say
from hwcal.cli.predict import _json_safe, add_selection_options, load_predictor
from hwcal.model.loo import leave_one_out, report

TARGET_MEDIAN = 0.10
TARGET_P90 = 0.25
EXAMPLES = """
  hwcal-validate-predictions h100 amd_epyc --framework numpy
  hwcal-validate-predictions registry/gpu/h100_sxm5/calibrations/700W_1980MHz_pytorch.json --detail
  hwcal-validate-predictions h100 --check        # exit 1 when an operation misses the targets
  hwcal-validate-predictions intel --framework numpy --model docs/models/llama-3.2-1b-t128.yaml
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Leave-one-out validation of the predictions: every measured point predicted from the "
                               "others of its calibration; median and p90 relative error per operation.", EXAMPLES)
    parser.add_argument("selectors", metavar="HARDWARE_OR_FILE", nargs="+",
                        help="hardware ids (or unique prefixes/substrings) or calibration files")
    parser.add_argument("--detail", action="store_true", help="also print every point's prediction. Default: off")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when an operation's median is over {TARGET_MEDIAN * 100:.0f}%% or its p90 over "
                             f"{TARGET_P90 * 100:.0f}%%. Default: off (report only)")
    add_selection_options(parser)
    whole_layer.add_options(parser)
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _lines(name: str, source: str, rep: dict[str, dict[str, Any]], trials: list[Any], detail: bool) -> list[str]:
    rows = [("operation", "points", "median", "p90", "max", "interior", "int. median", "int. p90", "worst point")]
    for op, r in rep.items():
        rows.append((op, str(r["points"]), _pct(r["median"]), _pct(r["p90"]), _pct(r["max"]), str(r["interior_points"]),
                     _pct(r["interior_median"]), _pct(r["interior_p90"]), r["worst"]))
    lines = [f"{name}: {source}", *table(rows, right=(1, 2, 3, 4, 5, 6, 7), indent="  ")]
    if detail:
        body = [("operation", "precision", "shape", "measured s", "predicted s", "error", "basis")]
        for t in trials:
            body.append((t.operation, t.point.precision, t.point.label, f"{t.point.seconds:.4g}",
                         f"{t.predicted_s:.4g}", f"{(t.predicted_s - t.point.seconds) / t.point.seconds:+.1%}",
                         t.basis + ("" if t.interior else " (end)")))
        lines += ["", *table(body, right=(3, 4, 5), indent="  ")]
    return lines


def _models(args: argparse.Namespace) -> int:
    """--model: the whole-layer check of one calibration's device, run here."""
    if len(args.selectors) != 1:
        raise UsageError(f"--model checks one calibration (the device this runs on); got {len(args.selectors)}")
    predictor, source = load_predictor(args, args.selectors[0])
    results = whole_layer.validate_models(predictor, args)
    if args.json:
        print_json(_json_safe({"name": predictor.name, "calibration": source, "models": results}))
    else:
        say(*whole_layer.lines(results, predictor.name, source))
    return EXIT_FAIL if args.check and whole_layer.missed(results) else EXIT_OK


def body(args: argparse.Namespace) -> int:
    if args.model:
        return _models(args)
    results = []
    missed = False
    for selector in args.selectors:
        predictor, source = load_predictor(args, selector)
        trials = leave_one_out(predictor.inputs)
        rep = report(trials)
        missed |= any(r["median"] > TARGET_MEDIAN or r["p90"] > TARGET_P90 for r in rep.values())
        results.append((predictor.name, source, rep, trials))
    if args.json:
        print_json(_json_safe([{"name": n, "calibration": s, "operations": rep,
                                **({"points": [t.summary() for t in trials]} if args.detail else {})}
                               for n, s, rep, trials in results]))
    else:
        out: list[str] = []
        for name, source, rep, trials in results:
            out += [*([""] if out else []), *_lines(name, source, rep, trials, args.detail)]
        out.append(f"targets: median <= {TARGET_MEDIAN:.0%}, p90 <= {TARGET_P90:.0%} per operation"
                   + ("; some operations miss them" if missed else "; all met"))
        say(*out)
    return EXIT_FAIL if args.check and missed else EXIT_OK


TOOL = Tool("validate_predictions.py", build_parser, body, command="hwcal-validate-predictions", intermixed=True)
main = TOOL.main
