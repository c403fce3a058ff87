#!/usr/bin/env python3
"""A held-out referee of ``Profile.predict``: the operations of public language models' layers, timed warm
and back to back with the framework directly, against the predictions of a calibration of the same device.

The operations are those of one decoder layer of each model at 1 .. 8,192 tokens: the projections as GEMMs
(M = tokens), attention as batched GEMMs (QK^T and PV per head; one token against a KV cache when decoding),
the decode projections also as GEMVs, and the element-wise work around them (residual add, the norm's sum of
squares and scaling, the activation's scaling, KV-cache copies). Shapes come from each model's published
configuration (``MODELS``); none is a shape the calibration measured (an op whose exact shape the calibration
holds is reported and left out of the figures).

The timing shares no code with hwcal's harness: each op is called once to warm it, then timed in rounds of
back-to-back calls closed by one synchronisation (a GPU), per call = round / calls; the best of the rounds is
compared (the calibration's figure is its best too), the median is kept beside it. Ops under 1 ms are timed
again in two later passes, and keep their best: a host's cost of a call moves in episodes (the lent GPU hosts:
5.5 or 8.4 us for the same tiny add, tenths of a second to minutes at a time), which one short timing cannot
escape. The first pass's figures are reported beside them, and a tiny add's time at the start of each pass.

    python tools/model_referee.py CALIBRATION.json --framework numpy --save /tmp/ref_numpy.json
    python tools/model_referee.py CALIBRATION.json --measured /tmp/ref_numpy.json   # re-predict, no timing
    python tools/model_referee.py CAL.json --framework pytorch --device cuda --precision bf16 --models gpu
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

# Published configurations (config.json on the Hugging Face hub of each model; GPT-2 from its paper's table):
# hidden, intermediate, attention heads, KV heads, head dim, gated MLP (gate and up fused into one GEMM).
MODELS: dict[str, dict[str, Any]] = {
    "gpt2": {"hidden": 768, "intermediate": 3072, "heads": 12, "kv_heads": 12, "head_dim": 64, "gated": False,
             "source": "huggingface.co/openai-community/gpt2 config.json (n_embd 768, n_head 12, n_inner 4x)"},
    "qwen2.5-0.5b": {"hidden": 896, "intermediate": 4864, "heads": 14, "kv_heads": 2, "head_dim": 64, "gated": True,
                     "source": "huggingface.co/Qwen/Qwen2.5-0.5B config.json"},
    "tinyllama-1.1b": {"hidden": 2048, "intermediate": 5632, "heads": 32, "kv_heads": 4, "head_dim": 64,
                       "gated": True, "source": "huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json"},
    "llama-3.1-8b": {"hidden": 4096, "intermediate": 14336, "heads": 32, "kv_heads": 8, "head_dim": 128,
                     "gated": True, "source": "huggingface.co/meta-llama/Llama-3.1-8B config.json"},
    "qwen2.5-7b": {"hidden": 3584, "intermediate": 18944, "heads": 28, "kv_heads": 4, "head_dim": 128, "gated": True,
                   "source": "huggingface.co/Qwen/Qwen2.5-7B config.json"},
    "llama-3.2-3b": {"hidden": 3072, "intermediate": 8192, "heads": 24, "kv_heads": 8, "head_dim": 128,
                     "gated": True, "source": "huggingface.co/meta-llama/Llama-3.2-3B config.json"},
    "llama-2-13b": {"hidden": 5120, "intermediate": 13824, "heads": 40, "kv_heads": 40, "head_dim": 128,
                    "gated": True, "source": "huggingface.co/meta-llama/Llama-2-13b-hf config.json"},
}
MODEL_SETS = {"cpu": ["gpt2", "qwen2.5-0.5b", "tinyllama-1.1b"], "gpu": ["llama-3.1-8b", "qwen2.5-7b", "llama-2-13b"]}
TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 8192)
ELEMENT_BYTES = {"fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}


# ---- the operations -------------------------------------------------------------------------------------
def layer_ops(model: str, tokens: int, context: int, precision: str) -> list[dict[str, Any]]:
    """One decoder layer's operations at ``tokens`` (decode: 1 token against ``context`` cached ones)."""
    c = MODELS[model]
    h, inter, heads, kv, d = c["hidden"], c["intermediate"], c["heads"], c["kv_heads"], c["head_dim"]
    t = tokens
    keys = context if t == 1 else t
    up = 2 * inter if c["gated"] else inter

    def op(name: str, operation: str, **dims: int) -> dict[str, Any]:
        return {"model": model, "tokens": t, "name": name, "op": operation, "precision": precision, "dims": dims}

    ops = [op("qkv_proj", "gemm", m=t, n=(heads + 2 * kv) * d, k=h, batch=1),
           op("o_proj", "gemm", m=t, n=h, k=heads * d, batch=1),
           op("mlp_up", "gemm", m=t, n=up, k=h, batch=1),
           op("mlp_down", "gemm", m=t, n=h, k=inter, batch=1),
           op("attn_scores", "gemm", batch=heads, m=t, n=keys, k=d),
           op("attn_values", "gemm", batch=heads, m=t, n=d, k=keys),
           op("residual_add", "add", n=t * h),
           op("norm_sumsq", "dot", n=t * h),
           op("norm_scale", "scal", n=t * h),
           op("act_scale", "scale", n=t * inter),
           op("kv_copy", "copy", n=t * 2 * kv * d),
           op("residual_axpy", "axpy", n=t * h)]
    if t == 1:
        ops += [op("decode_qkv_gemv", "gemv", m=(heads + 2 * kv) * d, n=h),
                op("decode_down_gemv", "gemv", m=h, n=inter)]
    return ops


