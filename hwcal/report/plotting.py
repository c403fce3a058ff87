"""What every chart shares: the matplotlib Figure class (an optional extra), titles, sizes as people read
them, plain log ticks, and the picture that says there is nothing to draw."""

from __future__ import annotations

from typing import Any

from hwcal.errors import HwcalError


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise HwcalError("plotting needs matplotlib, which is not installed: pip install -e '.[plot]'") from None
    return Figure


def bytes_label(n: float) -> str:
    """1024-based sizes as people read them: 4 KiB, 32 MiB, 1 GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def _title(doc: dict[str, Any], what: str) -> str:
    meta = doc.get("metadata", {})
    name = meta.get("hardware_name") or doc.get("key", {}).get("hardware_id", "?")
    key = doc.get("key", {})
    mode = meta.get("power_mode") or key.get("power_mode", "?")
    return (f"{what}\n{name} · {mode} · {key.get('freq_mhz', '?')} MHz · {key.get('framework', '?')} "
            f"· {meta.get('calibration_date', '')[:10]}")


def _no_data(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="dimgray",
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _plain_log_axis(axis: Any) -> None:
    """Log ticks at 1, 2, 5 x 10^k written as plain numbers: readable without decoding powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    axis.set_minor_formatter(NullFormatter())


