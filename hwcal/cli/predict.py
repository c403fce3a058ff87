"""hwcal-predict: how long an operation, or a model's list of operations, takes on a calibrated device.

    hwcal-predict h100 --power-mode 700W gemm bf16 4096x4096x4096
    hwcal-predict amd_epyc dot fp32 1048576 --json
    hwcal-predict h100 --ops docs/transformer_layer.yaml
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwcal.cli.common import (
    add_json_option,
    add_registry_option,
    fmt_num,
    make_parser,
    open_registry,
    print_json,
    table,
)
from hwcal.cli.entry import EXIT_OK, Tool, UsageError, printable, say
from hwcal.cli.ops import MAX_DIM, MAX_OPS, OpSpec, read_ops
from hwcal.errors import HwcalError
from hwcal.model.predict import MODES, OPERATIONS, Prediction, Predictor, predictor_of_document
from hwcal.registry.api import Registry
from hwcal.registry.reader import read_calibration

EXAMPLES = """
  hwcal-predict h100 --power-mode 700W gemm bf16 4096x4096x4096
  hwcal-predict h100 gemm fp16 b32x2048x2048x128          # batch 32 of 2048x2048x128
  hwcal-predict amd_epyc --framework numpy gemv fp64 4096x4096
  hwcal-predict amd_epyc triad fp64 16777216 --json
  hwcal-predict h100 --ops docs/transformer_layer.yaml    # a model's layers: table and total
  hwcal-predict path/to/calibration.json gemm fp32 1024   # a file instead of a registry entry
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Predict the time, throughput and efficiency of an operation (gemm, dot, axpy, scal, "
                               "gemv, copy, scale, add, triad) from a calibration, and say on what basis "
                               "(measured, interpolated, roofline, extrapolated).", EXAMPLES)
    parser.add_argument("hardware", metavar="HARDWARE",
                        help="hardware id, a unique prefix or substring of one (or of its model), "
                             "or a calibration file")
    parser.add_argument("operation", metavar="OPERATION", nargs="?", choices=OPERATIONS,
                        help=f"one of {', '.join(OPERATIONS)}; leave out with --ops")
    parser.add_argument("precision", metavar="PRECISION", nargs="?",
                        help="fp64, fp32, tf32, fp16, bf16, fp8, int8, ...")
    parser.add_argument("shape", metavar="SHAPE", nargs="?", type=parse_shape,
                        help="gemm: MxNxK, bBxMxNxK or N (square); gemv: MxN; the others: N elements")
    parser.add_argument("--ops", metavar="FILE", type=Path,
                        help="a JSON or YAML list of operations ({op, precision, m, n, k, batch, count, name}; "
                             f"at most {MAX_OPS:,}, no YAML aliases); prints one row each and the total. "
                             "Default: none")
    parser.add_argument("--mode", metavar="{back_to_back,isolated}", choices=MODES, default="back_to_back",
                        help="back_to_back: calls issued one after another, how a model's layers run; isolated: each "
                             "call synchronised (a latency). Default: back_to_back")
    add_selection_options(parser)
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--power-mode", metavar="MODE", help="the calibration's power mode. Default: any")
    parser.add_argument("-f", "--framework", metavar="{numpy,pytorch}",
                        help="the calibration's framework. Default: any")
    parser.add_argument("--freq-mhz", metavar="MHZ", type=int, help="the calibration's key frequency. Default: any")


def parse_shape(text: str) -> dict[str, int]:
    """``4096x4096x4096`` -> m, n, k; ``b32x128x128x64`` -> batch, m, n, k; ``4096x1024`` -> m, n; ``N`` -> n."""
    parts = text.strip().lower().split("x")
    batch = None
    if parts and parts[0].startswith("b"):
        batch, parts = parts[0][1:], parts[1:]
    try:
        values = [int(p) for p in parts]
        batch_value = int(batch) if batch is not None else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shape {text!r}: give MxNxK, bBxMxNxK, MxN or N (positive integers)") from None
    if not 1 <= len(values) <= 3 or (batch_value is not None and len(values) != 3):
        raise argparse.ArgumentTypeError(f"shape {text!r}: give MxNxK, bBxMxNxK, MxN or N")
    if any(not 0 < v <= MAX_DIM for v in values) or (batch_value is not None and not 0 < batch_value <= MAX_DIM):
        raise argparse.ArgumentTypeError(f"shape {text!r}: every dimension must be a whole number from 1 to 2^40")
    dims = dict(zip(("m", "n", "k")[:len(values)] if len(values) > 1 else ("n",), values, strict=True))
    if batch_value is not None:
        dims["batch"] = batch_value
    return dims


