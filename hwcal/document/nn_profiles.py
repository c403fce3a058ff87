"""Operation profiles of the convolution, attention and fused-op sections, in the shape the original loader
reads, with the operation types of its own enum (``OperationType`` in its ``calibration/schema.py``):
``conv2d`` (dense and grouped layers, and conv+BN+ReLU blocks with ``extra_params.fused``), ``depthwise_conv``,
``attention``, ``layernorm`` (LayerNorm and RMSNorm, ``extra_params.norm``), ``softmax`` and ``gelu``. SiLU has
no type in that enum and stays in the ``fused_ops`` section only (a made-up type would never be asked for).

One profile per layer, layout, batch and variant, with one ``precision_results`` entry per precision timed.
The original ``get_operation(type)`` with no parameters returns the first profile of a type, which a model
uses for any layer of that type, so the first is a typical layer rather than the best: the one of median
efficiency (a valid one, in (0, 1], preferred; attention: among the backends torch picks by default).
"""

from __future__ import annotations

from typing import Any

from hwcal.document.operation_profiles import _latencies, _profile, _result, _speedups, valid_efficiency
from hwcal.precisions import canonical_sorted

NN_TYPES = ("conv2d", "depthwise_conv", "attention", "layernorm", "softmax", "gelu")
_SECTION_FAMILY = (("conv", "conv"), ("conv_bn_relu", "conv_bn_relu"), ("attention", "sdpa"), ("fused_ops", "fused"))


def _type_of(family: str, rec: dict[str, Any]) -> str | None:
    if family in ("conv", "conv_bn_relu"):
        return "depthwise_conv" if rec.get("kind") == "depthwise" else "conv2d"
    if family == "sdpa":
        return "attention"
    return {"layernorm": "layernorm", "rmsnorm": "layernorm", "softmax": "softmax", "gelu": "gelu"}.get(
        str(rec.get("op")))


def _shapes(family: str, rec: dict[str, Any]) -> tuple[int, list[int], list[int], int]:
    """(batch_size, input_shape, output_shape, test_size) as the original filed them."""
    if family in ("conv", "conv_bn_relu"):
        return rec["n"], [rec["n"], rec["c"], rec["h"], rec["w"]], [rec["n"], rec["k"], rec["p"], rec["q"]], rec["r"]
    if family == "sdpa":
        shape = [rec["batch"], rec["heads"], rec["seq_q"], rec["head_dim"]]
        return rec["batch"], shape, shape, rec["seq_k"]
    return 1, [rec["rows"], rec["cols"]], [rec["rows"], rec["cols"]], rec["cols"]


def _extra(family: str, rec: dict[str, Any]) -> dict[str, Any]:
    if family in ("conv", "conv_bn_relu"):
        extra = {k: rec[k] for k in ("n", "c", "h", "w", "k", "r", "s", "stride", "padding", "groups")}
        extra.update(layer=rec["name"], model=rec["model"], role=rec["role"], layout=rec["layout"])
        if family == "conv_bn_relu":
            extra.update(fused="bn_" + rec["variant"].partition(":")[2], bn_folded=rec["variant"].startswith("folded"))
        return extra
    if family == "sdpa":
        return {"layer": rec["name"], "model": rec["model"], "batch": rec["batch"], "heads": rec["heads"],
                "seq_q": rec["seq_q"], "seq_k": rec["seq_k"], "head_dim": rec["head_dim"], "causal": rec["causal"],
                "backend": rec["variant"], "default_backend": rec.get("default_backend")}
    extra = {"layer": rec["name"], "model": rec["model"], "rows": rec["rows"], "cols": rec["cols"], "op": rec["op"]}
    if rec["op"] in ("layernorm", "rmsnorm"):
        extra["norm"] = rec["op"]
    return extra


def _group(family: str, op_type: str, recs: list[dict[str, Any]], env: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    kept: dict[str, dict[str, Any]] = {}
    batch, in_shape, out_shape, size = _shapes(family, recs[0])
    for rec in recs:
        p = rec["precision"]
        results[p] = _result(p, gflops=float(rec.get("gflops_best") or 0.0), eff=rec.get("efficiency"),
                             lat=_latencies(rec.get("time_s"), 1), size=size, trials=int(rec.get("rounds") or 0),
                             ai=float(rec.get("arithmetic_intensity") or 0.0), gbps=float(rec["gbps_best"]),
                             speedup=None)
        kept[p] = rec
    _speedups(results)
    compute = [r for r in results.values() if r["measured_gops"] > 0]
    best = max(compute or results.values(), key=lambda r: (r["measured_gops"], r["achieved_bandwidth_gbps"]))
    rec = kept[best["precision"]]
    extra = {**_extra(family, rec), **env, "kernel": rec.get("kernel"), "best_precision": best["precision"],
             "efficiency_basis": f"{rec.get('tier')}_bandwidth" if rec.get("bound") == "memory" else "peak",
             "bound": rec.get("bound"), "tier": rec.get("tier"),
             "algorithm": rec.get("algorithm")}
    return _profile(op_type, best, memory_bound=rec.get("bound") == "memory", batch=batch, in_shape=in_shape,
                    out_shape=out_shape, extra=extra, results={p: results[p] for p in canonical_sorted(results)})


def _typical_first(op_type: str, profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The profile of median efficiency first (see the module docstring), the rest in section order."""
    pool = profiles
    if op_type == "attention":
        pool = [p for p in profiles if p["extra_params"].get("backend") == p["extra_params"].get("default_backend")] \
            or profiles
    if op_type == "conv2d":
        pool = [p for p in pool if "fused" not in p["extra_params"]] or pool
    pool = [p for p in pool if valid_efficiency(p["efficiency"])] or pool
    ranked = sorted(pool, key=lambda p: (p["efficiency"], p["measured_gflops"]))
    first = ranked[(len(ranked) - 1) // 2]  # the lower median
    return [first, *(p for p in profiles if p is not first)]


def nn_profiles(doc: dict[str, Any], env: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per operation type, its profiles, the typical one first."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for section, family in _SECTION_FAMILY:
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for rec in (doc.get(section) or {}).get("results") or []:
            op_type = _type_of(family, rec)
            if op_type is None or rec.get("verified") is False:
                continue
            key = (op_type, rec["name"], rec["layout"], rec["variant"], rec.get("n", rec.get("batch", 1)))
            groups.setdefault(key, []).append(rec)
        for key, recs in groups.items():
            by_type.setdefault(key[0], []).append(_group(family, key[0], recs, env))
    return {t: _typical_first(t, by_type[t]) for t in NN_TYPES if t in by_type}
