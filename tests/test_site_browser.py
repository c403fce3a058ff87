"""The built site in a real browser (headless Chromium through selenium, from file://): the index loads
without console errors and filters, a calibration page decodes its pictures, the compare view gives the
numbers of ``hwcal-compare --json``. Screenshots of each page at 1280 px and 390 px go to
``$HWCAL_ARTIFACTS/site-screenshots`` (else a temporary folder).

Skipped, saying why, without selenium, chromium or chromedriver (.ci/site_browser.sh installs them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_site import HOSTILE_MODE, build, make_site_registry

from hwcal.cli import compare_calibrations
from hwcal.report.figures import CHARTS

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = pytest.mark.skipif(
    not (HAVE_SELENIUM and CHROMIUM and DRIVER),
    reason="browser tests need selenium, chromium and chromedriver "
           f"(selenium {'found' if HAVE_SELENIUM else 'missing'}, chromium {CHROMIUM or 'missing'}, chromedriver "
           f"{DRIVER or 'missing'}); run .ci/site_browser.sh, which installs them")

WIDTHS = {"desktop": 1280, "phone": 390}


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("site-browser")
    registry = make_site_registry(base / "registry")
    code, _, err = build(registry, base / "site")
    assert code == 0, err
    return registry, base / "site"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--allow-file-access-from-files", "--hide-scrollbars",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(DRIVER), options=options)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def shots() -> Path:
    root = os.environ.get("HWCAL_ARTIFACTS")
    folder = Path(root) / "site-screenshots" if root else Path(tempfile.mkdtemp(prefix="hwcal-site-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(driver: Any, page: Path) -> list[dict[str, Any]]:
    """Load a page; returns its console errors (the log is emptied by each read)."""
    driver.get_log("browser")
    driver.get(page.as_uri() if "?" not in str(page) else "file://" + str(page))
    driver.execute_script("return document.readyState")
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _screenshot(driver: Any, folder: Path, name: str) -> None:
    """A full-page picture at each width (the window grows to the page's height)."""
    for label, width in WIDTHS.items():
        driver.set_window_size(width, 900)
        height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 6000)")
        driver.set_window_size(width, max(600, int(height)))
        driver.save_screenshot(str(folder / f"{name}-{label}.png"))
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} at {width} px: the page scrolls sideways by {overflow} px"
    driver.set_window_size(1280, 900)


def _visible_rows(driver: Any) -> int:
    return driver.execute_script("return document.querySelectorAll('#cal-body tr').length")


def test_index_lists_every_calibration_and_filters(driver: Any, site_dir: tuple[Path, Path], shots: Path) -> None:
    from selenium.webdriver.support.ui import Select

    _, out = site_dir
    assert _open(driver, out / "index.html") == []
    assert _visible_rows(driver) == 4  # the current calibration of each of the 4 keys
    driver.find_element("id", "f-sup").click()
    assert _visible_rows(driver) == 7  # and the 3 superseded ones
    pages = driver.execute_script("return [...document.querySelectorAll('#cal-body tr')].map(r => r.dataset.page)")
    assert all((out / p).is_file() for p in pages)
    Select(driver.find_element("id", "f-dt")).select_by_value("gpu")
    assert _visible_rows(driver) == 3
    Select(driver.find_element("id", "f-dt")).select_by_value("")
    driver.find_element("id", "f-sup").click()
    from hwcal.registry.api import Registry

    current = Registry(site_dir[0], emit_warnings=False).list_calibrations()
    Select(driver.find_element("id", "f-prec")).select_by_value("tf32")
    assert _visible_rows(driver) == sum(1 for e in current if "tf32" in e.peaks) == 1  # only the H100 has TF32
    Select(driver.find_element("id", "f-prec")).select_by_value("")
    Select(driver.find_element("id", "f-mode")).select_by_value(HOSTILE_MODE)
    assert _visible_rows(driver) == 1
    cell = driver.find_element("css selector", "#cal-body tr td:nth-child(3)").text
    assert cell == HOSTILE_MODE  # shown as text, and no alert was raised
    Select(driver.find_element("id", "f-mode")).select_by_value("")
    driver.find_element("id", "f-text").send_keys("h100")
    assert _visible_rows(driver) == 1
    driver.find_element("id", "f-text").clear()
    driver.execute_script("document.getElementById('f-text').dispatchEvent(new Event('input'))")
    driver.find_element("css selector", "#cal-head th:nth-child(4) button").click()  # sort by MHz
    assert driver.find_element("css selector", "#cal-head th:nth-child(4)").get_attribute("aria-sort") == "descending"
    assert _visible_rows(driver) == 4
    _screenshot(driver, shots, "index")