def resolve_hardware(reg: Registry, wanted: str) -> str:
    """An exact id; else the one id starting with, or else containing, ``wanted`` (id or model)."""
    ids = reg.hardware_ids()
    if wanted in ids:
        return wanted
    needle = wanted.casefold()
    for found in ([i for i in ids if i.casefold().startswith(needle)],
                  [i for i in ids if needle in i.casefold()],
                  sorted({h.hardware_id for h in reg.search(wanted)})):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise HwcalError(f"{wanted!r} matches several hardware ids: {', '.join(found)}; give one of them")
    known = ", ".join(ids) if ids else "none (the registry is empty)"
    raise HwcalError(f"no hardware matches {wanted!r} in registry {reg.root}; known: {known}")


def selection_filter(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in (("power_mode", args.power_mode), ("framework", args.framework),
                              ("freq_mhz", args.freq_mhz)) if v is not None}


def load_predictor(args: argparse.Namespace, selector: str) -> tuple[Predictor, str]:
    """(Predictor, where it came from) for a hardware selector or a calibration file."""
    path = Path(selector)
    if selector.endswith(".json") or "/" in selector or path.is_file():  # no hardware id has a '/'
        if not path.exists() and not path.is_symlink():
            raise HwcalError(f"{selector}: no such calibration file")
        entry = read_calibration(path)  # a FIFO, a device, a folder: refused by the checked reader
        return predictor_of_document(entry.doc, _entry_name(entry)), str(path)
    reg = open_registry(args.registry)
    hardware_id = resolve_hardware(reg, selector)
    profile = reg.get(hardware_id, calibration_filter=selection_filter(args))
    return predictor_of_document(profile.calibration, _entry_name(profile)), str(profile.path)


def _entry_name(entry: Any) -> str:
    key = entry.key
    return f"{key.hardware_id} ({key.power_mode}, {key.freq_mhz} MHz, {key.framework})"


def fmt_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds:.4g} s"  # pragma: no cover


def fmt_joules(joules: float | None) -> str:
    """``1.23 mJ``; '-' where the calibration measured no energy."""
    if joules is None:
        return "-"
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9)):
        if abs(joules) >= scale or unit == "nJ":
            return f"{joules / scale:.4g} {unit}"
    return f"{joules:.4g} J"  # pragma: no cover


def shape_text(dims: dict[str, int]) -> str:
    if "k" in dims:
        mnk = f"{dims['m']}x{dims['n']}x{dims['k']}"
        return f"b{dims['batch']}x{mnk}" if dims.get("batch", 1) > 1 else mnk
    return f"{dims['m']}x{dims['n']}" if "m" in dims else str(dims["n"])


def _points_text(pred: Prediction) -> str:
    return "; ".join(f"{shape_text(dict(p.dims))} {fmt_seconds(p.seconds)}" for p in pred.points)


def single_lines(pred: Prediction, source: str, name: str) -> list[str]:
    lines = [f"{name}: {source}",
             f"{pred.operation} {pred.precision} {shape_text(pred.dims)}",
             f"  time        {fmt_seconds(pred.seconds)}",
             f"  throughput  {fmt_num(pred.gflops)} GFLOPS, {fmt_num(pred.gbps)} GB/s",
             f"  efficiency  {pred.efficiency:.1%} of {pred.efficiency_reference}" if pred.efficiency is not None
             else "  efficiency  -",
             f"  basis       {pred.basis} ({pred.family}: {_points_text(pred)})",
             f"  energy      {fmt_joules(pred.energy_j)} ({pred.energy_basis})"]
    lines += [f"  note        {n}" for n in pred.notes]
    lines += [f"  warning     {w}" for w in pred.warnings]  # outside what was measured: said, never silent
    return lines


