"""GEMM beyond square: the --shapes option (parsing, one-line errors), the families, verification of
non-square and batched results (a wrong result fails), and the ``gemm_shapes`` section."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.document.builder import build_calibration, gemm_shapes_section
from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.measure.adaptive import bend_reason, refinement_reason, refinement_sizes
from hwcal.measure.records import ShapeRecord
from hwcal.measure.shape_plan import line_of
from hwcal.measure.shapes import Shape, classify, default_shapes, parse_shape_list, verify_shape
from hwcal.plugin.options import OPTIONS, parse_shapes, resolve
from tests.conftest import make_input, make_record

SHAPES_SPEC = next(s for s in OPTIONS if s.flag == "--shapes")


@pytest.mark.parametrize(("value", "shapes"), [
    ("128x3072x768", [(1, 128, 3072, 768)]),
    ("1x4096x4096, 16x4096x4096", [(1, 1, 4096, 4096), (1, 16, 4096, 4096)]),
    ("b32x128x128x64,128X768X3072", [(32, 128, 128, 64), (1, 128, 768, 3072)]),
    ("8x8x8,8x8x8,", [(1, 8, 8, 8)]),
])
def test_shapes_accepted(value: str, shapes: list[tuple[int, int, int, int]]) -> None:
    assert parse_shapes(value) == shapes


@pytest.mark.parametrize(("value", "named"), [
    ("0x128x128", "'0x128x128'"),
    ("128x-1x8", "'128x-1x8'"),
    ("128x128", "'128x128'"),
    ("128x128x128x128", "'128x128x128x128'"),
    ("axbxc", "'axbxc'"),
    ("b0x8x8x8", "'b0x8x8x8'"),
    ("bx8x8x8", "'bx8x8x8'"),
    ("1.5x8x8", "'1.5x8x8'"),
    ("８x8x8", "'８x8x8'"),  # non-ASCII digits are not sizes
])
def test_shapes_refused_naming_the_bad_part(value: str, named: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=named):
        parse_shapes(value)


@pytest.mark.parametrize("value", ["", ",", " , "])
def test_shapes_naming_no_shape_refused(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="name no shape"):
        parse_shapes(value)


def test_shapes_option_from_the_environment_names_its_source() -> None:
    assert resolve(SHAPES_SPEC, None, None, {"HWCAL_SHAPES": "2x3x4"}) == [(1, 2, 3, 4)]
    with pytest.raises(HwcalError, match="environment variable HWCAL_SHAPES: shape '2x3' in '2x3'"):
        resolve(SHAPES_SPEC, None, None, {"HWCAL_SHAPES": "2x3"})
    assert resolve(SHAPES_SPEC, None, None, {}) is None  # the families' own list


def test_shapes_option_is_declared_like_the_others() -> None:
    assert SHAPES_SPEC.metavar == "MxNxK[,..]" and SHAPES_SPEC.env == "HWCAL_SHAPES"
    assert parse_shape_list("4x5x6") == [(1, 4, 5, 6)]


@pytest.mark.parametrize(("shape", "family"), [
    ((1, 1, 4096, 4096), "small_m"),
    ((1, 128, 3072, 768), "small_m"),
    ((1, 512, 3072, 768), "small_m"),
    ((1, 2048, 3072, 768), "proj_up"),
    ((1, 2048, 768, 3072), "proj_down"),
    ((32, 128, 128, 64), "batched"),
])
def test_classify(shape: tuple[int, int, int, int], family: str) -> None:
    assert classify(*shape) == family


def test_default_families_cpu_and_gpu() -> None:
    cpu = default_shapes("cpu", quick=False)
    small = [s for s in cpu if s.family == "small_m"]
    assert sorted({s.m for s in small}) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]  # the dense sweep of M
    assert {(s.n, s.k) for s in small} == {(640, 640), (1152, 1152), (4608, 1152), (1152, 4608)}
    coarse = [s.m for s in small if not s.refine]
    # M = 4 and 8 always on a CPU: torch's mm there lies 30-45 % above the line from M = 2 to 16
    assert sorted(set(coarse)) == [1, 2, 4, 8, 16, 32, 128, 512] and all(not s.refine for s in cpu[:len(coarse)])
    assert [s.label for s in cpu if s.family == "proj_up"] == ["128x1024x256", "128x2048x512", "128x3072x768"]
    assert [s.label for s in cpu if s.family == "proj_down"] == ["128x256x1024", "128x512x2048", "128x768x3072"]
    batched = [s.label for s in cpu if s.family == "batched"]
    assert batched[:3] == ["b16x64x64x64", "b16x256x256x64", "b16x256x64x256"]  # at T = d scores and values agree
    assert {"b16x1024x1024x64", "b16x1024x64x1024", "b16x1x1024x64", "b16x1x64x1024", "b16x512x512x64"} <= set(batched)
    # short prompts: numpy's small stacks cost far more a matrix than the 4x4 floor's
    assert {"b16x16x16x64", "b16x16x64x16", "b16x4x4x64", "b16x4x64x4"} <= set(batched)
    refinements = [i for i, s in enumerate(cpu) if s.refine]
    assert refinements and min(refinements) > max(i for i, s in enumerate(cpu) if not s.refine)  # coarse first
    quick = default_shapes("cpu", quick=True)
    assert {s.family for s in quick} == {"small_m", "proj_up", "proj_down", "batched"}
    assert len(quick) < len(cpu) and not any(s.refine for s in quick)
    assert {s.label for s in quick} <= {s.label for s in cpu}
    gpu = default_shapes("gpu", quick=False)  # a smaller grid: a GPU case costs ~0.2 s
    assert {(s.m, s.k) for s in gpu if s.family == "proj_up"} == {(2048, 4096)}
    assert {(s.n, s.k) for s in gpu if s.family == "small_m"} == {(4352, 4352), (17408, 4352), (4352, 17408)}
    assert max(s.m for s in gpu if s.family == "batched") == 4096
    assert Shape("proj_up", 1, 2048, 16384, 4096).flops == 2 * 2048 * 16384 * 4096


def test_a_cpu_grid_has_a_pair_beyond_its_last_level_cache() -> None:
    """The other CPU pairs all fit a 32 MB L3; a model's larger projections do not, and numpy ran them at
    60 % of the speed the cached pairs promised."""
    from hwcal.measure.shape_plan import BEYOND_LLC_M, beyond_llc_pair

    n, k = beyond_llc_pair(32 << 20)
    assert (n, k) == (14976, 1152) and 4 * n * k >= 2 * (32 << 20) and (n // k) % 2 == 1
    assert 4 * beyond_llc_pair(96 << 20)[0] * 1152 >= 2 * (96 << 20)
    assert beyond_llc_pair(1 << 40)[0] == 63 * 1152  # bounded on a huge LLC
    cpu = default_shapes("cpu", quick=False, llc_bytes=32 << 20)
    beyond = [s for s in cpu if (s.n, s.k) == (n, k)]
    assert [s.m for s in beyond] == list(BEYOND_LLC_M) and not any(s.refine for s in beyond)
    assert cpu.index(beyond[0]) > max(i for i, s in enumerate(cpu) if s.family == "proj_down")  # after the others
    assert len(cpu) == len(default_shapes("cpu", quick=False)) + len(BEYOND_LLC_M)
    assert not any(s.n == n for s in default_shapes("cpu", quick=True, llc_bytes=32 << 20))
    assert not any(s.n == n for s in default_shapes("gpu", quick=False, llc_bytes=32 << 20))


def test_a_cpu_grid_has_a_power_of_two_width_and_no_other_case_has_one() -> None:
    """OpenBLAS ran 32x16384x1152 at 77-79 GFLOPS where 16128 and 16448 ran at 94-96 (Zen 4 guest): the power-of-two
    width is its own family, at the pair beyond the LLC's K, after the coarse points, on CPUs only."""
    from hwcal.measure.shape_plan import BEYOND_LLC_K, POW2_M, POW2_N

    cpu = default_shapes("cpu", quick=False, llc_bytes=32 << 20)
    pow2 = [s for s in cpu if s.family == "pow2_n"]
    assert [(s.m, s.n, s.k) for s in pow2] == [(m, POW2_N, BEYOND_LLC_K) for m in POW2_M]
    assert POW2_N & (POW2_N - 1) == 0 and not any(s.refine or line_of(s.family, 1, s.m, s.n, s.k) for s in pow2)
    assert cpu.index(pow2[0]) > max(i for i, s in enumerate(cpu) if s.n == 14976)  # after the pair beyond the LLC
    # then the pairs' M = 512 (compute-bound, bordered by the square sweep), then the refinements
    top = [i for i, s in enumerate(cpu) if s.family == "small_m" and s.m == 512]
    assert len(top) == 4 and min(top) > cpu.index(pow2[-1]) and max(top) < min(i for i, s in enumerate(cpu) if s.refine)
    assert [s for s in default_shapes("cpu", quick=False) if s.family == "pow2_n"] == pow2  # LLC unknown: still
    others = [s for s in cpu if s.family != "pow2_n"]  # (a GPU's proj_up is 2048x16384x4096: no factor there)
    assert not any(s.n >= 4096 and s.n & (s.n - 1) == 0 and s.batch == 1 for s in others)
    assert not any(s.family == "pow2_n" for s in default_shapes("cpu", quick=True, llc_bytes=32 << 20)
                   + default_shapes("gpu", quick=False))
    assert classify(1, 32, POW2_N, BEYOND_LLC_K) == "small_m"  # --shapes never makes one


