"""The site's pictures: the same three matplotlib charts as ``tools/plot_calibration.py`` (``hwcal.report.figures``),
as SVG files named by the hash of what they show, so a picture is drawn once and reused by every later
build (and by every calibration whose measurements are the same).

matplotlib costs ~0.3 s a chart; a fleet's registry of thousands of files cannot redraw them on every
build. The title (hardware, mode, date) is left to the page, so the hash covers the measurements only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from hwcal.document.format2 import update_to_2
from hwcal.registry.fsio import read_registry_bytes
from hwcal.report import figures as plot

CHARTS = plot.CHARTS
FIG_DIR = "fig"
# What the three charts read (hwcal.report.figures): everything else of a document leaves the picture unchanged.
_FIGURE_FIELDS = ("gemm", "precision_matrix", "precision_detail", "memory", "theoretical_bandwidth_gbps")


@cache
def _plot_fingerprint() -> str:
    """New chart code (or matplotlib) draws new pictures."""
    from hwcal.report import memory_figures, plotting

    digest = hashlib.sha256(b"".join(Path(str(m.__file__)).read_bytes() for m in (plot, memory_figures, plotting)))
    try:
        import matplotlib

        digest.update(matplotlib.__version__.encode())
    except ImportError:
        digest.update(b"no-matplotlib")
    return digest.hexdigest()[:12]


def figure_key(doc: dict[str, Any]) -> str:
    """Hash of the inputs of the three charts of ``doc`` (not its title)."""
    inputs = {k: doc.get(k) for k in _FIGURE_FIELDS}
    inputs["compute_ceiling"] = (doc.get("metadata") or {}).get("compute_ceiling")
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((_plot_fingerprint() + text).encode()).hexdigest()[:24]


def figure_path(key: str, chart: str) -> str:
    """Site-relative path of one picture."""
    return f"{FIG_DIR}/{key[:2]}/{key}_{chart}.svg"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _render_one(task: tuple[str, str, str]) -> tuple[str, str | None]:
    """Draw the three charts of one calibration file into the site; (key, error or None)."""
    source, key, out = task
    try:
        doc = update_to_2(json.loads(read_registry_bytes(Path(source))))  # history may be packed
        for chart in CHARTS:
            path = Path(out) / figure_path(key, chart)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(plot.figure_svg(doc, chart, title=False), encoding="utf-8")
            tmp.replace(path)
        return key, None
    except Exception as exc:  # a document the charts cannot draw: the page says so, the build goes on
        return key, f"{type(exc).__name__}: {exc}"


def _init_worker() -> None:
    import matplotlib

    matplotlib.use("Agg")


def render_missing(out: Path, sources: Sequence[tuple[str, str]], jobs: int) -> dict[str, str]:
    """Draw the charts of each (key, calibration file) whose pictures are not in ``out`` yet; {key: error}."""
    todo = {}
    for key, source in sources:
        if key not in todo and not all((out / figure_path(key, c)).is_file() for c in CHARTS):
            todo[key] = source
    tasks = [(source, key, str(out)) for key, source in todo.items()]
    if not tasks:
        return {}
    if jobs <= 1 or len(tasks) < 4:  # a worker's matplotlib import costs more than a few charts
        _init_worker()
        results = [_render_one(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker) as pool:
            results = list(pool.map(_render_one, tasks, chunksize=max(1, len(tasks) // (jobs * 4))))
    return {key: err for key, err in results if err}
