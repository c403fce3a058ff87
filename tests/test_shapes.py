"""GEMM beyond square: the --shapes option (parsing, one-line errors), the families, verification of
non-square and batched results (a wrong result fails), and the ``gemm_shapes`` section."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.document.builder import build_calibration, gemm_shapes_section
from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.measure.records import ShapeRecord
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
    ((1, 2048, 3072, 768), "proj_up"),
    ((1, 2048, 768, 3072), "proj_down"),
    ((32, 128, 128, 64), "batched"),
])
def test_classify(shape: tuple[int, int, int, int], family: str) -> None:
    assert classify(*shape) == family


def test_default_families_cpu_and_gpu() -> None:
    cpu = default_shapes("cpu", quick=False)
    assert [s.label for s in cpu if s.family == "small_m"] == ["1x1024x1024", "16x1024x1024", "128x1024x1024"]
    assert [s.label for s in cpu if s.family == "proj_up"] == ["128x1024x256", "128x2048x512", "128x3072x768"]
    assert [s.label for s in cpu if s.family == "proj_down"] == ["128x256x1024", "128x512x2048", "128x768x3072"]
    assert [s.label for s in cpu if s.family == "batched"] == ["b32x128x128x64", "b32x128x64x128"]
    quick = default_shapes("cpu", quick=True)
    assert {s.family for s in quick} == {"small_m", "proj_up", "proj_down", "batched"}
    assert len(quick) < len(cpu) and {s.label for s in quick} <= {s.label for s in cpu}
    gpu = default_shapes("gpu", quick=False)
    assert {(s.m, s.k) for s in gpu if s.family == "proj_up"} == {(m, h) for m in (2048, 4096)
                                                                    for h in (768, 1024, 4096)}
    assert Shape("proj_up", 1, 2048, 16384, 4096).flops == 2 * 2048 * 16384 * 4096


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
    _, warnings = gemm_shapes_section([shape_record(gflops=500.0)], {"fp32": 400.0})
    assert len(warnings) == 1 and "the peak is wrong" in warnings[0]


def test_document_with_gemm_shapes_is_valid() -> None:
    doc = build_calibration(make_input([make_record("fp32", 256, 100.0)], shapes=[shape_record()]))
    assert schema_errors(doc, "calibration") == []
    entry = doc["gemm_shapes"][0]
    assert (entry["m"], entry["n"], entry["k"], entry["batch"]) == (128, 3072, 768, 1)
    assert entry["efficiency"] == pytest.approx(80.0 / 400.0, rel=0.02)  # the builder's efficiency spec
