"""Pictures of a calibration: each chart is written as a valid PNG and SVG and shows the series it
should (one line per precision or kernel, one ceiling per peak or memory level); a calibration
without memory or GEMM results still draws, saying what is missing; the command line fails loudly on
a bad file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from hwcal.cli.plot import main
from hwcal.document.builder import build_calibration
from hwcal.machine.caches import CacheInfo, CacheLevel
from hwcal.measure.records import KERNELS, MemorySweep, StreamRecord, stream_bytes
from hwcal.report.figures import CHARTS, bytes_label, figures, render, series_gids

KiB, MiB = 2**10, 2**20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


def _record(kernel: str, array_bytes: int, gbps: float) -> StreamRecord:
    n = array_bytes // 8
    moved = stream_bytes(kernel, n, 8)
    t = moved / (gbps * 1e9)
    return StreamRecord(kernel=kernel, n=n, element_bytes=8, bytes_per_pass=moved, arrays_moved=moved // array_bytes,
                        passes_per_round=1, rounds=10, warmup_rounds=1,
                        time_s={"min": t, "max": t * 1.1, "mean": t * 1.02, "median": t * 1.01, "stddev": t * 0.01,
                                "iqr": t * 0.01}, gbps_best=gbps, gbps_median=gbps / 1.01, cv=0.01, max_rel_error=0.0,
                        method=f"test {kernel}")


def _sweep() -> MemorySweep:
    caches = CacheInfo((CacheLevel(1, 32 * KiB, 2), CacheLevel(2, 512 * KiB, 2), CacheLevel(3, 32 * MiB, 1)), "test")
    sweep = MemorySweep(caches=caches, device="cpu", threads=2, budget_s=12.0, spent_s=5.0)
    size = 4 * KiB
    while size <= 256 * MiB:
        for kernel in KERNELS:
            ws = stream_bytes(kernel, size // 8, 8)
            gbps = 200.0 if ws <= 32 * KiB else 100.0 if ws <= 512 * KiB else 60.0 if ws <= 16 * MiB else 25.0
            sweep.records.append(_record(kernel, size, gbps))
        size *= 4 if size < 64 * MiB else 2
    sweep.methods = {k: f"test {k}" for k in KERNELS}
    return sweep


@pytest.fixture
def full_doc(input_factory: Any, record_factory: Any) -> dict[str, Any]:
    """fp64 and fp32 with theoretical peaks, fp16 without; a STREAM sweep with L1, L2, L3 and DRAM."""
    records = [record_factory("fp64", 256, 50.0), record_factory("fp64", 512, 60.0),
               record_factory("fp32", 256, 100.0), record_factory("fp32", 512, 120.0),
               record_factory("fp16", 256, 0.5, kernel="numpy generic matmul loop")]
    spec = {"theoretical_peaks": {"fp64": 200.0, "fp32": 400.0}, "peak_bandwidth_gbps": 40.0}
    return build_calibration(input_factory(records, memory=_sweep(), spec=spec))


def _svg_group_ids(path: Path) -> list[str]:
    root = ET.parse(path).getroot()  # raises on malformed XML
    assert root.tag == f"{SVG_NS}svg"
    return [g.get("id", "") for g in root.iter(f"{SVG_NS}g")]


def _count(ids: list[str], prefix: str) -> int:
    return sum(1 for i in ids if i.startswith(prefix))


def test_every_chart_is_a_valid_png_and_svg(full_doc: dict[str, Any], tmp_path: Path) -> None:
    import matplotlib.image

    written = render(full_doc, tmp_path / "out", "cal", dpi=80)
    assert sorted(p.name for p in written) == sorted(f"cal_{c}.{f}" for c in CHARTS for f in ("png", "svg"))
    for path in written:
        assert path.stat().st_size > 1000
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
            height, width, channels = matplotlib.image.imread(path).shape
            assert (width, height) == (11 * 80, 6 * 80) and channels in (3, 4)
        else:
            _svg_group_ids(path)
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_charts_show_the_expected_series(full_doc: dict[str, Any], tmp_path: Path) -> None:
    render(full_doc, tmp_path, "cal", formats=("svg",))
    gemm = _svg_group_ids(tmp_path / "cal_gemm.svg")
    assert _count(gemm, "series-gemm-") == 3  # fp64, fp32, fp16: one line per precision
    assert _count(gemm, "ceiling-gemm-") == 2  # dashed theoretical peaks where the spec has one
    bandwidth = _svg_group_ids(tmp_path / "cal_bandwidth.svg")
    assert _count(bandwidth, "series-stream-") == 4  # copy, scale, add, triad
    assert "ceiling-sustained" in bandwidth and "ceiling-spec-bandwidth" in bandwidth
    roofline = _svg_group_ids(tmp_path / "cal_roofline.svg")
    assert _count(roofline, "ceiling-compute-") == 3
    assert _count(roofline, "ceiling-memory-") == len(full_doc["memory"]["stream_levels"]) == 4  # L1, L2, L3, DRAM


def test_figure_objects_carry_the_same_series(full_doc: dict[str, Any]) -> None:
    figs = figures(full_doc)
    assert sorted(series_gids(figs["gemm"])) == ["ceiling-gemm-fp32", "ceiling-gemm-fp64", "series-gemm-fp16",
                                                  "series-gemm-fp32", "series-gemm-fp64"]
    axes = figs["bandwidth"].axes[0]
    assert axes.get_xscale() == "log" and axes.get_yscale() == "log"
    assert "working set" in axes.get_xlabel() and "GB/s" in axes.get_ylabel()
    assert "GFLOPS" in figs["roofline"].axes[0].get_ylabel() and "FLOP per" in figs["roofline"].axes[0].get_xlabel()
    marks = [t.get_text() for t in axes.texts]
    assert marks == ["L1 64 KiB", "L2 1 MiB", "L3 32 MiB"]  # two threads: the private caches of both cores


def test_a_calibration_without_memory_or_gemm_still_draws(input_factory: Any, tmp_path: Path) -> None:
    doc = build_calibration(input_factory([]))
    figs = figures(doc)
    assert all(series_gids(f) == [] for f in figs.values())
    assert "no GEMM results" in figs["gemm"].axes[0].texts[0].get_text()
    assert "no STREAM results" in figs["bandwidth"].axes[0].texts[0].get_text()
    assert "no roofline" in figs["roofline"].axes[0].texts[0].get_text()
    assert "no memory-system bandwidth" in figs["hierarchy"].axes[0].texts[0].get_text()
    assert "no latency" in figs["latency"].axes[0].texts[0].get_text()
    assert len(render(doc, tmp_path, "empty", formats=("png",))) == len(CHARTS)


def test_command_line_writes_and_names_the_files(full_doc: dict[str, Any], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cal = tmp_path / "7W_2450MHz_numpy.json"
    cal.write_text(json.dumps(full_doc))
    assert main([str(cal), "--out", str(tmp_path / "plots"), "--formats", "png", "--dpi", "60"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "plots" / f"7W_2450MHz_numpy_{c}.png") for c in CHARTS]
    assert all(Path(p).exists() for p in printed)


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "not valid JSON"),
    ('{"schema_version": 1}', "not a valid calibration"),
])
def test_command_line_fails_loudly_on_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 content: str | None, message: str) -> None:
    cal = tmp_path / "cal.json"
    if content is not None:
        cal.write_text(content)
    assert main([str(cal), "--out", str(tmp_path / "plots")]) == 1  # the tools' one rule: 1 for a bad file
    err = capsys.readouterr().err
    assert err.startswith("plot_calibration.py: error: ") and message in err and str(cal) in err
    assert not (tmp_path / "plots").exists()


def test_bytes_label() -> None:
    assert [bytes_label(b) for b in (512, 4 * KiB, 1536 * KiB, 768 * MiB, 2**30)] == [
        "512 B", "4 KiB", "1.5 MiB", "768 MiB", "1 GiB"]
