"""The table a calibration run ends with: per precision, peak, size, efficiency and status."""

from __future__ import annotations

from typing import Any

from hwcal.precisions import PRECISIONS


def summary_lines(doc: dict[str, Any]) -> list[str]:
    matrix = doc["precision_matrix"]
    peaks = matrix["peak_gflops_by_precision"]
    rows = [("precision", "status", "peak", "unit", "at n", "efficiency", "note")]
    for p, st in matrix["status"].items():
        unit = "GOPS" if PRECISIONS[p].is_integer else "GFLOPS"
        eff = matrix.get("efficiency_by_precision", {}).get(p)
        rows.append((
            p,
            st["status"],
            f"{peaks[p]:,.1f}" if p in peaks else "-",
            unit if p in peaks else "",
            str(matrix.get("peak_size_by_precision", {}).get(p, "-")),
            (f"{eff:.2f}" + (" (!)" if eff > 1.0 else "")) if eff is not None else "-",
            st.get("reason", "")[:90],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    numeric = (2, 4, 5)
    def cell(i: int, text: str) -> str:
        return text.rjust(widths[i]) if i in numeric else text.ljust(widths[i])

    lines = ["  ".join(cell(i, c) for i, c in enumerate(r[:-1])) + "  " + r[-1] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    sweep = [f"{p}: {reason}" for p, st in matrix["status"].items() for reason in st.get("sizes_skipped", [])]
    return ([ln.rstrip() for ln in lines] + [f"sweep: {s}" for s in sweep] + _memory_lines(doc)
            + [f"warning: {w}" for w in doc.get("warnings", [])])


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
    caches = [f"{name} {fig['gbps']:,.1f}" for name, fig in memory.get("levels", {}).items() if name != "dram"]
    if caches:
        line += f"; in cache: {', '.join(caches)} GB/s"
    if memory.get("threads"):
        line += f"; {memory['threads']} thread{'s' if memory['threads'] > 1 else ''}"
    return [line]
