"""Format 2's ``operation_profiles``: hwcal's measurements in the shape the original loader reads.

Pure functions over a format-1 document. One profile per operation and size, keyed as the old
calibrator keyed them (operation type, then the sorted ``extra_params`` as ``k=v``, joined with ``_``),
with one ``precision_results`` entry per precision tried at that size.

The original ``get_operation(type, **params)`` returns the first profile of a type whose
``extra_params`` match, else the first of the type, so the FIRST profile of each type is its
representative one:

- ``blas3_gemm``, ``blas1_*``, ``blas2_gemv``: the size with the highest GFLOPS among those whose
  efficiency is valid for the old models (in (0, 1]); the highest GFLOPS when none is;
- ``stream_*``: the DRAM plateau size (``memory.plateau``) whose bandwidth is closest to the plateau's
  median (a valid efficiency preferred); without a plateau the largest STREAM-valid size, else the largest.

The remaining profiles of a type follow in size order.
"""

from __future__ import annotations

import statistics
from typing import Any

from hwcal.precisions import PRECISIONS, canonical_sorted

STREAM_KERNELS = ("copy", "scale", "add", "triad")
STREAM_ARRAYS = {"copy": 2, "scale": 2, "add": 3, "triad": 3}  # STREAM's byte counting
STREAM_FLOPS_PER_ELEMENT = {"copy": 0, "scale": 1, "add": 1, "triad": 2}
BLAS_TYPES = {"dot": "blas1_dot", "axpy": "blas1_axpy", "scal": "blas1_scal", "gemv": "blas2_gemv"}
TYPE_ORDER = ("stream_copy", "stream_scale", "stream_add", "stream_triad", "blas1_dot", "blas1_axpy",
              "blas1_scal", "blas2_gemv", "blas3_gemm", "conv2d", "depthwise_conv", "attention", "layernorm", "softmax",
              "gelu")


def profile_key(operation_type: str, extra_params: dict[str, Any]) -> str:
    """The old calibrator's key: the type, then the sorted extra_params as ``k=v``, joined with ``_``."""
    return "_".join([operation_type, *(f"{k}={v}" for k, v in sorted(extra_params.items()))])


