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
from typing import Any, TypedDict, cast

from hwcal.document.format2 import update_to_2
from hwcal.errors import HwcalError
from hwcal.registry.api import Registry
from hwcal.registry.fsio import read_registry_bytes
from hwcal.registry.layout import inside
from hwcal.site import data as site_data
from hwcal.site import energy as site_energy
from hwcal.site import figures as site_figures
from hwcal.site import pages as site_pages
from hwcal.site import views as site_views
from hwcal.site.data import IndexRow

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


class FileRecord(TypedDict, total=False):
    """What the manifest keeps of one registry file between builds."""

    sig: list[int]  # [size, mtime_ns]: unchanged means the same file, without hashing it
    sha: str
    row: IndexRow
    core: dict[str, Any]  # the compare core: the part of the document compare() reads
    fig: str  # the picture key (hash of what the charts show)
    shown: bool  # the page shows the pictures


class Manifest(TypedDict):
    version: str
    files: dict[str, FileRecord]
    groups: dict[str, str]  # key page or compare data file -> fingerprint of its members
    outputs: list[str]


def _load_manifest(out: Path, version: str) -> Manifest:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": version, "files": {}, "groups": {}, "outputs": []}
    if not isinstance(data, dict) or data.get("version") != version:
        # Another site version: rebuild every page, but still remove what the old build wrote.
        outputs = list(data.get("outputs", [])) if isinstance(data, dict) else []
        return {"version": version, "files": {}, "groups": {}, "outputs": outputs}
    return cast(Manifest, data)


@dataclass(frozen=True)
class _Listed:
    path: Path
    superseded: bool
    power_mode_name: str


@dataclass(frozen=True)
class _Task:
    """One calibration page to (re)write; picklable, for the worker processes."""

    rel: str
    path: str
    superseded: bool
    power_mode_name: str
    out: str
    want_fig: bool
    figures: str
    fig_error: str | None = None


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


def _process(task: _Task) -> tuple[FileRecord, list[str]]:
    """One calibration: its record (index row, compare core, picture key) and its page and JSON copy, written.

    The listing checked the file against the schema (or its cache did, for this file's exact size, times and
    inode), so it is parsed here with the plain JSON reader, without a second ~0.1 s schema check."""
    raw = read_registry_bytes(Path(task.path))  # a compressed history file unpacked
    doc = update_to_2(json.loads(raw))
    row = site_data.row_of(doc, task.rel, task.superseded, task.power_mode_name)
    key = site_figures.figure_key(doc)
    shown = task.fig_error is None and (task.want_fig or _figs_present(Path(task.out), key))
    dest = Output(Path(task.out))
    reason = f"pictures could not be drawn: {task.fig_error}" if task.fig_error else _why_none(task.figures)
    dest.write(row["page"], site_pages.calibration_page(
        doc, path=row["page"], json_href=row["json"], key_href=row["key"], superseded=task.superseded,
        power_mode_name=task.power_mode_name, fig_key=key if shown else None, why_none=reason))
    dest.write(row["json"], raw)
    record: FileRecord = {"sha": hashlib.sha256(raw).hexdigest(), "row": row, "core": site_data.compare_core(doc),
                          "fig": key, "shown": shown}
    return record, dest.written


