#!/usr/bin/env python3
"""A bare timing loop around the framework's GEMM at the sizes a calibration peaked at, to check
that the suite files what the library really reaches (suite peak / bare peak, per precision).

Example:
    python tools/bare_loop.py registry/cpu/amd_epyc/calibrations/default_2445MHz_numpy.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwcal.cli.entry import EXIT_OK, Tool
from hwcal.document.format2 import precision_detail


def _numpy_loop(precision: str, n: int, seconds: float) -> float:
    import numpy as np

    dtype = {"fp64": np.float64, "fp32": np.float32}[precision]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    np.matmul(a, b, out=c)
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or best == float("inf"):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _torch_loop(precision: str, n: int, device: str, seconds: float) -> float:
    import torch

    dev = torch.device(device)
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    dt = {"fp64": torch.float64, "fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
          "bf16": torch.bfloat16}.get(precision)
    if dt is not None:
        a = torch.randn(n, n, device=dev).to(dt)
        b = torch.randn(n, n, device=dev).to(dt)

        def fn() -> Any:
            return torch.matmul(a, b)
    elif precision in ("fp8", "fp8_e5m2"):
        f8 = torch.float8_e4m3fn if precision == "fp8" else torch.float8_e5m2
        a = torch.randn(n, n, device=dev).to(f8)
        b = torch.randn(n, n, device=dev).to(f8).t().contiguous().t()
        scale = torch.ones((), device=dev)

        def fn() -> Any:
            return torch._scaled_mm(a, b, scale, scale, out_dtype=torch.bfloat16)
    elif precision == "int8":
        a = torch.randint(-100, 101, (n, n), device=dev, dtype=torch.int8)
        b = torch.randint(-100, 101, (n, n), device=dev, dtype=torch.int8)

        def fn() -> Any:
            return torch._int_mm(a, b)
    else:
        idt = {"int64": torch.int64, "int32": torch.int32, "int16": torch.int16}[precision]
        a = torch.randint(-3, 4, (n, n), device=dev, dtype=idt)
        b = torch.randint(-3, 4, (n, n), device=dev, dtype=idt)

        def fn() -> Any:
            return torch.matmul(a, b)
    fn()
    if dev.type == "cuda":
        # CUDA events around a loop of launches: the device's own clock, no host overhead.
        torch.cuda.synchronize()
        one = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        per = max(time.perf_counter() - one, 1e-6)
        iters = max(3, int(0.05 / per))
        best = float("inf")
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or best == float("inf"):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(iters):
                fn()
            e.record()
            e.synchronize()
            best = min(best, s.elapsed_time(e) / 1000.0 / iters)
    else:
        best = float("inf")
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or best == float("inf"):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _triad_loop(framework: str, device: str, array_bytes: int, seconds: float) -> float:
    """Best STREAM triad GB/s (3 arrays counted, as STREAM does) of a bare loop, same method as the suite."""
    n = array_bytes // 8
    if framework == "numpy":
        import numpy as np

        a, b, c = np.full(n, 1.0), np.full(n, 2.0), np.full(n, 0.5)
        step = 1 << 17  # the suite's chunked triad: a's chunk stays in cache between the two ufuncs

        def fn() -> Any:
            for i in range(0, n, step):
                np.multiply(c[i : i + step], 3.0, out=a[i : i + step])
                np.add(a[i : i + step], b[i : i + step], out=a[i : i + step])

        sync = None
    else:
        import torch

        dev = torch.device(device)
        a, b, c = (torch.full((n,), v, dtype=torch.float64, device=dev) for v in (1.0, 2.0, 0.5))

        def fn() -> Any:
            return torch.add(b, c, alpha=3.0, out=a)

        sync = torch.cuda.synchronize if dev.type == "cuda" else None
    fn()
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or best == float("inf"):
        if sync is not None:
            import torch

            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(10):
                fn()
            e.record()
            e.synchronize()
            best = min(best, s.elapsed_time(e) / 1000.0 / 10)
        else:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
    return 3 * n * 8 / best / 1e9


# Bounds on what a file may make this tool allocate or run: a calibration names its sizes, and a hostile or
# damaged one must not take the machine's memory (three n x n operands; three triad arrays).
MAX_GEMM_N = 32768
MAX_SECONDS = 600.0
MEMORY_SHARE = 0.5  # of the memory available now


def _seconds(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < v <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{value!r} must be > 0 and <= {MAX_SECONDS:g} s")
    return v


def _available_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or unreadable /proc: assume a small machine
        return 4 * 2**30


def _check_alloc(what: str, nbytes: int) -> None:
    from hwcal.errors import HwcalError

    budget = int(_available_bytes() * MEMORY_SHARE)
    if nbytes > budget:
        raise HwcalError(f"{what} needs {nbytes / 2**30:.1f} GiB, over half the {budget * 2 / 2**30:.1f} GiB "
                         "available now; not run")


def _gemm_n(p: str, value: object) -> int:
    from hwcal.errors import HwcalError

    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_GEMM_N:
        raise HwcalError(f"peak_size_by_precision.{p} = {value!r} is not a GEMM size in 1..{MAX_GEMM_N}; not run")
    _check_alloc(f"{p} GEMM n={value}", 3 * value * value * 8)
    return value


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calibration", type=Path, help="calibration JSON whose peaks to check")
    parser.add_argument("--seconds", type=_seconds, default=2.0, metavar="S",
                        help=f"time per loop, up to {MAX_SECONDS:g}. Default: 2.0")
    parser.add_argument("--precisions", default=None, metavar="P,P", help="only these. Default: all measured")
    return parser


def body(args: argparse.Namespace) -> int:
    from hwcal.errors import HwcalError
    from hwcal.registry.reader import read_calibration

    doc = read_calibration(args.calibration).doc  # the one checked reader: regular file, bounded, schema-valid
    matrix = {**doc["precision_matrix"], **precision_detail(doc)}
    framework, device = doc["key"]["framework"], doc["metadata"]["device"]
    wanted = args.precisions.split(",") if args.precisions else list(matrix["peak_gflops_by_precision"])
    print(f"{'precision':10} {'n':>6} {'suite':>12} {'bare loop':>12} {'ratio':>7}")
    for p in wanted:
        if p not in matrix.get("peak_size_by_precision", {}) or p not in matrix["peak_gflops_by_precision"]:
            print(f"{p:10} not measured in this calibration")
            continue
        n = _gemm_n(p, matrix["peak_size_by_precision"][p])
        suite = matrix["peak_gflops_by_precision"][p]
        if framework == "numpy":
            if p not in ("fp64", "fp32"):
                continue
            bare = _numpy_loop(p, n, args.seconds)
        else:
            bare = _torch_loop(p, n, device, args.seconds)
        print(f"{p:10} {n:>6} {suite:>12,.1f} {bare:>12,.1f} {suite / bare:>7.3f}", flush=True)
    memory = doc.get("memory") or {}
    sustained = memory.get("sustained_gbps")
    if sustained:
        try:
            array_bytes = int(max(memory["plateau"]["triad"]["array_bytes"]))
        except (KeyError, TypeError, ValueError):
            raise HwcalError(f"{args.calibration}: memory.plateau.triad.array_bytes missing; triad not run") from None
        if array_bytes <= 0:
            raise HwcalError(f"{args.calibration}: triad array of {array_bytes} bytes; not run")
        _check_alloc(f"triad arrays of {array_bytes / 2**20:.0f} MiB", 3 * array_bytes)
        bare = _triad_loop(framework, device, array_bytes, args.seconds)
        label = f"{array_bytes // 2**20}Mi"
        print(f"{'triad GB/s':10} {label:>6} {sustained:>12,.1f} {bare:>12,.1f} {sustained / bare:>7.3f}")
    return EXIT_OK


# Through the tools' one entry: one line and exit 1 for a bad file, 2 for bad usage, 130 for Ctrl-C.
main = Tool("bare_loop.py", build_parser, body).main

if __name__ == "__main__":
    sys.exit(main())