@dataclass(frozen=True)
class OpRow:
    """One operation of an --ops file, predicted: ``total_s`` is ``count`` calls."""

    spec: OpSpec
    prediction: Prediction

    @property
    def total_s(self) -> float:
        return self.prediction.seconds * self.spec.count

    @property
    def total_j(self) -> float | None:
        joules = self.prediction.energy_j
        return joules * self.spec.count if joules is not None else None

    def summary(self) -> dict[str, Any]:
        return {"name": self.spec.label, "count": self.spec.count, "total_s": self.total_s, "total_j": self.total_j,
                **self.prediction.summary()}


def total_joules(rows: list[OpRow]) -> float | None:
    """Energy of the whole list; None when any operation's energy is unknown (a partial sum would mislead)."""
    joules = [r.total_j for r in rows]
    return None if not joules or any(j is None for j in joules) else sum(j for j in joules if j is not None)


def predict_ops(predictor: Predictor, ops: list[OpSpec], where: str = "", mode: str = "back_to_back") -> list[OpRow]:
    rows = []
    for i, op in enumerate(ops):
        try:
            pred = predictor.predict(op.operation, op.precision, mode, **op.dims)
        except HwcalError as exc:
            raise HwcalError(f"{where}operation {i + 1} ({op.label}): {exc}") from None
        rows.append(OpRow(op, pred))
    return rows


def ops_lines(rows: list[OpRow], source: str, name: str) -> list[str]:
    total = sum(r.total_s for r in rows)
    header = ("name", "op", "prec", "shape", "count", "per call", "total", "share", "GFLOPS", "GB/s", "eff", "energy",
              "basis")
    body = [header]
    for r in rows:
        p = r.prediction
        share = f"{r.total_s / total:.1%}" if total > 0 else "-"
        body.append((printable(r.spec.label, 40), p.operation, p.precision, shape_text(p.dims), str(r.spec.count),
                     fmt_seconds(p.seconds), fmt_seconds(r.total_s), share, fmt_num(p.gflops), fmt_num(p.gbps),
                     f"{p.efficiency:.0%}" if p.efficiency is not None else "-", fmt_joules(r.total_j),
                     f"{p.basis} ({p.family})"))
    outside = sum(1 for r in rows if r.prediction.warnings)
    return [f"{name}: {source}", *table(body, right=(4, 5, 6, 7, 8, 9, 10, 11)),
            f"total: {fmt_seconds(total)}, {fmt_joules(total_joules(rows))}",
            *([f"{outside} operation(s) lie outside what was measured (basis extrapolated; --json gives the warnings)"]
              if outside else [])]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def body(args: argparse.Namespace) -> int:
    if args.ops is None and (args.operation is None or args.precision is None or args.shape is None):
        raise UsageError("give OPERATION PRECISION SHAPE, or --ops FILE")
    if args.ops is not None and args.operation is not None:
        raise UsageError("give OPERATION PRECISION SHAPE or --ops FILE, not both")
    ops = read_ops(args.ops) if args.ops is not None else None
    predictor, source = load_predictor(args, args.hardware)
    if ops is None:
        pred = predictor.predict(args.operation, args.precision, args.mode, **args.shape)
        if args.json:
            print_json(_json_safe({"calibration": source, "name": predictor.name, **pred.summary()}))
        else:
            say(*single_lines(pred, source, predictor.name))
        return EXIT_OK
    rows = predict_ops(predictor, ops, f"{args.ops}: ", args.mode)
    if args.json:
        print_json(_json_safe({"calibration": source, "name": predictor.name,
                               "total_s": sum(r.total_s for r in rows), "total_j": total_joules(rows),
                               "operations": [r.summary() for r in rows]}))
    else:
        say(*ops_lines(rows, source, predictor.name))
    return EXIT_OK


TOOL = Tool("predict.py", build_parser, body, command="hwcal-predict", intermixed=True)
main = TOOL.main
