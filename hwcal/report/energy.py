"""Energy across calibrations: two files side by side (``hwcal-compare``) and one hardware's power modes
(the site's energy page). Reads the ``energy`` section (``hwcal.document.energy``) only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwcal.precisions import canonical_sorted


@dataclass
class EnergyRow:
    metric: str  # "bf16 GFLOPS/W", "DRAM pJ/byte", "idle W"
    unit: str
    a: float | None
    b: float | None
    ratio: float | None  # B / A
    better: str  # "higher" or "lower": which way a change is an improvement


def measured(doc: dict[str, Any]) -> dict[str, Any] | None:
    """A document's measured energy section, or None (none filed, or unavailable)."""
    section = doc.get("energy")
    return section if isinstance(section, dict) and section.get("status") == "measured" else None


def unavailable_reason(doc: dict[str, Any]) -> str | None:
    section = doc.get("energy")
    if isinstance(section, dict) and section.get("status") == "unavailable":
        return str(section.get("reason") or "unavailable")
    return None


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _row(metric: str, unit: str, a: object, b: object, better: str) -> EnergyRow:
    va, vb = _num(a), _num(b)
    return EnergyRow(metric, unit, va, vb, vb / va if va and vb is not None else None, better)


def energy_rows(a: dict[str, Any], b: dict[str, Any]) -> list[EnergyRow]:
    """Per precision GFLOPS/W and pJ/FLOP, then DRAM pJ/byte and idle W, of A and B; [] when neither measured."""
    ea, eb = measured(a) or {}, measured(b) or {}
    if not ea and not eb:
        return []
    rows: list[EnergyRow] = []
    gpw_a, gpw_b = ea.get("gflops_per_w_by_precision") or {}, eb.get("gflops_per_w_by_precision") or {}
    pj_a, pj_b = ea.get("pj_per_flop_by_precision") or {}, eb.get("pj_per_flop_by_precision") or {}
    for p in canonical_sorted(set(gpw_a) | set(gpw_b)):
        rows.append(_row(f"{p} GFLOPS/W", "GFLOPS/W", gpw_a.get(p), gpw_b.get(p), "higher"))
        rows.append(_row(f"{p} pJ/FLOP", "pJ", pj_a.get(p), pj_b.get(p), "lower"))
    rows.append(_row("DRAM pJ/byte", "pJ", ea.get("pj_per_byte_dram"), eb.get("pj_per_byte_dram"), "lower"))
    rows.append(_row("idle", "W", ea.get("idle_w"), eb.get("idle_w"), "lower"))
    rows.append(_row("static (fit)", "W", ea.get("static_w"), eb.get("static_w"), "lower"))
    return [r for r in rows if r.a is not None or r.b is not None]


def verdict(row: EnergyRow) -> str:
    if row.ratio is None:
        return "missing in A" if row.a is None else "missing in B" if row.b is None else "-"
    if abs(row.ratio - 1.0) < 0.01:
        return "same"
    improved = row.ratio > 1 if row.better == "higher" else row.ratio < 1
    return "better" if improved else "worse"


@dataclass
class ModeEnergy:
    """One power mode of one hardware: the figures the energy page shows."""

    mode: str
    framework: str
    gflops_per_w: dict[str, float]
    gflops: dict[str, float]  # the GEMM rate of each energy window
    pj_per_byte_dram: float | None
    idle_w: float | None
    sensor: str
    page: str  # the calibration's page in the site


def mode_energy(doc: dict[str, Any], mode: str, page: str) -> ModeEnergy | None:
    section = measured(doc)
    if section is None:
        return None
    rates = {c["precision"]: float(c["gflops"]) for c in section.get("cases") or []
             if isinstance(c, dict) and c.get("case") == "gemm" and c.get("precision") and _num(c.get("gflops"))}
    return ModeEnergy(mode, str((doc.get("key") or {}).get("framework") or ""),
                      {p: float(v) for p, v in (section.get("gflops_per_w_by_precision") or {}).items()
                       if _num(v) is not None},
                      rates, _num(section.get("pj_per_byte_dram")), _num(section.get("idle_w")),
                      str(section.get("sensor") or ""), page)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def energy_lines(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The energy block of ``hwcal-compare``: a table of ``energy_rows``, or why a file has no energy."""
    rows = energy_rows(a, b)
    notes = [f"energy of {label}: unavailable: {why}" for label, doc in (("A", a), ("B", b))
             if (why := unavailable_reason(doc))]
    if not rows:
        return notes
    cells = [("energy", "A", "B", "B/A", "verdict")]
    cells += [(r.metric, _fmt(r.a), _fmt(r.b), f"{r.ratio:.3f}" if r.ratio is not None else "-", verdict(r))
              for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    lines = ["  ".join(c[0].ljust(widths[0]) if i == 0 else c[i].rjust(widths[i]) if i < 4 else c[i]
                       for i in range(5)).rstrip() for c in cells]
    return [*lines, *notes, "energy: GFLOPS/W higher is better; pJ and W lower (each file's own sensor and windows)"]


def run_summary_lines(doc: dict[str, Any]) -> list[str]:
    """The energy lines a calibration run ends with."""
    why = unavailable_reason(doc)
    if why:
        return [f"energy: unavailable: {why}"]
    section = measured(doc)
    if section is None:
        return []
    pj = section.get("pj_per_flop_by_precision") or {}
    gpw = section.get("gflops_per_w_by_precision") or {}
    per = "; ".join(f"{p} {pj[p]:.4g} pJ/FLOP ({gpw.get(p, 0):.4g} GFLOPS/W)" for p in canonical_sorted(pj))
    lines = [f"energy: {section.get('sensor')}; idle {_fmt(_num(section.get('idle_w')))} W, static (fit) "
             f"{_fmt(_num(section.get('static_w')))} W, DRAM {_fmt(_num(section.get('pj_per_byte_dram')))} pJ/byte"]
    if per:
        lines.append(f"energy per FLOP: {per}")
    lines += [f"energy: skipped {s}" for s in section.get("skipped") or []]
    return lines
