#!/usr/bin/env python3
"""An independent energy referee for NVIDIA GPUs: its own NVML loop, sharing no code with hwcal (it imports
torch and pynvml only), measured the plain way: the board's total-energy counter read before and after a long
synchronised loop (the method of the issue's reference figures), where hwcal times windows between the
counter's own update instants. pJ/FLOP = joules / FLOPs of the loop; pJ/byte = joules / bytes (read + write);
idle = joules over a quiet stretch after a rest.

With a calibration file it runs at the shapes and layouts the file's energy cases name, prints the file's
figure beside its own and exits 1 when any differs by more than --tolerance (default 10 %).

    python tools/energy_referee.py registry/gpu/h200/calibrations/700W_1980MHz_pytorch.json
    python tools/energy_referee.py --precisions bf16,fp32,fp64 --n 8192 --copy-gib 1   # no file: the figures alone
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

DTYPES = {"fp64": "float64", "fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16",
          "fp8": "float8_e4m3fn", "int8": "int8"}


def read_json_file(path: Path) -> Any:
    """A calibration file as JSON, packed (``.json.gz``, as registries keep their history) or not."""
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)


class Counter:
    """The board's total-energy counter of GPU ``index`` (mJ since the driver loaded)."""

    def __init__(self, index: int) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nv = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)

    def joules(self) -> float:
        return self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0


def _operands(torch: Any, precision: str, m: int, n: int, k: int, layout: str) -> tuple[Any, Any, Any, Any]:
    dev = torch.device("cuda")
    if precision == "int8":
        a = torch.randint(-100, 100, (m, k), device=dev, dtype=torch.int8)
        b = torch.randint(-100, 100, (k, n), device=dev, dtype=torch.int8)
        out = torch.empty(m, n, device=dev, dtype=torch.int32)
    else:
        dtype = getattr(torch, DTYPES[precision])
        a = torch.randn(m, k, device=dev).to(dtype)
        b = torch.randn(k, n, device=dev).to(dtype)
        out = torch.empty(m, n, device=dev, dtype=torch.bfloat16 if precision == "fp8" else dtype)
    if layout[0] == "T":
        a = a.t().contiguous().t()
    if layout[1] == "T" or precision in ("fp8", "int8"):  # _scaled_mm and _int_mm take B column-major
        b = b.t().contiguous().t()
    scale = torch.ones((), device=dev, dtype=torch.float32)
    return a, b, out, scale


def _gemm_call(torch: Any, precision: str, a: Any, b: Any, out: Any, scale: Any) -> Any:
    if precision == "fp8":
        return lambda: torch._scaled_mm(a, b, scale, scale, out_dtype=torch.bfloat16, out=out)
    if precision == "int8":
        return lambda: torch._int_mm(a, b, out=out)
    return lambda: torch.mm(a, b, out=out)


def counted_loop(torch: Any, counter: Counter, call: Any, warm_s: float, seconds: float) -> tuple[float, float, int]:
    """(joules, seconds, calls) of back-to-back calls for about ``seconds`` after ``warm_s`` of the same calls,
    the counter read before and after (both synchronised)."""
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < warm_s:
        for _ in range(10):
            call()
        torch.cuda.synchronize()
        calls += 10
    per_call = (time.perf_counter() - start) / max(calls, 1)
    count = max(20, int(seconds / max(per_call, 1e-7)))
    torch.cuda.synchronize()
    e0, t0 = counter.joules(), time.perf_counter()
    for _ in range(count):
        call()
    torch.cuda.synchronize()
    e1, t1 = counter.joules(), time.perf_counter()
    return e1 - e0, t1 - t0, count


def referee_gemm(torch: Any, counter: Counter, precision: str, shape: tuple[int, int, int], layout: str,
                 warm_s: float, seconds: float) -> dict[str, float]:
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        m, n, k = shape
        a, b, out, scale = _operands(torch, precision, m, n, k, layout)
        joules, secs, calls = counted_loop(torch, counter, _gemm_call(torch, precision, a, b, out, scale), warm_s,
                                           seconds)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    flops = 2.0 * m * n * k * calls
    return {"pj_per_flop": joules / flops * 1e12, "watts": joules / secs, "gflops": flops / secs / 1e9}


