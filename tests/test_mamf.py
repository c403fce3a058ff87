"""The max-achievable search, on a fake device whose GEMM rate is a known function of the shape: the search
must find the fastest shape, respect its bounds (call time, memory, budget) and file what it found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hwcal.measure.energy as energy
from hwcal.backends import GemmOperands
from hwcal.document.energy import energy_section
from hwcal.machine.energy import MeterChoice
from hwcal.measure.layouts import choose_layout
from hwcal.measure.max_achievable import (
    BURST_CALLS,
    BURSTS,
    COARSE_K,
    COARSE_M,
    COARSE_N,
    Search,
    Shape,
    burst_calls,
    max_achievable,
    neighbours,
)
from tests.test_energy_body import BUSY_W, WorkloadMeter
from tests.test_energy_body import _session as energy_session


class FakeGpu:
    """Times a GEMM at 100 TFLOP/s x an efficiency that peaks at M=1024, N=4096, K=12800 (a refined K)."""

    framework, device, device_type, device_name = "fake", "cuda:0", "gpu", "Fake GPU"

    def __init__(self, free: int = 80 * 2**30) -> None:
        self.free = free
        self.calls: list[tuple[int, int, int]] = []

    def efficiency(self, m: int, n: int, k: int) -> float:
        return 0.95 - 0.05 * abs(np.log2(m / 1024)) - 0.05 * abs(np.log2(n / 4096)) - 0.1 * abs(np.log2(k / 12800))

    def free_memory_bytes(self) -> int:
        return self.free

    def make_operands(self, precision: str, n: int, seed: int, layout: str = "NN", m: int | None = None,
                      k: int | None = None) -> GemmOperands:
        rows, inner = m or n, k or n
        rng = np.random.default_rng(seed)
        a, b = rng.standard_normal((rows, inner)), rng.standard_normal((inner, n))
        return GemmOperands(precision, n, a, b, out=np.empty((rows, n)), m=m, k=k, layout=layout)

    def gemm(self, ops: GemmOperands) -> Any:
        self.calls.append((ops.rows, ops.n, ops.inner))
        return np.matmul(ops.a, ops.b, out=ops.out)

    def burst_times(self, launch: Any, out: Any, count: int) -> list[float]:
        launch()  # the output is really written: verification checks it
        m, n, k = self._shape
        return [2 * m * n * k / (100e12 * self.efficiency(m, n, k))] * count

    def synchronize(self) -> None:
        pass

    def precision_mode(self, precision: str) -> Any:
        import contextlib

        return contextlib.nullcontext({})

    def as_f64(self, x: Any) -> Any:
        return np.asarray(x, dtype=np.float64)

    def from_host(self, values: Any) -> Any:
        return np.asarray(values, dtype=np.float64)


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
    fake = FakeGpu()
    original = fake.make_operands

    def remember_k(precision: str, n: int, seed: int, layout: str = "NN", m: int | None = None,
                   k: int | None = None) -> GemmOperands:
        fake._shape = (m or n, n, k or n)  # the fake times by the requested shape; its operands stay tiny
        return original(precision, min(n, 64), seed, layout, min(m or n, 64), min(k or n, 64))

    monkeypatch.setattr(fake, "make_operands", remember_k)
    return fake


def test_neighbours_change_one_dimension_by_tile_multiples() -> None:
    shape = Shape(1024, 4096, 13312)
    near = list(neighbours(shape))
    assert near and all(sum(a != b for a, b in zip((s.m, s.n, s.k), (1024, 4096, 13312), strict=True)) == 1
                        for s in near)
    assert all(v % 256 == 0 for s in near for v in (s.m, s.n, s.k))


def test_the_search_finds_the_fastest_shape_and_refines_beyond_the_grid(gpu: FakeGpu) -> None:
    search = Search(gpu, "bf16", "NT", rate_gflops=95_000.0, budget_s=60.0)  # type: ignore[arg-type]
    best = search.run()
    assert best is not None
    assert (best.shape.m, best.shape.n) == (1024, 4096)
    assert best.shape.k not in COARSE_K and abs(best.shape.k - 12800) <= 512  # refined between 8192 and 13312
    assert len(search.timed) > len(COARSE_M) * len(COARSE_N) * len(COARSE_K) // 2


def test_shapes_over_the_call_time_or_memory_bound_are_skipped_with_the_reason(gpu: FakeGpu) -> None:
    slow = Search(gpu, "fp64", "NN", rate_gflops=1_000.0, budget_s=60.0)  # type: ignore[arg-type]
    slow.run()
    assert all(t.shape.flops / 1e12 <= 0.03 for t in slow.timed.values())
    assert any("one call would take over 30 ms" in s for s in slow.skipped)
    gpu.free = 2**30
    small = Search(gpu, "bf16", "NN", rate_gflops=95_000.0, budget_s=60.0)  # type: ignore[arg-type]
    small.run()
    assert any("GiB free" in s for s in small.skipped)


def test_the_result_is_verified_and_names_its_figures(gpu: FakeGpu, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hwcal.measure.max_achievable.BUDGET_S", {False: 60.0, True: 60.0})
    monkeypatch.setattr("hwcal.measure.max_achievable.REST_S", {False: 0.0, True: 0.0})
    result = max_achievable(gpu, "fp32", "NT", "fake kernel", 95_000.0, quick=True,  # type: ignore[arg-type]
                            device_index=0)
    assert result is not None and result.verified and result.peak == "median_of_burst_means"
    assert (result.m, result.n) == (1024, 4096)
    doc = result.as_dict()
    bursts = doc["burst"]["bursts"]
    assert len(bursts) == BURSTS[True] and doc["burst"]["iterations"] == BURSTS[True] * BURST_CALLS[1]
    assert doc["peak_gflops"] == sorted(b["mean_gflops"] for b in bursts)[len(bursts) // 2]
    assert doc["burst"]["spread"] is not None and doc["sustained"]["launches"] > 0
    assert doc["sustained"]["seconds"] >= 0.3 and result.energy_window is None  # no meter: the quick hold only
    assert doc["clock_mhz"]["burst"]["status"] in ("missing", "measured", "partial")  # NVML absent: said, not invented


def test_a_layout_the_kernel_refuses_is_recorded_and_the_next_tried(gpu: FakeGpu) -> None:
    class Picky(FakeGpu):
        def gemm_layouts(self, precision: str) -> tuple[str, ...]:
            return ("NN", "NT", "TN")

        def gemm(self, ops: GemmOperands) -> Any:
            if ops.layout == "NN":
                raise ValueError("mat2 must be col_major")
            return super().gemm(ops)

        def synchronize(self) -> None:
            pass

    choice = choose_layout(Picky(), "int8", 64)  # type: ignore[arg-type]
    assert choice.refused == {"NN": "ValueError: mat2 must be col_major"}
    assert choice.layout in ("NT", "TN") and set(choice.gflops) == {"NT", "TN"}


def test_a_metered_sustained_window_is_that_precisions_energy_case(gpu: FakeGpu, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With an energy meter, the sustained window lasts as the meter needs and the energy family files it as
    the precision's GEMM case instead of running the shape a second time."""
    monkeypatch.setattr("hwcal.measure.max_achievable.BUDGET_S", {False: 0.2, True: 0.2})
    monkeypatch.setattr("hwcal.measure.max_achievable.REST_S", {False: 0.0, True: 0.0})
    monkeypatch.setattr("hwcal.measure.max_achievable.MIN_WINDOW_S", 0.25)
    meter = WorkloadMeter()
    monkeypatch.setattr(gpu, "synchronize", meter.busy)
    result = max_achievable(gpu, "fp64", "NN", "fake kernel", 95_000.0, quick=True,  # type: ignore[arg-type]
                            device_index=0, meter=meter)
    assert result is not None and result.energy_window is not None and result.energy_window.metered()
    window = result.energy_window
    assert result.sustained_s == window.seconds >= 0.25 and result.sustained_launches == window.launches

    session = energy_session(tmp_path)
    session.results.max_achievable["fp64"] = result
    monkeypatch.setattr(energy, "find_meter", lambda *a, **k: MeterChoice(meter))

    def not_again(ops: GemmOperands) -> Any:
        raise AssertionError("the energy family ran the shape again")

    monkeypatch.setattr(session.backend, "gemm", not_again)
    state = energy.EnergyState(session)
    state.open()
    assert state.spent_s() == 0.0
    energy.run_energy(state, ("gemm", "fp64"), timed=True)
    (case,) = state.run.cases
    assert case.source == energy.ADOPTED and case.warm_s == result.warmup_s and case.launches == window.launches
    assert case.watts == pytest.approx(BUSY_W, rel=0.05) and case.max_error == result.max_error
    assert case.flops_per_s / 1e9 == pytest.approx(result.sustained_gflops, rel=1e-9)
    assert case.label == f"fp64 {result.m}x{result.n}x{result.k} NN"
    entry = energy_section(state.run)[0]["cases"][0]  # type: ignore[index]
    assert entry["source"] == energy.ADOPTED and entry["warm_s"] == result.warmup_s
    state.close()
    assert meter.closed and session.energy_meter is None


