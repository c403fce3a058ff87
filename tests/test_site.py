"""hwcal-site without a browser: what it builds, escaping, bad input, the compare core, incremental builds.

The browser checks (pages load without console errors, filters, pictures decoded, compare numbers) are in
test_site_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from hwcal.cli import site
from hwcal.naming import power_mode_token
from hwcal.registry.api import Registry
from hwcal.report.compare import compare
from hwcal.report.figures import CHARTS
from hwcal.site.data import compare_core

DATA = Path(__file__).parent / "data" / "site_registry"
REPO = Path(__file__).resolve().parent.parent
HOSTILE_MODE = "<script>alert(1)</script>"
HOSTILE_NAME = '<img src=x onerror=alert(2)> & "quoted"'


def make_site_registry(dest: Path, *, hostile: bool = True, broken: bool = True) -> Path:
    """A copy of tests/data/site_registry, plus a calibration whose power mode and hardware name are HTML
    (`<script>`), and a broken file the site must list as unreadable."""
    shutil.copytree(DATA, dest)
    cal = dest / "cpu" / "amd_epyc_zen3" / "calibrations"
    if hostile:
        doc = json.loads((cal / "default_2445MHz_numpy.json").read_text())
        token = power_mode_token(HOSTILE_MODE)
        doc["key"]["power_mode"] = token
        doc["metadata"]["power_mode"] = HOSTILE_MODE
        doc["metadata"]["hardware_name"] = HOSTILE_NAME
        doc["metadata"]["calibration_date"] = "2026-11-27T10:00:00+00:00"
        (cal / f"{token}_2445MHz_numpy.json").write_text(json.dumps(doc, indent=1))
    if broken:
        (cal / "broken_1000MHz_numpy.json").write_text('{"schema_version": 2, "key": ')
    return dest


def build(registry: Path, out: Path, *args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = site.main(["--registry", str(registry), "--out", str(out), *args])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("site")
    registry = make_site_registry(base / "registry")
    code, _, err = build(registry, base / "site")
    assert code == 0, err
    return registry, base / "site"


def test_every_calibration_gets_a_page_a_json_copy_and_its_key_a_history_page(built: tuple[Path, Path]) -> None:
    registry, out = built
    entries = Registry(registry, emit_warnings=False).list_calibrations(history=True)
    assert len(entries) == 7
    for e in entries:
        rel = e.path.relative_to(registry).as_posix()
        assert (out / "json" / rel).read_bytes() == e.path.read_bytes()
    pages = sorted(p.relative_to(out).as_posix() for p in (out / "cal").rglob("*.html"))
    assert len(pages) == 7 and "cal/gpu/h100_sxm5/history/700W_1980MHz_pytorch.20261126T194153578545Z.html" in pages
    assert len(list((out / "key").rglob("*.html"))) == 4  # numpy, pytorch, the hostile key, the H100
    data = (out / "data" / "index.js").read_text()
    assert data.startswith("window.HWCAL_INDEX = ") and len(json.loads(data[21:-2])["rows"]) == 7
    for name in ("index.html", "compare.html", "unreadable.html", "assets/site.css", "assets/index.js"):
        assert (out / name).is_file()


def test_nothing_is_loaded_from_outside_the_site(built: tuple[Path, Path]) -> None:
    _, out = built
    for page in out.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), page
        for ref in re.findall(r"""(?:src|href)="([^"#?]+)""", text):
            assert (page.parent / ref).resolve().is_file(), f"{page}: broken link {ref}"
    for script in (out / "assets").glob("*.js"):
        assert "http" not in script.read_text() and "fetch(" not in script.read_text()


