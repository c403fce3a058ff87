"""pytest-benchmark keeps working beside the calibration: --benchmark-json, --benchmark-autosave and
--benchmark-compare, with the calibrated device in machine_info; the hwcal block prints last."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_plugin_e2e import FAST, KEY_ARGS, bench  # noqa: F401 -- the fixture is reused

pytest_plugins = ["pytester"]


def _run(bench: pytest.Pytester, *args: str) -> pytest.RunResult:  # noqa: F811
    return bench.runpytest_subprocess("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, *FAST,
                                      "--allow-partial", *args)


def test_benchmark_json_carries_the_device_and_the_calibration_is_filed(bench: pytest.Pytester) -> None:  # noqa: F811
    result = _run(bench, "--benchmark-json", "out.json")
    assert result.ret == 0, result.stdout.str()
    data = json.loads((bench.path / "out.json").read_text())
    info = data["machine_info"]["hwcal"]
    assert info["device"] == "cpu" and info["framework"] == "numpy"
    assert info.get("cpu_model") or info.get("cpu_microarchitecture")
    assert [b["extra_info"]["precision"] for b in data["benchmarks"]] == ["fp64"]
    assert list((bench.path / "registry").glob("cpu/test_cpu/calibrations/*.json"))


def test_autosave_then_compare_against_it(bench: pytest.Pytester) -> None:  # noqa: F811
    first = _run(bench, "--benchmark-autosave", "--benchmark-storage", "file://bstore")
    assert first.ret == 0, first.stdout.str()
    saved = sorted(Path(bench.path / "bstore").rglob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["machine_info"]["hwcal"]["device"] == "cpu"
    second = _run(bench, "--benchmark-storage", "file://bstore", "--benchmark-compare")
    assert second.ret == 0, second.stdout.str()
    assert "Comparing against benchmarks from" in second.stdout.str() + second.stderr.str()
    assert "machine_info is different" not in second.stdout.str() + second.stderr.str()


def test_the_hwcal_block_comes_after_the_benchmark_table_and_ends_with_the_path(
        bench: pytest.Pytester) -> None:  # noqa: F811
    result = _run(bench)
    out = result.stdout.lines
    table = max(i for i, line in enumerate(out) if "benchmark" in line and "----" in line)
    block = next(i for i, line in enumerate(out) if "hwcal calibration" in line)
    assert block > table
    path_line = next(i for i in range(block, len(out)) if out[i].startswith("hwcal: calibration written to"))
    summary = next(i for i in range(block, len(out)) if " passed" in out[i] and "=" in out[i])
    assert path_line < summary  # the block ends with the path, before pytest's closing line
    assert out[-1].startswith("hwcal: calibration written to")
