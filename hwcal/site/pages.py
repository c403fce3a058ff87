"""The page of one calibration: summary (status and reasons), the three pictures with their method,
operations and shapes, clocks, preflight, BLAS, warnings, and a link to the JSON itself."""

from __future__ import annotations

import json
from typing import Any

from hwcal.document.format2 import precision_detail
from hwcal.precisions import canonical_sorted, rate_unit
from hwcal.site.data import measured_clock
from hwcal.site.energy import calibration_energy
from hwcal.site.figures import CHARTS, figure_path
from hwcal.site.html import esc, facts, href, num, page, pct, short_date, table
from hwcal.site.memory import memory_methods, memory_tables
from hwcal.site.nn_tables import layers_html

CHART_NAMES = {"gemm": "GEMM throughput against matrix size", "bandwidth": "Memory bandwidth against working set "
               "(STREAM)", "roofline": "Roofline from the measured ceilings",
               "hierarchy": "Bandwidth per memory tier, one core and all cores",
               "latency": "Load latency against working set"}



def _us(seconds: object) -> str:
    """Seconds as microseconds for a table cell, "-" where the file has none."""
    return num(seconds * 1e6) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else "-"


def _summary(doc: dict[str, Any]) -> str:
    matrix, detail = doc["precision_matrix"], precision_detail(doc)
    peaks, status = matrix.get("peak_gflops_by_precision") or {}, detail.get("status") or {}
    theory = detail.get("theoretical_peaks") or matrix.get("theoretical_peaks") or {}
    sizes, eff = detail.get("peak_size_by_precision") or {}, detail.get("efficiency_by_precision") or {}
    source = detail.get("peak_source_by_precision") or {}
    rows = []
    for p in canonical_sorted(set(peaks) | set(status)):
        s = status.get(p) or {}
        why = [s.get("reason"), *(s.get("sizes_skipped") or [])]
        rows.append([esc(p), f'<span class="st st-{esc(s.get("status", "measured"))}">{esc(s.get("status", "-"))}'
                     "</span>", num(peaks.get(p)), esc(rate_unit(p)), num(theory.get(p)), pct(eff.get(p)),
                     esc(source.get(p) or (f"square sweep at n={sizes[p]}" if p in sizes else "")),
                     esc(s.get("kernel") or ""), "<br>".join(esc(w) for w in why if w)])
    out = table("Peak throughput per precision", ["precision", "status", "peak", "unit", "theoretical",
                "efficiency", "where the peak comes from", "kernel", "reasons"], rows, numeric=(2, 4, 5))
    out += _searched(doc.get("max_achievable") or {})
    memory = doc.get("memory") or {}
    bw = [("sustained DRAM bandwidth (GB/s)", num(doc.get("measured_bandwidth_gbps"))),
          ("spec bandwidth (GB/s)", num(doc.get("theoretical_bandwidth_gbps"))),
          ("bandwidth efficiency", pct(doc.get("bandwidth_efficiency"))),
          ("sustained kernel", memory.get("sustained_kernel"))]
    bw += [(f"{k} plateau (GB/s)", num(v)) for k, v in (memory.get("sustained_gbps_by_kernel") or {}).items()]
    return out + facts(bw)


def _searched(searched: dict[str, Any]) -> str:
    """The max-achievable search per precision: the burst figure filed as the peak, the sustained one beside
    it, and the clock and power over each (GPUs)."""
    if not searched:
        return ""
    rows = []
    for p in canonical_sorted(searched):
        r = searched[p]
        shape = r["shape"]
        clock, power = r.get("clock_mhz") or {}, r.get("power_w") or {}
        rows.append([esc(p), f"{shape['m']}x{shape['n']}x{shape['k']}", esc(r["layout"]),
                     num(r.get("peak_gflops")), num(r["burst"].get("spread")), num(r["burst"]["max_gflops"]),
                     num(r["sustained"].get("gflops")),
                     num((clock.get("burst") or {}).get("median")), num((clock.get("sustained") or {}).get("median")),
                     num((power.get("sustained") or {}).get("median")), str(r["search"].get("shapes_tried", ""))])
    return table("Max achievable GEMM (peak = median of repeated bursts: per call, L2 flushed, each after a rest; "
                 "sustained: back to back after a warm-up)", ["precision", "shape (MxNxK)", "layout", "peak",
                 "burst spread", "best call", "sustained", "burst SM MHz", "sustained SM MHz", "sustained W",
                 "shapes tried"], rows, numeric=(3, 4, 5, 6, 7, 8, 9, 10))