def test_bursts_of_slow_calls_are_shorter_and_fast_ones_keep_their_calls() -> None:
    assert burst_calls(0.0004) == BURST_CALLS  # a tensor-core precision's best shape
    assert burst_calls(0.0036) == (6, BURST_CALLS[1])  # fp64 on an H100
    assert burst_calls(0.0095) == (3, 16)  # fp32 on an H100
    assert burst_calls(0.5) == (3, 10)


def test_a_stuck_meter_costs_the_sustained_window_at_most_its_cap_and_files_no_energy(
        gpu: FakeGpu, monkeypatch: pytest.MonkeyPatch) -> None:
    class Stuck(WorkloadMeter):
        def read(self) -> dict[str, float]:
            return {"board": 1.0}  # never updates

    monkeypatch.setattr("hwcal.measure.max_achievable.BUDGET_S", {False: 0.2, True: 0.2})
    monkeypatch.setattr("hwcal.measure.max_achievable.REST_S", {False: 0.0, True: 0.0})
    monkeypatch.setattr("hwcal.measure.max_achievable.MIN_WINDOW_S", 0.1)
    monkeypatch.setattr("hwcal.measure.max_achievable.METERED_MAX_S", 0.4)
    result = max_achievable(gpu, "fp64", "NN", "fake kernel", 95_000.0, quick=True,  # type: ignore[arg-type]
                            device_index=0, meter=Stuck())
    assert result is not None and result.energy_window is None
    assert result.sustained_s is not None and 0.3 <= result.sustained_s < 1.0  # the quick hold, capped at 0.4 s