def read_json_file(path: Path) -> Any:
    """A calibration file as JSON, packed (``.json.gz``, as registries keep their history) or not."""
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)


def gemm_work(dims: dict[str, int], eb: int) -> tuple[float, float]:
    b, m, n, k = dims.get("batch", 1), dims["m"], dims["n"], dims["k"]
    return 2.0 * b * m * n * k, float(b * (m * k + k * n + m * n) * eb)


def op_bytes(op: dict[str, Any]) -> float:
    """Bytes the op's operands occupy (a cap on what a device is asked to hold)."""
    eb = ELEMENT_BYTES[op["precision"]]
    d = op["dims"]
    if op["op"] == "gemm":
        return gemm_work(d, eb)[1]
    if op["op"] == "gemv":
        return float((d["m"] * d["n"] + d["m"] + d["n"]) * eb)
    return 3.0 * d["n"] * eb


def op_flops(op: dict[str, Any]) -> float:
    d = op["dims"]
    if op["op"] == "gemm":
        return gemm_work(d, 1)[0]
    return 2.0 * d["m"] * d["n"] if op["op"] == "gemv" else 2.0 * d["n"]


def plan(models: list[str], tokens: list[int], context: int, precision: str, max_gflop: float, max_bytes: float
         ) -> tuple[list[dict[str, Any]], list[str]]:
    """Every op of every (model, tokens), duplicates (same op, precision, dims) kept once; caps say what is left out."""
    seen: set[str] = set()
    ops: list[dict[str, Any]] = []
    left_out: list[str] = []
    for model in models:
        for t in tokens:
            for op in layer_ops(model, t, context, precision):
                key = json.dumps([op["op"], op["precision"], op["dims"]], sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                if op_flops(op) > max_gflop * 1e9 or op_bytes(op) > max_bytes:
                    left_out.append(f"{model} t={t} {op['name']} {label(op)}")
                    continue
                ops.append(op)
    return ops, left_out


def label(op: dict[str, Any]) -> str:
    d = op["dims"]
    if op["op"] == "gemm":
        mnk = f"{d['m']}x{d['n']}x{d['k']}"
        return f"b{d['batch']}x{mnk}" if d.get("batch", 1) > 1 else mnk
    return f"{d['m']}x{d['n']}" if op["op"] == "gemv" else str(d["n"])


def op_class(op: dict[str, Any]) -> str:
    d = op["dims"]
    if op["op"] == "gemm":
        if d.get("batch", 1) > 1:
            return "batched gemm"
        return "gemm m=1" if d["m"] == 1 else ("gemm m<=512" if d["m"] <= 512 else "gemm m>512")
    return "gemv" if op["op"] == "gemv" else "elementwise/blas1"


# ---- the framework, directly ----------------------------------------------------------------------------
def numpy_call(op: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], None]]:
    import numpy as np

    dtype = {"fp64": np.float64, "fp32": np.float32}[op["precision"]]
    rng = np.random.default_rng(7)
    d = op["dims"]

    def arr(*shape: int) -> Any:
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype)

    kind = op["op"]
    if kind == "gemm":
        lead = (d["batch"],) if d["batch"] > 1 else ()
        a, b, c = arr(*lead, d["m"], d["k"]), arr(*lead, d["k"], d["n"]), np.empty((*lead, d["m"], d["n"]), dtype)
        return (lambda: np.matmul(a, b, out=c)), (lambda: None)
    if kind == "gemv":
        w, x, y = arr(d["m"], d["n"]), arr(d["n"]), np.empty(d["m"], dtype)
        return (lambda: np.dot(w, x, out=y)), (lambda: None)
    n = d["n"]
    x, y, z = arr(n), arr(n), np.empty(n, dtype)
    alphas = [2.0, 0.5]
    flip = [0]

    def scal() -> Any:
        flip[0] ^= 1
        return np.multiply(x, alphas[flip[0]], out=x)

    calls: dict[str, Callable[[], Any]] = {
        "add": lambda: np.add(x, y, out=z), "dot": lambda: np.dot(x, y), "scal": scal,
        "scale": lambda: np.multiply(x, 3.0, out=z), "copy": lambda: np.copyto(z, x)}
    if kind not in calls:
        raise KeyError(f"numpy has no {kind} call: left out")
    return calls[kind], (lambda: None)


