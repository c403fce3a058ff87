"""Pictures of one calibration: GEMM throughput against size, bandwidth against working set, and the
roofline with the measured ceilings.

matplotlib is an optional extra (``pip install -e '.[plot]'``); figures are built on
``matplotlib.figure.Figure`` directly, so no pyplot state or display is involved. Every plotted
series carries a ``gid`` (``series-...`` for measurements, ``ceiling-...`` for peaks and roofs), which
the SVG writes as a group id: tests and readers can count what a picture shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hwcal.document.format2 import precision_detail
from hwcal.errors import HwcalError
from hwcal.precisions import CANONICAL_ORDER, canonical_sorted, rate_unit
from hwcal.report.memory_figures import hierarchy_figure, latency_figure
from hwcal.report.plotting import _figure_class, _no_data, _plain_log_axis, _title, bytes_label

__all__ = ["CHARTS", "bytes_label", "figure_svg", "figures", "render", "series_gids"]

CHARTS = ("gemm", "bandwidth", "roofline", "hierarchy", "latency")
KERNEL_STYLE = {"copy": ("tab:blue", "o"), "scale": ("tab:orange", "s"), "add": ("tab:green", "^"),
                "triad": ("tab:red", "D")}
LEVEL_COLOURS = {"l1": "tab:purple", "l2": "tab:brown", "l3": "tab:pink", "l4": "tab:olive", "dram": "black"}


def precision_colour(precision: str) -> str:
    """One colour per precision, the same in every chart (tab10/tab20 by canonical order)."""
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
               "tab:gray", "tab:olive", "tab:cyan", "navy"]
    order = list(CANONICAL_ORDER)
    return palette[order.index(precision) % len(palette)] if precision in order else "black"


def _intensity_label(v: float, _: Any = None) -> str:
    """Arithmetic intensities on a base-2 axis: 1/8, 1/2, 1, 4, 16."""
    return f"1/{round(1 / v):g}" if 0 < v < 1 else f"{v:g}"


def gemm_figure(doc: dict[str, Any]) -> Any:
    """(a) GEMM throughput against matrix size, one line per precision; theoretical peaks dashed."""
    fig = _figure_class()(figsize=(11, 6), layout="constrained")
    ax = fig.add_subplot()
    entries = doc.get("gemm") or []
    matrix = doc.get("precision_matrix", {})
    theoretical = matrix.get("theoretical_peaks", {})
    status = precision_detail(doc).get("status", {})
    precisions = canonical_sorted({g["precision"] for g in entries})
    if not precisions:
        _no_data(ax, "no GEMM results in this calibration")
    for p in precisions:
        points = sorted((g["n"], g["gflops_best"]) for g in entries if g["precision"] == p)
        label = f"{p} ({status.get(p, {}).get('status', 'measured')})"
        ax.plot([n for n, _ in points], [v for _, v in points], marker="o", color=precision_colour(p), lw=1.8,
                label=label, gid=f"series-gemm-{p}")
        if theoretical.get(p):
            ax.axhline(theoretical[p], color=precision_colour(p), ls="--", lw=1.2, alpha=0.8,
                       label=f"{p} theoretical peak {theoretical[p]:,.4g}", gid=f"ceiling-gemm-{p}")
    if precisions:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        sizes = sorted({g["n"] for g in entries})
        ax.set_xticks(sizes, [str(n) for n in sizes])
        _plain_log_axis(ax.yaxis)
        ax.grid(True, which="major", alpha=0.3)
        fig.legend(fontsize=8, loc="outside right upper")
    ax.set_xlabel("matrix size n (M = N = K)")
    ax.set_ylabel("throughput, GFLOPS (GOPS for integers; log scale)")
    ax.set_title(_title(doc, "GEMM throughput against size"), fontsize=11)
    return fig


def _cache_marks(memory: dict[str, Any]) -> list[tuple[str, int]]:
    """(label, bytes) per cache level: what the level holds for the threads the kernels used."""
    caches = memory.get("caches") or {}
    threads = memory.get("threads") or 1
    marks = []
    for level in caches.get("levels", []):
        capacity = level["size_bytes"] * max(1, min(threads, level.get("instances", 1)))
        marks.append((f"{level['level'].upper()} {bytes_label(capacity)}", capacity))
    return marks


def bandwidth_figure(doc: dict[str, Any]) -> Any:
    """(b) STREAM bandwidth against working-set size, one line per kernel, cache sizes marked."""
    fig = _figure_class()(figsize=(11, 6), layout="constrained")
    ax = fig.add_subplot()
    memory = doc.get("memory") or {}
    sweep = memory.get("sweep") or []
    from matplotlib.ticker import NullLocator

    kernels = [k for k in KERNEL_STYLE if any(r["kernel"] == k for r in sweep)]
    if not kernels:
        _no_data(ax, "no STREAM results in this calibration")
        ax.set_title(_title(doc, "Memory bandwidth against working set (STREAM)"), fontsize=11)
        return fig
    for k in kernels:
        points = sorted((r["working_set_bytes"], r["gbps_best"]) for r in sweep if r["kernel"] == k)
        colour, marker = KERNEL_STYLE[k]
        ax.plot([w for w, _ in points], [v for _, v in points], marker=marker, color=colour, lw=1.6, ms=5,
                label=k, gid=f"series-stream-{k}")
    top = max(r["gbps_best"] for r in sweep)
    for label, capacity in _cache_marks(memory):
        ax.axvline(capacity, color="gray", ls=":", lw=1.2)
        ax.text(capacity, top * 1.25, label, rotation=90, va="top", ha="right", fontsize=8, color="dimgray")
    min_array = (memory.get("stream_rule") or {}).get("min_array_bytes")
    if min_array:
        # STREAM's rule is per array; the triad's working set is three of them.
        ax.axvspan(3 * min_array, max(r["working_set_bytes"] for r in sweep) * 1.5, color="tab:gray", alpha=0.08,
                   label="STREAM-sized: each array >= 4x the LLC")
    if memory.get("sustained_gbps"):
        ax.axhline(memory["sustained_gbps"], color="black", ls="--", lw=1.2,
                   label=f"sustained (DRAM) {memory['sustained_gbps']:,.4g} GB/s", gid="ceiling-sustained")
    if doc.get("theoretical_bandwidth_gbps"):
        ax.axhline(doc["theoretical_bandwidth_gbps"], color="black", ls="-.", lw=1.0,
                   label=f"spec peak {doc['theoretical_bandwidth_gbps']:,.4g} GB/s", gid="ceiling-spec-bandwidth")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    sizes = sorted({r["working_set_bytes"] for r in sweep})
    step = max(1, len(sizes) // 9)
    ax.set_xticks(sizes[::step], [bytes_label(s) for s in sizes[::step]], rotation=30)
    ax.xaxis.set_minor_locator(NullLocator())
    _plain_log_axis(ax.yaxis)
    ax.set_ylim(top=top * 1.4)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("working set (bytes of the arrays a kernel touches; log scale)")
    ax.set_ylabel("bandwidth, GB/s (STREAM-counted bytes; log scale)")
    threads = memory.get("threads")
    what = "Memory bandwidth against working set (STREAM"
    what += f", {threads} thread{'s' if threads != 1 else ''})" if threads else ")"
    ax.set_title(_title(doc, what), fontsize=11)
    fig.legend(fontsize=8, loc="outside right upper")
    return fig


def _roofs(doc: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Measured compute roofs (GEMM peaks) and memory roofs (GB/s: cache levels, then DRAM)."""
    matrix = doc.get("precision_matrix", {})
    peaks = {p: v for p, v in (matrix.get("peak_gflops_by_precision") or {}).items() if v}
    memory = doc.get("memory") or {}
    roofs = {name: fig["gbps"] for name, fig in (memory.get("stream_levels") or memory.get("levels") or {}).items()
             if isinstance(fig, dict) and fig.get("gbps")}
    if memory.get("sustained_gbps"):
        roofs["dram"] = memory["sustained_gbps"]
    return peaks, roofs


