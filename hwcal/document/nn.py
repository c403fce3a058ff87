"""The ``conv``, ``conv_bn_relu``, ``attention`` and ``fused_ops`` sections: every timed layer with its method,
what ran it, and its efficiency against the right ceiling; and what was not timed, with why. Pure functions
of the records, the run's peaks and its ``memory`` section.

The ceiling is the roofline's: a layer whose arithmetic intensity (FLOPs per byte of least traffic) is below
the ridge of its precision's peak over the bandwidth of the tier its working set lives in
(``hwcal.document.tiers``) is memory-bound and set against that bandwidth; above it, against the peak. The
fused ops file no FLOPs and are always set against bandwidth.
"""

from __future__ import annotations

from typing import Any

from hwcal.document.precision import r4 as _r
from hwcal.document.precision import share
from hwcal.document.sections import flag_of
from hwcal.document.tiers import bandwidth_tier
from hwcal.measure.memsys import MemorySystem
from hwcal.measure.nn_grid import SOURCES
from hwcal.measure.nn_records import NnRecord, NnStatus, heuristic_case
from hwcal.precisions import PRECISIONS, canonical_sorted

SECTIONS = {"conv": "conv", "conv_bn_relu": "conv_bn_relu", "sdpa": "attention", "fused": "fused_ops"}
CONVENTIONS = {
    "conv": {"flops": "2*N*K*(C/groups)*R*S*P*Q (padding taps included)",
             "bytes": "input N*C*H*W + weights K*(C/groups)*R*S + output N*K*P*Q elements, once each"},
    "conv_bn_relu": {"flops": "the conv's, 2*N*K*(C/groups)*R*S*P*Q (batch norm and activation add traffic, "
                              "not counted FLOPs)",
                     "bytes": "the conv's, plus per filter 1 (folded bias) or 4 (BN mean, var, gamma, beta) "
                              "elements: the least traffic of the block, whichever way it runs"},
    "sdpa": {"flops": "4*B*H*D*pairs, pairs = Sq*Sk or, causal, sum_i min(i+1, Sk) (torch's top-left mask); the "
                      "softmax is not counted",
             "bytes": "Q, K, V and O once each"},
    "fused": {"flops": "none filed (bandwidth-bound)",
              "bytes": "input read and output written once, plus the norms' weight (and LayerNorm's bias)"},
}
METHOD = ("per call, best of the rounds (median beside it); each round is back-to-back calls then one device "
          "synchronisation, sized from one measured call; every result verified against fp64 computed without "
          "the kernel under test (verify_method). GPU convolutions: cuDNN benchmark mode on (the autotuned "
          "algorithm, the figure filed) and off (torch's default heuristic, in 'heuristic').")
_KEEP_DETAILS = ("path", "algorithm", "reorders_per_call", "cuda_kernels", "algorithm_unavailable")


def _f(x: float | None, digits: int = 5) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


def _ceiling(rec: NnRecord, peaks: dict[str, float], memory: dict[str, Any] | None,
             system: MemorySystem | None) -> dict[str, Any]:
    """Roofline classification and efficiency against the binding ceiling."""
    tier = bandwidth_tier(system, memory, rec.bytes, rec.threads)
    peak = peaks.get(rec.precision)
    ai = rec.flops / rec.bytes if rec.flops and rec.bytes else 0.0
    ridge = peak / tier.gbps if peak and tier.gbps else None
    memory_bound = rec.flops == 0 or (ridge is not None and ai < ridge) or (ridge is None and not peak)
    vs_peak = rec.gflops_best / peak if peak and rec.gflops_best else None
    vs_bandwidth = rec.gbps_best / tier.gbps if tier.gbps else None
    if memory_bound:
        efficiency = vs_bandwidth
        basis = (f"{tier.name} bandwidth {tier.gbps:.5g} GB/s ({tier.basis})" if tier.gbps
                 else f"none: {tier.basis}")
    else:
        efficiency = vs_peak
        basis = f"{rec.precision} peak {peak:.6g} GFLOPS (the run's reference peak)" if peak else "none: no peak"
    out = {"arithmetic_intensity": _r(ai) if rec.flops else None, "bound": "memory" if memory_bound else "compute",
           "ridge_flops_per_byte": _r(ridge) if ridge else None, "tier": tier.name,
           "tier_gbps": _f(tier.gbps), "tier_basis": tier.basis,
           "efficiency_vs_peak": share(vs_peak), "efficiency_vs_bandwidth": share(vs_bandwidth),
           "efficiency": share(efficiency), "efficiency_basis": basis}
    if efficiency is not None and out["efficiency"] is None:  # a share of its ceiling or none (``_warnings``)
        out["efficiency_note"] = (f"{efficiency:.3g}x its ceiling: the ceiling is wrong (or the tier misjudged), not "
                                  "the measurement; no efficiency filed")
    return out

