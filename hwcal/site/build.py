"""hwcal-site: the registry as a static site — an index of every hardware × power mode × framework, a page
per calibration (summary, pictures and their method, operations, clocks, preflight, BLAS, the JSON), a page
per key with its history and regressions, a compare view and the files that could not be read.

No server, nothing fetched from outside the site: it works from ``file://`` and from GitHub Pages. Builds
are incremental: ``.hwcal-site.json`` in the output maps each input file (path, size, mtime_ns, sha256)
to what it produced, so a second build redraws and rewrites only what a new or changed file touches.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hwcal.document.format2 import update_to_2
from hwcal.errors import HwcalError
from hwcal.registry.api import Registry
from hwcal.registry.layout import inside
from hwcal.site import data as site_data
from hwcal.site import energy as site_energy
from hwcal.site import figures as site_figures
from hwcal.site import pages as site_pages
from hwcal.site import views as site_views

MANIFEST = ".hwcal-site.json"
ASSETS = ("site.css", "index.js", "compare.js")


def _fingerprint() -> str:
    """The site's own code and assets: a new version rebuilds every page."""
    digest = hashlib.sha256()
    for module in (site_data, site_figures, site_pages, site_views, sys.modules[__name__]):
        digest.update(Path(module.__file__ or "").read_bytes())
    for name in ASSETS:
        digest.update(_asset(name))
    from hwcal.site import html as site_html

    digest.update(Path(site_html.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _asset(name: str) -> bytes:
    return resources.files("hwcal.site.assets").joinpath(name).read_bytes()


@dataclass
class Output:
    """The output folder: writes are atomic and skipped when the bytes are already there."""

    root: Path
    written: list[str] = field(default_factory=list)
    kept: int = 0
    produced: set[str] = field(default_factory=set)

    def write(self, rel: str, data: str | bytes) -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        self.produced.add(rel)
        path = self.root / rel
        try:
            if path.stat().st_size == len(raw) and path.read_bytes() == raw:
                self.kept += 1
                return
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)
        self.written.append(rel)

    def keep(self, rel: str) -> None:
        self.produced.add(rel)
        self.kept += 1


def prepare_out(out: Path, registry_root: Path) -> None:
    """The output folder exists, is a folder, can be written, and is not inside the registry."""
    if out.exists() and not out.is_dir():
        raise HwcalError(f"output {out} is a file, not a folder; give --out a folder (it is created if missing)")
    if registry_root.exists() and (inside(out.resolve(), registry_root.resolve())
                                   or out.resolve() == registry_root.resolve()):
        raise HwcalError(f"output {out} lies inside the registry {registry_root}; give a folder outside it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".hwcal-site-probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HwcalError(f"cannot write into {out}: {exc.strerror or exc}") from None


def _load_manifest(out: Path, version: str) -> dict[str, Any]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"files": {}, "groups": {}, "outputs": []}
    if not isinstance(data, dict) or data.get("version") != version:
        # Another site version: rebuild every page, but still remove what the old build wrote.
        return {"files": {}, "groups": {}, "outputs": list(data.get("outputs", [])) if isinstance(data, dict) else []}
    return data


@dataclass(frozen=True)
class _Listed:
    path: Path
    superseded: bool
    power_mode_name: str


@dataclass
class BuildReport:
    calibrations: int = 0
    pages_drawn: int = 0
    figures_drawn: int = 0
    written: list[str] = field(default_factory=list)
    kept: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

def _why_none(figures: str) -> str:
    if not site_figures.have_matplotlib():
        return "pictures need matplotlib, which is not installed where the site was built (pip install -e '.[plot]')"
    if figures == "current":
        return ("pictures are drawn for current calibrations; this one was superseded before its pictures were drawn "
                "(hwcal-site --figures all draws every one)")
    return "pictures not drawn (--figures none)"


def _figs_present(out: Path, key: str) -> bool:
    return all((out / site_figures.figure_path(key, c)).is_file() for c in site_figures.CHARTS)


def _process(task: tuple[str, str, bool, str, str, bool, str, str | None]) -> dict[str, Any]:
    """One calibration: its record (index row, compare core, picture key) and its page and JSON copy, written.

    The listing checked the file against the schema (or its cache did, for this file's exact size, times and
    inode), so it is parsed here with the plain JSON reader, without a second ~0.1 s schema check."""
    rel, path, superseded, mode_name, out, want_fig, figures, fig_error = task
    raw = Path(path).read_bytes()
    doc = update_to_2(json.loads(raw))
    row = site_data.row_of(doc, rel, superseded, mode_name)
    key = site_figures.figure_key(doc)
    shown = fig_error is None and (want_fig or _figs_present(Path(out), key))
    dest = Output(Path(out))
    reason = f"pictures could not be drawn: {fig_error}" if fig_error else _why_none(figures)
    dest.write(row["page"], site_pages.calibration_page(
        doc, path=row["page"], json_href=row["json"], key_href=row["key"], superseded=superseded,
        power_mode_name=mode_name, fig_key=key if shown else None, why_none=reason))
    dest.write(row["json"], raw)
    return {"sha": hashlib.sha256(raw).hexdigest(), "row": row, "core": site_data.compare_core(doc), "fig": key,
            "shown": shown, "written": dest.written}


def _run_all(tasks: list[Any], jobs: int) -> list[dict[str, Any] | str]:
    """``_process`` each task, in ``jobs`` processes when there are many; a failure is its message."""
    if jobs <= 1 or len(tasks) < 64:  # starting workers costs more than a few pages
        return [_guarded(t) for t in tasks]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_guarded, tasks, chunksize=max(1, len(tasks) // (jobs * 8))))


def _guarded(task: Any) -> dict[str, Any] | str:
    try:
        return _process(task)
    except (HwcalError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:  # changed since listed
        return f"cannot be shown: {type(exc).__name__}: {exc}"


def build(registry: Path | None, out: Path, *, figures: str = "current", jobs: int = 0) -> BuildReport:  # noqa: C901 -- TODO(issue 21): split
    """Build (or bring up to date) the site of ``registry`` in ``out``."""
    started = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    reg = Registry(registry, emit_warnings=False)  # skipped files go to the site's unreadable page
    prepare_out(out, reg.root)
    version = _fingerprint()
    old = _load_manifest(out, version)
    entries = reg.list_calibrations(history=True)
    report = BuildReport(calibrations=len(entries))
    skipped = [(str(s.path.relative_to(reg.root)) if inside(s.path, reg.root) else str(s.path), s.reason)
               for s in reg.skipped]
    dest = Output(out)
    files: dict[str, dict[str, Any]] = {}
    by_rel = {e.path.relative_to(reg.root).as_posix(): _Listed(e.path, e.superseded, e.power_mode_name)
              for e in entries}
    del entries  # a cold listing holds every document it checked; the pages re-read one at a time
    draw = site_figures.have_matplotlib() and figures != "none"

    def wants(superseded: bool) -> bool:
        return draw and (figures == "all" or not superseded)

    def task(rel: str, fig_error: str | None = None) -> tuple[str, str, bool, str, str, bool, str, str | None]:
        e = by_rel[rel]
        return (rel, str(e.path), e.superseded, e.power_mode_name, str(out), wants(e.superseded), figures, fig_error)

    stale: list[str] = []
    for rel, entry in by_rel.items():
        st = entry.path.stat()
        sig = [st.st_size, st.st_mtime_ns]
        rec = old["files"].get(rel)
        if rec is not None and rec.get("sig") != sig:  # touched: the content decides (git's index does the same)
            sha = hashlib.sha256(entry.path.read_bytes()).hexdigest()
            rec = {**rec, "sig": sig} if rec.get("sha") == sha else None
        if rec is not None:
            key, row = rec["fig"], rec["row"]
            shown = wants(entry.superseded) or _figs_present(out, key)
            outputs = [row["page"], row["json"]]
            if rec.get("shown") == shown and all((out / o).is_file() for o in outputs):
                files[rel] = rec
                for o in outputs:
                    dest.keep(o)
                continue
        files[rel] = {"sig": sig}
        stale.append(rel)

    def absorb(rels: list[str], results: list[dict[str, Any] | str]) -> None:
        for rel, result in zip(rels, results, strict=True):
            if isinstance(result, str):
                skipped.append((rel, result))
                files.pop(rel, None)
                continue
            dest.written += result.pop("written")
            dest.produced.update((result["row"]["page"], result["row"]["json"]))
            files[rel].update(result)
            report.pages_drawn += 1

    # Current calibrations first, then their pictures, then the superseded ones: a superseded page whose
    # measurements equal a picture drawn now shows it from its first build on.
    first = stale if figures == "all" else [rel for rel in stale if not by_rel[rel].superseded]
    chosen = set(first)
    later = [rel for rel in stale if rel not in chosen]
    absorb(first, _run_all([task(rel) for rel in first], jobs))

    # Pictures: drawn for current calibrations (all with --figures all), kept by content hash.
    missing: dict[str, str] = {}
    for rel, rec in files.items():
        if wants(by_rel[rel].superseded) and "fig" in rec and not _figs_present(out, rec["fig"]):
            missing.setdefault(rec["fig"], str(by_rel[rel].path))
    if missing:
        fig_errors = site_figures.render_missing(out, list(missing.items()), jobs)
        drawn = sorted(set(missing) - set(fig_errors))
        dest.written += [site_figures.figure_path(k, c) for k in drawn for c in site_figures.CHARTS]
        report.figures_drawn = len(site_figures.CHARTS) * len(drawn)
        failed = [rel for rel, rec in files.items() if rec.get("fig") in fig_errors]
        absorb(failed, _run_all([task(rel, fig_errors[files[rel]["fig"]]) for rel in failed], 1))
        report.pages_drawn -= len(failed)
    absorb(later, _run_all([task(rel) for rel in later], jobs))
    for rec in files.values():
        if rec["shown"]:
            for c in site_figures.CHARTS:
                dest.produced.add(site_figures.figure_path(rec["fig"], c))


    # One page per key, one compare data file per hardware: rewritten when a member changed.
    groups: dict[str, list[str]] = defaultdict(list)
    for rel, rec in files.items():
        groups[rec["row"]["key"]].append(rel)
        groups["data/cmp/" + rec["row"]["dt"] + "__" + rec["row"]["hw"] + ".js"].append(rel)
    new_groups = {}
    for name, members in groups.items():
        fp = hashlib.sha256(json.dumps(sorted((m, files[m]["sha"], files[m]["row"]["sup"]) for m in members))
                            .encode()).hexdigest()[:16]
        new_groups[name] = fp
        if old["groups"].get(name) == fp and (out / name).is_file():
            dest.keep(name)
        elif name.startswith("data/cmp/"):
            dest.write(name, site_views.compare_data(name[len("data/cmp/"):-3],
                                                     {files[m]["row"]["page"]: files[m]["core"] for m in members}))
        else:
            dest.write(name, site_views.key_page(name, [(files[m]["row"], files[m]["core"]) for m in members]))

    rows = sorted((rec["row"] for rec in files.values()),
                  key=lambda r: (r["dt"], r["hw"], r["token"], r["freq"], r["fw"], r["sup"], r["date"]))
    dest.write("data/index.js", site_views.index_data(rows))
    dest.write("index.html", site_views.index_page(sum(1 for r in rows if not r["sup"]), len(skipped)))
    dest.write("compare.html", site_views.compare_page())
    dest.write(site_energy.PATH, site_energy.energy_page(rows))
    dest.write("unreadable.html", site_views.unreadable_page(
        skipped, [(str(n.path), n.reason) for n in reg.notices]))
    for name in ASSETS:
        dest.write(f"assets/{name}", _asset(name))
    dest.write(".nojekyll", b"")

    for rel in sorted(set(old.get("outputs", [])) - dest.produced):
        target = out / rel
        if target.is_file() and inside(target, out):
            target.unlink()
            report.removed.append(rel)
    manifest = {"version": version, "files": files, "groups": new_groups, "outputs": sorted(dest.produced)}
    dest.write(MANIFEST, json.dumps(manifest, separators=(",", ":")))
    report.written, report.kept, report.skipped = dest.written, dest.kept, skipped
    report.seconds = time.perf_counter() - started
    return report