def _compute_roofs(doc: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """The derived peaks (spec: cores x FLOPs/cycle x clock) and the measured FMA ceiling, GFLOPS."""
    derived: dict[str, float] = {}
    for section in (doc.get("precision_detail"), doc.get("precision_matrix")):
        if isinstance(section, dict) and isinstance(section.get("theoretical_peaks"), dict):
            derived = {p: float(v) for p, v in section["theoretical_peaks"].items() if v}
            break
    ceiling = (doc.get("metadata") or {}).get("compute_ceiling") or {}
    measured = {p: float(v) for p, v in (ceiling.get("gflops") or {}).items() if v}
    return derived, measured


LAYER_MARKERS = {"conv": "P", "conv_bn_relu": "X", "attention": "*"}


def _layer_points(ax: Any, doc: dict[str, Any]) -> None:
    """Model layers (convolutions, conv+BN+ReLU, attention) at their arithmetic intensity and best GFLOPS, one
    series per section and precision; the fused ops file no FLOPs and are not drawn here."""
    for section, marker in LAYER_MARKERS.items():
        by_precision: dict[str, list[tuple[float, float]]] = {}
        for rec in (doc.get(section) or {}).get("results") or []:
            ai, gflops = rec.get("arithmetic_intensity"), rec.get("gflops_best")
            if isinstance(ai, (int, float)) and isinstance(gflops, (int, float)) and ai > 0 and gflops > 0:
                by_precision.setdefault(rec["precision"], []).append((ai, gflops))
        for precision in canonical_sorted(by_precision):
            xs, ys = zip(*sorted(by_precision[precision]), strict=True)
            ax.plot(xs, ys, ls="none", marker=marker, ms=7, mfc="none", color=precision_colour(precision),
                    label=f"{section} layers, {precision} ({len(xs)})", gid=f"series-layers-{section}-{precision}")


def roofline_figure(doc: dict[str, Any]) -> Any:
    """(c) Roofline: attainable throughput against arithmetic intensity, measured ceilings only
    (GEMM peak per precision, STREAM triad per memory level), ridge points marked; the model layers a
    calibration timed (convolutions, conv+BN+ReLU, attention) as points under them."""
    fig = _figure_class()(figsize=(11, 6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(_title(doc, "Roofline from measured ceilings"), fontsize=11)
    peaks, roofs = _roofs(doc)
    if not peaks or "dram" not in roofs:
        missing = " and ".join(w for w, ok in (("GEMM peaks", peaks), ("a sustained DRAM bandwidth", "dram" in roofs))
                               if not ok)
        _no_data(ax, f"no roofline: this calibration has no {missing}")
        return fig
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    dram = roofs["dram"]
    ridges = {p: v / dram for p, v in peaks.items()}
    lo = min(min(ridges.values()) / 8, 1 / 64)
    hi = max(max(ridges.values()) * 8, 64.0)
    intensity = np.logspace(np.log10(lo), np.log10(hi), 256)
    derived, fma = _compute_roofs(doc)
    derived = {p: v for p, v in derived.items() if p in peaks}
    fma = {p: v for p, v in fma.items() if p in peaks}
    top_peak = max([*peaks.values(), *derived.values(), *fma.values()])
    for name, gbps in roofs.items():
        style = dict(color=LEVEL_COLOURS.get(name, "gray"), lw=2.0 if name == "dram" else 1.2,
                     ls="-" if name == "dram" else ":")
        ax.plot(intensity, np.minimum(intensity * gbps, top_peak), **style,
                label=f"{name.upper()} {gbps:,.4g} GB/s" + (" (sustained triad)" if name == "dram" else " (triad)"),
                gid=f"ceiling-memory-{name}")
    for p in canonical_sorted(peaks):
        # The compute roof starts at the ridge point, where the DRAM roof meets it.
        unit = rate_unit(p)
        per_byte = "op/B" if unit == "GOPS" else "FLOP/B"
        ax.plot([ridges[p], hi], [peaks[p], peaks[p]], color=precision_colour(p), lw=1.6,
                label=f"{p} {peaks[p]:,.4g} {unit}, ridge {ridges[p]:.3g} {per_byte}", gid=f"ceiling-compute-{p}")
        ax.plot([ridges[p]], [peaks[p]], marker="o", color=precision_colour(p), ms=6)
        # Beside the GEMM roof: the derived peak (dashed) and the measured FMA ceiling (solid, thin).
        if p in derived:
            ax.plot([derived[p] / dram, hi], [derived[p], derived[p]], color=precision_colour(p), lw=1.0, ls="--",
                    label=f"{p} derived peak {derived[p]:,.4g} {unit}", gid=f"ceiling-derived-{p}")
        if p in fma:
            ax.plot([fma[p] / dram, hi], [fma[p], fma[p]], color=precision_colour(p), lw=0.9, ls="-", alpha=0.6,
                    label=f"{p} measured FMA ceiling {fma[p]:,.4g} {unit}", gid=f"ceiling-measured-{p}")
    _layer_points(ax, doc)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_formatter(FuncFormatter(_intensity_label))
    _plain_log_axis(ax.yaxis)
    ax.set_ylim(bottom=min(lo * dram, min(peaks.values()) / 4), top=top_peak * 2)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("arithmetic intensity, FLOP per DRAM byte (ops per byte for integers; log scale)")
    ax.set_ylabel("attainable throughput, GFLOPS (GOPS for integers; log scale)")
    fig.legend(fontsize=8, loc="outside right upper")
    return fig


def _makers() -> dict[str, Any]:
    return {"gemm": gemm_figure, "bandwidth": bandwidth_figure, "roofline": roofline_figure,
            "hierarchy": hierarchy_figure, "latency": latency_figure}


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    """The charts of a calibration, by name (``gemm``, ``bandwidth``, ``roofline``, and the memory system's
    ``hierarchy`` (bandwidth per tier, one core and all) and ``latency``)."""
    return {name: make(doc) for name, make in _makers().items()}


def figure_svg(doc: dict[str, Any], chart: str, *, title: bool = True) -> str:
    """One chart (one of ``CHARTS``) as SVG text, the same figure ``render`` draws.

    Deterministic (no date, fixed ids), so equal inputs give equal bytes; ``title=False`` leaves the title
    to the page that shows it (the static site), so the picture depends on the measurements only.
    """
    makers = _makers()
    if chart not in makers:
        raise HwcalError(f"unknown chart {chart!r}; charts: {', '.join(CHARTS)}")
    import io

    import matplotlib

    fig = makers[chart](doc)
    if not title:
        for ax in fig.axes:
            ax.set_title("")
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "hwcal", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def series_gids(fig: Any) -> list[str]:
    """The gids of the lines a figure shows (``series-...`` measured, ``ceiling-...`` peaks and roofs)."""
    return [line.get_gid() for ax in fig.axes for line in ax.get_lines() if line.get_gid()]


def render(doc: dict[str, Any], out_dir: Path, stem: str, formats: Iterable[str] = ("png", "svg"),
           dpi: int = 150) -> list[Path]:
    """Write each chart in each format as ``<out_dir>/<stem>_<chart>.<format>``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fig in figures(doc).items():
        for fmt in formats:
            path = out_dir / f"{stem}_{name}.{fmt}"
            tmp = path.with_name(path.name + ".tmp")
            fig.savefig(tmp, format=fmt, dpi=dpi)
            tmp.replace(path)  # never a half-written picture under the final name
            written.append(path)
    return written
