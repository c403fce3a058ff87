#!/usr/bin/env python3
"""An independent CUDA-event loop for the precisions mamf-finder does not cover (int8, tf32, fp32, fp64):
at the shape and operand layout a calibration's max-achievable search filed, time ``torch.mm`` /
``torch._int_mm`` the way mamf-finder times its GEMMs (L2 flushed and the output re-written before each
call, 50 warm-up and 100 timed calls, one CUDA event pair each) and print the calibration's peak over the
loop's mean. It imports nothing from hwcal: a referee that shared hwcal's code would agree with it and prove
nothing. (The H200 int8 figure was once 7x low and "confirmed" by a loop that shared its row-major layout.)

    python tools/gpu_referee.py registry/gpu/h200/calibrations/700W_1980MHz_pytorch.json --precisions int8,fp32
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

WARMUP, ITERATIONS = 50, 100
DTYPES = {"fp64": "float64", "fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16",
          "int8": "int8"}


def read_json_file(path: Path) -> Any:
    """A calibration file as JSON, packed (``.json.gz``, as registries keep their history) or not."""
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)


def time_loop(precision: str, m: int, n: int, k: int, layout: str) -> float:
    """Mean TFLOP/s (TOPS) over ITERATIONS calls after WARMUP, mamf-finder's way."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    dev = torch.device("cuda")
    dtype = getattr(torch, DTYPES[precision])
    if precision == "int8":
        a = torch.randint(-100, 100, (m, k), device=dev, dtype=torch.int8)
        b = torch.randint(-100, 100, (k, n), device=dev, dtype=torch.int8)
        out = torch.empty(m, n, device=dev, dtype=torch.int32)
        rand = torch.randint(-100, 100, (m, n), device=dev, dtype=torch.int32)
    else:
        a = torch.randn(m, k, device=dev).to(dtype)
        b = torch.randn(k, n, device=dev).to(dtype)
        out = torch.empty(m, n, device=dev, dtype=dtype)
        rand = torch.randn(m, n, device=dev).to(dtype)
    if layout[0] == "T":
        a = a.t().contiguous().t()
    if layout[1] == "T":
        b = b.t().contiguous().t()
    flush = torch.empty(256 * 2**20 // 4, dtype=torch.int32, device=dev)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(WARMUP + ITERATIONS)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(WARMUP + ITERATIONS)]
    for s, e in zip(starts, ends, strict=True):
        flush.zero_()
        out.copy_(rand)
        s.record()
        if precision == "int8":
            torch._int_mm(a, b, out=out)
        else:
            torch.mm(a, b, out=out)
        e.record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) / 1000 for s, e in zip(starts[WARMUP:], ends[WARMUP:], strict=True)]
    torch.backends.cuda.matmul.allow_tf32 = False
    return 2 * m * n * k / (sum(times) / len(times)) / 1e12


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_referee.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("calibration", type=Path)
    parser.add_argument("--precisions", default="int8,tf32,fp32,fp64", help="Default: int8,tf32,fp32,fp64")
    args = parser.parse_args(argv)
    try:
        doc = read_json_file(args.calibration)
    except (OSError, ValueError) as exc:
        print(f"gpu_referee.py: error: {args.calibration}: {exc}", file=sys.stderr)
        return 1
    found = doc.get("max_achievable") or {}
    print(f"{'precision':9} {'shape':>18} {'layout':>6} {'filed':>10} {'referee':>10} {'ratio':>7}")
    for p in args.precisions.split(","):
        r = found.get(p)
        if not r:
            print(f"{p:9} no max_achievable result in the calibration")
            continue
        s = r["shape"]
        ref = time_loop(p, s["m"], s["n"], s["k"], r["layout"])
        filed = r["peak_gflops"] / 1000
        print(f"{p:9} {s['m']:>6}x{s['n']}x{s['k']:<6} {r['layout']:>6} {filed:>10.1f} {ref:>10.1f} "
              f"{filed / ref:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
