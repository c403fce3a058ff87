"""BLAS1/BLAS2: BLAS's counting rules, the size plan, verification (a wrong result fails), the fair
budget, and the document's ``blas`` section against the same run's triad."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwcal.backends.base import BlasOperands
from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.document.builder import blas_section, build_calibration, launch_floors_section
from hwcal.document.schema import schema_errors
from hwcal.machine.caches import CacheInfo, CacheLevel
from hwcal.measure.adaptive import refinement_sizes
from hwcal.measure.blas import (
    GEMV_ALIGN,
    arithmetic_intensity,
    blas_bytes,
    blas_cases,
    blas_flops,
    blas_refinements,
    fair_allowance,
    plan_working_sets,
    size_for,
    verify_blas,
)
from hwcal.measure.records import BlasRecord, LaunchFloor
from tests.conftest import make_input, make_record

MiB = 2**20
EPYC = CacheInfo((CacheLevel(1, 32 * 2**10, 2), CacheLevel(2, MiB, 2), CacheLevel(3, 32 * MiB, 1)), "test")


# ---- counting ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "n", "m", "flops", "elements"), [
    ("dot", 1000, 1, 2000, 2000),  # x . y: n multiplies + n adds over x and y
    ("axpy", 1000, 1, 2000, 3000),  # y += a x: x, y read, y written
    ("scal", 1000, 1, 1000, 2000),  # x *= a: read and written
    ("gemv", 300, 200, 2 * 200 * 300, 200 * 300 + 200 + 300),  # y = A x, A m x n
])
def test_counting_is_blas_counting(op: str, n: int, m: int, flops: int, elements: int) -> None:
    assert blas_flops(op, n, m) == flops
    assert blas_bytes(op, n, 8, m) == 8 * elements
    assert blas_bytes(op, n, 4, m) == 4 * elements
    assert arithmetic_intensity(op, n, 8, m) == pytest.approx(flops / (8 * elements))


def test_arithmetic_intensities_in_fp64() -> None:
    assert arithmetic_intensity("dot", 10**6, 8) == pytest.approx(1 / 8)
    assert arithmetic_intensity("axpy", 10**6, 8) == pytest.approx(1 / 12)
    assert arithmetic_intensity("scal", 10**6, 8) == pytest.approx(1 / 16)
    assert arithmetic_intensity("gemv", 4096, 8, 4096) == pytest.approx(1 / 4, rel=1e-3)


def test_unknown_operation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown BLAS operation 'ger'; one of dot, axpy, scal, gemv"):
        blas_flops("ger", 10)


@pytest.mark.parametrize("op", ["dot", "axpy", "scal", "gemv"])
@pytest.mark.parametrize("element_bytes", [2, 4, 8])
def test_size_for_reaches_the_planned_bytes(op: str, element_bytes: int) -> None:
    # A planned DRAM size must stay >= 4x LLC once rounded to whole elements.
    for target in (16 * 2**10, 16 * MiB + 4, 128 * MiB):
        n, m = size_for(op, target, element_bytes)
        got = blas_bytes(op, n, element_bytes, m)
        assert got >= target
        if op == "gemv":  # a whole square of an aligned side, the smallest that reaches the target
            assert n == m and n % GEMV_ALIGN == 0
            assert blas_bytes(op, n - GEMV_ALIGN, element_bytes, n - GEMV_ALIGN) < target
        else:
            assert got < target * 1.1 + 64 * element_bytes  # whole elements


def test_plan_has_one_size_per_cache_level_and_a_dram_size() -> None:
    sizes = plan_working_sets(EPYC, "cpu", 64 * 2**30, quick=False)
    assert sizes == [16 * 2**10, 512 * 2**10, 16 * MiB, 128 * MiB]  # half of L1, L2, L3; >= 4x the 32 MiB L3
    assert plan_working_sets(EPYC, "cpu", 64 * 2**30, quick=True) == [16 * 2**10, 16 * MiB, 128 * MiB]
    small = CacheInfo((CacheLevel(1, 32 * 2**10, 4), CacheLevel(2, 2 * MiB, 1)), "test")
    assert plan_working_sets(small, "cpu", 64 * 2**30, quick=False)[-1] == 64 * MiB  # the floor for SoCs
    gpu = CacheInfo((CacheLevel(2, 50 * MiB, 1),), "test")
    assert plan_working_sets(gpu, "gpu", 80 * 2**30, quick=False) == [MiB, 16 * MiB, 256 * MiB]


def test_plan_caps_the_dram_size_where_a_vm_reports_a_huge_l3() -> None:
    # This VM reports one 480 MiB L3: 4x would be 2 GiB, whose first touch took most of the BLAS budget.
    vm = CacheInfo((CacheLevel(1, 48 * 2**10, 2), CacheLevel(2, 2 * MiB, 2), CacheLevel(3, 480 * MiB, 1)), "test")
    assert plan_working_sets(vm, "cpu", 20 * 2**30, quick=False) == [16 * 2**10, MiB, 256 * MiB]  # 128 MiB: the top's


def test_plan_leaves_out_sizes_beyond_half_of_free_memory() -> None:
    assert plan_working_sets(EPYC, "cpu", 100 * MiB, quick=False) == [16 * 2**10, 512 * 2**10, 16 * MiB]


def test_cases_run_the_dram_size_first_in_each_series(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = NumpyBackend()
    monkeypatch.setattr(backend, "stream_caches", lambda: EPYC)
    cases = blas_cases(backend, quick=True)
    assert cases[:3] == [("gemv", "fp32", 128 * MiB), ("gemv", "fp32", 16 * MiB), ("gemv", "fp32", 16 * 2**10)]
    # gemv first (a GEMM's weights stream at its bandwidth in the predictions), the most asked precision first
    assert [c[:2] for c in cases[::3]] == [(op, p) for op in ("gemv", "dot", "axpy", "scal") for p in ("fp32", "fp64")]
    full = [c[2] for c in blas_cases(backend, quick=False) if c[:2] == ("dot", "fp32")]
    planned = sorted(plan_working_sets(EPYC, "cpu", backend.free_memory_bytes(), False), reverse=True)
    assert full[:len(planned)] == planned  # the planned sizes first, the DRAM one first of all
    assert full[len(planned):] == refinement_sizes(planned) and full[len(planned):]  # then the refinements


def test_a_gpu_refines_inside_its_l2_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """An H100's planned 1, 16 and 256 MiB refine at 4 and 64 MiB (the middles), and on a GPU also at 32 MiB,
    the largest size its 50 MB L2 holds (a 50 MiB projection sat between 16 and 64 MiB); a CPU does not."""
    h100 = CacheInfo((CacheLevel(2, 50 * 10**6, 1),), "test")
    planned = [MiB, 16 * MiB, 256 * MiB]
    backend = NumpyBackend()
    monkeypatch.setattr(backend, "stream_caches", lambda: h100)
    assert blas_refinements(backend, planned) == refinement_sizes(planned) == [4 * MiB, 64 * MiB]
    monkeypatch.setattr(type(backend), "device_type", "gpu")
    assert blas_refinements(backend, planned) == [4 * MiB, 64 * MiB, 32 * MiB]
    assert blas_refinements(backend, [MiB, 32 * MiB, 256 * MiB]) == refinement_sizes([MiB, 32 * MiB, 256 * MiB])


def test_fair_allowance_carries_unused_time_forward() -> None:
    assert fair_allowance(8.0, 0.0, 0, 4) == 2.0
    assert fair_allowance(8.0, 1.0, 1, 4) == 3.0  # series 0 left 1 s of its 2
    assert fair_allowance(8.0, 7.5, 3, 4) == 0.5


# ---- verification: a right result passes, a wrong one fails -------------------------------------------------
def _run(backend: NumpyBackend, op: str, precision: str, n: int = 4096, m: int = 1) -> BlasOperands:
    ops = backend.blas_operands(op, precision, n, m if op == "gemv" else 1, seed=3)
    for _ in range(5):  # repeated in-place launches, as in timed rounds
        backend.blas_call(ops)
    return ops


@pytest.mark.parametrize("precision", ["fp64", "fp32"])
@pytest.mark.parametrize("op", ["dot", "axpy", "scal", "gemv"])
def test_numpy_results_verify(op: str, precision: str) -> None:
    backend = NumpyBackend()
    ops = _run(backend, op, precision, 4096 if op != "gemv" else 96, 80)
    check = verify_blas(backend, ops)
    assert check.ok, check.describe()
    assert check.max_error <= check.tolerance


def test_wrong_dot_fails() -> None:
    backend = NumpyBackend()
    ops = _run(backend, "dot", "fp32")
    ops.result = np.float32(ops.result) * np.float32(1.01)
    assert not verify_blas(backend, ops).ok
    ops.result = np.float32(0.0)  # an unwritten result
    assert not verify_blas(backend, ops).ok
    ops.result = np.float32("nan")
    assert not verify_blas(backend, ops).ok


def test_dot_tolerance_grows_with_sqrt_n_from_the_unit_roundoff() -> None:
    backend = NumpyBackend()
    small, large = _run(backend, "dot", "fp32", 1024), _run(backend, "dot", "fp32", 4 * 1024 * 1024)
    t_small, t_large = verify_blas(backend, small).tolerance, verify_blas(backend, large).tolerance
    assert t_small < t_large < 2.1 * 64 * t_small  # ~ u + u_acc sqrt(n)
    assert verify_blas(backend, _run(backend, "dot", "fp64", 1024)).tolerance < 1e-12


def test_wrong_gemv_row_fails() -> None:
    backend = NumpyBackend()
    ops = _run(backend, "gemv", "fp64", 64, 100)
    ops.y[77] += 1e-3 * abs(ops.y).max()
    check = verify_blas(backend, ops)
    assert not check.ok and check.max_error > check.tolerance


class _BrokenNumpy(NumpyBackend):
    """axpy/scal that leave the last element alone: one wrong element in millions must fail."""

    def blas_call(self, ops: BlasOperands, alpha: float | None = None) -> Any:
        target = ops.x if ops.operation == "scal" else ops.y
        last = target[-1]
        out = super().blas_call(ops, alpha)
        target[-1] = last
        return out


@pytest.mark.parametrize("op", ["axpy", "scal"])
def test_in_place_operation_that_misses_an_element_fails(op: str) -> None:
    backend = _BrokenNumpy()
    ops = _run(backend, op, "fp32", 100_003)
    check = verify_blas(backend, ops)
    assert not check.ok, check.describe()


def test_in_place_verification_checks_one_call_after_the_timed_ones() -> None:
    backend = NumpyBackend()
    ops = _run(backend, "axpy", "fp64", 1000)
    before = ops.y.copy()
    verify_blas(backend, ops)
    np.testing.assert_array_equal(ops.y, before + 0.5 * ops.x)


def test_alternating_scalars_keep_values_bounded() -> None:
    backend = NumpyBackend()
    axpy, scal = _run(backend, "axpy", "fp32", 1000), _run(backend, "scal", "fp32", 1000)
    start_y = backend.blas_operands("axpy", "fp32", 1000, 1, seed=3).y
    for _ in range(10_001):
        backend.blas_call(axpy)
        backend.blas_call(scal)
    assert np.abs(axpy.y - start_y).max() < 1.0
    assert np.abs(scal.x).max() <= 2.0


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("precision", ["fp64", "fp32", "fp16", "bf16"])
@pytest.mark.parametrize("op", ["dot", "axpy", "scal", "gemv"])
def test_torch_cpu_results_verify(op: str, precision: str) -> None:
    from hwcal.backends.torch_backend import TorchBackend

    backend = TorchBackend("cpu")
    ops = backend.blas_operands(op, precision, 2048 if op != "gemv" else 64, 48 if op == "gemv" else 1, seed=1)
    for _ in range(3):
        backend.blas_call(ops)
    check = verify_blas(backend, ops)
    assert check.ok, check.describe()
    if op == "dot":
        ops.result.fill_(0.0)
        assert not verify_blas(backend, ops).ok


# ---- the document ------------------------------------------------------------------------------------------
def blas_record(op: str = "dot", precision: str = "fp64", nbytes: int = 128 * MiB, gbps: float = 18.0,
                llc: int = 32 * MiB) -> BlasRecord:
    element = 8 if precision == "fp64" else 4
    n, m = size_for(op, nbytes, element)
    real_bytes = blas_bytes(op, n, element, m)
    flops = blas_flops(op, n, m)
    t = real_bytes / (gbps * 1e9)
    return BlasRecord(
        operation=op, precision=precision, n=n, m=m if op == "gemv" else None, flops=flops, bytes=real_bytes,
        element_bytes=element, launches_per_round=1, rounds=10, warmup_rounds=0,
        time_s={"min": t, "max": 1.2 * t, "mean": 1.05 * t, "median": 1.04 * t, "stddev": 0.02 * t, "iqr": 0.03 * t},
        gflops_best=flops / t / 1e9, gflops_median=flops / (1.04 * t) / 1e9, gbps_best=gbps, gbps_median=gbps / 1.04,
        cv=0.02, max_error=1e-15, tolerance=1e-12, verify_method="test", kernel="np.dot -> cblas_ddot", threads=2,
        llc_bytes=llc)


def test_blas_section_judges_dram_sizes_against_the_runs_triad() -> None:
    records = [blas_record("dot", nbytes=16 * 2**10, gbps=30.0), blas_record("dot", gbps=18.0),
               blas_record("gemv", "fp32", gbps=10.0)]
    entries, warnings = blas_section(records, sustained_gbps=20.0, spec_gbps=None)
    assert warnings == []
    cache, dram, gemv = entries
    assert cache["efficiency_vs_measured_dram"] is None and cache["at_dram"] is False
    assert dram["efficiency_vs_measured_dram"] == pytest.approx(0.9) and dram["at_dram"] is True
    assert dram["efficiency_vs_theoretical"] is None  # no spec bandwidth
    assert gemv["m"] == gemv["n"] and gemv["efficiency_vs_measured_dram"] == pytest.approx(0.5)
    assert dram["arithmetic_intensity"] == pytest.approx(0.125)
    assert dram["flops"] == 2 * dram["n"] and dram["bytes"] == 16 * dram["n"]
    entries, warnings = blas_section(records, sustained_gbps=None, spec_gbps=15.0)
    assert entries[1]["efficiency_vs_measured_dram"] is None
    assert entries[1]["efficiency_vs_theoretical"] is None  # 1.2x the spec: not a share of it, not filed
    assert len(warnings) == 1 and "the spec's bandwidth is wrong" in warnings[0] and "1.2x" in warnings[0]


def test_document_with_the_new_sections_is_valid() -> None:
    floors = {"dot": LaunchFloor("dot", 5e-7, 6e-7, 2000, 20, "np.dot 1 element", "numpy", "cpu", "fp32")}
    inp = make_input([make_record("fp32", 256, 100.0)], blas=[blas_record(), blas_record("axpy", "fp32")],
                     floors=floors)
    doc = build_calibration(inp)
    assert schema_errors(doc, "calibration") == []
    assert [e["operation"] for e in doc["blas"]] == ["dot", "axpy"]
    assert doc["launch_floors"] == launch_floors_section(floors)
    assert doc["launch_floors"]["dot"]["seconds_min"] == 5e-7
