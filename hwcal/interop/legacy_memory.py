"""Memory measurements of an original calibration: its single-thread STREAM kernels, its multi-core
STREAM (``stream_multicore``) and its concurrent multi-engine STREAM (``stream_concurrent``).

Multi-core figures go to ``memory.multicore`` (the all-core fields of format 2) with the per-core and
scaling figures kept and the method stated: the original's aggregate is the *sum of per-core best rounds*,
an upper bound, not all bytes over a common wall time. CPU figures never become a GPU's bandwidth: a GPU
file's CPU part is filed under the host CPU's key (``host_cpu_memory``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwcal.interop.legacy_common import pos, rounded

STREAM_KERNELS = ("copy", "scale", "add", "triad")


def profiles(legacy: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The original file's operation profiles, sorted by their key."""
    ops = legacy.get("operation_profiles")
    return sorted((k, v) for k, v in ops.items() if isinstance(v, dict)) if isinstance(ops, dict) else []


def profiles_of(legacy: dict[str, Any], op_type: str) -> list[dict[str, Any]]:
    return [p for _, p in profiles(legacy) if p.get("operation_type") == op_type]


def time_s(r: dict[str, Any]) -> dict[str, float] | None:
    """Round times in seconds from the legacy milliseconds (no median or IQR were recorded)."""
    t = {"min": pos(r.get("min_latency_ms")), "max": pos(r.get("max_latency_ms")),
         "mean": pos(r.get("mean_latency_ms"))}
    if t["min"] is None or t["mean"] is None:
        return None
    out = {k: v / 1e3 for k, v in t.items() if v is not None}
    std = r.get("std_latency_ms")
    if isinstance(std, (int, float)) and not isinstance(std, bool) and std >= 0 and std == std:
        out["stddev"] = std / 1e3
    return {k: float(f"{v:.6g}") for k, v in out.items()}


def stream_records(legacy: dict[str, Any]) -> list[dict[str, Any]]:
    """The single-thread STREAM kernels (copy, scale, add, triad) as measured, per array size."""
    out = []
    for _, prof in profiles(legacy):
        kernel = str(prof.get("operation_type", "")).removeprefix("stream_")
        if kernel not in STREAM_KERNELS:
            continue
        params = prof.get("extra_params") or {}
        out.append({k: v for k, v in {
            "kernel": kernel, "size_mb": params.get("size_mb"), "arrays": params.get("num_arrays"),
            "gbps_mean": prof.get("achieved_bandwidth_gbps"), "rounds": prof.get("num_trials"),
            "time_s": time_s(prof), "device": params.get("device"),
        }.items() if v is not None})
    return sorted(out, key=lambda e: (str(e["kernel"]), e.get("size_mb") or 0))


@dataclass
class AllCore:
    """An all-core memory figure set for ``memory.multicore``, with what was found on the way."""

    section: dict[str, Any]
    faults: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _method(size_mb: object, rounds: object) -> str:
    arrays = f"{size_mb} MiB arrays per core" if size_mb else "arrays of unrecorded size"
    return ("original tool, stream_multicore: STREAM triad in numpy (float32, " + arrays + f", {rounds} timed "
            "rounds per core), one process per core pinned with sched_setaffinity and released together at a "
            "barrier, each on its own arrays; a core's figure is its best round, counting 3 arrays per triad "
            "(numpy's a[:] = b + q*c moves more through temporaries); aggregate = the sum of the per-core best "
            "rounds, an upper bound (the best rounds need not overlap in time), not all bytes over a common wall "
            "time; the one-core figure is one pinned process running alone before")


def multicore(prof: dict[str, Any]) -> AllCore | None:
    """``memory.multicore`` from a ``stream_multicore`` profile; None when it holds no positive figure."""
    params: dict[str, Any] = prof["extra_params"] if isinstance(prof.get("extra_params"), dict) else {}
    aggregate = pos(params.get("aggregate_bw_gbps")) or pos(prof.get("achieved_bandwidth_gbps"))
    if aggregate is None:
        return None
    cores = params.get("num_cores")
    threads = cores if isinstance(cores, int) and not isinstance(cores, bool) and cores >= 1 else None
    raw = params.get("per_core_bw_gbps")
    per_core = [rounded(float(v), 5) for v in raw if pos(v) is not None] if isinstance(raw, list) else []
    single = pos(params.get("single_core_bw_gbps"))
    out = AllCore({"threads": threads, "aggregate_gbps": rounded(aggregate),
                   "per_thread_gbps": per_core or None,
                   "scaling": ([{"threads": 1, "gbps": rounded(single)}] if single else [])
                   + ([{"threads": threads, "gbps": rounded(aggregate)}] if threads and threads > 1 else []),
                   "scaling_efficiency": rounded(aggregate / (threads * single), 4) if threads and single else None,
                   "method": _method(params.get("size_mb"), prof.get("num_trials"))})
    _check_multicore(out, raw, per_core, aggregate, threads, single)
    return out