def referee_copy(torch: Any, counter: Counter, array_bytes: int, warm_s: float, seconds: float) -> dict[str, float]:
    src = torch.ones(array_bytes // 8, device="cuda", dtype=torch.float64)
    dst = torch.empty_like(src)
    joules, secs, calls = counted_loop(torch, counter, lambda: dst.copy_(src), warm_s, seconds)
    moved = 2.0 * array_bytes * calls  # read one array, write the other
    return {"pj_per_byte": joules / moved * 1e12, "watts": joules / secs, "gbps": moved / secs / 1e9}


def referee_idle(torch: Any, counter: Counter, rest_s: float, seconds: float) -> float:
    torch.cuda.synchronize()
    time.sleep(rest_s)
    e0, t0 = counter.joules(), time.perf_counter()
    time.sleep(seconds)
    return (counter.joules() - e0) / (time.perf_counter() - t0)


def plan(calibration: dict[str, Any] | None, args: argparse.Namespace) -> tuple[list[tuple[str, tuple[int, int, int],
                                                                                         str]], int]:
    """GEMMs (precision, shape, layout) and the copy's array bytes: the file's energy cases, else the options."""
    wanted = [p for p in (args.precisions or "").split(",") if p]
    energy = (calibration or {}).get("energy") or {}
    gemms, array_bytes = [], args.copy_gib * 2**30
    for case in energy.get("cases") or []:
        shape = case.get("shape") or {}
        if case.get("case") == "gemm" and (not wanted or case.get("precision") in wanted):
            gemms.append((case["precision"], (shape["m"], shape["n"], shape["k"]), case.get("layout") or "NN"))
        if case.get("case") == "stream" and str(case.get("label", "")).startswith("copy") and "n" in shape:
            array_bytes = shape["n"] * 8
    if not gemms:
        gemms = [(p, (args.n, args.n, args.n), "NN" if p not in ("fp8", "int8") else "NT")
                 for p in wanted or ["bf16", "fp32", "fp64"]]
    return gemms, array_bytes


def _verdict(label: str, ours: float, theirs: Any, tolerance: float, unit: str) -> bool:
    if not isinstance(theirs, (int, float)):
        print(f"  {label:<16} referee {ours:10.4g} {unit}   calibration -")
        return True
    ratio = theirs / ours if ours else float("inf")
    ok = abs(ratio - 1.0) <= tolerance
    print(f"  {label:<16} referee {ours:10.4g} {unit}   calibration {theirs:10.4g} {unit}   ratio {ratio:.3f}  "
          f"{'agree' if ok else 'DISAGREE'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calibration", nargs="?", type=Path, help="a calibration with an energy section. Default: none")
    parser.add_argument("--precisions", metavar="LIST",
                        help="GEMM precisions to referee. Default: every one the file measured; without a file "
                             "bf16,fp32,fp64")
    parser.add_argument("--n", type=int, default=8192, help="square GEMM size without a file. Default: 8192")
    parser.add_argument("--copy-gib", type=int, default=1, help="copy array size without a file, GiB. Default: 1")
    parser.add_argument("--seconds", type=float, default=4.0, help="each counted loop, s. Default: 4")
    parser.add_argument("--warmup", type=float, default=1.5, help="warm-up before each loop, s. Default: 1.5")
    parser.add_argument("--tolerance", type=float, default=0.10, help="agreement required. Default: 0.10")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index. Default: 0")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("energy_referee: needs a CUDA GPU", file=sys.stderr)
        return 2
    torch.cuda.set_device(args.device)
    calibration = read_json_file(args.calibration) if args.calibration else None
    energy = (calibration or {}).get("energy") or {}
    if calibration is not None and energy.get("status") != "measured":
        print(f"energy_referee: {args.calibration} has no measured energy ({energy.get('reason', 'no section')})",
              file=sys.stderr)
        return 2
    counter = Counter(args.device)
    gemms, array_bytes = plan(calibration, args)
    ok = True
    print(f"energy referee on {torch.cuda.get_device_name(args.device)} (NVML counter around "
          f"{args.seconds:g} s loops)")
    idle = referee_idle(torch, counter, 5.0, 3.0)
    _verdict("idle (shown only)", idle, energy.get("idle_w"), args.tolerance, "W")  # drifts with temperature
    for precision, shape, layout in gemms:
        got = referee_gemm(torch, counter, precision, shape, layout, args.warmup, args.seconds)
        print(f"  {precision} {shape[0]}x{shape[1]}x{shape[2]} {layout}: {got['gflops']:.6g} GFLOPS at "
              f"{got['watts']:.4g} W")
        ok &= _verdict(f"{precision} pJ/FLOP", got["pj_per_flop"],
                       (energy.get("pj_per_flop_by_precision") or {}).get(precision), args.tolerance, "pJ")
    got = referee_copy(torch, counter, array_bytes, args.warmup, args.seconds)
    print(f"  copy {array_bytes / 2**30:.3g} GiB arrays: {got['gbps']:.6g} GB/s at {got['watts']:.4g} W")
    ok &= _verdict("DRAM pJ/byte", got["pj_per_byte"], energy.get("pj_per_byte_dram"), args.tolerance, "pJ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