def test_a_calibration_page_shows_its_pictures(driver: Any, site_dir: tuple[Path, Path], shots: Path) -> None:
    _, out = site_dir
    for name, page in (("calibration-gpu", out / "cal/gpu/h100_sxm5/700W_1980MHz_pytorch.html"),
                       ("calibration-cpu", out / "cal/cpu/amd_epyc_zen3/default_2445MHz_numpy.html")):
        assert _open(driver, page) == []
        driver.execute_script("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        images = driver.execute_script(
            "return Promise.all([...document.images].map(i => i.decode().then(() => "
            "[i.alt, i.naturalWidth, i.naturalHeight], () => [i.alt, 0, 0])))")
        assert len(images) == len(CHARTS)  # gemm, bandwidth, roofline, memory tiers, latency
        for alt, width, height in images:
            assert alt and width > 0 and height > 0, f"{page}: picture {alt!r} not decoded"
        _screenshot(driver, shots, name)


def test_a_key_page_draws_its_history(driver: Any, site_dir: tuple[Path, Path], shots: Path) -> None:
    _, out = site_dir
    assert _open(driver, out / "key/gpu/h100_sxm5/700W_1980MHz_pytorch.html") == []
    boxes = driver.execute_script(
        "return [...document.querySelectorAll('svg.chart')].map(s => {const b = s.getBBox(); "
        "return [s.querySelector('title').textContent, b.width, b.height]})")
    assert len(boxes) == 2 and all(t and w > 0 and h > 0 for t, w, h in boxes)
    rows = driver.execute_script("return document.querySelectorAll('tbody tr').length")
    assert rows == 3
    _screenshot(driver, shots, "key-history")
    assert _open(driver, out / "unreadable.html") == []
    assert "broken_1000MHz_numpy.json" in driver.find_element("tag name", "main").text
    _screenshot(driver, shots, "unreadable")


def _cli_compare(registry: Path, a: str, b: str) -> dict[str, Any]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = compare_calibrations.main([str(registry / a), str(registry / b), "--json", "--registry", str(registry)])
    assert code == 0
    return json.loads(stdout.getvalue())


PAIRS = [("gpu/h100_sxm5/calibrations/history/700W_1980MHz_pytorch.20261126T194153578545Z.json",
          "gpu/h100_sxm5/calibrations/700W_1980MHz_pytorch.json"),
         ("cpu/amd_epyc_zen3/calibrations/history/default_2445MHz_numpy.20261126T194436328737Z.json",
          "cpu/amd_epyc_zen3/calibrations/default_2445MHz_numpy.json"),
         ("cpu/amd_epyc_zen3/calibrations/default_2445MHz_numpy.json",
          "cpu/amd_epyc_zen3/calibrations/default_2445MHz_pytorch.json"),
         ("cpu/amd_epyc_zen3/calibrations/default_2445MHz_pytorch.json",
          "gpu/h100_sxm5/calibrations/700W_1980MHz_pytorch.json")]


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=["h100-history", "epyc-history", "numpy-vs-torch", "cpu-vs-gpu"])
def test_the_compare_view_gives_hwcal_compare_s_numbers(driver: Any, site_dir: tuple[Path, Path], shots: Path,
                                                         a: str, b: str) -> None:
    from hwcal.site.data import page_path

    registry, out = site_dir
    errors = _open(driver, Path(f"{out}/compare.html?a={page_path(a)}&b={page_path(b)}"))
    assert errors == []
    driver.implicitly_wait(5)
    driver.find_element("id", "cmp-table")
    driver.implicitly_wait(0)
    shown = driver.execute_script(
        "return [...document.querySelectorAll('#cmp-table tbody tr')].map(tr => [tr.dataset.metric, "
        "Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.field, "
        "td.dataset.value === undefined ? td.textContent : Number(td.dataset.value)]))])")
    expected = _cli_compare(registry, a, b)["rows"]
    assert [m for m, _ in shown] == [r["metric"] for r in expected]
    for (metric, cells), row in zip(shown, expected, strict=True):
        assert cells["verdict"] == row["verdict"], metric
        assert cells["unit"] == row["unit"], metric
        for name in ("a", "b", "ratio", "efficiency_a", "efficiency_b", "noise"):
            want = row[name]
            got = cells.get(name)
            if want is None:
                assert got in (None, "-", "?"), (metric, name, got)
            else:
                assert got == pytest.approx(want, rel=1e-12), (metric, name)
    if a == PAIRS[0][0]:
        _screenshot(driver, shots, "compare")