def _method(doc: dict[str, Any]) -> dict[str, str]:
    """How each picture's numbers were measured (a figure without its method is a rumour)."""
    meta, gemm, memory = doc.get("metadata") or {}, doc.get("gemm") or [], doc.get("memory") or {}
    rounds = sorted({g.get("rounds") for g in gemm if g.get("rounds")})
    warm = sorted({g.get("warmup_rounds") for g in gemm if g.get("warmup_rounds") is not None})
    verify = sorted({str(g["verify_method"]) for g in gemm if g.get("verify_method")})
    gemm_m = facts([
        ("timing", "rounds of back-to-back launches (sustained), synchronised; the peak is the fastest round "
                   "(gflops_best), the median round is kept beside it (gflops_median)" if gemm else None),
        ("rounds per size", ", ".join(map(str, rounds))), ("warm-up rounds", ", ".join(map(str, warm))),
        ("launches per round", f"{min(g['launches_per_round'] for g in gemm)}–"
                               f"{max(g['launches_per_round'] for g in gemm)}" if gemm else None),
        ("verification", "; ".join(verify)), ("shape", "square, M = N = K = n"),
        ("settings", json.dumps(meta.get("framework_settings"), sort_keys=True) if meta.get("framework_settings")
         else None)])
    rule = memory.get("stream_rule") or {}
    caches = memory.get("caches") or {}
    bw_m = facts([("kernels", "; ".join(f"{k}: {v}" for k, v in (memory.get("methods") or {}).items())),
                  ("bytes counted", memory.get("bytes_counting")),
                  ("STREAM rule", f"each array ≥ {num(rule.get('min_array_bytes'))} bytes (4× the last-level "
                                  f"cache); largest array {num(rule.get('largest_array_bytes'))} bytes; "
                                  f"met: {rule.get('met')}" if rule else None),
                  ("element", f"{memory.get('dtype')} ({memory.get('element_bytes')} bytes)" if memory else None),
                  ("threads", memory.get("threads")), ("rounds", memory.get("rounds")),
                  ("cv of the sustained figure", pct(memory.get("sustained_cv")) if "sustained_cv" in memory else None),
                  ("caches from", caches.get("source")),
                  ("notes", "; ".join(memory.get("stream_levels_notes") or memory.get("levels_notes") or []))])
    roof_m = facts([("compute roofs", "the GEMM peak per precision (measured), the derived peak "
                                      "(cores × FLOPs per cycle × clock) dashed, the measured FMA ceiling thin"),
                    ("memory roofs", "STREAM triad per memory level; DRAM is the sustained (plateau) triad"),
                    ("ridge point", "peak ÷ DRAM bandwidth, FLOP per byte")])
    return {"gemm": gemm_m, "bandwidth": bw_m, "roofline": roof_m, **memory_methods(memory)}


def _figures(doc: dict[str, Any], path: str, fig_key: str | None, why_none: str, title: str) -> str:
    methods = _method(doc)
    out = []
    for chart in CHARTS:
        name = CHART_NAMES[chart]
        if fig_key:
            pic = (f'<img src="{href(path, figure_path(fig_key, chart))}" alt="{esc(name)}: {esc(title)}" '
                   f'width="1100" height="600" loading="lazy">')
        else:
            pic = f'<p class="note">{esc(why_none)}</p>'
        out.append(f'<section class="figure" id="fig-{chart}"><h3>{esc(name)}</h3><figure>{pic}'
                   f"<figcaption>{esc(name)} — {esc(title)}</figcaption></figure>"
                   f"<details open><summary>Method</summary>{methods[chart]}</details></section>")
    return "".join(out)


