"""The site's energy page: per hardware, the energy each power mode costs (GFLOPS/W per precision, DRAM
pJ/byte, idle W) in a table and an inline SVG chart: the view for choosing a mode by energy per operation.
Built from the index rows (each current calibration's ``energy`` summary, ``hwcal.report.energy``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hwcal.precisions import canonical_sorted
from hwcal.report.energy import mode_energy, unavailable_reason
from hwcal.site.html import PALETTE, esc, href, num, page, table

PATH = "energy.html"


def energy_summary(doc: dict[str, Any], mode: str, page_path: str) -> dict[str, Any] | None:
    """What the energy page keeps of one calibration (in the site's manifest row); None without energy."""
    found = mode_energy(doc, mode, page_path)
    if found is None:
        why = unavailable_reason(doc)
        return {"unavailable": why} if why else None
    return {"gpw": found.gflops_per_w, "gflops": found.gflops, "pjb": found.pj_per_byte_dram, "idle": found.idle_w,
            "sensor": found.sensor}


def bar_chart(title: str, unit: str, groups: list[str], series: dict[str, list[float | None]]) -> str:
    """Grouped bars (one group per power mode, one bar per precision), linear y from 0: the modes compared
    side by side at a glance. Inline SVG, no matplotlib: the page is rebuilt with the index."""
    values = [v for vs in series.values() for v in vs if v]
    if not values or not groups:
        return f'<p class="note">{esc(title)}: nothing measured.</p>'
    w, h, left, right, top, bottom = 720, 300, 70, 130, 20, 50
    top_value = max(values) * 1.1
    inner_w = w - left - right
    group_w = inner_w / len(groups)
    bar_w = group_w * 0.8 / max(1, len(series))

    def py(v: float) -> float:
        return top + (1 - v / top_value) * (h - top - bottom)

    ident = f"e-{abs(hash(title))}"
    out = [f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{ident}" '
           f'xmlns="http://www.w3.org/2000/svg"><title id="{ident}">{esc(title)}</title>',
           f'<rect x="{left}" y="{top}" width="{inner_w}" height="{h - top - bottom}" class="plot"/>']
    for i in range(5):
        v = top_value * i / 4
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{num(v, 3)}</text>')
    for g, name in enumerate(groups):
        out.append(f'<text x="{left + (g + 0.5) * group_w:.1f}" y="{h - bottom + 16}" text-anchor="middle">'
                   f'{esc(name)}</text>')
    out.append(f'<text x="14" y="{top + (h - top - bottom) / 2:.0f}" transform="rotate(-90 14 '
               f'{top + (h - top - bottom) / 2:.0f})" text-anchor="middle">{esc(unit)}</text>')
    for s, (label, vs) in enumerate(series.items()):
        colour = PALETTE[s % len(PALETTE)]
        out.append(f'<g class="series" data-series="{esc(label)}"><title>{esc(label)}</title>')
        for g, value in enumerate(vs):
            if not value:
                continue
            v = value
            x = left + g * group_w + group_w * 0.1 + s * bar_w
            out.append(f'<rect x="{x:.1f}" y="{py(v):.1f}" width="{bar_w:.1f}" height="{h - bottom - py(v):.1f}" '
                       f'fill="{colour}"><title>{esc(label)} {esc(groups[g])}: {num(v)} {esc(unit)}</title></rect>')
        ly = top + 14 + 16 * s
        out.append(f'</g><rect x="{w - right + 10}" y="{ly - 9}" width="12" height="10" fill="{colour}"/>'
                   f'<text x="{w - right + 28}" y="{ly}">{esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _hardware_block(hw: str, rows: list[Mapping[str, Any]]) -> str:
    measured = [r for r in rows if r["energy"] and "gpw" in r["energy"]]
    precisions = canonical_sorted({p for r in measured for p in r["energy"]["gpw"]})
    modes = [f"{r['mode']} {r['fw']}" for r in measured]
    head = ["power mode", "framework", "idle W", "DRAM pJ/byte", *[f"{p} GFLOPS/W" for p in precisions]]
    body = []
    for r in measured:
        e = r["energy"]
        link = f'<a href="{href(PATH, r["page"])}">{esc(r["mode"])}</a>'
        body.append([link, esc(r["fw"]), num(e.get("idle")), num(e.get("pjb")),
                     *[num(e["gpw"].get(p)) for p in precisions]])
    chart = bar_chart(f"{hw}: GFLOPS/W per power mode", "GFLOPS/W (GOPS/W for integers)", modes,
                      {p: [r["energy"]["gpw"].get(p) for r in measured] for p in precisions})
    sensors = sorted({r["energy"].get("sensor") or "" for r in measured} - {""})
    missing = [f'{esc(r["mode"])} {esc(r["fw"])}: {esc(r["energy"]["unavailable"])}' for r in rows
               if r["energy"] and "unavailable" in r["energy"]]
    notes = "".join(f"<li>{m}</li>" for m in missing)
    return (f'<section><h2>{esc(hw)}</h2>{chart}'
            + table(f"{hw}: energy per power mode", head, body, numeric=range(2, len(head)))
            + (f'<p class="sub">Sensor: {esc("; ".join(sensors))}</p>' if sensors else "")
            + (f'<p class="sub">No energy measured in:</p><ul>{notes}</ul>' if notes else "") + "</section>")


def energy_page(rows: Sequence[Mapping[str, Any]]) -> str:
    """``energy.html`` from the index rows: current calibrations only, grouped by hardware."""
    current = [r for r in rows if not r["sup"] and r.get("energy")]
    by_hw: dict[str, list[Mapping[str, Any]]] = {}
    for r in current:
        by_hw.setdefault(f"{r['dt']}/{r['hw']}", []).append(r)
    blocks = [_hardware_block(hw, rs) for hw, rs in sorted(by_hw.items())
              if any("gpw" in r["energy"] for r in rs)]
    unavailable = sum(1 for r in current if "unavailable" in r["energy"])
    intro = ('<p class="sub">Energy per operation of each power mode: GFLOPS per watt of every precision\'s '
             'sustained GEMM (GOPS/W for integers), the DRAM energy of STREAM copy (pJ/byte) and the idle power '
             'after a rest, as each calibration measured them (its page says the sensor, the windows and the '
             'static/dynamic fit).</p>')
    if unavailable:
        intro += f'<p class="sub">{unavailable} current calibration(s) could read no energy sensor.</p>'
    body = intro + ("".join(blocks) or '<p class="note">No calibration in this registry measured energy.</p>')
    return page("Energy per power mode", body, path=PATH)


def calibration_energy(doc: dict[str, Any]) -> str:
    """The energy section of a calibration's page: the sensor and method, per precision and the memory."""
    section = doc.get("energy")
    if not isinstance(section, dict):
        return '<p class="note">No energy measured (this calibration predates it, or the family was not run).</p>'
    if section.get("status") != "measured":
        return f'<p class="note">Energy unavailable: {esc(section.get("reason"))}</p>'
    per = section.get("pj_per_flop_by_precision") or {}
    dyn = section.get("pj_per_flop_dynamic_by_precision") or {}
    gpw = section.get("gflops_per_w_by_precision") or {}
    watts = section.get("watts_by_precision") or {}
    rows = [[esc(p), num(per.get(p)), num(dyn.get(p)), num(gpw.get(p)), num(watts.get(p))]
            for p in canonical_sorted(per)]
    fit = section.get("fit") or {}
    facts_html = (f'<p class="sub">Sensor: {esc(section.get("sensor"))}; {num(section.get("sample_hz"))} updates/s; '
                  f'windows of {num(section.get("window_s"))} s. Idle {num(section.get("idle_w"))} W after a rest; '
                  f'DRAM {num(section.get("pj_per_byte_dram"))} pJ/byte (copy); static (fit) '
                  f'{num(section.get("static_w"))} W, residual {num(fit.get("residual_rms_w"))} W.</p>'
                  f'<p class="note">{esc(section.get("method"))}</p>')
    return facts_html + table("Energy per precision (sustained GEMM)",
                              ["precision", "pJ/FLOP", "pJ/FLOP above idle", "GFLOPS/W", "W"], rows,
                              numeric=(1, 2, 3, 4))