def nn_entry(rec: NnRecord, peaks: dict[str, float], memory: dict[str, Any] | None,
             system: MemorySystem | None = None, flagged: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One record as its section entry (every figure per call)."""
    entry: dict[str, Any] = {
        "name": rec.name, "model": rec.source, "role": rec.role, "precision": rec.precision, "layout": rec.layout,
        "variant": rec.variant, **rec.dims, "flops": rec.flops, "bytes": rec.bytes,
        "element_bytes": rec.element_bytes,
        "gflops_best": _f(rec.gflops_best), "gflops_median": _f(rec.gflops_median),
        "gbps_best": _f(rec.gbps_best), "gbps_median": _f(rec.gbps_median),
        "time_s": {k: float(f"{v:.6g}") for k, v in rec.time_s.items()}, "time_per": "call",
        "launches_per_round": rec.launches_per_round, "rounds": rec.rounds, "warmup_rounds": rec.warmup_rounds,
        "cv": _r(rec.cv, 3), **_ceiling(rec, peaks, memory, system),
        "kernel": rec.kernel, **{k: rec.details[k] for k in _KEEP_DETAILS if k in rec.details},
        "modes": rec.modes, "threads": rec.threads, "verified": True, "max_error": float(f"{rec.max_error:.3g}"),
        "tolerance": float(f"{rec.tolerance:.3g}"), "verify_method": rec.verify_method,
    }
    if rec.heuristic is not None:
        entry["heuristic"] = {**rec.heuristic, **flag_of(heuristic_case(rec.case), flagged)}
        entry["heuristic_time_ratio"] = _r(rec.heuristic["time_s"]["min"] / rec.time_s["min"])
    if rec.family == "sdpa":
        entry["default_backend"] = rec.default_backend
        entry["is_default_backend"] = rec.default_backend == rec.variant if rec.default_backend else None
    if rec.device_event_ratio is not None:
        entry["device_event_ratio"] = _r(rec.device_event_ratio)
    entry.update(flag_of(rec.case, flagged))
    return entry


def _order(rec: NnRecord) -> tuple[Any, ...]:
    order = canonical_sorted(PRECISIONS)
    return (order.index(rec.precision), rec.layout, rec.name, rec.variant, sorted(rec.dims.items()))


def _cbr_vs_conv(entry: dict[str, Any], rec: NnRecord, convs: list[NnRecord]) -> None:
    """A conv+BN+ReLU block's time over the plain conv of the same layer, layout and precision, where timed."""
    alone = next((c for c in convs if c.name == rec.name and c.layout == rec.layout and c.precision == rec.precision
                  and c.dims.get("n") == rec.dims.get("n")), None)
    entry["folded"] = rec.variant.startswith("folded")
    entry["activation"] = rec.variant.partition(":")[2]
    entry["time_vs_conv_alone"] = _r(rec.time_s["min"] / alone.time_s["min"]) if alone else None


def _warnings(family: str, entry: dict[str, Any]) -> list[str]:
    note = entry.get("efficiency_note")
    if not note:
        return []
    what = " ".join(str(entry[k]) for k in ("name", "precision", "layout", "variant") if entry[k])
    return [f"{SECTIONS[family]}: {what}: {note} (against {entry['efficiency_basis']})"]


def nn_sections(records: list[NnRecord], statuses: list[NnStatus], peaks: dict[str, float],
                memory: dict[str, Any] | None, grid: str, system: MemorySystem | None = None,
                flagged: frozenset[str] = frozenset()) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The four sections (those a family of the run reached) and the warnings they raise."""
    sections: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    convs = [r for r in records if r.family == "conv"]
    for family, key in SECTIONS.items():
        mine = sorted((r for r in records if r.family == family), key=_order)
        status = [s for s in statuses if s.family == family]
        if not mine and not status:
            continue
        entries = []
        for rec in mine:
            entry = nn_entry(rec, peaks, memory, system, flagged)
            if family == "conv_bn_relu":
                _cbr_vs_conv(entry, rec, convs)
            warnings += _warnings(family, entry)
            entries.append(entry)
        sources = sorted({r.source for r in mine})
        sections[key] = {
            "grid": grid, "counting": CONVENTIONS[family], "method": METHOD,
            "sources": {s: SOURCES.get(s, s) for s in sources},
            "results": entries,
            "not_timed": [{"precision": s.precision, "variant": s.variant, "status": s.status, "reason": s.reason}
                          for s in status],
        }
    return sections, warnings
