"""The site's other pages: the index, the history of one key, the compare view, the unreadable files,
and the data files the index and compare scripts read (embedded as .js: ``fetch()`` of a JSON file
fails on ``file://``)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hwcal.precisions import canonical_sorted
from hwcal.report.compare import NOISE_FLOOR, compare
from hwcal.site.data import PRECISIONS, IndexRow, compare_inputs
from hwcal.site.html import PALETTE, esc, href, js_data, num, page, short_date, table, time_chart

INDEX_FIELDS = ["page", "key", "json", "dt", "hw", "model", "mode", "freq", "fw", "date", "clock", "bw", "sup", "warn",
                "peaks"]


def index_data(rows: Sequence[IndexRow]) -> str:
    """``data/index.js``: every calibration as a compact array (the index stays small at 5,000 files)."""
    used = [p for p in PRECISIONS if any(p in r["peaks"] for r in rows)]
    packed = [[dict(r)[f] for f in INDEX_FIELDS[:-1]] + [[r["peaks"].get(p) for p in used]] for r in rows]
    data = {"fields": INDEX_FIELDS, "precisions": used, "rows": packed, "noise_floor": NOISE_FLOOR}
    return f"window.HWCAL_INDEX = {js_data(data)};\n"


def compare_data(hw_key: str, cores: dict[str, dict[str, Any]]) -> str:
    """``data/cmp/<device_type>__<hardware_id>.js``: the compare inputs of each calibration of one hardware."""
    data = {page: compare_inputs(core) for page, core in cores.items()}
    return f"window.HWCAL_COMPARE_LOADED({js_data(hw_key)}, {js_data(data)});\n"


def index_page(n_rows: int, n_skipped: int) -> str:
    path = "index.html"
    controls = (
        '<form class="filters" role="search" onsubmit="return false">'
        '<label>Search <input id="f-text" type="search" placeholder="id, model, mode…" autocomplete="off"></label>'
        '<label>Device type <select id="f-dt"><option value="">all</option></select></label>'
        '<label>Precision <select id="f-prec"><option value="">all</option></select></label>'
        '<label>Power mode <select id="f-mode"><option value="">all</option></select></label>'
        '<label>Framework <select id="f-fw"><option value="">all</option></select></label>'
        '<label class="check"><input id="f-sup" type="checkbox"> include superseded</label></form>')
    skipped = (f'<p class="banner">{n_skipped} file(s) could not be read: '
               f'<a href="unreadable.html">see why</a>.</p>' if n_skipped else "")
    body = (f'{skipped}<p class="sub">Every hardware × power mode × framework: the peak per precision (best '
            f'GEMM, GFLOPS; GOPS for integers), the sustained DRAM bandwidth, the date and the clock measured '
            f'under load. Click a column to sort. <span id="count" role="status" aria-live="polite">{n_rows} '
            f'calibrations</span></p>{controls}'
            '<div class="scroll" tabindex="0" role="region" aria-label="calibrations">'
            '<table id="cal-table"><caption>Calibrations</caption><thead><tr id="cal-head"></tr></thead>'
            '<tbody id="cal-body"></tbody></table></div>'
            '<noscript><p>The table needs JavaScript; each calibration\'s page lies under cal/.</p></noscript>')
    return page("All calibrations", body, path=path, scripts=["data/index.js", "assets/index.js"])


def compare_page() -> str:
    body = ('<p class="sub">Pick two calibrations: B is compared against A, per precision and for the bandwidth, '
            'with the rule of <code>hwcal-compare</code>: a difference is real when |ln(B/A)| exceeds k combined '
            f'standard errors (cv / √rounds from each file), at least {NOISE_FLOOR:.0%}.</p>'
            '<form class="filters" onsubmit="return false">'
            '<label>A (baseline) <select id="cmp-a"></select></label>'
            '<label>B <select id="cmp-b"></select></label>'
            '<label>k (sigmas) <input id="cmp-k" type="number" min="0.1" step="0.5" value="3"></label></form>'
            '<p id="cmp-desc" class="sub"></p><div id="cmp-out" aria-live="polite"></div>')
    return page("Compare two calibrations", body, path="compare.html", scripts=["data/index.js", "assets/compare.js"])


def unreadable_page(skipped: Sequence[tuple[str, str]], notices: Sequence[tuple[str, str]]) -> str:
    rows = [[esc(p), esc(r)] for p, r in skipped]
    body = (table(f"Files skipped ({len(rows)})", ["file", "reason"], rows) if rows
            else '<p class="note">Every registry file could be read.</p>')
    if notices:
        body += "<h2>Notices</h2>" + table("Files used, with a notice", ["file", "notice"],
                                           [[esc(p), esc(r)] for p, r in notices])
    return page("Unreadable files", '<p class="sub">Files of the registry the site leaves out, with the reason '
                '(<code>hwcal-validate</code> lists every error of each).</p>' + body, path="unreadable.html")


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def key_page(path: str, members: Sequence[tuple[IndexRow, dict[str, Any]]]) -> str:
    """History of one key: ``members`` are (row, compare core), any order; newest is the current one."""
    members = sorted(members, key=lambda m: _ts(m[0]["date"]))
    first = members[-1][0]
    title = f"{first['model'] or first['hw']} · {first['mode']} · {first['freq']} MHz · {first['fw']}: history"
    precisions = canonical_sorted({p for r, _ in members for p in r["peaks"]})
    verdicts: list[list[Any]] = [[]]
    flagged: list[tuple[str, float]] = []
    for (_, prev), (row, core) in itertools.pairwise(members):
        rows = compare(prev, core, fail_below=1.0)
        verdicts.append(rows)
        flagged += [(r.metric, _ts(row["date"])) for r in rows if r.regression]
    colours = {p: PALETTE[PRECISIONS.index(p) % len(PALETTE)] for p in precisions}
    peaks = time_chart(f"Peak throughput over time, {title}", "GFLOPS",
                       {p: [(_ts(r["date"]), r["peaks"].get(p)) for r, _ in members] for p in precisions},
                       colours, flagged)
    bandwidth = time_chart(f"Sustained DRAM bandwidth over time, {title}", "GB/s",
                           {"bandwidth": [(_ts(r["date"]), r["bw"]) for r, _ in members]}, {"bandwidth": "#000"},
                           flagged)
    table_rows = []
    for (row, _), rows in zip(reversed(members), reversed(verdicts), strict=True):
        by_metric = {r.metric: r for r in rows}
        cells = [f'<a href="{href(path, row["page"])}">{esc(short_date(row["date"]))}</a>'
                 + (" <small>(current)</small>" if not row["sup"] else "")]
        for p in [*precisions, "bandwidth"]:
            value = row["bw"] if p == "bandwidth" else row["peaks"].get(p)
            r = by_metric.get(p)
            mark = ""
            if r is not None and r.ratio is not None:
                mark = f' <small class="{"bad" if r.regression else "ok"}">{r.ratio:.3f}× {esc(r.verdict)}</small>'
            elif r is not None and r.regression:
                mark = f' <small class="bad">{esc(r.verdict)}</small>'
            cells.append(num(value) + mark)
        cells.append(num(row["clock"]))
        table_rows.append(cells)
    regress = sum(1 for rows in verdicts for r in rows if r.regression)
    summary = (f'<p class="banner bad">{regress} regression(s) against the calibration before (ratio below 1 beyond '
               f'noise, or a precision lost).</p>' if regress else
               '<p class="sub">No regression against the calibration before, by the compare rule.</p>')
    body = (f'<p class="sub">{len(members)} calibration(s) of this key, newest first. Each is compared with the one '
            f'before it by the rule of <code>hwcal-compare --fail-below 1</code>: a ratio below 1 beyond the noise the '
            f'files report (3 combined standard errors, at least {NOISE_FLOOR:.0%}) is a regression, ringed red in '
            f'the charts.</p>{summary}<figure>{peaks}<figcaption>Peak per precision over time</figcaption></figure>'
            f'<figure>{bandwidth}<figcaption>Sustained DRAM bandwidth over time</figcaption></figure>'
            + table("History (value, and B/A against the calibration before)",
                    ["calibrated", *precisions, "bandwidth GB/s", "clock MHz"], table_rows,
                    numeric=tuple(range(1, len(precisions) + 3))))
    return page(title, body, path=path)