def _run_all(tasks: list[_Task], jobs: int) -> list[tuple[FileRecord, list[str]] | str]:
    """``_process`` each task, in ``jobs`` processes when there are many; a failure is its message."""
    if jobs <= 1 or len(tasks) < 64:  # starting workers costs more than a few pages
        return [_guarded(t) for t in tasks]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_guarded, tasks, chunksize=max(1, len(tasks) // (jobs * 8))))


def _guarded(task: _Task) -> tuple[FileRecord, list[str]] | str:
    try:
        return _process(task)
    except (HwcalError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:  # changed since listed
        return f"cannot be shown: {type(exc).__name__}: {exc}"


class _Build:
    """One build: the registry's listing, the previous manifest, and what this build writes and keeps."""

    def __init__(self, registry: Path | None, out: Path, figures: str, jobs: int) -> None:
        self.reg = Registry(registry, emit_warnings=False)  # skipped files go to the site's unreadable page
        prepare_out(out, self.reg.root)
        self.out, self.figures, self.jobs = out, figures, jobs
        self.old = _load_manifest(out, _fingerprint())
        entries = self.reg.list_calibrations(history=True)
        self.report = BuildReport(calibrations=len(entries))
        root = self.reg.root
        self.skipped = [(str(s.path.relative_to(root)) if inside(s.path, root) else str(s.path), s.reason)
                        for s in self.reg.skipped]
        # Only what the pages need: a cold listing holds every document it checked; pages re-read one at a time.
        self.by_rel = {e.path.relative_to(root).as_posix(): _Listed(e.path, e.superseded, e.power_mode_name)
                       for e in entries}
        self.dest = Output(out)
        self.files: dict[str, FileRecord] = {}
        self.draw = site_figures.have_matplotlib() and figures != "none"

    def wants(self, superseded: bool) -> bool:
        return self.draw and (self.figures == "all" or not superseded)

    def task(self, rel: str, fig_error: str | None = None) -> _Task:
        e = self.by_rel[rel]
        return _Task(rel, str(e.path), e.superseded, e.power_mode_name, str(self.out), self.wants(e.superseded),
                     self.figures, fig_error)

    def stale(self) -> list[str]:
        """Files whose page must be (re)written; the others' records and outputs are kept."""
        stale: list[str] = []
        for rel, entry in self.by_rel.items():
            st = entry.path.stat()
            sig = [st.st_size, st.st_mtime_ns]
            rec = self.old["files"].get(rel)
            if rec is not None and rec.get("sig") != sig:  # touched: the content decides (git's index does too)
                sha = hashlib.sha256(entry.path.read_bytes()).hexdigest()
                rec = {**rec, "sig": sig} if rec.get("sha") == sha else None
            if rec is not None and "row" in rec and "fig" in rec:
                outputs = [rec["row"]["page"], rec["row"]["json"]]
                shown = self.wants(entry.superseded) or _figs_present(self.out, rec["fig"])
                if rec.get("shown") == shown and all((self.out / o).is_file() for o in outputs):
                    self.files[rel] = rec
                    for o in outputs:
                        self.dest.keep(o)
                    continue
            self.files[rel] = {"sig": sig}
            stale.append(rel)
        return stale

    def pages(self, rels: list[str], jobs: int, fig_errors: dict[str, str] | None = None) -> None:
        tasks = [self.task(rel, (fig_errors or {}).get(self.files[rel].get("fig", ""))) for rel in rels]
        for rel, result in zip(rels, _run_all(tasks, jobs), strict=True):
            if isinstance(result, str):
                self.skipped.append((rel, result))
                self.files.pop(rel, None)
                continue
            record, written = result
            self.dest.written += written
            self.dest.produced.update((record["row"]["page"], record["row"]["json"]))
            self.files[rel].update(record)
            self.report.pages_drawn += 1

    def pictures(self) -> None:
        """Drawn for current calibrations (all with --figures all), kept by content hash; a page whose pictures
        failed is written again, saying why."""
        missing: dict[str, str] = {}
        for rel, rec in self.files.items():
            if self.wants(self.by_rel[rel].superseded) and "fig" in rec and not _figs_present(self.out, rec["fig"]):
                missing.setdefault(rec["fig"], str(self.by_rel[rel].path))
        if missing:
            fig_errors = site_figures.render_missing(self.out, list(missing.items()), self.jobs)
            drawn = sorted(set(missing) - set(fig_errors))
            self.dest.written += [site_figures.figure_path(k, c) for k in drawn for c in site_figures.CHARTS]
            self.report.figures_drawn = len(site_figures.CHARTS) * len(drawn)
            failed = [rel for rel, rec in self.files.items() if rec.get("fig") in fig_errors]
            self.pages(failed, 1, fig_errors)
            self.report.pages_drawn -= len(failed)

    def groups(self) -> dict[str, str]:
        """One page per key, one compare data file per hardware: rewritten when a member changed."""
        groups: dict[str, list[str]] = defaultdict(list)
        for rel, rec in self.files.items():
            groups[rec["row"]["key"]].append(rel)
            groups["data/cmp/" + rec["row"]["dt"] + "__" + rec["row"]["hw"] + ".js"].append(rel)
        fingerprints = {}
        for name, members in groups.items():
            recs = [self.files[m] for m in members]
            fp = hashlib.sha256(json.dumps(sorted((m, self.files[m]["sha"], self.files[m]["row"]["sup"])
                                                  for m in members)).encode()).hexdigest()[:16]
            fingerprints[name] = fp
            if self.old["groups"].get(name) == fp and (self.out / name).is_file():
                self.dest.keep(name)
            elif name.startswith("data/cmp/"):
                self.dest.write(name, site_views.compare_data(name[len("data/cmp/"):-3],
                                                              {r["row"]["page"]: r["core"] for r in recs}))
            else:
                self.dest.write(name, site_views.key_page(name, [(r["row"], r["core"]) for r in recs]))
        return fingerprints

    def index(self) -> None:
        rows = sorted((rec["row"] for rec in self.files.values()),
                      key=lambda r: (r["dt"], r["hw"], r["token"], r["freq"], r["fw"], r["sup"], r["date"]))
        self.dest.write("data/index.js", site_views.index_data(rows))
        self.dest.write("index.html", site_views.index_page(sum(1 for r in rows if not r["sup"]), len(self.skipped)))
        self.dest.write("compare.html", site_views.compare_page())
        self.dest.write(site_energy.PATH, site_energy.energy_page(rows))
        self.dest.write("unreadable.html", site_views.unreadable_page(
            self.skipped, [(str(n.path), n.reason) for n in self.reg.notices]))
        for name in ASSETS:
            self.dest.write(f"assets/{name}", _asset(name))
        self.dest.write(".nojekyll", b"")

    def finish(self, groups: dict[str, str]) -> BuildReport:
        """Remove what the previous build wrote and this one did not, then write the manifest."""
        for rel in sorted(set(self.old["outputs"]) - self.dest.produced):
            target = self.out / rel
            if target.is_file() and inside(target, self.out):
                target.unlink()
                self.report.removed.append(rel)
        manifest: Manifest = {"version": self.old["version"], "files": self.files, "groups": groups,
                              "outputs": sorted(self.dest.produced)}
        self.dest.write(MANIFEST, json.dumps(manifest, separators=(",", ":")))
        self.report.written, self.report.kept, self.report.skipped = self.dest.written, self.dest.kept, self.skipped
        return self.report


def build(registry: Path | None, out: Path, *, figures: str = "current", jobs: int = 0) -> BuildReport:
    """Build (or bring up to date) the site of ``registry`` in ``out``."""
    started = time.perf_counter()
    job = _Build(registry, out, figures, jobs or os.cpu_count() or 1)
    stale = job.stale()
    # Current calibrations first, then their pictures, then the superseded ones: a superseded page whose
    # measurements equal a picture drawn now shows it from its first build on.
    first = stale if figures == "all" else [rel for rel in stale if not job.by_rel[rel].superseded]
    chosen = set(first)
    job.pages(first, job.jobs)
    job.pictures()
    job.pages([rel for rel in stale if rel not in chosen], job.jobs)
    for rec in job.files.values():
        if rec["shown"]:
            job.dest.produced.update(site_figures.figure_path(rec["fig"], c) for c in site_figures.CHARTS)
    groups = job.groups()
    job.index()
    report = job.finish(groups)
    report.seconds = time.perf_counter() - started
    return report