def _operations(doc: dict[str, Any]) -> str:
    out = []
    profiles = doc.get("operation_profiles") or {}
    if profiles:
        rows = [[esc(p.get("operation_type")), num(p.get("measured_gflops")), num(p.get("achieved_bandwidth_gbps")),
                 pct(p.get("efficiency")), esc("×".join(map(str, p.get("input_shape") or []))),
                 num(p.get("mean_latency_ms")), num(p.get("num_trials")),
                 esc((p.get("extra_params") or {}).get("best_precision") or "")]
                for p in profiles.values() if isinstance(p, dict)]
        out.append(table(f"Operation profiles ({len(rows)})", ["operation", "GFLOPS", "GB/s", "efficiency",
                         "input shape", "mean latency (ms)", "trials", "best precision"], rows,
                         numeric=(1, 2, 3, 5, 6)))
    blas = doc.get("blas") or []
    if blas:
        rows = [[esc(b.get("operation")), esc(b.get("precision")),
                 esc("×".join(str(b[k]) for k in ("m", "n") if k in b)),
                 num(b.get("gflops_best")), num(b.get("gbps_best")), num(b.get("arithmetic_intensity")),
                 num(b.get("rounds")), pct(b.get("cv")), esc(b.get("kernel") or "")]
                for b in blas if isinstance(b, dict)]
        out.append(table("BLAS-1/2 results", ["operation", "precision", "size", "GFLOPS best", "GB/s best",
                         "FLOP/byte", "rounds", "cv", "kernel"], rows, numeric=(3, 4, 5, 6, 7)))
    shapes = doc.get("gemm_shapes") or []
    if shapes:
        rows = [[esc(s.get("family")), esc(s.get("precision")),
                 esc(f"{s.get('m')}×{s.get('n')}×{s.get('k')}" + (f" ×{s['batch']}" if s.get("batch") else "")),
                 esc(s.get("layout") or ""), num(s.get("gflops_best")), num(s.get("gflops_median")),
                 pct(s.get("efficiency")),
                 num(s.get("rounds")), esc(s.get("kernel") or "")] for s in shapes if isinstance(s, dict)]
        out.append(table("GEMM shapes", ["family", "precision", "m×n×k", "layout", "GFLOPS best", "GFLOPS median",
                         "efficiency", "rounds", "kernel"], rows, numeric=(4, 5, 6, 7)))
    floors = doc.get("launch_floors") or {}
    if isinstance(floors, dict) and floors:
        rows = [[esc(op), _us((f or {}).get("seconds_min")), _us((f or {}).get("seconds_median")),
                 _us(((f or {}).get("isolated") or {}).get("seconds_min"))] for op, f in floors.items()]
        out.append(table("Launch floors (smallest call)", ["operation", "back to back min (µs)",
                         "back to back median (µs)", "isolated min (µs)"], rows, numeric=(1, 2, 3)))
    return "".join(out) or '<p class="note">No operation profiles, BLAS results or shapes in this file.</p>'


def _clocks(meta: dict[str, Any]) -> str:
    clock: dict[str, Any] = meta["clock"] if isinstance(meta.get("clock"), dict) else {}
    load = clock.get("under_load") or {}
    out = facts([("clock in the key (MHz)", meta.get("freq_mhz")), ("ceiling (MHz)", clock.get("ceiling_mhz")),
                 ("ceiling from", clock.get("ceiling_source")), ("measured under load, median (MHz)",
                 num(measured_clock(meta))), ("range under load (MHz)", f"{num(load.get('min_mhz'))} – "
                 f"{num(load.get('max_mhz'))} ({load.get('samples')} samples)" if load.get("samples") else None),
                 ("measured by", load.get("source")), ("peaks' clock", clock.get("peaks_clock_source")),
                 ("power mode from", meta.get("power_mode_source")),
                 ("notes", "; ".join(clock.get("detection_notes") or []))])
    by_p = clock.get("peaks_clock_by_precision_mhz") or {}
    if by_p:
        out += table("Clock while each peak was measured", ["precision", "MHz"],
                     [[esc(p), num(v)] for p, v in by_p.items()], numeric=(1,))
    return out