def torch_call(op: dict[str, Any], device: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    import torch

    prec = op["precision"]
    torch.set_float32_matmul_precision("high" if prec == "tf32" else "highest")
    dtype = {"fp64": torch.float64, "fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
             "bf16": torch.bfloat16}[prec]
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(7)
    d = op["dims"]

    def arr(*shape: int) -> Any:
        return torch.randn(*shape, generator=gen, device=dev, dtype=torch.float32).to(dtype)

    sync: Callable[[], None] = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    kind = op["op"]
    if kind == "gemm":
        if d["batch"] > 1:
            a, b = arr(d["batch"], d["m"], d["k"]), arr(d["batch"], d["k"], d["n"])
            c = torch.empty(d["batch"], d["m"], d["n"], device=dev, dtype=dtype)
            return (lambda: torch.bmm(a, b, out=c)), sync
        a, b, c = arr(d["m"], d["k"]), arr(d["k"], d["n"]), torch.empty(d["m"], d["n"], device=dev, dtype=dtype)
        return (lambda: torch.mm(a, b, out=c)), sync
    if kind == "gemv":
        w, x, y = arr(d["m"], d["n"]), arr(d["n"]), torch.empty(d["m"], device=dev, dtype=dtype)
        return (lambda: torch.mv(w, x, out=y)), sync
    n = d["n"]
    x, y, z = arr(n), arr(n), torch.empty(n, device=dev, dtype=dtype)
    r = torch.empty((), device=dev, dtype=dtype)
    flip = [0]

    def scal() -> Any:
        flip[0] ^= 1
        return x.mul_((2.0, 0.5)[flip[0]])

    def axpy() -> Any:
        flip[0] ^= 1
        return y.add_(x, alpha=(0.5, -0.5)[flip[0]])

    calls: dict[str, Callable[[], Any]] = {
        "add": lambda: torch.add(x, y, out=z), "dot": lambda: torch.dot(x, y, out=r), "scal": scal, "axpy": axpy,
        "scale": lambda: torch.mul(x, 3.0, out=z), "copy": lambda: z.copy_(x)}
    return calls[kind], sync


def time_call(call: Callable[[], Any], sync: Callable[[], None], round_s: float, rounds: int) -> dict[str, float]:
    """Warm (two calls), then ``rounds`` rounds of back-to-back calls closed by one sync: per call best/median."""
    call()
    sync()
    start = time.perf_counter()
    call()
    sync()
    one = max(time.perf_counter() - start, 1e-7)
    reps = max(1, min(100_000, math.ceil(round_s / one)))
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            call()
        sync()
        per_call.append((time.perf_counter() - start) / reps)
    return {"best_s": min(per_call), "median_s": statistics.median(per_call), "calls_per_round": reps,
            "rounds": rounds}


def host_canary(framework: str, device: str) -> float:
    """Seconds per call of 2,000 back-to-back tiny adds (16 elements), best of 6: what a call costs the host at this
    moment. On the lent GPU hosts it moved between 5.5 and 8.4 us within one process, in episodes of tenths of a
    second, whatever the CPU the process ran on; the passes' canaries show which state each pass met."""
    if framework == "numpy":
        import numpy as np

        x, y, z = np.ones(16, np.float32), np.ones(16, np.float32), np.empty(16, np.float32)
        call, sync = (lambda: np.add(x, y, out=z)), (lambda: None)
    else:
        import torch

        dev = torch.device(device)
        tx, ty, tz = (torch.ones(16, device=dev) for _ in range(3))
        call = lambda: torch.add(tx, ty, out=tz)  # noqa: E731
        sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    best = math.inf
    for _ in range(6):
        start = time.perf_counter()
        for _ in range(2000):
            call()
        sync()
        best = min(best, (time.perf_counter() - start) / 2000)
    return best


def measure(ops: list[dict[str, Any]], framework: str, device: str, round_s: float, rounds: int,
            passes: int = 1, repass_below_s: float = 0.0) -> list[float]:
    """Time every op (pass 1), then re-time in passes 2.. the ops whose best was under ``repass_below_s``: each
    op's figure is the best over its passes, the first pass's best kept beside it. Returns the host canary of
    each pass (``host_canary``)."""
    canaries = []
    for n in range(1, passes + 1):
        canaries.append(host_canary(framework, device))
        todo = [(i, op) for i, op in enumerate(ops)
                if n == 1 or ("best_s" in op and op["first_pass_best_s"] < repass_below_s)]
        print(f"pass {n}: {len(todo)} ops, host canary {canaries[-1] * 1e6:.2f} us a tiny call", file=sys.stderr)
        for i, op in todo:
            try:
                call, sync = numpy_call(op) if framework == "numpy" else torch_call(op, device)
            except KeyError as exc:
                op["skipped"] = str(exc).strip("'\"")
                continue
            timed = time_call(call, sync, round_s, rounds)
            del call, sync
            op.setdefault("passes_best_s", []).append(timed["best_s"])
            if n == 1:
                op.update(timed, first_pass_best_s=timed["best_s"], first_pass_median_s=timed["median_s"])
                print(f"  [{i + 1}/{len(ops)}] {op['model']} t={op['tokens']} {op['name']} {label(op)}: "
                      f"{op['best_s'] * 1e6:,.1f} us", file=sys.stderr, flush=True)
            elif timed["best_s"] < op["best_s"]:
                op.update(timed)
    return canaries


# ---- against the predictions ----------------------------------------------------------------------------
def calibration_shapes(doc: dict[str, Any]) -> set[str]:
    """(op, dims) keys the calibration measured: an op among them is not held out."""
    keys = set()
    for rec in doc.get("gemm_shapes") or []:
        keys.add(json.dumps(["gemm", {"batch": rec.get("batch", 1), "k": rec["k"], "m": rec["m"], "n": rec["n"]}],
                            sort_keys=True))
    for rec in doc.get("gemm") or []:
        n = rec["n"]
        keys.add(json.dumps(["gemm", {"batch": 1, "k": n, "m": n, "n": n}], sort_keys=True))
    for rec in doc.get("blas") or []:
        dims = {"m": rec["m"], "n": rec["n"]} if rec["operation"] == "gemv" else {"n": rec["n"]}
        keys.add(json.dumps([rec["operation"], dims], sort_keys=True))
    return keys


def compare(ops: list[dict[str, Any]], calibration: Path, doc: Any, mode: str) -> dict[str, Any]:
    """Each op's prediction from ``doc`` (the calibration file at ``calibration``, read) against its timing."""
    from hwcal.errors import HwcalError
    from hwcal.model.predict import predictor_of_document

    predictor = predictor_of_document(doc, str(calibration))
    measured_shapes = calibration_shapes(doc)
    rows = []
    for op in ops:
        if "best_s" not in op:
            continue
        row = {k: op[k] for k in ("model", "tokens", "name", "op", "precision", "best_s", "median_s")}
        row["shape"], row["class"] = label(op), op_class(op)
        row["held_out"] = json.dumps([op["op"], op["dims"]], sort_keys=True) not in measured_shapes
        try:
            started = time.perf_counter()
            kwargs = {"mode": mode} if mode != "back_to_back" else {}
            pred = predictor.predict(op["op"], op["precision"], **op["dims"], **kwargs)
            row["predict_call_s"] = time.perf_counter() - started
            row.update(predicted_s=pred.seconds, basis=pred.basis, family=pred.family,
                       error=(pred.seconds - op["best_s"]) / op["best_s"])
            first = op.get("first_pass_best_s")
            if first:
                row["first_pass_error"] = (pred.seconds - first) / first
        except HwcalError as exc:
            row["unanswered"] = str(exc)
        rows.append(row)
    return {"calibration": str(calibration), "rows": rows, "summary": summarise(rows)}


def _stats(errors: list[float]) -> dict[str, Any]:
    if not errors:
        return {"ops": 0}
    absolute = sorted(abs(e) for e in errors)
    p90 = absolute[min(len(absolute) - 1, math.ceil(0.9 * len(absolute)) - 1)]
    return {"ops": len(errors), "median": statistics.median(absolute), "p90": p90,
            "within_25": sum(a <= 0.25 for a in absolute)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    held = [r for r in rows if r["held_out"]]
    answered = [r for r in held if "error" in r]
    out = {"held_out": len(held), "answered": len(answered), "all": _stats([r["error"] for r in answered]),
           "by_class": {}}
    if answered and all("first_pass_error" in r for r in answered):
        out["first_pass"] = _stats([r["first_pass_error"] for r in answered])
    for cls in sorted({r["class"] for r in answered}):
        out["by_class"][cls] = _stats([r["error"] for r in answered if r["class"] == cls])
    calls = [r["predict_call_s"] for r in answered]
    if calls:
        out["predict_call_s_median"] = statistics.median(calls)
    return out


def report(result: dict[str, Any], detail: bool) -> str:
    lines = [f"calibration: {result['calibration']}"]
    if detail:
        lines.append(f"{'model':15} {'t':>5} {'name':16} {'shape':22} {'measured':>11} {'predicted':>11} "
                     f"{'error':>8}  basis")
        for r in result["rows"]:
            pred = f"{r['predicted_s'] * 1e6:11,.1f}" if "predicted_s" in r else f"{'-':>11}"
            err = f"{r['error']:+8.1%}" if "error" in r else f"{'-':>8}"
            basis = r.get("basis", "UNANSWERED: " + r.get("unanswered", ""))
            if r.get("family"):
                basis += f" ({r['family']})"
            lines.append(f"{r['model']:15} {r['tokens']:5d} {r['name']:16} {r['shape']:22} {r['best_s'] * 1e6:11,.1f} "
                         f"{pred} {err}  {basis}{'' if r['held_out'] else '  [in the calibration: not counted]'}")
        lines.append("(times in us per call, best of the rounds)")
    s = result["summary"]
    lines.append(f"held-out ops: {s['held_out']}, answered: {s['answered']}")
    for name, st in [("all", s["all"]), *s["by_class"].items()]:
        if st["ops"]:
            lines.append(f"  {name:20} {st['ops']:4d} ops  median |error| {st['median']:6.1%}  p90 {st['p90']:6.1%}  "
                         f"within 25%: {st['within_25']}/{st['ops']}")
    if "first_pass" in s:
        st = s["first_pass"]
        lines.append(f"  {'first pass only':20} {st['ops']:4d} ops  median |error| {st['median']:6.1%}  p90 "
                     f"{st['p90']:6.1%}  within 25%: {st['within_25']}/{st['ops']}")
    if result.get("host_canary_s"):
        lines.append("host canary by pass (us a tiny call): "
                     + ", ".join(f"{c * 1e6:.2f}" for c in result["host_canary_s"]))
    if "predict_call_s_median" in s:
        lines.append(f"predict: {s['predict_call_s_median'] * 1e6:.0f} us a call (median)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calibration", type=Path, help="the calibration file of this device and framework")
    parser.add_argument("--framework", choices=("numpy", "pytorch"), default="numpy")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (pytorch). Default: cpu")
    parser.add_argument("--precision", default="fp32", choices=sorted(ELEMENT_BYTES))
    parser.add_argument("--models", default=None, help="comma list, or 'cpu' / 'gpu' sets. Default: by device")
    parser.add_argument("--tokens", default=",".join(map(str, TOKENS)), help="comma list. Default: %(default)s")
    parser.add_argument("--context", type=int, default=None, help="KV-cache length at 1 token. Default: cpu 1024, "
                                                                   "cuda 4096")
    parser.add_argument("--max-gflop", type=float, default=None,
                        help="leave out bigger ops. Default: cpu 40, cuda 2000")
    parser.add_argument("--max-gb", type=float, default=None,
                        help="leave out ops holding more. Default: cpu 1, cuda 20")
    # Short rounds, many of them: on a shared machine a round that fits in one undisturbed time slice shows the
    # call's own time, and the best of many finds one (long rounds average the disturbance in).
    parser.add_argument("--round-s", type=float, default=0.002, help="seconds a round aims at. Default: %(default)s")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per op. Default: %(default)s")
    # A host's cost of a call moves in episodes (the lent GPU hosts: 5.5 vs 8.4 us, tenths of a second at a time):
    # ops short enough to be paced by it are timed again in later passes, minutes apart, and keep their best.
    parser.add_argument("--passes", type=int, default=3, help="timing passes. Default: %(default)s")
    parser.add_argument("--repass-below-s", type=float, default=0.001,
                        help="re-time in passes 2.. the ops whose first best was under this. Default: %(default)s")
    parser.add_argument("--mode", default="back_to_back", help="the prediction's timing mode. Default: %(default)s")
    parser.add_argument("--save", type=Path, help="write the measured ops (JSON) here")
    parser.add_argument("--measured", type=Path, help="read measured ops from here instead of timing them")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--detail", action="store_true", help="print every op")
    args = parser.parse_args(argv)
    if args.passes < 1 or args.repass_below_s < 0:
        parser.error(f"--passes must be at least 1 and --repass-below-s at least 0 (got {args.passes}, "
                     f"{args.repass_below_s:g})")
    try:  # read before any timing: a file that cannot be read should not cost minutes of it first
        doc = read_json_file(args.calibration)
    except (OSError, ValueError) as exc:
        print(f"model_referee.py: error: {args.calibration}: {exc}", file=sys.stderr)
        return 1
    cuda = args.device.startswith("cuda")
    canaries: list[float] = []
    if args.measured:
        saved = json.loads(args.measured.read_text())
        ops, left_out, canaries = saved["ops"], saved.get("left_out", []), saved.get("host_canary_s", [])
    else:
        names = args.models or ("gpu" if cuda else "cpu")
        models = MODEL_SETS.get(names) or names.split(",")
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
        tokens = [int(t) for t in args.tokens.split(",")]
        context = args.context or (4096 if cuda else 1024)
        ops, left_out = plan(models, tokens, context, args.precision, args.max_gflop or (2000 if cuda else 40),
                             (args.max_gb or (20 if cuda else 1)) * 1e9)
        print(f"timing {len(ops)} ops ({len(left_out)} over the caps left out)", file=sys.stderr)
        canaries = measure(ops, args.framework, args.device, args.round_s, args.rounds, args.passes,
                           args.repass_below_s)
        if args.save:
            args.save.write_text(json.dumps({"framework": args.framework, "device": args.device, "ops": ops,
                                             "left_out": left_out, "host_canary_s": canaries}, indent=1))
    result = compare(ops, args.calibration, doc, args.mode)
    result["left_out"] = left_out
    result["host_canary_s"] = canaries
    result["skipped"] = [f"{o['model']} {o['name']}: {o['skipped']}" for o in ops if "skipped" in o]
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(report(result, args.detail))
        if result["skipped"]:
            print(f"not timed: {len(result['skipped'])} ({result['skipped'][0]} ...)")
        if left_out:
            print(f"over the caps, left out: {len(left_out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
