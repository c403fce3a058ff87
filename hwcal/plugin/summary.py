"""The table a calibration run ends with: per precision, peak, size, efficiency and status."""

from __future__ import annotations

from typing import Any

from hwcal.document.format2 import efficiency_cell, precision_detail
from hwcal.document.memory_system import levels_view
from hwcal.precisions import rate_unit
from hwcal.report.energy import run_summary_lines as energy_lines


def summary_lines(doc: dict[str, Any]) -> list[str]:
    matrix = precision_detail(doc)
    peaks = doc["precision_matrix"]["peak_gflops_by_precision"]
    searched = doc.get("max_achievable") or {}
    sizes = matrix.get("peak_size_by_precision", {})
    rows = [("precision", "status", "peak", "unit", "at", "layout", "efficiency", "note")]
    for p, st in matrix["status"].items():
        unit = rate_unit(p)
        rows.append((
            p,
            st["status"],
            f"{peaks[p]:,.1f}" if p in peaks else "-",
            unit if p in peaks else "",
            _shape(searched[p]["shape"]) if p in searched else (f"n={sizes[p]}" if p in sizes else "-"),
            str(searched[p]["layout"] if p in searched else st.get("layout", "")),
            efficiency_cell(doc, p),
            st.get("reason", "")[:90],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    numeric = (2, 4, 6)
    def cell(i: int, text: str) -> str:
        return text.rjust(widths[i]) if i in numeric else text.ljust(widths[i])

    lines = ["  ".join(cell(i, c) for i, c in enumerate(r[:-1])) + "  " + r[-1] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    sweep = [f"{p}: {reason}" for p, st in matrix["status"].items() for reason in st.get("sizes_skipped", [])]
    return ([ln.rstrip() for ln in lines] + [f"sweep: {s}" for s in sweep] + _searched_lines(searched)
            + _ceiling_lines(doc)
            + _memory_lines(doc) + _operation_lines(doc) + energy_lines(doc) + _schedule_lines(doc)
            + [f"warning: {w}" for w in doc.get("warnings", [])])


def _schedule_lines(doc: dict[str, Any]) -> list[str]:
    """The run's target and the budgets it cut (``metadata.schedule``), one line."""
    plan = doc.get("metadata", {}).get("schedule")
    if not plan or plan.get("target_s") is None:
        return []
    cut = [f"{name} {g['nominal_s']:g} -> {g['budget_s']:.1f} s" for name, g in plan["families"].items()
           if g["scale"] < 1]
    text = f"schedule: target {plan['target_s']:g} s from the process's start, filed at {plan['filed_at_s']:.1f} s"
    return [text + (f"; budgets cut to keep it: {', '.join(cut)}" if cut else "; no budget cut")]


def _shape(shape: dict[str, int]) -> str:
    return f"{shape['m']}x{shape['n']}x{shape['k']}"


def _searched_lines(searched: dict[str, Any]) -> list[str]:
    """Which figure is the peak (the median of repeated bursts, per call with L2 flushed; files before that:
    one burst's mean), and the sustained one beside it,
    with the clock and power over them."""
    lines = []
    for p, r in searched.items():
        burst, held = r["burst"], r["sustained"]
        unit = rate_unit(p)
        if burst.get("bursts"):
            spread = f", spread {burst['spread']:.1%}" if burst.get("spread") is not None else ""
            head = (f"peak = median of {len(burst['bursts'])} bursts {r['peak_gflops']:,.0f} {unit}{spread} (best "
                    f"call {burst['max_gflops']:,.0f})")
        else:
            head = (f"peak = burst mean {burst['mean_gflops']:,.0f} {unit} (median {burst['median_gflops']:,.0f}, "
                    f"best call {burst['max_gflops']:,.0f})")
        text = f"max achievable {p}: {head} at {_shape(r['shape'])} {r['layout']}"
        if held.get("gflops"):
            text += f"; sustained {held['gflops']:,.0f} over {held['seconds']:.1f} s"
        for phase in ("burst", "sustained"):
            clock, power = r.get("clock_mhz", {}).get(phase, {}), r.get("power_w", {}).get(phase, {})
            if clock.get("median"):
                text += f"; {phase} SM clock {clock['median']:.0f} MHz"
            if power.get("median"):
                text += f", {power['median']:.0f} W"
            if clock.get("status") == "missing":
                text += f"; {phase} clock not sampled ({clock.get('reason', 'NVML missing')})"
        text += f"; {r['search']['shapes_tried']} shapes in {r['search']['seconds']:.1f} s"
        lines.append(text)
    return lines


def _ceiling_lines(doc: dict[str, Any]) -> list[str]:
    """The measured FMA ceiling beside the derived peak, and the GEMM's efficiency against each."""
    ceiling = (doc.get("metadata") or {}).get("compute_ceiling")
    if not isinstance(ceiling, dict):
        return []
    if ceiling.get("unavailable"):
        return [f"compute ceiling: not measured ({ceiling['unavailable']})"]
    matrix = precision_detail(doc)
    derived = matrix.get("efficiency_reference_gflops") or matrix.get("theoretical_peaks") or {}
    peak_eff = matrix.get("efficiency_by_precision") or {}
    parts = []
    for p, gflops in (ceiling.get("gflops") or {}).items():
        part = f"{p} {gflops:,.1f} GFLOPS"
        if p in derived:
            part += f" (derived peak {derived[p]:,.1f})"
        effs = [f"{e:.2f} of the derived peak" for e in [peak_eff.get(p)] if e is not None]
        effs += [f"{e:.2f} of the ceiling" for e in [(ceiling.get("efficiency_by_precision") or {}).get(p)]
                 if e is not None]
        if effs:
            part += f": GEMM {', '.join(effs)}"
        parts.append(part)
    head = (f"compute ceiling (measured FMA, {ceiling.get('threads')} threads, "
            f"{ceiling.get('duration_s', 0):.2f} s)")
    return [f"{head}: {'; '.join(parts)}"]


def _memory_lines(doc: dict[str, Any]) -> list[str]:
    """The STREAM result in one line: the sustained DRAM figure that is filed, then the cache levels."""
    memory = doc.get("memory")
    if not isinstance(memory, dict):
        return []
    sustained = memory.get("sustained_gbps")
    if sustained is None:
        line = "memory: no sustained DRAM figure (no triad with arrays >= 4x the last-level caches ran)"
    else:
        rule = memory.get("stream_rule", {})
        line = f"memory: sustained triad {sustained:,.1f} GB/s"
        if rule.get("min_array_bytes"):
            line += f" (DRAM: arrays >= {rule['min_array_bytes'] / 2**20:,.0f} MiB)"
        if memory.get("efficiency") is not None:
            line += f", {memory['efficiency']:.2f} of the spec's {doc.get('theoretical_bandwidth_gbps'):,.0f} GB/s"
    caches = [f"{name} {fig['gbps']:,.1f}" for name, fig in (memory.get("stream_levels") or {}).items()
              if name != "dram" and isinstance(fig, dict) and fig.get("gbps")]
    if caches:
        line += f"; in cache: {', '.join(caches)} GB/s"
    if memory.get("threads"):
        line += f"; {memory['threads']} thread{'s' if memory['threads'] > 1 else ''}"
    ci = memory.get("sustained_ci95_gbps")
    if isinstance(ci, list) and len(ci) == 2:
        half = (ci[1] - ci[0]) / 2
        rel = half / sustained if sustained else 0.0
        line += (f"; 95% CI [{ci[0]:,.1f}, {ci[1]:,.1f}] GB/s (+-{rel:.1%}, "
                 f"{memory.get('sustained_rounds', '?')} rounds)")
    return [line, *_memory_system_lines(memory)]


def _memory_system_lines(memory: dict[str, Any]) -> list[str]:
    """Per tier: one-core triad, all-core triad, latency; then the all-core STREAM aggregate."""
    tiers = []
    for name, level in levels_view(memory).items():
        parts = [f"{level[k]:,.1f} GB/s {what}" for k, what in (("triad_gbps", "1 core"),
                 ("allcore_triad_gbps", "all cores")) if level.get(k) is not None]
        if level.get("latency_ns") is not None:
            parts.append(f"{level['latency_ns']:,.1f} ns" + (" (huge pages)" if level.get("huge_pages") else ""))
        if parts:
            tiers.append(f"{name} {', '.join(parts)}")
    lines = [f"memory tiers: {'; '.join(tiers)}"] if tiers else []
    multi = memory.get("multicore")
    if isinstance(multi, dict) and multi.get("aggregate_gbps") is not None:
        eff = multi.get("scaling_efficiency")
        lines.append(f"all-core STREAM: {multi['aggregate_gbps']:,.1f} GB/s on {multi.get('threads')} cores"
                     + (f" (scaling efficiency {eff:.2f})" if eff is not None else ""))
    return lines


def _us(seconds: float | None) -> str:
    return f"{seconds * 1e6:,.2f}" if isinstance(seconds, (int, float)) else "-"


def _operation_lines(doc: dict[str, Any]) -> list[str]:
    """BLAS at the DRAM plateau (GB/s and / triad), the best GEMM per shape family, the launch floors."""
    lines: list[str] = []
    by_op: dict[str, list[str]] = {}
    for e in doc.get("blas") or []:
        if e.get("at_dram"):
            ratio = e.get("efficiency_vs_measured_dram")
            by_op.setdefault(e["operation"], []).append(
                f"{e['precision']} {e['gbps_best']:,.1f} GB/s" + (f" ({ratio:.2f} of triad)" if ratio is not None
                                                                  else ""))
    if by_op:
        lines.append("blas at DRAM: " + "; ".join(f"{op} {', '.join(v)}" for op, v in by_op.items()))
    best: dict[str, dict[str, Any]] = {}
    for e in doc.get("gemm_shapes") or []:
        if e["family"] not in best or e["gflops_best"] > best[e["family"]]["gflops_best"]:
            best[e["family"]] = e
    if best:
        lines.append("gemm shapes (best): " + "; ".join(
            f"{fam} {e['precision']} {e['gflops_best']:,.1f} GFLOPS at "
            f"{'b' + str(e['batch']) + 'x' if e['batch'] > 1 else ''}{e['m']}x{e['n']}x{e['k']}"
            + (f" ({e['efficiency']:.2f} of peak)" if e.get("efficiency") is not None else "")
            for fam, e in best.items()))
    floors = doc.get("launch_floors") or {}
    if floors:
        first = next(iter(floors.values()))
        pairs = [(op, f.get("seconds_min"), (f.get("isolated") or {}).get("seconds_min")) for op, f in floors.items()]
        lines.append("launch floors, back to back / isolated: "
                     + ", ".join(f"{op} {_us(b2b)} / {_us(isolated)}" for op, b2b, isolated in pairs)
                     + f" us ({first.get('framework')}, {first.get('device')})")
    return lines
