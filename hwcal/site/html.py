"""HTML pieces of the static site: escaping, tables, the page shell, number formats and a light SVG chart.

Everything that comes from a registry file goes through ``esc`` (``html.escape``): a power mode or a
hardware name such as ``<script>`` is shown as text. Links are relative, so the site works from
``file://`` and from any folder of a web server; it loads nothing from outside itself.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import posixpath
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

SITE_TITLE = "hwcal registry"


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def href(from_page: str, to_path: str) -> str:
    """A relative, URL-quoted link from one site page to another site path (both relative to the root)."""
    rel = posixpath.relpath(to_path, posixpath.dirname(from_page) or ".")
    return esc(quote(rel))


def num(value: object, digits: int = 4) -> str:
    """4 significant digits, thousands separated; '-' when unknown."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "-" if value is None else esc(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def pct(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def short_date(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, AttributeError):
        return str(iso)


def js_data(value: Any) -> str:
    """JSON safe inside a script element or a .js file (no ``</script>``, no HTML comment openers)."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def table(caption: str, head: Sequence[str], rows: Iterable[Sequence[str]], *, row_header: bool = True,
          numeric: Sequence[int] = (), cls: str = "") -> str:
    """A table in a horizontally scrolling box; cells are HTML already (escape before); the first cell of
    each row is its header (``<th scope="row">``) unless ``row_header`` is off."""
    out = [f'<div class="scroll" tabindex="0" role="region" aria-label="{esc(caption)}">'
           f'<table class="{esc(cls)}"><caption>{esc(caption)}</caption><thead><tr>']
    out += [f'<th scope="col"{" class=num" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            attr = ' class="num"' if i in numeric else ""
            if i == 0 and row_header:
                cells.append(f'<th scope="row"{attr}>{cell}</th>')
            else:
                cells.append(f"<td{attr}>{cell}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def facts(pairs: Iterable[tuple[str, object]]) -> str:
    """A definition list of label/value pairs, values escaped; unknown values left out."""
    items = [f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs if v not in (None, "", [], {})]
    return f'<dl class="facts">{"".join(items)}</dl>' if items else ""


def page(title: str, body: str, *, path: str, scripts: Sequence[str] = (), nav: str = "") -> str:
    """A whole page: ``path`` is where it lies in the site (for the relative links to the assets)."""
    css = href(path, "assets/site.css")
    links = [("index.html", "All calibrations"), ("compare.html", "Compare"), ("energy.html", "Energy"),
             ("unreadable.html", "Unreadable files")]
    menu = " ".join(f'<a href="{href(path, p)}">{esc(t)}</a>' for p, t in links)
    tags = "".join(f'<script src="{href(path, s)}"></script>' for s in scripts)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · {SITE_TITLE}</title>"
        f'<link rel="stylesheet" href="{css}"></head>\n<body>'
        f'<header class="top"><a class="brand" href="{href(path, "index.html")}">{SITE_TITLE}</a>'
        f'<nav aria-label="site">{menu}</nav></header>\n<main id="main">{nav}<h1>{esc(title)}</h1>\n{body}\n</main>'
        f"{tags}</body></html>\n")


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000080"]


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        ticks += [m * 10.0**e for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
    if len(ticks) < 3:  # a narrow range: five steps, evenly spaced on the log scale
        ticks = [lo * (hi / lo) ** (i / 4) for i in range(1, 4)]
    return ticks


def time_chart(title: str, unit: str, series: dict[str, list[tuple[float, float | None]]], colours: dict[str, str],
               flagged: Iterable[tuple[str, float]] = ()) -> str:
    """A light inline SVG line chart over time (x: POSIX seconds, y log): one series per name; points whose
    (name, x) is in ``flagged`` are drawn as red rings (regressions). Drawn here, not by matplotlib: a
    history page per key of a 5,000-file registry must cost milliseconds."""
    w, h, left, right, top, bottom = 720, 300, 70, 130, 20, 40
    points = [(x, y) for pts in series.values() for x, y in pts if y and y > 0]  # unmeasured points left out
    if not points:
        return f'<p class="note">{esc(title)}: nothing measured.</p>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 86400, x1 + 86400
    y0, y1 = min(ys) / 1.5, max(ys) * 1.5
    ly0, ly1 = math.log10(y0), math.log10(y1)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def py(y: float) -> float:
        return top + (ly1 - math.log10(y)) / (ly1 - ly0) * (h - top - bottom)

    flags = set(flagged)
    # The id from a digest, not hash(): Python salts str hashes per process, and a page must not change
    # between two builds of the same data.
    tid = "t-" + hashlib.sha256(title.encode()).hexdigest()[:12]
    out = [f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{tid}" '
           f'xmlns="http://www.w3.org/2000/svg"><title id="{tid}">{esc(title)}</title>',
           f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" class="plot"/>']
    for t in _log_ticks(y0, y1):
        y = py(t)
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{num(t)}</text>')
    span_days = (max(xs) - min(xs)) / 86400
    fmt = "%Y-%m-%d" if span_days > 3 else "%m-%d %H:%M"
    last = -1e9
    for x in sorted(set(xs)):
        if px(x) - last < 90:  # labels never overlap: a crowded point goes without one
            continue
        last = px(x)
        label = datetime.fromtimestamp(x, tz=timezone.utc).strftime(fmt)
        out.append(f'<text x="{px(x):.1f}" y="{h - bottom + 16}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="14" y="{top + (h - top - bottom) / 2:.0f}" transform="rotate(-90 14 '
               f'{top + (h - top - bottom) / 2:.0f})" text-anchor="middle">{esc(unit)} (log)</text>')
    for i, (name, given) in enumerate(series.items()):
        pts = sorted((x, y) for x, y in given if y and y > 0)
        if not pts:
            continue
        colour = colours.get(name, PALETTE[i % len(PALETTE)])
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<g class="series" data-series="{esc(name)}"><title>{esc(name)}</title>'
                   f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            ring = (name, x) in flags
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{6 if ring else 3.5}" '
                       f'fill="{"none" if ring else colour}" stroke="{"#d00" if ring else colour}" '
                       f'stroke-width="{2.5 if ring else 1}"><title>{esc(name)} {num(y)} {esc(unit)}'
                       f'{" — regression" if ring else ""}</title></circle>')
        out.append("</g>")
        ly = top + 14 + 16 * i
        out.append(f'<line x1="{w - right + 10}" x2="{w - right + 28}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"/><text x="{w - right + 32}" y="{ly}">{esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)