def _preflight(meta: dict[str, Any]) -> str:
    pre: dict[str, Any] = meta["preflight"] if isinstance(meta.get("preflight"), dict) else {}
    checks = [c for c in pre.get("checks") or [] if isinstance(c, dict)]
    if not pre:
        return '<p class="note">No preflight record.</p>'
    head = facts([("passed", pre.get("passed")), ("forced", pre.get("forced")), ("at", pre.get("timestamp"))])
    rows = [[esc(c.get("name")), f'<span class="st st-{esc(c.get("status"))}">{esc(c.get("status"))}</span>',
             esc(c.get("message") or "")] for c in checks]
    return head + table("Preflight checks", ["check", "status", "message"], rows)


def calibration_page(doc: dict[str, Any], *, path: str, json_href: str, key_href: str, superseded: bool,
                     power_mode_name: str, fig_key: str | None, why_none: str) -> str:
    key, meta = doc["key"], doc.get("metadata") or {}
    name = meta.get("hardware_name") or key["hardware_id"]
    title = f"{name} · {power_mode_name} · {key['freq_mhz']} MHz · {key['framework']}"
    when = short_date(str(meta.get("calibration_date", "")))
    note = (f'<p class="banner">Superseded: a newer calibration of this key exists. '
            f'<a href="{href(path, key_href)}">See its history and the current one</a>.</p>' if superseded else "")
    host = meta.get("host") or {}
    ident = facts([("hardware id", key["hardware_id"]), ("device type", key["device_type"]),
                   ("power mode", power_mode_name), ("clock in the key (MHz)", key["freq_mhz"]),
                   ("framework", f"{key['framework']} {meta.get('framework_version', '')}".strip()),
                   ("calibrated", when), ("device", meta.get("device")),
                   ("host CPU", (host.get("cpu") or {}).get("model")),
                   ("OS", host.get("os")), ("tool version", meta.get("tool_version")),
                   ("wall time (s)", meta.get("wall_time_s"))])
    blas = [b for b in meta.get("blas") or [] if isinstance(b, dict)]
    blas_rows = [[esc(b.get("prefix")), esc(b.get("internal_api")), esc(b.get("version")), num(b.get("num_threads")),
                  esc(b.get("architecture")), esc(b.get("filepath"))] for b in blas]
    blas_html = table("BLAS and thread pools (threadpoolctl)", ["library", "internal API", "version", "threads",
                      "architecture", "file"], blas_rows, numeric=(3,)) if blas else \
        '<p class="note">No BLAS record.</p>'
    warnings = doc.get("warnings") or []
    warn_html = ("<ul class=\"warnings\">" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>"
                 if warnings else '<p class="note">No warnings.</p>')
    sections = [("summary", "Summary", _summary(doc)),
                ("pictures", "Pictures", _figures(doc, path, fig_key, why_none, title)),
                ("operations", "Operations and shapes", _operations(doc)),
                *([("memory", "Memory tiers", mem_html)] if (mem_html := memory_tables(doc.get("memory") or {}))
                  else []),
                *([("layers", "Model layers", layers)] if (layers := layers_html(doc)) else []),
                ("energy", "Energy", calibration_energy(doc)),
                ("clocks", "Clocks", _clocks(meta)), ("preflight", "Preflight", _preflight(meta)),
                ("blas", "BLAS", blas_html), ("warnings", f"Warnings ({len(warnings)})", warn_html)]
    toc = "".join(f'<a href="#{sid}">{esc(t)}</a>' for sid, t, _ in sections)
    body = (f'{note}<p class="sub">Calibrated {esc(when)} · <a href="{href(path, json_href)}">the JSON file</a> · '
            f'<a href="{href(path, key_href)}">history of this key</a> · '
            f'<a href="{href(path, "compare.html")}?a={esc(path)}">compare with…</a></p>{ident}'
            f'<nav class="toc" aria-label="sections">{toc}</nav>'
            + "".join(f'<section id="{sid}"><h2>{esc(t)}</h2>{html}</section>' for sid, t, html in sections))
    return page(title, body, path=path)
