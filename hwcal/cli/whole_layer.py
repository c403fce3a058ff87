"""``hwcal-validate-predictions --model FILE``: whole-layer truth. A model's list of operations is predicted
(the sum of the per-operation predictions) and run for real on this machine with the calibration's framework
and device, end to end; the two totals are compared (goal: within ``TARGET_LAYER``), and each operation's
prediction beside its time alone.

A list holding an operation the calibration cannot predict, or one its framework cannot run (a convolution on
numpy), is not run: it is reported as skipped with the reason. The run happens here: it is the truth of
the calibrated device only when this machine is that device (say so when it is shared with other work).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hwcal.backends import make_backend
from hwcal.cli.entry import UsageError
from hwcal.measure.layer_run import TORCH_ONLY, OpToRun, run_layer
from hwcal.model.layers import LayerPrediction, predict_layer, read_model

TARGET_LAYER = 0.15


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("whole-layer check (--model)")
    group.add_argument("--model", metavar="FILE", type=Path, action="append",
                       help="a model's operations (docs/models/*.yaml): predicted, then run here end to end with the "
                            "calibration's framework and device, and compared (repeatable). Default: none "
                            "(leave-one-out)")
    group.add_argument("--precision", metavar="PRECISION",
                       help="run and predict every operation of --model in this precision. Default: the file's")
    group.add_argument("--mode", metavar="{back_to_back,isolated}", default="back_to_back",
                       help="the timing predicted for each operation. Default: back_to_back")
    group.add_argument("--layer-rounds", metavar="N", type=int, default=5,
                       help="timed rounds of the whole list (each about 0.2 s of passes). Default: 5")


def _device(predictor: Any) -> str:
    return "cuda" if predictor.inputs.device_type == "gpu" else "cpu"


def check_layer(predictor: Any, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One model file: predicted, run, compared; or skipped with the reason."""
    model = read_model(path, args.precision)
    layer = predict_layer(predictor, model, args.mode)
    result: dict[str, Any] = {"model": model.title, "file": str(path), "source": model.source,
                              "predicted_s": layer.total_s}
    if layer.unpredictable:
        result["skipped"] = ("not run, some operations cannot be predicted from this calibration: "
                             + "; ".join(layer.unpredictable))
        return result
    framework = predictor.inputs.framework or "numpy"
    torch_only = sorted({op.operation for op in model.ops if op.operation in TORCH_ONLY})
    if torch_only and framework != "pytorch":
        result["skipped"] = (f"not run: {', '.join(torch_only)} runs on torch only and the calibration is {framework} "
                             "(predicted, not compared)")
        return result
    backend = make_backend(framework, _device(predictor))
    ops = [OpToRun(op.name, op.operation, op.precision, op.dims, op.count) for op in model.ops]
    timing = run_layer(backend, ops, rounds=args.layer_rounds)
    result.update(measured_s=timing.best_s, measured_median_s=timing.median_s, resident_bytes=layer.resident_bytes,
                  error=layer.total_s / timing.best_s - 1, passes_per_round=timing.passes_per_round,
                  rounds=timing.rounds, operations=_rows(layer, timing.per_op_s))
    result["sum_alone_s"] = sum(r["measured_alone_s"] * r["count"] for r in result["operations"])
    result["predicted_alone_sum_s"] = sum(r["predicted_alone_s"] * r["count"] for r in result["operations"])
    return result


def _rows(layer: LayerPrediction, alone: list[float]) -> list[dict[str, Any]]:
    out = []
    for row, measured in zip(layer.rows, alone, strict=True):
        p, a = row.prediction, row.alone
        out.append({"name": row.op.name, "op": row.op.operation, "precision": row.op.precision, "count": row.op.count,
                    "predicted_s": p.seconds, "predicted_alone_s": a.seconds, "measured_alone_s": measured,
                    "error": a.seconds / measured - 1, "basis": a.basis, "family": a.family,
                    "warnings": a.warnings})
    return out


def lines(results: list[dict[str, Any]], name: str, source: str) -> list[str]:
    out = [f"{name}: {source}", "whole-layer check: predicted sum vs the list run here end to end, back to back "
           "(best round per pass); this machine must be the calibrated device"]
    for r in results:
        out.append("")
        out.append(f"{r['model']} ({r['file']})")  # one line each: the printer escapes control characters
        if r["source"]:
            out.append(f"  shapes: {r['source']}")
        if "skipped" in r:
            out.append(f"  {r['skipped']}")
            continue
        out.append(f"  {'operation':22} {'count':>5} {'in layer':>11} {'predicted':>11} {'measured':>11} {'error':>8}"
                   "  basis (alone)")
        for row in r["operations"]:
            out.append(f"  {row['name'][:22]:22} {row['count']:5d} {row['predicted_s'] * 1e6:9,.1f}us "
                       f"{row['predicted_alone_s'] * 1e6:9,.1f}us {row['measured_alone_s'] * 1e6:9,.1f}us "
                       f"{row['error']:+8.1%}  {row['basis']} ({row['family']})")
        verdict = "within" if abs(r["error"]) <= TARGET_LAYER else "outside"
        ms = {k: f"{r[k] * 1e3:.4g} ms" for k in ("predicted_alone_sum_s", "sum_alone_s", "predicted_s", "measured_s",
                                                   "measured_median_s")}
        out.append(f"  alone: predicted {ms['predicted_alone_sum_s']}, measured {ms['sum_alone_s']} (each operation "
                   "repeated on its own)")
        out.append(f"  layer ({r['resident_bytes'] / 2**20:,.0f} MiB of operands): predicted {ms['predicted_s']}, "
                   f"measured {ms['measured_s']} (median {ms['measured_median_s']}): {r['error']:+.1%}, {verdict} the "
                   f"{TARGET_LAYER:.0%} goal")
    return out


def missed(results: list[dict[str, Any]]) -> bool:
    return any("error" in r and abs(r["error"]) > TARGET_LAYER for r in results)


def validate_models(predictor: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.layer_rounds < 1:
        raise UsageError(f"--layer-rounds must be at least 1, got {args.layer_rounds}")
    return [check_layer(predictor, path, args) for path in args.model]