def test_sweep_lines() -> None:
    assert line_of("small_m", 1, 8, 640, 640) == (("small_m", 640, 640), 8)
    assert line_of("batched", 16, 256, 256, 64) == (("scores", 16, 64), 256)
    assert line_of("batched", 16, 256, 64, 256) == (("values", 16, 64), 256)
    assert line_of("batched", 16, 1, 1024, 64) is None  # one decode step lies on no line
    assert line_of("proj_up", 1, 128, 1024, 256) is None


def test_a_refinement_runs_only_at_a_bend() -> None:
    # memory-bound (flat) up to 16, compute-bound (time ~ M) beyond: the knee lies between 2 and 16
    knee = [(1, 1.0), (2, 1.0), (16, 1.1), (128, 8.8), (512, 35.2)]
    assert bend_reason(knee, 4, "x") is None  # 2..16 flat, 16..128 linear: a bend, measure it
    assert bend_reason(knee, 256, "x") is not None  # 128..512 continues 16..128's slope of 1: straight
    reason = bend_reason(knee, 256, "fp32 256x640x640")
    assert reason is not None and reason.startswith("fp32 256x640x640: not needed") and "slope 1.00" in reason
    assert bend_reason([(2, 1.0), (16, 2.0)], 4, "x") is None  # no segment beside it: nothing says straight
    assert bend_reason([(1, 5.0), (2, 1.0), (4, 1.0), (8, 1.0)], 3, "x") is not None  # M = 1 (a GEMV) ignored
    assert bend_reason([(2, 1.0), (64, 2.0), (128, 4.0)], 8, "x") is None  # 32x apart: never trusted straight
    assert bend_reason([(16, 1.0)], 4, "x") is None and bend_reason([], 4, "x") is None
    assert bend_reason([(2, 1.0), (2, 1.2), (16, 1.1), (128, 8.8)], 4, "x") is None  # repeats: the best counts


