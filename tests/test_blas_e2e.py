"""BLAS1/BLAS2, GEMM shapes and launch floors end to end through pytester: tiny sizes file one valid
calibration with the three sections; a selection that leaves operations out says which; a bad
--shapes fails in one line with nothing written.

In-process runs (the size plan is patched to tiny sizes); the real bench files are copied in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import hwcal
import hwcal.measure.blas
from hwcal.document.schema import schema_errors

REPO = Path(hwcal.__file__).resolve().parent.parent
KEY_ARGS = ["--power-mode", "7W", "--frequency-mhz", "2450", "--hardware-id", "test_cpu"]
CAL_REL = "registry/cpu/test_cpu/calibrations/7W_2450MHz_numpy.json"
TINY_SIZES = [4096, 65536]  # bytes per call: the plan's real sizes reach 128 MiB


@pytest.fixture
def bench(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("HWCAL_POWER_MODE", "HWCAL_FRAMEWORK", "HWCAL_DEVICE", "HWCAL_FREQUENCY_MHZ", "HWCAL_HARDWARE_ID",
                 "HWCAL_REGISTRY", "HWCAL_SIZES", "HWCAL_SHAPES", "HWCAL_MIN_GFLOPS", "HWCAL_MAX_CALL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hwcal.measure.blas, "plan_working_sets", lambda *args, **kwargs: list(TINY_SIZES))
    pytester.makeconftest('"""hwcal registers itself through its pytest11 entry point."""\n')
    for name in ("test_blas", "test_gemm_shapes", "test_floors", "test_gemm"):
        pytester.makepyfile(**{name: (REPO / "bench" / f"{name}.py").read_text()})
    return pytester


def _doc(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / CAL_REL).read_text())


def _one_error_line(result: pytest.RunResult, pattern: str) -> None:
    lines = [line for line in result.errlines + result.outlines if re.search(pattern, line)]
    assert len(lines) == 1, result.errlines + result.outlines


def test_tiny_run_files_the_three_sections(bench: pytest.Pytester) -> None:
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "--quick", "--sizes", "32",
                             "--shapes", "8x16x32,b2x8x8x8", "-k", "not gemm[ or gemm[fp32 or gemm[fp64")
    assert result.ret == 0, result.stdout.str()
    # 4 operations x 2 precisions x 2 sizes (--quick: no refinement sizes), 2 shapes in fp32 (--quick: the first
    # precision), 7 floors each back to back and isolated, fp64/fp32 square GEMM
    result.assert_outcomes(passed=16 + 2 + 14 + 2, deselected=5)
    doc = _doc(bench)
    assert schema_errors(doc, "calibration") == []

    blas = doc["blas"]
    assert [(e["operation"], e["precision"]) for e in blas[::2]] == [
        (op, p) for op in ("dot", "axpy", "scal", "gemv") for p in ("fp64", "fp32")]
    for e in blas:
        assert e["verified"] is True and e["max_error"] <= e["tolerance"]
        assert e["gbps_best"] == pytest.approx(e["bytes"] / e["time_s"]["min"] / 1e9, rel=1e-3)
        assert e["gflops_best"] == pytest.approx(e["flops"] / e["time_s"]["min"] / 1e9, rel=1e-3)
        assert e["at_dram"] is False and e["efficiency_vs_measured_dram"] is None  # tiny sizes sit in cache
        assert e["threads"] >= 1 and e["kernel"]
    dot = next(e for e in blas if e["operation"] == "dot")
    assert dot["flops"] == 2 * dot["n"] and dot["bytes"] == 2 * dot["n"] * dot["element_bytes"]
    gemv = next(e for e in blas if e["operation"] == "gemv")
    assert gemv["flops"] == 2 * gemv["m"] * gemv["n"]

    shapes = doc["gemm_shapes"]
    assert {(e["precision"], e["family"], e["batch"], e["m"], e["n"], e["k"]) for e in shapes} == {
        ("fp32", f, b, m, n, k) for f, b, m, n, k in (("small_m", 1, 8, 16, 32), ("batched", 2, 8, 8, 8))}
    assert all(e["source"] == "--shapes" and e["verified"] for e in shapes)
    assert next(e for e in shapes if e["precision"] == "fp32")["efficiency"] > 0  # against the spec's peak

    floors = doc["launch_floors"]
    assert set(floors) == {"dot", "axpy", "scal", "gemv", "gemm", "batched_gemm", "add"}
    for f in floors.values():
        assert 0 < f["seconds_min"] <= f["seconds_median"] < 1e-3
        assert f["framework"] == "numpy" and f["device"] == "cpu" and f["calls"] >= 200
        assert f["timing"] == "back_to_back"
        assert 0 < f["isolated"]["seconds_min"] <= f["isolated"]["seconds_median"] < 1e-3
        assert "each followed by a synchronisation" in f["isolated"]["method"]

    selection = doc["metadata"]["selection"]
    assert selection["operations_not_run"] == ["stream", "max_achievable", "compute_ceiling", "memory_system",
                                               "conv2d", "conv_bn_relu", "sdpa", "fused_ops",
                                               "energy"]  # their bench files were not copied
    assert selection["partial"] is True and "--shapes" in selection["partial_why"]
    result.stdout.fnmatch_lines(["*gemm shapes (best): small_m*", "*launch floors, back to back / isolated: dot * / *"])


def test_selection_that_leaves_operations_out_says_which(bench: pytest.Pytester) -> None:
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "--quick", "-k", "dot")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=4 + 2)  # dot in 2 precisions x 2 sizes, the dot floor both ways
    doc = _doc(bench)
    assert {e["operation"] for e in doc["blas"]} == {"dot"}
    selection = doc["metadata"]["selection"]
    assert {"gemm", "stream", "axpy", "scal", "gemv", "gemm_shapes"} <= set(selection["operations_not_run"])
    assert not {"dot", "launch_floors"} & set(selection["operations_not_run"])
    assert selection["partial"] is True
    assert "no axpy, scal, gemv, gemm_shapes" in selection["partial_why"]
    assert "gemm_shapes" not in doc


@pytest.mark.parametrize(("value", "pattern"), [
    ("0x128x128", r"--shapes: shape '0x128x128' in '0x128x128' is not MxNxK"),
    ("128x128", r"--shapes: shape '128x128' in '128x128' is not MxNxK"),
    ("garbage", r"--shapes: shape 'garbage' in 'garbage' is not MxNxK"),
    ("b-2x8x8x8", r"--shapes: shape 'b-2x8x8x8' in 'b-2x8x8x8': the batch of bBxMxNxK"),
])
def test_bad_shapes_fail_in_one_line_and_write_nothing(bench: pytest.Pytester, value: str, pattern: str) -> None:
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "--quick", "--shapes", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_error_line(result, pattern)
    assert not (bench.path / "registry").exists()
    assert "passed" not in result.stdout.str()


def test_benchmark_disable_verifies_blas_and_shapes_and_files_nothing(bench: pytest.Pytester) -> None:
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "--benchmark-disable",
                             "--shapes", "4x8x16", "-k", "blas or gemm_shape")
    assert result.ret == 0, result.stdout.str()
    # 4 operations x 2 precisions x (2 sizes + the refinement between them: nothing measured says it is not
    # needed), the one --shapes shape in 2 precisions
    result.assert_outcomes(passed=24 + 2)
    assert not (bench.path / "registry").exists()


def test_a_wrong_blas_result_fails_the_run_and_files_nothing(bench: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from hwcal.backends.numpy_backend import NumpyBackend

    real = NumpyBackend.blas_bound  # the call the rounds time

    def wrong(self: NumpyBackend, ops: object) -> object:
        call = real(self, ops)  # type: ignore[arg-type]

        def bad() -> object:
            out = call()
            if ops.operation == "dot":  # type: ignore[attr-defined]
                ops.result = ops.result * 1.5  # type: ignore[attr-defined]
            return out
        return bad

    monkeypatch.setattr(NumpyBackend, "blas_bound", wrong)
    result = bench.runpytest("-p", "no:randomly", "--registry", "registry", *KEY_ARGS, "--quick", "-k", "blas")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*dot fp64 at n=* gave wrong results*"])
    assert not (bench.path / "registry").exists()