def test_html_in_a_power_mode_or_a_name_is_shown_as_text(built: tuple[Path, Path]) -> None:
    _, out = built
    token = power_mode_token(HOSTILE_MODE)
    page = (out / "cal" / "cpu" / "amd_epyc_zen3" / f"{token}_2445MHz_numpy.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    for path in [*out.rglob("*.html"), *out.glob("data/**/*.js")]:
        text = path.read_text()
        assert "<script>alert" not in text and "<img src=x" not in text, path
    # The data file escapes < > & so no </script> can end a script early.
    assert "\\u003cscript\\u003e" in (out / "data" / "index.js").read_text()


def test_unreadable_files_are_listed_with_the_reason(built: tuple[Path, Path]) -> None:
    _, out = built
    page = (out / "unreadable.html").read_text()
    assert "broken_1000MHz_numpy.json" in page and "not valid JSON" in page
    assert 'href="unreadable.html">see why' in (out / "index.html").read_text()


def test_tables_have_scoped_headers_and_pictures_have_alt_text(built: tuple[Path, Path]) -> None:
    _, out = built
    page = (out / "cal" / "gpu" / "h100_sxm5" / "700W_1980MHz_pytorch.html").read_text()
    assert '<th scope="col"' in page and '<th scope="row"' in page and "<th>" not in page
    imgs = re.findall(r"<img [^>]*>", page)
    assert len(imgs) == len(CHARTS) and all('alt="' in i for i in imgs)
    for section in ("Summary", "Pictures", "Operations and shapes", "Clocks", "Preflight", "BLAS", "Method"):
        assert section in page
    assert "unsupported" in page and "Multiplication of two Float8_e5m2" in page  # status with its reason
    key = (out / "key" / "gpu" / "h100_sxm5" / "700W_1980MHz_pytorch.html").read_text()
    assert "<svg" in key and "<title" in key


def test_the_compare_core_gives_compare_s_own_rows() -> None:
    reg = Registry(DATA, emit_warnings=False)
    entries = reg.list_calibrations(history=True)
    for a in entries:
        for b in entries:
            full = compare(a.doc, b.doc, fail_below=1.0)
            assert compare(compare_core(a.doc), compare_core(b.doc), fail_below=1.0) == full


def test_a_second_build_rewrites_only_what_changed(tmp_path: Path) -> None:
    registry = make_site_registry(tmp_path / "registry", hostile=False, broken=False)
    out = tmp_path / "site"
    assert build(registry, out)[0] == 0
    report = site.build(registry, out)
    assert report.written == [] and report.pages_drawn == 0 and report.figures_drawn == 0
    # A new calibration of the numpy key: the old one moves to history, as the writer does.
    cal = registry / "cpu" / "amd_epyc_zen3" / "calibrations"
    current = cal / "default_2445MHz_numpy.json"
    doc = json.loads(current.read_text())
    shutil.move(current, cal / "history" / "default_2445MHz_numpy.20261126T200000000000Z.json")
    doc["metadata"]["calibration_date"] = "2026-11-28T09:00:00+00:00"
    doc["precision_matrix"]["peak_gflops_by_precision"]["fp64"] *= 0.5
    current.write_text(json.dumps(doc))
    report = site.build(registry, out)
    assert report.pages_drawn == 2  # the new file, and the old one at its history path
    assert sorted(report.written) == sorted([
        "cal/cpu/amd_epyc_zen3/default_2445MHz_numpy.html",
        "cal/cpu/amd_epyc_zen3/history/default_2445MHz_numpy.20261126T200000000000Z.html",
        "json/cpu/amd_epyc_zen3/calibrations/default_2445MHz_numpy.json",
        "json/cpu/amd_epyc_zen3/calibrations/history/default_2445MHz_numpy.20261126T200000000000Z.json",
        "key/cpu/amd_epyc_zen3/default_2445MHz_numpy.html", "data/cmp/cpu__amd_epyc_zen3.js", "data/index.js",
        ".hwcal-site.json"] + [f for f in report.written if f.startswith("fig/")])
    assert len([f for f in report.written if f.startswith("fig/")]) == len(CHARTS)  # the new measurements' pictures
    key = (out / "key" / "cpu" / "amd_epyc_zen3" / "default_2445MHz_numpy.html").read_text()
    assert "regression(s)" in key and "fp64" in key
    # Superseded now, it keeps the pictures drawn while it was current.
    assert (out / "cal" / "cpu" / "amd_epyc_zen3" / "history" /
            "default_2445MHz_numpy.20261126T200000000000Z.html").read_text().count("<img ") == len(CHARTS)


def test_files_removed_from_the_registry_leave_the_site(tmp_path: Path) -> None:
    registry = make_site_registry(tmp_path / "registry", hostile=False, broken=False)
    out = tmp_path / "site"
    (out / "mine.txt").parent.mkdir(parents=True)
    (out / "mine.txt").write_text("not the site's")
    site.build(registry, out, figures="none")
    shutil.rmtree(registry / "gpu")
    report = site.build(registry, out, figures="none")
    assert "cal/gpu/h100_sxm5/700W_1980MHz_pytorch.html" in report.removed
    assert not (out / "cal" / "gpu" / "h100_sxm5" / "700W_1980MHz_pytorch.html").exists()
    assert (out / "mine.txt").read_text() == "not the site's"


def test_an_output_that_is_a_file_or_not_writable_is_one_line_and_exit_1(tmp_path: Path) -> None:
    registry = make_site_registry(tmp_path / "registry", hostile=False, broken=False)
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = build(registry, afile)
    assert code == 1 and err.count("\n") == 1 and "is a file" in err
    code, _, err = build(registry, registry / "site")
    assert code == 1 and "inside the registry" in err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        code, _, err = build(registry, locked / "site")
        assert code == 1 and err.count("\n") == 1 and "cannot write" in err
    code, _, err = build(registry, Path("/proc/hwcal-site"))
    assert code == 1 and err.count("\n") == 1, err


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        site.main(["--registry", str(DATA)])  # --out missing
    assert exc.value.code == 2


def test_two_builds_of_one_registry_are_byte_identical(tmp_path: Path) -> None:
    """Across processes too: an element id from Python's salted hash() once changed every history page."""
    import subprocess
    import sys

    registry = make_site_registry(tmp_path / "registry", hostile=False, broken=False)
    outs = [tmp_path / "a", tmp_path / "b"]
    for seed, out in zip(("1", "2"), outs, strict=True):
        done = subprocess.run([sys.executable, str(REPO / "tools" / "site.py"), "--registry", str(registry), "--out",
                               str(out), "--figures", "none"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert [f for f in files if (outs[0] / f).read_bytes() != (outs[1] / f).read_bytes()] == []


def test_a_damaged_manifest_record_rebuilds_its_page(tmp_path: Path) -> None:
    registry = make_site_registry(tmp_path / "registry", hostile=False, broken=False)
    out = tmp_path / "site"
    site.build(registry, out, figures="none")
    manifest = json.loads((out / ".hwcal-site.json").read_text())
    rel = sorted(manifest["files"])[0]
    del manifest["files"][rel]["row"]
    (out / ".hwcal-site.json").write_text(json.dumps(manifest))
    report = site.build(registry, out, figures="none")
    assert report.pages_drawn == 1 and report.skipped == []
