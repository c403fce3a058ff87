#!/usr/bin/env python3
"""A referee for a calibration's model layers: every convolution, conv+BN+ReLU, attention and fused-op result
it filed, timed again here with plain torch (the same call, shape, precision, layout and backend, back to back:
CUDA events around a loop on a GPU, the wall clock on a CPU; on a GPU, enough operand sets rotated that L2
cannot hold the last call's input, as the calibration does), and the filed time per call over the referee's,
per result and as a median per family. It imports nothing from hwcal: a referee that shared hwcal's code would
agree with it and prove nothing.

``--cudnn-best`` times 3 standard layers (ResNet-50 layer1 3x3 and 1x1, MobileNetV2's depthwise 3x3; fp16,
channels_last, batch 32) with cuDNN benchmark mode on, the autotuned (best) algorithm, and prints its TFLOP/s
and the CUDA kernels it ran.

    python tools/nn_referee.py registry/gpu/nvidia_h200/calibrations/700W_1980MHz_pytorch.json
    python tools/nn_referee.py --cudnn-best
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

SECTIONS = ("conv", "conv_bn_relu", "attention", "fused_ops")
DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}
SDPA = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH"}
STANDARD = (("resnet50.layer1.0.conv2", 64, 56, 64, 3), ("resnet50.layer1.0.conv3", 64, 56, 256, 1),
            ("mobilenet_v2.features.3.conv.1", 144, 56, 144, 3))


def read_json_file(path: Path) -> Any:
    """A calibration file as JSON, packed (``.json.gz``, as registries keep their history) or not."""
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)


def _setup(rec: dict[str, Any], cuda: bool) -> tuple[Any, Any, list[tuple[Any, ...]]]:
    """(call, dtype, operand sets) of one filed result; the call takes one operand set."""
    import torch
    import torch.nn.functional as F

    dev = torch.device("cuda" if cuda else "cpu")
    dtype = getattr(torch, DTYPES[rec["precision"]])
    cl = torch.channels_last if rec.get("layout") == "channels_last" else torch.contiguous_format

    def draw(*shape: int) -> Any:
        return torch.randn(*shape, device=dev).to(dtype)

    if "k" in rec:  # a convolution (plain, or with BN and activation)
        n, c, h, w, k, r, s = (rec[x] for x in ("n", "c", "h", "w", "k", "r", "s"))
        st, pad, g = rec["stride"], rec["padding"], rec["groups"]

        def one() -> tuple[Any, ...]:
            return (draw(n, c, h, w).contiguous(memory_format=cl),
                    (draw(k, c // g, r, s) / math.sqrt(c // g * r * s)).contiguous(memory_format=cl))
        variant = rec.get("variant", "")
        if variant.startswith("folded"):
            bias = draw(k)
            act = F.relu_ if variant.endswith(":relu") else (lambda y: F.hardtanh_(y, 0.0, 6.0))
            return (lambda x, wt: act(F.conv2d(x, wt, bias, st, pad, 1, g))), dtype, _rotate(one, cuda)
        if variant.startswith("unfolded"):
            mean, var, gamma, beta = draw(k) * 0.1, draw(k).abs() + 0.5, draw(k).abs() + 0.5, draw(k) * 0.1
            act = F.relu_ if variant.endswith(":relu") else (lambda y: F.hardtanh_(y, 0.0, 6.0))
            return (lambda x, wt: act(F.batch_norm(F.conv2d(x, wt, None, st, pad, 1, g), mean, var, gamma, beta,
                                                   False, 0.0, 1e-5))), dtype, _rotate(one, cuda)
        return (lambda x, wt: F.conv2d(x, wt, None, st, pad, 1, g)), dtype, _rotate(one, cuda)
    if "heads" in rec:
        b, hd, sq, sk, d = (rec[x] for x in ("batch", "heads", "seq_q", "seq_k", "head_dim"))
        causal = bool(rec["causal"])
        return ((lambda q, kk, v: F.scaled_dot_product_attention(q, kk, v, is_causal=causal)), dtype,
                _rotate(lambda: (draw(b, hd, sq, d), draw(b, hd, sk, d), draw(b, hd, sk, d)), cuda))
    rows, cols, op = rec["rows"], rec["cols"], rec["op"]
    weight, bias = draw(cols), draw(cols)
    call = {"layernorm": lambda x: F.layer_norm(x, (cols,), weight, bias, 1e-5),
            "rmsnorm": lambda x: F.rms_norm(x, (cols,), weight, 1e-6), "softmax": lambda x: torch.softmax(x, -1),
            "gelu": F.gelu, "silu": F.silu}[op]
    return call, dtype, _rotate(lambda: (draw(rows, cols),), cuda)


def _rotate(one: Any, cuda: bool) -> list[tuple[Any, ...]]:
    """Operand sets: one on a CPU; on a GPU enough that together they are at least twice the L2 (max 64)."""
    first = one()
    if not cuda:
        return [first]
    import torch

    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 50 * 2**20
    size = sum(t.numel() * t.element_size() for t in first)
    return [first] + [one() for _ in range(min(63, max(0, math.ceil(2 * l2 / max(size, 1)) - 1)))]


def time_per_call(call: Any, sets: list[tuple[Any, ...]], cuda: bool, reps: int = 7) -> float:
    """Best of ``reps`` loops of back-to-back calls (each loop >= 2 ms on a CPU, 20 ms on a GPU), per call."""
    import torch

    def loop(count: int) -> float:
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for i in range(count):
                call(*sets[i % len(sets)])
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0
        t0 = time.perf_counter()
        for i in range(count):
            call(*sets[i % len(sets)])
        return time.perf_counter() - t0

    loop(3)  # warm-up: library initialisation, autotuning, page faults
    one = max(loop(1), 1e-7)
    count = max(1, math.ceil((0.02 if cuda else 0.002) / one))
    return min(loop(count) for _ in range(reps)) / count


def _modes(rec: dict[str, Any], cuda: bool) -> Any:
    import contextlib

    import torch

    torch.set_float32_matmul_precision("high" if rec["precision"] == "tf32" else "highest")
    if cuda:
        torch.backends.cudnn.allow_tf32 = rec["precision"] == "tf32"
        torch.backends.cudnn.benchmark = bool((rec.get("modes") or {}).get("cudnn_benchmark", False))
    if "heads" in rec:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([getattr(SDPBackend, SDPA[rec["variant"]])])
    return contextlib.nullcontext()


def referee(doc: dict[str, Any], cuda: bool) -> dict[str, list[float]]:
    ratios: dict[str, list[float]] = {}
    print(f"{'family':13} {'layer':40} {'prec':5} {'layout':13} {'variant':14} {'filed us':>10} {'referee us':>10} "
          f"{'ratio':>7}")
    for section in SECTIONS:
        for rec in (doc.get(section) or {}).get("results") or []:
            if rec.get("precision") not in DTYPES:
                continue
            with _modes(rec, cuda):
                call, _, sets = _setup(rec, cuda)
                ref_s = time_per_call(call, sets, cuda)
            filed_s = float(rec["time_s"]["min"])
            ratio = filed_s / ref_s
            ratios.setdefault(section, []).append(ratio)
            print(f"{section:13} {rec['name'][:40]:40} {rec['precision']:5} {rec.get('layout', ''):13} "
                  f"{rec.get('variant', ''):14} {filed_s * 1e6:>10.2f} {ref_s * 1e6:>10.2f} {ratio:>7.3f}")
    print("\nfiled / referee per family (time per call; below 1: the calibration was faster):")
    for section, values in ratios.items():
        print(f"  {section:13} median {statistics.median(values):.3f}  min {min(values):.3f}  max {max(values):.3f}"
              f"  ({len(values)} results)")
    return ratios


def cudnn_best(batch: int = 32) -> None:
    """The autotuned cuDNN algorithm's throughput for the 3 standard layers (fp16, channels_last)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.backends.cudnn.benchmark = True
    print(f"cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name(0)}, fp16, channels_last, "
          f"batch {batch}, cudnn.benchmark on")
    for name, c, hw, k, r in STANDARD:
        groups = c if name.startswith("mobilenet") else 1
        rec = {"n": batch, "c": c, "h": hw, "w": hw, "k": k, "r": r, "s": r, "stride": 1, "padding": r // 2,
               "groups": groups, "precision": "fp16", "layout": "channels_last"}
        call, _, sets = _setup(rec, True)
        seconds = time_per_call(call, sets, True)
        flops = 2 * batch * k * (c // groups) * r * r * hw * hw
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            call(*sets[0])
            torch.cuda.synchronize()
        kernels = sorted({e.name.split("(")[0][:70] for e in prof.events() if str(e.device_type).endswith("CUDA")})
        print(f"  {name:32} {seconds * 1e6:9.2f} us  {flops / seconds / 1e12:8.2f} TFLOP/s  {'; '.join(kernels)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nn_referee.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("calibration", type=Path, nargs="?", help="a calibration file with model-layer sections")
    parser.add_argument("--cudnn-best", action="store_true",
                        help="time the 3 standard layers with cuDNN's autotuned algorithm. Default: off")
    parser.add_argument("--batch", type=int, default=32, help="batch of --cudnn-best. Default: 32")
    args = parser.parse_args(argv)
    if args.calibration is None and not args.cudnn_best:
        parser.error("give a calibration file, --cudnn-best, or both")
    import torch

    cuda = torch.cuda.is_available()
    if args.calibration is not None:
        try:
            doc = read_json_file(args.calibration)
        except (OSError, ValueError) as exc:
            print(f"nn_referee.py: error: {args.calibration}: {exc}", file=sys.stderr)
            return 1
        on_gpu = (doc.get("key") or {}).get("device_type") == "gpu"
        if on_gpu and not cuda:
            print("nn_referee.py: error: a GPU calibration needs the GPU it was measured on", file=sys.stderr)
            return 1
        if not referee(doc, on_gpu):
            print(f"nn_referee.py: {args.calibration} has no model-layer results", file=sys.stderr)
            return 1
    if args.cudnn_best:
        if not cuda:
            print("nn_referee.py: error: --cudnn-best needs a CUDA GPU", file=sys.stderr)
            return 1
        cudnn_best(args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
