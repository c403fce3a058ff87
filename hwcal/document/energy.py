"""The ``energy`` section: energy per operation from the energy family's windows, and the static/dynamic
split fitted across them. Pure functions of ``EnergyRun``.

Per case the window's average power P over the rate it sustained: pJ/FLOP = P / (FLOP/s) (pJ per OP for
integers), pJ/byte = P / (DRAM bytes/s, STREAM's count); "dynamic" is the same above the idle power measured
after a rest, (P - idle) / rate. The fit is the roofline energy model (Choi, Vuduc et al., "A roofline model
of energy", IPDPS 2013) over every case, idle included:

    P = static_w + sum_p pJ/FLOP_p x FLOP/s_p + pJ/byte x byte/s

by least squares; a GEMM's bytes are its operands read and result written once per call. Each precision's
pJ/FLOP has one GEMM case, so the fit reproduces each GEMM's power; ``static_w`` and pJ/byte come from idle
and the memory kernels, which is what separates power that scales with work from power that scales with time.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from hwcal.document.precision import r4
from hwcal.measure.back_to_back import CHUNK_S
from hwcal.measure.energy import WARM_S
from hwcal.measure.energy_records import MIN_UPDATES, MIN_WINDOW_S, EnergyCase, EnergyRun
from hwcal.precisions import canonical_sorted

PJ = 1e12
MAX_CONDITION = 1e4  # of the column-scaled fit matrix: beyond this the split is not determined by the cases


def _method(run: EnergyRun) -> str:
    return (f"{run.meter.get('method', '')}. Each case runs back to back (synchronised every "
            f"~{CHUNK_S * 1e3:.0f} ms) after a {WARM_S:g} s warm-up, for a window of at least {MIN_WINDOW_S:g} s and "
            f"{MIN_UPDATES} sensor updates; power = energy between the first and last sensor update in the window "
            "over the time between them; pJ per FLOP (per OP for integers) = power / the FLOP rate of the same "
            "window; idle after a rest; a case with a source was measured there, not run again (a GEMM in the "
            "max-achievable search's sustained window, after warm_s seconds of the same calls)")


def _case_entry(c: EnergyCase) -> dict[str, Any]:
    entry: dict[str, Any] = {"case": c.case, "label": c.label, "seconds": r4(c.seconds), "watts": r4(c.watts),
                             "joules": r4(c.joules), "updates": c.updates, "update_hz": r4(c.update_hz, 3)}
    optional: dict[str, Any] = {
        "precision": c.precision or None, "kernel": c.kernel or None, "shape": dict(c.shape) if c.shape else None,
        "layout": c.layout or None, "launches": c.launches or None,
        "gflops": r4(c.flops_per_s / 1e9, 5) if c.flops_per_s else None,
        "gbps": r4(c.bytes_per_s / 1e9, 5) if c.bytes_per_s else None,
        "domains_w": {k: r4(v) for k, v in sorted(c.domains_w.items())} if c.domains_w else None,
        "max_error": float(f"{c.max_error:.3g}") if c.max_error is not None else None,
        "rest_s": c.rest_s, "warm_s": c.warm_s, "source": c.source or None}
    entry.update({k: v for k, v in optional.items() if v is not None})
    return entry


def fit_static_dynamic(cases: list[EnergyCase]) -> dict[str, Any]:
    """Least-squares fit of P = static_w + sum_p e_p F_p + e_b B over the cases; ``unavailable`` says why
    when the cases cannot separate the terms (no idle and fewer than two memory rates, say)."""
    gemm = canonical_sorted({c.precision for c in cases if c.case == "gemm" and c.precision})
    with_bytes = any(c.case == "stream" for c in cases)
    names = ["static_w", *([] if not with_bytes else ["pj_per_byte"]), *gemm]
    rows = []
    for c in cases:
        row = [1.0] + ([c.bytes_per_s] if with_bytes else []) + [c.flops_per_s if c.precision == p else 0.0
                                                                  for p in gemm]
        rows.append(row)
    a, p = np.array(rows, dtype=float), np.array([c.watts for c in cases], dtype=float)
    if len(cases) < len(names):
        return {"unavailable": f"{len(cases)} cases for {len(names)} terms"}
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    scaled = a / scale
    if np.linalg.matrix_rank(scaled) < len(names) or np.linalg.cond(scaled) > MAX_CONDITION:
        return {"unavailable": "the cases do not separate static from dynamic power (an idle window and a memory "
                               "kernel are needed beside the GEMMs)"}
    coef = np.linalg.lstsq(scaled, p, rcond=None)[0] / scale
    residual = p - a @ coef
    out: dict[str, Any] = {
        "model": "P = static_w + sum over precisions of pJ/FLOP x FLOP/s + pJ/byte x DRAM byte/s (least squares "
                 "over the cases, idle included)",
        "static_w": r4(float(coef[0])),
        "pj_per_flop_by_precision": {q: r4(float(coef[names.index(q)]) * PJ) for q in gemm},
        "residual_rms_w": r4(float(np.sqrt(np.mean(residual**2))), 3),
        "cases": len(cases),
    }
    if with_bytes:
        out["pj_per_byte"] = r4(float(coef[1]) * PJ)
    else:
        out["note"] = "no memory kernel measured: DRAM traffic not modelled, a GEMM's bytes fold into its pJ/FLOP"
    return out


def _per_precision(cases: list[EnergyCase], idle_w: float | None) -> dict[str, dict[str, float]]:
    gemm = [c for c in cases if c.case == "gemm" and c.precision and c.flops_per_s > 0]
    out: dict[str, dict[str, float]] = {"pj": {}, "dyn": {}, "gpw": {}, "w": {}}
    for c in gemm:
        p = c.precision or ""
        out["pj"][p] = r4(c.watts / c.flops_per_s * PJ)
        out["gpw"][p] = r4(c.flops_per_s / 1e9 / c.watts)
        out["w"][p] = r4(c.watts)
        if idle_w is not None:
            out["dyn"][p] = r4((c.watts - idle_w) / c.flops_per_s * PJ)
    return {k: {p: v[p] for p in canonical_sorted(v)} for k, v in out.items()}


def _memory(cases: list[EnergyCase], idle_w: float | None) -> dict[str, Any]:
    stream = {c.label.split()[0]: c for c in cases if c.case == "stream" and c.bytes_per_s > 0}
    by_kernel = {k: r4(c.watts / c.bytes_per_s * PJ) for k, c in stream.items()}
    main = stream.get("copy") or next(iter(stream.values()), None)
    out: dict[str, Any] = {"pj_per_byte_dram": by_kernel.get("copy", next(iter(by_kernel.values()), None))}
    if main is not None and idle_w is not None:
        out["pj_per_byte_dram_dynamic"] = r4((main.watts - idle_w) / main.bytes_per_s * PJ)
    if by_kernel:
        out["pj_per_byte_by_kernel"] = by_kernel
    return out


def _warnings(cases: list[EnergyCase], idle_w: float | None) -> list[str]:
    if idle_w is None:
        return []
    return [f"energy: {c.label} drew {c.watts:.4g} W, below the idle {idle_w:.4g} W measured after a rest: its "
            "dynamic energy is negative (the power cap moved, or idle was not idle)"
            for c in cases if c.case != "idle" and c.watts < idle_w]


def energy_section(run: EnergyRun | None) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``energy`` section and its warnings; None when the energy family did not run."""
    if run is None:
        return None, []
    if run.unavailable:
        return {"status": "unavailable", "reason": run.unavailable}, []
    cases = run.cases
    if not cases:
        why = "; ".join(run.skipped) or "no energy case was run"
        return {"status": "unavailable", "reason": f"no window measured: {why}", **run.meter}, []
    idle = next((c for c in cases if c.case == "idle"), None)
    idle_w = idle.watts if idle is not None else None
    per = _per_precision(cases, idle_w)
    fit = fit_static_dynamic(cases)
    section: dict[str, Any] = {
        "status": "measured",
        "method": _method(run),
        "sensor": run.meter.get("sensor"),
        "kind": run.meter.get("kind"),
        "sample_hz": r4(statistics.median(c.update_hz for c in cases), 3),
        "poll_hz": run.meter.get("poll_hz"),
        "window_s": run.window_s,
        "idle_w": r4(idle_w) if idle_w is not None else None,
        "pj_per_flop_by_precision": per["pj"],
        "pj_per_flop_dynamic_by_precision": per["dyn"],
        "gflops_per_w_by_precision": per["gpw"],
        "watts_by_precision": per["w"],
        **_memory(cases, idle_w),
        "static_w": fit.get("static_w"),
        "fit": fit,
        "cases": [_case_entry(c) for c in cases],
        "budget_s": run.budget_s,
        "spent_s": run.spent_s,
    }
    if run.skipped:
        section["skipped"] = list(run.skipped)
    if run.failure:
        section["failure"] = run.failure
    return section, _warnings(cases, idle_w)
