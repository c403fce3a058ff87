"""Pictures of the memory system: bandwidth against working set on one core and on all cores, and latency
against working set on huge and on 4 KiB pages, each with the tiers marked twice: the sizes sysfs reports
(dotted) and the edges the measured curve shows (dashed), which a VM or a shared L3 can move.

Drawn from ``memory.memory_system`` (``hwcal.document.memory_system``); a file without it gets a picture
that says so. Series carry gids (``series-...``) as the other charts do.
"""

from __future__ import annotations

from typing import Any

from hwcal.report.plotting import _figure_class, _no_data, _plain_log_axis, _title, bytes_label

KERNEL_COLOURS = {"read": "tab:blue", "write": "tab:orange", "triad": "tab:red", "update": "tab:purple"}
PAGE_STYLE = {"huge": ("tab:green", "o", "huge pages"), "4k": ("tab:gray", "s", "4 KiB pages")}


def _tier_marks(ax: Any, system: dict[str, Any], edge_kind: str, top: float, all_cores: bool = False) -> None:
    """Sysfs tier sizes (dotted) and the measured edges (dashed) as vertical lines with labels."""
    for tier in system.get("tiers") or []:
        size = tier.get("sysfs_all_cores_bytes" if all_cores else "sysfs_bytes")
        name = str(tier.get("tier", "")).upper()
        if size:
            ax.axvline(size, color="dimgray", ls=":", lw=1.1, gid=f"tier-sysfs-{tier['tier']}")
            ax.text(size, top, f"{name} {bytes_label(size)} (sysfs)", rotation=90, va="top", ha="right", fontsize=7,
                    color="dimgray")
        edge = (tier.get("measured_edge_bytes") or {}).get(edge_kind)
        if edge:
            ax.axvline(edge, color="tab:purple", ls="--", lw=1.0, gid=f"tier-edge-{tier['tier']}")
            ax.text(edge, top / 6, f"{name} edge {bytes_label(edge)} (measured)", rotation=90, va="top", ha="left",
                    fontsize=7, color="tab:purple")


def _log_axes(ax: Any, sizes: list[int]) -> None:
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    step = max(1, len(sizes) // 10)
    ax.set_xticks(sizes[::step], [bytes_label(s) for s in sizes[::step]], rotation=30)
    ax.xaxis.set_minor_locator(NullLocator())
    _plain_log_axis(ax.yaxis)
    ax.grid(True, which="major", alpha=0.3)


def hierarchy_figure(doc: dict[str, Any]) -> Any:
    """Bandwidth of read, write and triad against working set: one core solid, all cores dashed."""
    fig = _figure_class()(figsize=(11, 6), layout="constrained")
    ax = fig.add_subplot()
    system = (doc.get("memory") or {}).get("memory_system") or {}
    points = [p for p in system.get("bandwidth") or [] if p.get("gbps_best")]
    ax.set_title(_title(doc, "Memory bandwidth against working set, per tier (compiled kernels)"), fontsize=11)
    if not points:
        _no_data(ax, "no memory-system bandwidth in this calibration (bench/test_memory_system.py did not run)")
        return fig
    workers = max(p["threads"] for p in points)
    for kernel, colour in KERNEL_COLOURS.items():
        for threads, style in ((1, "-"), (workers, "--")) if workers > 1 else ((1, "-"),):
            series = sorted((p["working_set_bytes"], p["gbps_best"]) for p in points
                            if p["kernel"] == kernel and p["threads"] == threads)
            if series:
                ax.plot([w for w, _ in series], [g for _, g in series], color=colour, ls=style, marker="o", ms=4,
                        lw=1.5, label=f"{kernel}, {threads} core{'s' if threads > 1 else ''}",
                        gid=f"series-tier-{kernel}-{threads}")
    top = max(p["gbps_best"] for p in points)
    _tier_marks(ax, system, "read_bandwidth", top * 1.6)
    _log_axes(ax, sorted({p["working_set_bytes"] for p in points}))
    ax.set_ylim(top=top * 1.8)
    ax.set_xlabel("working set (bytes a pass touches, all cores together; DRAM: the pool, a window a round)")
    ax.set_ylabel("bandwidth, GB/s (STREAM-counted bytes; log scale)")
    fig.legend(fontsize=8, loc="outside right upper")
    return fig


def latency_figure(doc: dict[str, Any]) -> Any:
    """Dependent-load latency against working set, huge pages and 4 KiB pages; cycles on the right axis."""
    fig = _figure_class()(figsize=(11, 6), layout="constrained")
    ax = fig.add_subplot()
    system = (doc.get("memory") or {}).get("memory_system") or {}
    points = [p for p in system.get("latency") or [] if p.get("ns_best")]
    ax.set_title(_title(doc, "Load latency against working set (pointer chase, one line a hop)"), fontsize=11)
    if not points:
        _no_data(ax, "no latency in this calibration (bench/test_memory_system.py did not run)")
        return fig
    for pages, (colour, marker, label) in PAGE_STYLE.items():
        series = sorted((p["working_set_bytes"], p["ns_best"]) for p in points if p["pages"] == pages)
        if series:
            ax.plot([w for w, _ in series], [n for _, n in series], color=colour, marker=marker, ms=4, lw=1.5,
                    label=label, gid=f"series-latency-{pages}")
    top = max(p["ns_best"] for p in points)
    _tier_marks(ax, system, "latency", top * 2.5)
    _log_axes(ax, sorted({p["working_set_bytes"] for p in points}))
    ax.set_ylim(top=top * 3)
    mhz = (system.get("clock") or {}).get("median_mhz")
    if mhz:
        right = ax.secondary_yaxis("right", functions=(lambda ns: ns * mhz / 1e3, lambda cyc: cyc * 1e3 / mhz))
        right.set_ylabel(f"cycles at {mhz:,.0f} MHz")
    ax.set_xlabel("working set (bytes the cycle runs through; log scale)")
    ax.set_ylabel("latency per dependent load, ns (log scale)")
    fig.legend(fontsize=8, loc="outside right upper")
    return fig