def test_a_cpu_probes_layouts_at_a_size_whose_call_is_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A precision the CPU emulates slowly is probed below PROBE_N: each call then costs milliseconds, not the
    0.29 s of torch's fp8 at 256 on an AMX Xeon (12 probe calls a type)."""
    from hwcal.measure import layouts as layout_mod

    class SlowCpu(FakeGpu):
        device_type = "cpu"

        def gemm_layouts(self, precision: str) -> tuple[str, ...]:
            return ("NN", "NT")

        def synchronize(self) -> None:
            pass

    called: list[int] = []
    rate = {"fp8": 0.1e9, "fp32": 300e9}  # FLOP/s: the call time is 2 n^3 / rate
    monkeypatch.setattr(layout_mod, "time_one_call",
                        lambda backend, launch, ops: called.append(ops.n) or 2 * ops.n**3 / rate[ops.precision])
    slow = choose_layout(SlowCpu(), "fp8", 256)  # type: ignore[arg-type]
    assert slow.probe_n == 64 and slow.as_dict()["probe_n"] == 64  # 64: 5 ms a call, 128 would be 42
    assert max(called) == 64
    called.clear()
    fast = choose_layout(SlowCpu(), "fp32", 256)  # type: ignore[arg-type]
    assert fast.probe_n == 256 and called[-1] == 256
