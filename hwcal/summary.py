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
    lines = ["  ".join(c.rjust(w) if i in (2, 4, 5) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False)))
             + "  " + r[-1] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    sweep = [f"{p}: {reason}" for p, st in matrix["status"].items() for reason in st.get("sizes_skipped", [])]
    return ([ln.rstrip() for ln in lines] + [f"sweep: {s}" for s in sweep]
            + [f"warning: {w}" for w in doc.get("warnings", [])])