def test_blas_refinement_sizes_and_rule() -> None:
    assert refinement_sizes([2**14, 2**20, 2**27]) == [2**17, 2**24, 2**16, 2**18, 2**22, 2**25]
    assert refinement_sizes([2**14, 2**16]) == []  # 4x apart: nothing between
    steps = [(2**20, 100.0), (2**27, 30.0)]
    assert refinement_reason(steps, 2**24, "dot") is None  # a tier step between: refine
    flat = [(2**20, 100.0), (2**27, 90.0)]
    reason = refinement_reason(flat, 2**24, "dot fp32 at 16MiB", lambda b: f"{b >> 20}MiB")
    assert reason == ("dot fp32 at 16MiB: not needed, 1MiB and 128MiB either side reach 100 and 90 GB/s (within "
                      "20%: no tier step between them)")
    assert refinement_reason([(2**20, 100.0)], 2**24, "dot") is None


# ---- verification --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("batch", "m", "n", "k"), [(1, 1, 256, 128), (1, 64, 96, 384), (4, 32, 48, 16)])
@pytest.mark.parametrize("precision", ["fp64", "fp32"])
def test_numpy_shapes_verify_and_a_wrong_entry_fails(batch: int, m: int, n: int, k: int, precision: str) -> None:
    backend = NumpyBackend()
    ops = backend.make_shape_operands(precision, m, n, k, batch, seed=5)
    c = backend.gemm_shape(ops)
    assert c.shape == ((batch,) if batch > 1 else ()) + (m, n)
    check = verify_shape(backend, ops, c, seed=5)
    assert check.ok, check.describe()
    wrong = c.copy()
    wrong[(batch - 1,) * (batch > 1) + (m - 1, n // 2)] += 0.05 * float(np.abs(c).max())
    assert not verify_shape(backend, ops, wrong, seed=5).ok
    assert not verify_shape(backend, ops, np.zeros_like(c), seed=5).ok


def test_torch_cpu_shapes_verify() -> None:
    pytest.importorskip("torch")
    from hwcal.backends.torch_backend import TorchBackend

    backend = TorchBackend("cpu")
    for precision in ("fp32", "bf16", "fp16"):
        for batch, m, n, k in ((1, 16, 64, 32), (3, 8, 16, 24)):
            ops = backend.make_shape_operands(precision, m, n, k, batch, seed=2)
            check = verify_shape(backend, ops, backend.gemm_shape(ops), seed=2)
            assert check.ok, (precision, check.describe())
            ops.out.zero_()
            assert not verify_shape(backend, ops, ops.out, seed=2).ok


# ---- the document ------------------------------------------------------------------------------------------
def shape_record(family: str = "proj_up", precision: str = "fp32", m: int = 128, n: int = 3072, k: int = 768,
                 batch: int = 1, gflops: float = 80.0) -> ShapeRecord:
    flops = 2 * batch * m * n * k
    t = flops / (gflops * 1e9)
    return ShapeRecord(
        family=family, precision=precision, m=m, n=n, k=k, batch=batch, layout="row-major", flops=flops,
        launches_per_round=1, rounds=10, warmup_rounds=0,
        time_s={"min": t, "max": 1.2 * t, "mean": 1.05 * t, "median": 1.04 * t, "stddev": 0.02 * t, "iqr": 0.03 * t},
        gflops_best=gflops, gflops_median=gflops / 1.04, cv=0.02, max_error=1e-7, tolerance=1e-5,
        verify_method="test", kernel="np.matmul -> cblas_sgemm")


def test_gemm_shapes_section_efficiency_against_the_same_peaks() -> None:
    entries, warnings = gemm_shapes_section(
        [shape_record(), shape_record("batched", m=128, n=128, k=64, batch=32, gflops=40.0),
         shape_record("small_m", "fp64", m=1, n=1024, k=1024, gflops=2.0)], {"fp32": 400.0})
    assert warnings == []
    assert [e["family"] for e in entries] == ["small_m", "proj_up", "batched"]  # canonical precision, family order
    assert entries[0]["efficiency"] is None  # no fp64 peak given
    assert entries[1]["efficiency"] == pytest.approx(0.2)
    assert entries[2]["batch"] == 32 and entries[2]["flops"] == 2 * 32 * 128 * 128 * 64
    over, warnings = gemm_shapes_section([shape_record(gflops=500.0)], {"fp32": 400.0})
    assert len(warnings) == 1 and "the peak is wrong" in warnings[0] and "no efficiency filed" in warnings[0]
    assert over[0]["efficiency"] is None  # 1.25x its peak is not a share of it


def test_document_with_gemm_shapes_is_valid() -> None:
    doc = build_calibration(make_input([make_record("fp32", 256, 100.0)], shapes=[shape_record()]))
    assert schema_errors(doc, "calibration") == []
    entry = doc["gemm_shapes"][0]
    assert (entry["m"], entry["n"], entry["k"], entry["batch"]) == (128, 3072, 768, 1)
    assert entry["efficiency"] == pytest.approx(80.0 / 400.0, rel=0.02)  # the builder's efficiency spec


@pytest.mark.parametrize(("device", "spent", "expected"), [
    ("cpu", 0.0, {"fp32": 4.8, "bf16": 6.4, "fp16": 8.0}),  # fp32, what models run on a CPU, counts triple
    ("cpu", 1.0, {"fp32": 3.8, "bf16": 5.4, "fp16": 7.0}),  # what is spent comes off every later share
    ("gpu", 0.0, {"fp32": 4.0, "bf16": 8.0, "fp16": 12.0}),  # equal on a GPU
])
def test_shape_budget_shares(monkeypatch: pytest.MonkeyPatch, device: str, spent: float,
                             expected: dict[str, float]) -> None:
    import types

    import hwcal.measure.shapes as shapes

    monkeypatch.setattr(shapes, "shape_precisions", lambda session: ["fp32", "bf16", "fp16"])
    session = types.SimpleNamespace(backend=types.SimpleNamespace(device_type=device),
                                    options=types.SimpleNamespace(quick=False),
                                    budget_spent_s={"gemm_shapes": spent},
                                    family_budget=lambda family, nominal: nominal)  # no run target here
    budget = shapes.SHAPES_BUDGET_S[device, False]  # 8 s on a CPU, 12 s on a GPU: the expected seconds' whole
    got = {p: shapes._allowance(session, p) for p in expected}  # type: ignore[arg-type]
    assert got == {p: (pytest.approx(v), budget) for p, v in expected.items()}


def test_a_spent_shape_budget_is_one_warning_per_precision(tmp_path: Path) -> None:
    """Every shape a precision's spent share leaves out is named in one warning, where it was first raised."""
    from hwcal.measure.session import CalibrationOptions, CalibrationSession
    from hwcal.measure.shape_plan import Shape
    from hwcal.measure.shapes import _skip_before

    session = CalibrationSession(CalibrationOptions(None, "numpy", "cpu", None, None, tmp_path, False, None, 1.0,
                                                    1.0, False, False))
    session.budget_spent_s["gemm_shapes"] = 1e9  # every share spent
    session.warn("before")
    for precision, m in (("fp64", 4), ("fp64", 16), ("fp32", 4), ("fp64", 32)):
        reason = _skip_before(session, precision, Shape("small_m", 1, m, 64, 64))
        assert reason is not None and "shape budget is spent" in reason  # the case's own skip reason
    session.warn("after")
    budget = session.results.warnings[1].split("of the ")[1].split(" s ")[0]
    assert session.results.warnings == [
        "before",
        f"gemm_shapes: fp64: its share of the {budget} s shape budget was spent; left out (3): 4x64x64, 16x64x64, "
        "32x64x64",
        f"gemm_shapes: fp32: its share of the {budget} s shape budget was spent; left out: 4x64x64",
        "after"]
