"""What ``Profile.predict`` reads from a format-2 calibration: measured points per operation, precision
and shape family, the cache tiers, the launch floors and the efficiency references. Pure, no I/O.

Every time is the *best* per call (``flops / gflops_best`` or ``bytes / gbps_best``, which is
``time_s.min / launches_per_round`` for the square sweep): the figure a calibration calls its peak.
Unverified results (``verified: false``) are left out, and so is a figure the interference watch left
``flagged`` where its nearest points on both sides along its own series are unflagged (``prefer_unflagged``):
a neighbour slows a call, never speeds it up, so the series' quiet points interpolate it better. A flagged
point at the end of its series, or beside another flagged one, stays, and says so in the predictions it serves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from hwcal.model.curves import Point, Tiers, tiers_of
from hwcal.model.nn import nn_points
from hwcal.precisions import PRECISIONS

SQUARE = "square"
GEMM_FAMILIES = (SQUARE, "small_m", "proj_up", "proj_down", "batched", "pow2_n")
STREAM_KERNELS = ("copy", "scale", "add", "triad")
BLAS_OPS = ("dot", "axpy", "scal", "gemv")
MEMORY_OPS = BLAS_OPS + STREAM_KERNELS
OPERATIONS = ("gemm", *MEMORY_OPS)

# STREAM's counting: (FLOPs per element, arrays moved) per kernel; BLAS1/2 minimal traffic in vectors.
STREAM_COUNTS = {"copy": (0, 2), "scale": (1, 2), "add": (1, 3), "triad": (2, 3)}
BLAS_COUNTS = {"dot": (2, 2), "axpy": (2, 3), "scal": (1, 2)}
# Without BLAS records, a BLAS call is predicted from the STREAM kernel of the same traffic pattern:
# axpy is triad (2 reads, 1 write, 2 FLOPs/element), scal is scale; dot and gemv only read, and add is
# the kernel with two read streams (their one write is small next to them).
STREAM_PROXY = {"dot": "add", "axpy": "triad", "scal": "scale", "gemv": "add"}


def element_bytes(precision: str) -> int:
    return max(1, PRECISIONS[precision].bits // 8)


def work_of(operation: str, precision: str, dims: dict[str, int]) -> tuple[float, float]:
    """(FLOPs, minimal bytes moved) of one call, as the benchmarks count them."""
    eb = element_bytes(precision)
    if operation == "gemm":
        b, m, n, k = dims["batch"], dims["m"], dims["n"], dims["k"]
        return 2.0 * b * m * n * k, float(b * (m * k + k * n + m * n) * eb)
    if operation == "gemv":
        m, n = dims["m"], dims["n"]
        return 2.0 * m * n, float((m * n + m + n) * eb)
    flops_per, arrays = STREAM_COUNTS[operation] if operation in STREAM_COUNTS else BLAS_COUNTS[operation]
    n = dims["n"]
    return float(flops_per * n), float(arrays * n * eb)


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _int(value: object, default: int | None = None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


@dataclass
class Inputs:
    """Everything a Predictor needs; leave-one-out builds copies with one point removed."""

    name: str
    device_type: str
    gemm: list[Point] = field(default_factory=list)  # square sweep and shape families
    blas: list[Point] = field(default_factory=list)
    stream: list[Point] = field(default_factory=list)
    tiers: Tiers | None = None
    tier_names: tuple[str, ...] = ()
    launch_floor_s: dict[str, float] = field(default_factory=dict)  # back to back, per operation family
    peak_gflops_theoretical: dict[str, float] = field(default_factory=dict)
    bandwidth_gbps_theoretical: float | None = None
    stream_dtype: str = "fp64"
    isolated_floor_s: dict[str, float] = field(default_factory=dict)  # each call synchronised
    memory: dict[str, Any] = field(default_factory=dict)  # the file's memory section, for its tier figures
    gpu_sms: int | None = None  # streaming multiprocessors (GPUs): the wave quantisation of GEMM tiles
    blas_threads: int = 1  # threads the framework's BLAS calls use (CPUs)
    framework: str = ""  # numpy, pytorch: what ran the calibration (the whole-layer check runs the same)
    op_threads: dict[str, int] = field(default_factory=dict)  # per BLAS operation, the threads its calls used
    nn: dict[str, list[Point]] = field(default_factory=dict)  # conv2d and sdpa layers (hwcal.model.nn)
    flagged_left_out: list[Point] = field(default_factory=list)  # flagged points quiet neighbours bracket

    def without(self, point: Point) -> Inputs:
        return replace(self, gemm=[p for p in self.gemm if p is not point],
                       blas=[p for p in self.blas if p is not point], stream=[p for p in self.stream if p is not point],
                       nn={op: [p for p in pts if p is not point] for op, pts in self.nn.items()})


def _warm(rec: dict[str, Any], gpu: bool) -> bool:
    """Whether a GEMM's operands stayed warm between calls: as filed (``operands``), else as hwcal measured
    before it filed it (GPUs rotated operand sets through L2 for every GEMM, CPUs never)."""
    operands = rec.get("operands")
    return operands != "rotated" if isinstance(operands, str) else not gpu


def _gemm_points(doc: dict[str, Any]) -> list[Point]:
    points: list[Point] = []
    gpu = (doc.get("key") or {}).get("device_type") == "gpu"
    for rec in doc.get("gemm") or []:
        prec, n, gflops = rec.get("precision"), _int(rec.get("n")), _num(rec.get("gflops_best"))
        if prec not in PRECISIONS or n is None or gflops is None or rec.get("verified") is False:
            continue
        flops, bytes_moved = work_of("gemm", prec, {"m": n, "n": n, "k": n, "batch": 1})
        points.append(Point(SQUARE, prec, (("m", n), ("n", n), ("k", n), ("batch", 1)), flops, bytes_moved,
                            flops / (gflops * 1e9), "gemm", _warm(rec, gpu), rec.get("flagged") is True))
    for rec in doc.get("gemm_shapes") or []:
        prec, fam, gflops = rec.get("precision"), rec.get("family"), _num(rec.get("gflops_best"))
        m, n, k = (_int(rec.get(x)) for x in ("m", "n", "k"))
        b = _int(rec.get("batch"), 1)
        if (prec not in PRECISIONS or fam not in GEMM_FAMILIES or None in (m, n, k, b) or gflops is None
                or rec.get("verified") is False):
            continue
        dims = {"m": m, "n": n, "k": k, "batch": b}
        flops, bytes_moved = work_of("gemm", prec, dims)  # type: ignore[arg-type]
        points.append(Point(fam, prec, tuple(dims.items()), flops, bytes_moved,  # type: ignore[arg-type]
                            flops / (gflops * 1e9), "gemm_shapes", _warm(rec, gpu), rec.get("flagged") is True))
    return points


def _blas_points(doc: dict[str, Any]) -> list[Point]:
    points: list[Point] = []
    for rec in doc.get("blas") or []:
        op, prec, n = rec.get("operation"), rec.get("precision"), _int(rec.get("n"))
        if op not in BLAS_OPS or prec not in PRECISIONS or n is None or rec.get("verified") is False:
            continue
        dims = {"m": _int(rec.get("m"), n), "n": n} if op == "gemv" else {"n": n}
        flops, bytes_moved = work_of(op, prec, dims)  # type: ignore[arg-type]
        gbps, gflops = _num(rec.get("gbps_best")), _num(rec.get("gflops_best"))
        filed_bytes, filed_flops = _num(rec.get("bytes")), _num(rec.get("flops"))
        if gbps and filed_bytes:
            seconds = filed_bytes / (gbps * 1e9)
        elif gflops and filed_flops:
            seconds = filed_flops / (gflops * 1e9)
        else:
            continue
        points.append(Point(op, prec, tuple(dims.items()), flops, bytes_moved, seconds, "blas",  # type: ignore[arg-type]
                            flagged=rec.get("flagged") is True))
    return points


def _stream_points(memory: dict[str, Any], dtype: str) -> list[Point]:
    points: list[Point] = []
    for rec in memory.get("sweep") or []:
        kernel, n, gbps = rec.get("kernel"), _int(rec.get("n")), _num(rec.get("gbps_best"))
        bytes_per_pass = _num(rec.get("bytes_per_pass"))
        if kernel not in STREAM_KERNELS or n is None or gbps is None or rec.get("verified") is False:
            continue
        flops, bytes_moved = work_of(kernel, dtype, {"n": n})
        bytes_moved = bytes_per_pass or bytes_moved
        points.append(Point(kernel, dtype, (("n", n),), flops, bytes_moved, bytes_moved / (gbps * 1e9),
                            "memory.sweep", flagged=rec.get("flagged") is True))
    return points


def _positions(p: Point, q: Point) -> tuple[str, float, float] | None:
    """The series ``p`` and ``q`` share and where each lies along it, or None when they share none: a BLAS,
    STREAM or square-GEMM series by bytes; a GEMM shape line along the one dimension in which the two differ
    (M at fixed N and K, say), so each dimension is a series of its own."""
    if (p.family, p.precision, p.source) != (q.family, q.precision, q.source):
        return None
    if p.source != "gemm_shapes":
        return "bytes", p.bytes, q.bytes
    a, b = dict(p.dims), dict(q.dims)
    differ = [d for d in a if a[d] != b.get(d)]
    return (differ[0], a[differ[0]], b[differ[0]]) if len(differ) == 1 else None


def prefer_unflagged(points: list[Point]) -> tuple[list[Point], list[Point]]:
    """(points kept, flagged points left out): a flagged point goes where its nearest points on both sides along
    one of its series are unflagged (``_positions``: a quiet M = 2 above and a quiet point of another N below do
    not bracket an M = 1). One at either end of its series, or next to another flagged point, stays: a run of
    flagged sizes left out would be interpolated across, and on the Sapphire Rapids guest the quiet ends of one
    (an add series flagged from 32 KiB to 1 MiB for the threads' slow wake-up) lay in L1 and L3, which put the
    L2 sizes between at a quarter of the rate they run at; the flagged figures themselves were within 1 %."""
    out: list[Point] = []
    for p in (p for p in points if p.flagged):
        nearest: dict[tuple[str, bool], tuple[float, Point]] = {}  # (series, above) -> (distance, point)
        for q in points:
            at = _positions(p, q) if q is not p else None
            if at is None or at[1] == at[2] or min(at[1], at[2]) <= 0:
                continue
            side, distance = (at[0], at[2] > at[1]), abs(math.log(at[2] / at[1]))
            if side not in nearest or distance < nearest[side][0]:
                nearest[side] = (distance, q)
        series = {s for s, _ in nearest}
        if any(all((s, up) in nearest and not nearest[s, up][1].flagged for up in (True, False)) for s in series):
            out.append(p)
    gone = {id(p) for p in out}
    return [p for p in points if id(p) not in gone], out


def inputs_of(doc: dict[str, Any], name: str = "") -> Inputs:
    """The prediction inputs of a format-2 calibration document."""
    key = doc.get("key") or {}
    memory: dict[str, Any] = doc["memory"] if isinstance(doc.get("memory"), dict) else {}
    dtype: str = memory["dtype"] if memory.get("dtype") in PRECISIONS else "fp64"
    tiers = tiers_of(memory)
    floor_section: dict[str, Any] = doc["launch_floors"] if isinstance(doc.get("launch_floors"), dict) else {}
    floors = {op: float(v["seconds_min"]) for op, v in floor_section.items()
              if isinstance(v, dict) and _num(v.get("seconds_min"))}
    isolated = {op: float(v["isolated"]["seconds_min"]) for op, v in floor_section.items()
                if isinstance(v, dict) and isinstance(v.get("isolated"), dict)
                and _num(v["isolated"].get("seconds_min"))}
    gpu = (doc.get("metadata") or {}).get("gpu")
    threads = [t for rec in doc.get("blas") or [] if (t := _int(rec.get("threads")))]
    op_threads: dict[str, int] = {}
    for rec in doc.get("blas") or []:
        if (t := _int(rec.get("threads"))) and rec.get("operation") in BLAS_OPS:
            op_threads[rec["operation"]] = max(op_threads.get(rec["operation"], 1), t)
    pm = doc.get("precision_matrix") or {}
    theoretical = {p: float(v) for p, v in (pm.get("theoretical_peaks") or {}).items() if _num(v)}
    gemm, gemm_out = prefer_unflagged(_gemm_points(doc))
    blas, blas_out = prefer_unflagged(_blas_points(doc))
    stream, stream_out = prefer_unflagged(_stream_points(memory, dtype))
    return Inputs(
        name=name or f"{key.get('hardware_id', '?')} {key.get('power_mode', '?')} {key.get('framework', '?')}",
        device_type=str(key.get("device_type", "")),
        gemm=gemm, blas=blas, stream=stream, flagged_left_out=[*gemm_out, *blas_out, *stream_out],
        tiers=tiers[0] if tiers else None, tier_names=tiers[1] if tiers else (),
        launch_floor_s=floors, peak_gflops_theoretical=theoretical,
        bandwidth_gbps_theoretical=_num(doc.get("theoretical_bandwidth_gbps")), stream_dtype=dtype,
        isolated_floor_s=isolated, memory=memory,
        gpu_sms=_int(gpu.get("sm_count")) if isinstance(gpu, dict) else None,
        blas_threads=max(threads, default=1), framework=str(key.get("framework", "")), op_threads=op_threads,
        nn=nn_points(doc))