def valid_efficiency(value: object) -> bool:
    """What the original CPU mapper accepts: a number in (0, 1]."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value <= 1.0


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _element_bytes(precision: str) -> int:
    p = PRECISIONS.get(precision)
    return p.bits // 8 if p else 4


def _calls_per_round(rec: dict[str, Any], flops_per_call: float | None) -> float:
    """Calls timed per round: the record's own count, else derived from its work and best rate
    (1 when ``time_s`` is already per call)."""
    for name in ("launches_per_round", "passes_per_round", "calls_per_round"):
        if isinstance(rec.get(name), int) and rec[name] > 0:
            return rec[name]
    t_min, rate = _num((rec.get("time_s") or {}).get("min")), _num(rec.get("gflops_best"))
    if flops_per_call and t_min and rate:
        return max(1, round(t_min * rate * 1e9 / flops_per_call))
    return 1


def _latencies(time_s: dict[str, Any] | None, calls: float) -> dict[str, float]:
    """Per-call latency in ms from per-round seconds; 0.0 where a statistic was not recorded (the
    original tool's "unknown")."""
    t = time_s or {}
    out = {}
    for name, stat in (("mean", "mean"), ("std", "stddev"), ("min", "min"), ("max", "max")):
        v = _num(t.get(stat))
        out[f"{name}_latency_ms"] = v / calls * 1e3 if v is not None else 0.0
    return out


def _result(precision: str, *, gflops: float, eff: float | None, lat: dict[str, float], size: int, trials: int,
            ai: float, gbps: float, speedup: float | None) -> dict[str, Any]:
    return {"precision": precision, "supported": True, "failure_reason": None, "measured_gops": gflops,
            "efficiency": eff, **lat, "speedup_vs_fp32": speedup, "test_size": size, "num_trials": trials,
            "arithmetic_intensity": ai, "achieved_bandwidth_gbps": gbps}


def _profile(op_type: str, best: dict[str, Any], *, memory_bound: bool, batch: int, in_shape: list[int],
             out_shape: list[int], extra: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """A profile whose summary figures are those of its best precision's result ``best``."""
    return {
        "operation_type": op_type,
        "measured_gflops": best["measured_gops"],
        "efficiency": best["efficiency"] if best["efficiency"] is not None else 0.0,
        "achieved_bandwidth_gbps": best["achieved_bandwidth_gbps"],
        "memory_bound": memory_bound,
        "compute_bound": not memory_bound,
        "arithmetic_intensity": best["arithmetic_intensity"],
        "batch_size": batch,
        "input_shape": in_shape,
        "output_shape": out_shape,
        **{k: best[k] for k in ("mean_latency_ms", "std_latency_ms", "min_latency_ms", "max_latency_ms")},
        "num_trials": best["num_trials"],
        "extra_params": {k: v for k, v in extra.items() if v is not None},
        "precision_results": results,
    }


def _speedups(results: dict[str, dict[str, Any]]) -> None:
    fp32 = results.get("fp32", {}).get("measured_gops")
    for r in results.values():
        if r.get("supported"):
            r["speedup_vs_fp32"] = r["measured_gops"] / fp32 if fp32 else None


def _gemm_group(recs: list[dict[str, Any]], unsupported: dict[str, str], *, m: int, n: int, k: int, batch: int,
                size: int, env: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """One ``blas3_gemm`` profile: every precision measured at one shape, and those that cannot run."""
    results: dict[str, dict[str, Any]] = {}
    kernels: dict[str, Any] = {}
    for rec in recs:
        p = rec["precision"]
        flops = _num(rec.get("flops")) or 2.0 * m * n * k * batch
        bytes_ = _num(rec.get("bytes")) or batch * (m * k + k * n + m * n) * _element_bytes(p)
        ai = _num(rec.get("arithmetic_intensity")) or flops / bytes_
        gflops = float(rec["gflops_best"])
        results[p] = _result(p, gflops=gflops, eff=_num(rec.get("efficiency")),
                             lat=_latencies(rec.get("time_s"), _calls_per_round(rec, flops)), size=size,
                             trials=int(rec.get("rounds") or 0), ai=ai, gbps=_num(rec.get("gbps_best")) or gflops / ai,
                             speedup=None)
        kernels[p] = rec.get("kernel")
    _speedups(results)
    best = max(results.values(), key=lambda r: r["measured_gops"])
    for p, reason in unsupported.items():
        results.setdefault(p, {"precision": p, "supported": False, "failure_reason": reason})
    three_d = batch > 1
    return _profile("blas3_gemm", best, memory_bound=False, batch=batch,
                    in_shape=[batch, m, k] if three_d else [m, k], out_shape=[batch, m, n] if three_d else [m, n],
                    extra={**extra, "operation": "gemm", "blas_level": 3, **env, "kernel": kernels[best["precision"]],
                           "best_precision": best["precision"]},
                    results={p: results[p] for p in canonical_sorted(results)})


def gemm_profiles(doc: dict[str, Any], unsupported: dict[str, str], env: dict[str, Any]) -> list[dict[str, Any]]:
    """Square GEMMs (``gemm``) by n, then the shaped ones (``gemm_shapes``) by family and shape."""
    square: dict[int, list[dict[str, Any]]] = {}
    for rec in doc.get("gemm") or []:
        square.setdefault(int(rec["n"]), []).append(rec)
    out = [_gemm_group(recs, unsupported, m=n, n=n, k=n, batch=1, size=n, env=env, extra={"size": n})
           for n, recs in sorted(square.items())]
    shaped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for rec in doc.get("gemm_shapes") or []:
        shape = (str(rec.get("family")), int(rec["m"]), int(rec["n"]), int(rec["k"]), int(rec.get("batch") or 1),
                 rec.get("layout"))
        shaped.setdefault(shape, []).append(rec)
    for (family, m, n, k, batch, layout), recs in sorted(shaped.items(), key=lambda kv: (*kv[0][:5], str(kv[0][5]))):
        out.append(_gemm_group(recs, unsupported, m=m, n=n, k=k, batch=batch, size=max(m, n, k), env=env,
                               extra={"family": family, "m": m, "n": n, "k": k, "batch": batch, "layout": layout}))
    return out


def _blas_efficiency(rec: dict[str, Any]) -> tuple[float | None, str]:
    """Bandwidth efficiency against the right ceiling: the measured bandwidth of the tier the call's working
    set lives in, on the threads it ran on (``efficiency``, from the memory system); without it the spec's
    bandwidth (DRAM sizes), else the single-thread DRAM triad where that is a valid ceiling (<= 1)."""
    # Each only where it is a share of its ceiling, (0, 1]: a multi-threaded BLAS over a single-thread triad
    # read 1.42-1.75 in earlier files, and a figure above its tier's roof files no tier efficiency.
    for field, basis in (("efficiency", "measured_tier_bandwidth"), ("efficiency_vs_theoretical",
                                                                    "theoretical_bandwidth"),
                         ("efficiency_vs_measured_dram", "measured_dram_bandwidth")):
        value = _num(rec.get(field))
        if valid_efficiency(value):
            return value, basis
    return None, "none"


def blas_profiles(doc: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    """``blas`` records (dot, axpy, scal, gemv) as ``blas1_*`` / ``blas2_gemv`` profiles by size."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for rec in doc.get("blas") or []:
        op = rec.get("operation")
        if op in BLAS_TYPES:
            n = int(rec["n"])
            groups.setdefault((op, int(rec.get("m") or n) if op == "gemv" else 1, n), []).append(rec)
    out = []
    for (op, m, n), recs in sorted(groups.items(), key=lambda kv: (list(BLAS_TYPES).index(kv[0][0]), kv[0][1:])):
        results: dict[str, dict[str, Any]] = {}
        info: dict[str, tuple[Any, str]] = {}
        for rec in recs:
            p = rec["precision"]
            flops = _num(rec.get("flops"))
            gflops = float(rec["gflops_best"])
            ai = _num(rec.get("arithmetic_intensity"))
            if ai is None:
                ai = flops / rec["bytes"] if flops is not None and _num(rec.get("bytes")) else 0.0
            eff, basis = _blas_efficiency(rec)
            results[p] = _result(p, gflops=gflops, eff=eff, lat=_latencies(rec.get("time_s"),
                                 _calls_per_round(rec, flops)), size=n, trials=int(rec.get("rounds") or 0), ai=ai,
                                 gbps=_num(rec.get("gbps_best")) or (gflops / ai if ai else 0.0), speedup=None)
            info[p] = (rec.get("kernel"), basis)
        _speedups(results)
        best = max(results.values(), key=lambda r: r["measured_gops"])
        kernel, basis = info[best["precision"]]
        size = {"size": n} if op != "gemv" or m == n else {}
        shape = {"m": m, "n": n} if op == "gemv" else {}
        out.append(_profile(
            BLAS_TYPES[op], best, memory_bound=True, batch=1,
            in_shape=[m, n] if op == "gemv" else [n], out_shape=[m] if op == "gemv" else [1] if op == "dot" else [n],
            extra={**size, **shape, "operation": op, "blas_level": 2 if op == "gemv" else 1, **env, "kernel": kernel,
                   "best_precision": best["precision"], "efficiency_basis": basis},
            results={p: results[p] for p in canonical_sorted(results)}))
    return out


def _plateau_median(memory: dict[str, Any], kernel: str) -> float | None:
    """The DRAM plateau's median bandwidth of ``kernel``, unrounded, from the sweep entries it names."""
    sizes = set((memory.get("plateau") or {}).get(kernel, {}).get("array_bytes") or [])
    values = [e["gbps_best"] for e in memory.get("sweep") or [] if e.get("kernel") == kernel
              and e.get("array_bytes") in sizes]
    return statistics.median(values) if values else None


def stream_profiles(doc: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    """``memory.sweep`` entries as ``stream_*`` profiles. Efficiency is the bandwidth against the memory
    system's roof of the tier the arrays live in (the entry's own, in (0, 1]), else against the spec's
    (``theoretical_bandwidth_gbps``), else against the kernel's own measured DRAM plateau, the first of them
    that is a share of its ceiling (``efficiency_basis`` says which; an in-cache size is above the DRAM ones,
    so none then). FLOPs per byte by STREAM's count."""
    memory = doc.get("memory") or {}
    dtype = str(memory.get("dtype") or "fp64")
    eb = int(memory.get("element_bytes") or _element_bytes(dtype))
    spec_bw = _num(doc.get("theoretical_bandwidth_gbps"))
    out = []
    for entry in sorted(memory.get("sweep") or [], key=lambda e: (STREAM_KERNELS.index(e["kernel"]), e["n"])):
        kernel = entry["kernel"]
        gbps = float(entry["gbps_best"])
        plateau = _plateau_median(memory, kernel)
        candidates = ((_num(entry.get("efficiency")), "measured_tier_bandwidth"),
                      (gbps / spec_bw if spec_bw else None, "theoretical_bandwidth"),
                      (gbps / plateau if plateau else None, "measured_dram_plateau"))
        eff, basis = next(((e, b) for e, b in candidates if valid_efficiency(e)), (None, "none"))
        arrays, fpe = STREAM_ARRAYS[kernel], STREAM_FLOPS_PER_ELEMENT[kernel]
        ai = fpe / (arrays * eb)
        mib = entry.get("array_bytes", entry["n"] * eb) / 2**20
        result = _result(dtype, gflops=gbps * ai, eff=eff,
                         lat=_latencies(entry.get("time_s"), entry.get("passes_per_round") or 1), size=entry["n"],
                         trials=int(entry.get("rounds") or 0), ai=ai, gbps=gbps, speedup=None)
        out.append(_profile(
            f"stream_{kernel}", result, memory_bound=True, batch=1, in_shape=[entry["n"]], out_shape=[entry["n"]],
            extra={"size_mb": int(mib) if mib == int(mib) else mib, "kernel": kernel, **env, "num_arrays": arrays,
                   "num_memory_ops": arrays, "flops_per_element": fpe, "best_precision": dtype,
                   "level": entry.get("level"), "efficiency_basis": basis},
            results={dtype: result}))
    return out


def _representative(op_type: str, profiles: list[dict[str, Any]], memory: dict[str, Any]) -> dict[str, Any]:
    valid = [p for p in profiles if valid_efficiency(p["efficiency"])]
    if op_type.startswith("stream_"):
        kernel = op_type.removeprefix("stream_")
        median = _plateau_median(memory, kernel)
        if median is not None:
            sizes = set(memory["plateau"][kernel]["array_bytes"])
            eb = int(memory.get("element_bytes") or 8)
            on = [p for p in profiles if p["input_shape"][0] * eb in sizes]
            pool = [p for p in on if p in valid] or on
            return min(pool, key=lambda p: (abs(p["achieved_bandwidth_gbps"] - median), -p["input_shape"][0]))
        sweep = {e["n"]: e for e in memory.get("sweep") or []}
        pool = [p for p in profiles if sweep.get(p["input_shape"][0], {}).get("stream_valid")] or profiles
        return max(pool, key=lambda p: p["input_shape"][0])
    return max(valid or profiles, key=lambda p: p["measured_gflops"])


def operation_profiles(doc: dict[str, Any], unsupported: dict[str, str], env: dict[str, Any],
                       ordered: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Every profile, keyed the old way, types in a fixed order, each type's representative first. ``ordered``
    holds types whose profiles come already ordered (``hwcal.document.nn_profiles``: convolution, attention,
    fused ops)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for prof in [*stream_profiles(doc, env), *blas_profiles(doc, env), *gemm_profiles(doc, unsupported, env)]:
        by_type.setdefault(prof["operation_type"], []).append(prof)
    ordered = ordered or {}
    by_type.update(ordered)
    out: dict[str, Any] = {}
    for op_type in sorted(by_type, key=lambda t: TYPE_ORDER.index(t) if t in TYPE_ORDER else len(TYPE_ORDER)):
        profiles = by_type[op_type]
        first = profiles[0] if op_type in ordered else _representative(op_type, profiles, doc.get("memory") or {})
        for prof in [first, *(p for p in profiles if p is not first)]:
            key = profile_key(op_type, prof["extra_params"])
            out[key if key not in out else f"{key}_{len(out)}"] = prof
    return out
