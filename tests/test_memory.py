"""STREAM by its rules: bytes counted as STREAM counts them, results validated, the sustained figure
taken from the plateau beyond the last-level cache (never an in-cache peak), cache levels detected
and named, and a tiny sweep filed end to end. No timed assertions: the numbers here are made up or
only checked for shape."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

import hwcal
from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.document.builder import build_calibration
from hwcal.document.memory import find_plateau, level_figures, level_of, memory_section
from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.machine.caches import ASSUMED_LLC_BYTES, CacheInfo, CacheLevel, detect_cpu_caches, gpu_caches, parse_size
from hwcal.machine.sources import Sources
from hwcal.measure.memory_system import BUDGET_S as MEMSYS_BUDGET_S
from hwcal.measure.records import (
    KERNELS,
    STREAM_INITIAL,
    MemorySweep,
    StreamRecord,
    after_kernel,
    stream_bytes,
    validation_error,
)
from hwcal.measure.session import CalibrationSession
from hwcal.measure.stream import (
    DRAM_EXTRA_S,
    MEMORY_BUDGET_S,
    StreamState,
    _rounds_within_budget,
    plan_array_sizes,
    run_stream,
    size_label,
    stream_cases,
)
from hwcal.plugin.options import CalibrationOptions
from tests.fakes import FakeBenchmark

REPO = Path(hwcal.__file__).resolve().parent.parent
KiB, MiB, GiB = 2**10, 2**20, 2**30
# This CI machine's shape: 2 cores, private 32 KiB L1d and 512 KiB L2, one shared 32 MiB L3.
EPYC = CacheInfo((CacheLevel(1, 32 * KiB, 2), CacheLevel(2, 512 * KiB, 2), CacheLevel(3, 32 * MiB, 1)), "test")


def make_stream_record(kernel: str, array_bytes: int, gbps: float, *, cv: float = 0.02) -> StreamRecord:
    """A plausible validated STREAM record whose times agree with its GB/s."""
    n = array_bytes // 8
    moved = stream_bytes(kernel, n, 8)
    t_min = moved / (gbps * 1e9)
    return StreamRecord(kernel=kernel, n=n, element_bytes=8, bytes_per_pass=moved, arrays_moved=moved // array_bytes,
                        passes_per_round=1, rounds=10, warmup_rounds=1,
                        time_s={"min": t_min, "max": t_min * 1.2, "mean": t_min * 1.05, "median": t_min * 1.04,
                                "stddev": t_min * cv, "iqr": t_min * cv},
                        gbps_best=gbps, gbps_median=gbps / 1.04, cv=cv, max_rel_error=0.0, method=f"test {kernel}")


def epyc_sweep(dram_gbps: float = 20.0) -> MemorySweep:
    """A sweep with clear steps: L1 ~200, L2 ~100, L3 ~60 GB/s, then a DRAM plateau at ``dram_gbps``."""
    def bandwidth(ws: int) -> float:
        return 200.0 if ws <= 16 * KiB else 100.0 if ws <= 256 * KiB else 60.0 if ws <= 16 * MiB else dram_gbps

    sweep = MemorySweep(caches=EPYC, device="cpu", threads=1, budget_s=12.0, spent_s=3.0)
    size = 4 * KiB
    while size <= 256 * MiB:
        for kernel in KERNELS:
            ws = stream_bytes(kernel, size // 8, 8)
            sweep.records.append(make_stream_record(kernel, size, bandwidth(ws) * (1.1 if kernel == "copy" else 1.0)))
        size *= 4 if size < 64 * MiB else 2
    sweep.methods = {k: f"test {k}" for k in KERNELS}
    return sweep


# ---- bytes as STREAM counts them --------------------------------------------------------------

@pytest.mark.parametrize(("kernel", "arrays"), [("copy", 2), ("scale", 2), ("add", 3), ("triad", 3)])
def test_bytes_are_counted_as_stream_counts_them(kernel: str, arrays: int) -> None:
    assert stream_bytes(kernel, 1_000_000, 8) == arrays * 8_000_000
    assert stream_bytes(kernel, 1_000_000, 4) == arrays * 4_000_000


def test_unknown_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown STREAM kernel 'fma'"):
        stream_bytes("fma", 10, 8)


def test_numpy_triad_moves_streams_three_arrays_and_says_how() -> None:
    method = NumpyBackend().stream_method("triad")
    assert method.arrays_moved == 3  # chunked: a's chunk stays in cache between multiply and add
    assert "chunk" in method.description and "1 thread" in method.description


def test_numpy_chunked_triad_is_stream_triad() -> None:
    import numpy as np

    backend = NumpyBackend()
    n = 3 * backend.TRIAD_CHUNK + 5  # a ragged last chunk
    arrays = backend.stream_arrays(n, (1.0, 2.0, 0.5))
    b, c = arrays.b.copy(), arrays.c.copy()
    backend.stream_kernel("triad", arrays, 3.0)
    assert np.array_equal(arrays.a, b + 3.0 * c)


# ---- validation --------------------------------------------------------------------------------

def test_expected_values_follow_streams_recurrence() -> None:
    values = STREAM_INITIAL
    seen = []
    for kernel in KERNELS:
        values = after_kernel(kernel, values, 3.0)
        seen.append(values)
    assert seen == [(1.0, 2.0, 1.0), (1.0, 3.0, 1.0), (1.0, 3.0, 4.0), (15.0, 3.0, 4.0)]
    for kernel in KERNELS:  # repeating a kernel leaves what one pass leaves: rounds can repeat it
        assert after_kernel(kernel, after_kernel(kernel, values)) == after_kernel(kernel, values)


def _backends() -> list[Any]:
    backends: list[Any] = [pytest.param("numpy", id="numpy")]
    backends.append(pytest.param("pytorch", id="pytorch", marks=pytest.mark.skipif(
        not _has_torch(), reason="torch not installed")))
    return backends


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _backend(framework: str) -> Any:
    from hwcal.backends import make_backend

    return make_backend(framework, "cpu")


@pytest.mark.parametrize("framework", _backends())
def test_every_backend_computes_streams_values(framework: str) -> None:
    backend = _backend(framework)
    state = StreamState(backend)
    arrays = state.arrays_for(1000)
    for kernel in KERNELS:
        for _ in range(3):
            backend.stream_kernel(kernel, arrays, 3.0)
        state.expected = after_kernel(kernel, state.expected, 3.0)
        assert state.validate() == 0.0, kernel
    assert backend.stream_extremes(arrays.a) == (15.0, 15.0)


@pytest.mark.parametrize("framework", _backends())
def test_a_wrong_element_anywhere_is_caught(framework: str) -> None:
    backend = _backend(framework)
    state = StreamState(backend)
    arrays = state.arrays_for(4096)
    backend.stream_kernel("copy", arrays, 3.0)
    state.expected = after_kernel("copy", state.expected)
    arrays.c[4095] = 1.0 + 1e-9  # one element, the last
    assert state.validate() == pytest.approx(1e-9)
    assert validation_error([(1.0, 1.0), (2.0, 2.0), (0.0, 0.5)], (1.0, 2.0, 0.0)) == 0.5


def test_validation_failure_fails_the_case_and_files_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cal = _session(tmp_path)
    monkeypatch.setattr(NumpyBackend, "stream_call", lambda self, kernel, arrays, s: lambda: arrays.a.fill(7.0))
    state = StreamState(cal.backend)
    with pytest.raises(pytest.fail.Exception, match="STREAM copy at 64KiB gave wrong values"):
        run_stream(FakeBenchmark(), cal, state, "copy", 64 * KiB)
    assert cal.results.memory.records == []  # type: ignore[union-attr]
    assert state.arrays is None  # values unknown: the next case starts from fresh arrays


# ---- plateau and levels -----------------------------------------------------------------------

def test_plateau_is_beyond_the_llc_never_an_in_cache_peak() -> None:
    points = [(1 * MiB, 90.0), (8 * MiB, 60.0), (64 * MiB, 25.0), (128 * MiB, 20.5), (256 * MiB, 19.5)]
    plateau = find_plateau(points, min_array_bytes=128 * MiB)
    assert plateau is not None
    assert plateau.array_bytes == (128 * MiB, 256 * MiB)
    assert plateau.gbps == statistics.median([20.5, 19.5])
    assert plateau.spread == pytest.approx(1.0 / 20.0)


def test_plateau_leaves_out_a_size_that_disagrees() -> None:
    points = [(128 * MiB, 30.0), (256 * MiB, 20.0), (512 * MiB, 20.4)]
    plateau = find_plateau(points, min_array_bytes=128 * MiB)
    assert plateau is not None and plateau.array_bytes == (256 * MiB, 512 * MiB)


def test_no_plateau_without_stream_sized_arrays() -> None:
    assert find_plateau([(1 * MiB, 90.0), (32 * MiB, 25.0)], min_array_bytes=128 * MiB) is None


@pytest.mark.parametrize(("working_set", "threads", "level"), [
    (16 * KiB, 1, "l1"), (48 * KiB, 1, "l2"), (48 * KiB, 2, "l1"),  # private caches add up per thread
    (768 * KiB, 1, "l3"), (768 * KiB, 2, "l2"), (32 * MiB, 2, "l3"), (48 * MiB, 2, "dram"), (1 * GiB, None, "dram"),
])
def test_level_of_a_working_set(working_set: int, threads: int | None, level: str) -> None:
    assert level_of(working_set, EPYC, threads) == level


def test_level_figures_where_the_steps_are_clear() -> None:
    sweep = epyc_sweep()
    levels, notes = level_figures(sweep.records, EPYC, 1, 20.0)
    assert {k: v["gbps"] for k, v in levels.items()} == {"l1": 200.0, "l2": 100.0, "l3": 60.0, "dram": 20.0}
    assert notes == []


def test_a_level_that_is_no_step_is_left_out_and_says_why() -> None:
    # Tiny arrays bound by per-call overhead: "L1" slower than L2 is no step.
    records = [make_stream_record("triad", 4 * KiB, 5.0), make_stream_record("triad", 32 * KiB, 100.0),
               make_stream_record("triad", 2 * MiB, 60.0), make_stream_record("triad", 256 * MiB, 20.0)]
    levels, notes = level_figures(records, EPYC, 1, 20.0)
    assert list(levels) == ["l2", "l3", "dram"]
    assert any(n.startswith("l1: 5 GB/s is not clearly above l2's 100 GB/s") for n in notes)


# ---- cache detection ---------------------------------------------------------------------------

def _fake_sysfs(root: Path, cpus: int = 2) -> None:
    for cpu in range(cpus):
        for index, (level, kind, size, shared) in enumerate([
                (1, "Data", "32K", str(cpu)), (1, "Instruction", "32K", str(cpu)),
                (2, "Unified", "512K", str(cpu)), (3, "Unified", "32768K", f"0-{cpus - 1}")]):
            d = root / f"sys/devices/system/cpu/cpu{cpu}/cache/index{index}"
            d.mkdir(parents=True)
            for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
                (d / name).write_text(f"{value}\n")
    (root / "sys/devices/system/cpu/cpufreq").mkdir(parents=True)  # not a cpuN folder: ignored


def test_caches_from_sysfs_count_instances_by_sharing(tmp_path: Path) -> None:
    _fake_sysfs(tmp_path)
    info = detect_cpu_caches(Sources(root=tmp_path, commands={}))
    assert info == CacheInfo((CacheLevel(1, 32 * KiB, 2), CacheLevel(2, 512 * KiB, 2), CacheLevel(3, 32 * MiB, 1)),
                             info.source)
    assert info.llc_total_bytes == 32 * MiB and not info.assumed
    assert "sysfs" in info.source


def test_caches_from_lscpu_when_sysfs_has_none(tmp_path: Path) -> None:
    lscpu = ("NAME ONE-SIZE ALL-SIZE WAYS TYPE        LEVEL  SETS PHY-LINE COHERENCY-SIZE\n"
             "L1d     32768    65536    8 Data            1    64        1             64\n"
             "L1i     32768    65536    8 Instruction     1    64        1             64\n"
             "L2     524288  1048576    8 Unified         2  1024        1             64\n"
             "L3   33554432 67108864   16 Unified         3 32768        1             64\n")
    info = detect_cpu_caches(Sources(root=tmp_path, commands={"lscpu -C --bytes": lscpu}))
    assert [(c.name, c.size_bytes, c.instances) for c in info.levels] == [
        ("l1", 32 * KiB, 2), ("l2", 512 * KiB, 2), ("l3", 32 * MiB, 2)]
    assert info.llc_total_bytes == 64 * MiB  # two L3s: STREAM's rule is about their sum
    assert info.source == "lscpu -C --bytes"


def test_caches_assumed_and_said_so_when_nothing_answers(tmp_path: Path) -> None:
    info = detect_cpu_caches(Sources(root=tmp_path, commands={}))
    assert info.assumed and info.llc_total_bytes == ASSUMED_LLC_BYTES and info.notes


def test_gpu_l2_is_the_last_level() -> None:
    info = gpu_caches(50 * MiB, "torch")
    assert info.llc_total_bytes == 50 * MiB and info.last_level is not None and info.last_level.name == "l2"
    assert gpu_caches(0, "torch").assumed


@pytest.mark.parametrize(("text", "size"), [("32K", 32 * KiB), ("32768K", 32 * MiB), ("1M", MiB), ("1 MiB", MiB),
                                            ("524288", 524288), ("big", None)])
def test_parse_size(text: str, size: int | None) -> None:
    assert parse_size(text) == size


# ---- sizes and budget --------------------------------------------------------------------------

def test_sizes_go_from_inside_l1_to_beyond_4x_the_llc() -> None:
    sizes, notes = plan_array_sizes(EPYC, "cpu", free_bytes=16 * GiB, quick=False)
    assert sizes[0] * 3 <= 32 * KiB  # a triad's three arrays inside one core's L1
    assert sizes[-2] >= 4 * EPYC.llc_total_bytes and sizes[-1] > sizes[-2]  # two STREAM-sized: a plateau
    assert sizes == sorted(sizes) and notes == []
    quick, _ = plan_array_sizes(EPYC, "cpu", free_bytes=16 * GiB, quick=True)
    assert len(quick) < len(sizes) and quick[-1] >= 4 * EPYC.llc_total_bytes


def test_sizes_never_exceed_the_memory_that_is_free() -> None:
    sizes, notes = plan_array_sizes(gpu_caches(60 * MiB, "test"), "gpu", free_bytes=2 * GiB, quick=False)
    assert 3 * max(sizes) <= GiB  # at most half of what is free
    assert notes and all("left out" in n for n in notes)
    assert sizes[0] >= MiB  # a GPU's smaller arrays only time the launch


def test_cases_are_size_major_in_streams_kernel_order() -> None:
    cases = stream_cases(NumpyBackend(), quick=True)
    assert [k for k, _ in cases[:4]] == list(KERNELS)
    assert [b for _, b in cases] == sorted(b for _, b in cases)
    assert size_label(4 * KiB) == "4KiB" and size_label(256 * MiB) == "256MiB" and size_label(GiB) == "1GiB"


def test_budget_shortens_then_skips_with_the_reason() -> None:
    backend = NumpyBackend()
    sweep = MemorySweep(caches=EPYC, device="cpu", threads=1, budget_s=12.0)
    state = StreamState(backend)
    assert _rounds_within_budget(sweep, state, backend, "triad", 32 * MiB, 10) == (10, None)  # nothing seen yet
    sweep.records.append(make_stream_record("triad", 128 * MiB, 10.0))  # 40 ms a pass
    sweep.spent_s = 11.0
    rounds, reason = _rounds_within_budget(sweep, state, backend, "triad", 16 * MiB, 10)
    assert reason is None and 3 <= rounds < 10 and sweep.skips
    sweep.spent_s = 11.99
    rounds, reason = _rounds_within_budget(sweep, state, backend, "triad", 256 * MiB, 10)
    assert rounds == 0 and reason is not None and "12 s memory budget" in reason
    # The memory part of a calibration: the sweep, its DRAM interval (two DRAM-sized triads), the memory system.
    assert MEMORY_BUDGET_S["cpu", False] + 2 * DRAM_EXTRA_S["cpu", False] + MEMSYS_BUDGET_S["cpu", False] <= 15.0


# ---- the benchmark body, in process ------------------------------------------------------------


def _session(tmp_path: Path, quick: bool = True) -> CalibrationSession:
    opts = CalibrationOptions(None, "numpy", "cpu", None, None, tmp_path, quick, None, 1.0, 1.0, False, False)
    return CalibrationSession(opts)


def test_body_measures_validates_and_files_a_sustained_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              input_factory: Any) -> None:
    # A machine whose LLC is 16 KiB: STREAM-sized arrays are 64 KiB, so the whole rule runs in milliseconds.
    tiny = CacheInfo((CacheLevel(1, 4 * KiB, 1), CacheLevel(2, 16 * KiB, 1)), "test")
    monkeypatch.setattr(NumpyBackend, "stream_caches", lambda self: tiny)
    cal = _session(tmp_path)
    state = StreamState(cal.backend)
    for size in (KiB, 64 * KiB, 128 * KiB):
        for kernel in KERNELS:
            run_stream(FakeBenchmark(), cal, state, kernel, size)
    sweep = cal.results.memory
    assert isinstance(sweep, MemorySweep) and len(sweep.records) == 12
    assert all(r.max_rel_error == 0.0 for r in sweep.records)
    assert {r.kernel: r.bytes_per_pass for r in sweep.records if r.n == 8192} == {
        "copy": 2 * 64 * KiB, "scale": 2 * 64 * KiB, "add": 3 * 64 * KiB, "triad": 3 * 64 * KiB}
    assert "np.multiply(c, s, out=a); np.add(a, b, out=a)" in sweep.methods["triad"]
    doc = build_calibration(input_factory(memory=sweep))
    assert schema_errors(doc) == []
    memory = doc["memory"]
    assert memory["stream_rule"] == {"min_array_bytes": 64 * KiB, "largest_array_bytes": 128 * KiB, "met": True}
    assert memory["sustained_gbps"] is not None and doc["measured_bandwidth_gbps"] == memory["sustained_gbps"]
    assert set(memory["plateau"]["triad"]["array_bytes"]) <= {64 * KiB, 128 * KiB}
    assert [(e["kernel"], e["array_bytes"]) for e in memory["sweep"][:4]] == [(k, KiB) for k in KERNELS]
    assert all(e["verified"] for e in memory["sweep"])
    assert memory["threads"] == 1 and memory["budget"]["spent_s"] > 0


def test_benchmark_disable_validates_and_records_nothing(tmp_path: Path) -> None:
    cal = _session(tmp_path)
    state = StreamState(cal.backend)
    for kernel in KERNELS:
        run_stream(FakeBenchmark(enabled=False), cal, state, kernel, 4 * KiB)
    assert "stream" in cal.families_run and cal.results.memory.records == []  # type: ignore[union-attr]
    assert state.expected == (15.0, 3.0, 4.0)


def test_rounds_share_the_gemm_bodys_sync_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A device that still has work queued after a round: the shared SyncGuard fails the case, nothing filed.
    monkeypatch.setattr(NumpyBackend, "device_idle", lambda self: False)
    cal = _session(tmp_path)
    with pytest.raises(HwcalError, match="not synchronised"):
        run_stream(FakeBenchmark(), cal, StreamState(cal.backend), "triad", 4 * KiB)
    assert cal.results.memory.records == []  # type: ignore[union-attr]


def test_arrays_larger_than_free_memory_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NumpyBackend, "free_memory_bytes", lambda self: 64 * MiB)
    cal = _session(tmp_path)
    with pytest.raises(pytest.skip.Exception, match=r"STREAM arrays of 32MiB need 0.09 GiB, more than 80%"):
        run_stream(FakeBenchmark(), cal, StreamState(cal.backend), "copy", 32 * MiB)
    assert cal.results.memory.skips  # type: ignore[union-attr]


# ---- the calibration's memory section ----------------------------------------------------------

def test_section_sustained_levels_efficiency_and_ridge_points(input_factory: Any) -> None:
    spec = {"theoretical_peaks": {"fp64": 200.0, "fp32": 400.0}, "peak_bandwidth_gbps": 25.0}
    doc = build_calibration(input_factory(memory=epyc_sweep(dram_gbps=20.0), spec=spec))
    assert schema_errors(doc) == []
    memory = doc["memory"]
    # The DRAM figure is the mean triad round over every STREAM-sized array (its 95% interval beside it), so
    # it sits a little under the best round (20.0) of the fake sweep, whose rounds spread by 2%.
    sustained = memory["sustained_gbps"]
    assert doc["measured_bandwidth_gbps"] == sustained and 18.5 < sustained < 20.0
    lo, hi = memory["sustained_ci95_gbps"]
    assert lo <= sustained <= hi
    assert doc["bandwidth_efficiency"] == memory["efficiency"] == round(sustained / 25.0, 4)
    # The sweep's per-level figures are stream_levels; levels is the memory system's (none in this run).
    assert {k: v["gbps"] for k, v in memory["stream_levels"].items() if k != "dram"} == {"l1": 200.0, "l2": 100.0,
                                                                                          "l3": 60.0}
    assert memory["levels"] == {}
    assert memory["sustained_gbps_by_kernel"]["copy"] == 22.0
    # ridge = peak GFLOPS / sustained GB/s: fp32 120 GFLOPS measured at 20 GB/s turns compute-bound at 6 FLOP/B.
    ridge = memory["ridge_point_flops_per_byte"]
    assert ridge["theoretical"] == {"fp64": 8.0, "fp32": 16.0}
    assert ridge["measured"]["fp32"] == pytest.approx(120.0 / sustained, rel=1e-3)
    assert {e["level"] for e in memory["sweep"]} == {"l1", "l2", "l3", "dram"}
    assert [e["stream_valid"] for e in memory["sweep"] if e["kernel"] == "triad"][-2:] == [True, True]
    assert memory["sustained_cv"] == 0.02 and memory["rounds"] == 10
    assert doc["warnings"] == []


def test_section_without_stream_sized_arrays_files_no_dram_figure(input_factory: Any) -> None:
    sweep = epyc_sweep()
    sweep.records = [r for r in sweep.records if r.array_bytes < 128 * MiB]
    doc = build_calibration(input_factory(memory=sweep))
    assert schema_errors(doc) == []
    # format 2 files the original system's 0 for an unknown figure (and names it); hwcal's own section says null
    assert doc["measured_bandwidth_gbps"] == 0 and doc["memory"]["sustained_gbps"] is None
    assert "measured_bandwidth_gbps" in doc["legacy_unknown_zero"]
    assert doc["memory"]["stream_rule"]["met"] is False
    assert any("no triad run with arrays >= 134,217,728 bytes" in w for w in doc["warnings"])


def test_bandwidth_above_the_spec_is_flagged(input_factory: Any) -> None:
    doc = build_calibration(input_factory(memory=epyc_sweep(dram_gbps=30.0),
                                          spec={"theoretical_peaks": {}, "peak_bandwidth_gbps": 25.0}))
    assert 1.1 < doc["bandwidth_efficiency"] <= 1.2
    assert any("the spec's bandwidth is wrong" in w for w in doc["warnings"])


def test_no_memory_benchmark_means_no_section() -> None:
    assert memory_section(None, {}, {}, None) == (None, [])


def test_strict_schema_refuses_unknown_memory_fields(input_factory: Any) -> None:
    doc = build_calibration(input_factory(memory=epyc_sweep()))
    doc["memory"]["sweep"][0]["bogus"] = 1
    doc["memory"]["surprise"] = True
    del doc["memory"]["caches"]
    errors = schema_errors(doc)
    assert any("'bogus'" in e for e in errors) and any("'surprise'" in e for e in errors)
    assert any("'caches' is a required property" in e for e in errors)


def test_summary_has_a_bandwidth_line(input_factory: Any) -> None:
    from hwcal.plugin.summary import summary_lines

    doc = build_calibration(input_factory(memory=epyc_sweep(), spec={"theoretical_peaks": {},
                                                                      "peak_bandwidth_gbps": 25.0}))
    [line] = [ln for ln in summary_lines(doc) if ln.startswith("memory:")]
    sustained = doc["memory"]["sustained_gbps"]
    assert line.startswith(f"memory: sustained triad {sustained:,.1f} GB/s (DRAM: arrays >= 128 MiB), "
                           f"{sustained / 25:.2f} of the spec's 25 GB/s; in cache: l1 200.0, l2 100.0, l3 60.0 GB/s; "
                           "1 thread; 95% CI [")


# ---- end to end --------------------------------------------------------------------------------

@pytest.fixture
def bench(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester folder holding the real bench/test_memory.py and a conftest loading the plugin."""
    for name in ("HWCAL_POWER_MODE", "HWCAL_FRAMEWORK", "HWCAL_DEVICE", "HWCAL_FREQUENCY_MHZ", "HWCAL_HARDWARE_ID",
                 "HWCAL_REGISTRY", "HWCAL_SIZES", "HWCAL_MIN_GFLOPS", "HWCAL_MAX_CALL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest('"""hwcal registers itself through its pytest11 entry point."""\n')
    pytester.makepyfile(test_memory=(REPO / "bench" / "test_memory.py").read_text())
    return pytester


def test_tiny_memory_sweep_files_a_valid_calibration(bench: pytest.Pytester) -> None:
    # numpy only: torch's kernels run through the same body in process (above), without a second subprocess.
    framework = "numpy"
    result = bench.runpytest_subprocess("-p", "no:randomly", "--registry", "registry", "--power-mode", "7W",
                                        "--frequency-mhz", "2450", "--hardware-id", "test_cpu", "--quick",
                                        "--framework", framework, "-k", "4KiB and not 64KiB or 16KiB", "-rs")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=8)
    written = sorted((bench.path / "registry").glob("cpu/test_cpu/calibrations/*.json"))
    assert [p.name for p in written] == [f"7W_2450MHz_{framework}.json"]
    doc = json.loads(written[0].read_text())
    assert schema_errors(doc) == []
    memory = doc["memory"]
    assert [(e["kernel"], e["array_bytes"]) for e in memory["sweep"]] == [
        (k, size) for size in (4 * KiB, 16 * KiB) for k in KERNELS]
    assert all(e["verified"] for e in memory["sweep"])
    assert memory["caches"]["llc_total_bytes"] > 0
    # Nothing beyond the LLC was selected: no DRAM figure is filed, and the file says why.
    assert doc["memory"]["sustained_gbps"] is None and doc["measured_bandwidth_gbps"] == 0  # 0: unknown (format 2)
    assert any(w.startswith("memory: no triad run with arrays") for w in doc["warnings"])
    assert doc["gemm"] == [] and doc["metadata"]["selection"]["stream_cases_collected"] >= 8  # before -k
    result.stdout.fnmatch_lines(["*hwcal calibration*", "memory: no sustained DRAM figure*"])