def _check_multicore(out: AllCore, raw: object, per_core: list[float], aggregate: float, threads: int | None,
                     single: float | None) -> None:
    if isinstance(raw, list) and len(per_core) != len(raw):
        out.faults.append(f"stream_multicore: {len(raw) - len(per_core)} per-core figure(s) of 0 or not a number "
                          "(a core that failed) left out")
    if threads is not None and isinstance(raw, list) and len(raw) != threads:
        out.faults.append(f"stream_multicore: {threads} cores but {len(raw)} per-core figures")
    if per_core and abs(sum(per_core) - aggregate) > 1e-3 * aggregate:
        out.faults.append(f"stream_multicore: aggregate {aggregate:.4g} GB/s is not the sum of the per-core figures "
                          f"({sum(per_core):.4g} GB/s)")
    eff = out.section["scaling_efficiency"]
    if eff is not None and eff > 1.0:
        message = (f"all-core STREAM: scaling efficiency {eff:.3g} > 1 ({aggregate:.4g} GB/s over {threads} cores "
                   f"vs {single:.4g} GB/s on one): the one-core run was slower per core than the cores under load "
                   "(a clock still ramping up, schedutil?); the one-core figure is not a ceiling here")
        out.warnings.append(message)
        out.faults.append(message)


def concurrent(prof: dict[str, Any]) -> dict[str, Any]:
    """A ``stream_concurrent`` profile as recorded: per engine, GB/s alone and with all engines at once."""
    params: dict[str, Any] = prof["extra_params"] if isinstance(prof.get("extra_params"), dict) else {}

    def table(name: str) -> dict[str, float]:
        raw = params.get(name)
        return {str(k): float(v) for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                and v == v} if isinstance(raw, dict) else {}

    return {"engines": [str(e) for e in params.get("engines") or [] if isinstance(e, str)],
            "isolated_gbps": table("isolated"), "concurrent_gbps": table("concurrent"),
            "contention": table("contention"), "aggregate_concurrent_gbps": params.get("aggregate_concurrent_gbps"),
            "rounds": prof.get("num_trials"),
            "method": "original tool, stream_concurrent: STREAM triad (float32, 256 MiB arrays) on every engine, first "
                      "each alone (isolated), then all at once (concurrent); cpu = its stream_multicore aggregate, "
                      "gpu = a torch triad timed with perf_counter around synchronize, dla = a TensorRT "
                      "convolution; 0 = the engine failed"}


def concurrent_cpu(record: dict[str, Any], cores: int | None) -> AllCore | None:
    """The CPU engine of a concurrent STREAM as an all-core figure (only the aggregate was recorded)."""
    alone = pos(record["isolated_gbps"].get("cpu"))
    together = pos(record["concurrent_gbps"].get("cpu"))
    if alone is None and together is None:
        return None
    others = [e for e in record["engines"] if e != "cpu" and pos(record["isolated_gbps"].get(e))]
    method = ("original tool, stream_concurrent, cpu engine: its stream_multicore aggregate (sum of per-core best "
              "rounds, an upper bound) with no other engine running" + (f"; with {', '.join(others)} running at "
                                                                        f"once it reached {together:.4g} GB/s"
                                                                        if others and together else "")
              + "; per-core figures were not recorded")
    figure = alone if alone is not None else together or 0.0
    return AllCore({"threads": cores, "aggregate_gbps": rounded(figure), "per_thread_gbps": None, "scaling": [],
                    "scaling_efficiency": None, "method": method})


def concurrent_gpu_gbps(record: dict[str, Any]) -> float | None:
    """The GPU engine's triad GB/s when it ran alone (None: it failed, 0 recorded)."""
    return pos(record["isolated_gbps"].get("gpu"))
