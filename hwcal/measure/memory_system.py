"""The memory-system benchmark body: a CPU's cache tiers, DRAM, latency and all-core STREAM, or a GPU's
L2-resident tier beside its HBM, within one time budget (CPU 7 s, --quick 4 s; GPU 10 s).

Cases, in run order: ``tiers`` (read, write, triad and in-place update at a working set inside each tier and
at DRAM, one core and all cores), ``multicore`` (the framework's STREAM triad on 1, 2, 4 ... all cores),
``latency`` (pointer chase per tier and at DRAM, huge and 4 KiB pages, the bandwidth-vs-working-set
curve's latency twin), ``curve`` (bandwidth at every power of two the budget leaves room for); a GPU
runs ``gpu_tiers``. The cases share one state (the DRAM pool, the compiled kernels, the budget): a bench
module fixture, freed after the last case. Anything that cannot be measured here (no numba, one core,
no huge pages, a cgroup quota, a budget too small for the DRAM pool) becomes a line in the file.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from hwcal.machine.caches import detect_huge_pages
from hwcal.machine.cpuclock import ChainClock
from hwcal.machine.cpuset import detect_cpuset
from hwcal.measure.hierarchy import (
    BandwidthBench,
    Budget,
    LatencyBench,
    affordable_pool,
    first_touch,
    first_touch_until,
    predict_latency_s,
    run_points,
    tier_points,
)
from hwcal.measure.memkernels import Kernels, load_kernels
from hwcal.measure.mempool import Pool
from hwcal.measure.memsys import (
    BW_KERNELS,
    CURVE_KERNELS,
    GpuTierPoint,
    MemorySystem,
    counted_bytes,
    curve_sizes,
    gaps_first,
    plan_tiers,
    pow2_floor,
)
from hwcal.measure.multicore import measure_multicore
from hwcal.measure.session import CalibrationSession
from hwcal.measure.stream import size_label

BUDGET_S = {("cpu", False): 8.0, ("cpu", True): 5.0, ("gpu", False): 10.0, ("gpu", True): 5.0}
ROUNDS = {False: 5, True: 3}  # DRAM rounds (each an eighth of the pool); in cache, best of ROUNDS_CACHE
ROUNDS_CACHE = {False: 9, True: 5}  # short rounds: one preempted on a shared machine costs little
LATENCY_ROUNDS = {False: 7, True: 5}
POOL_SHARE = 0.35  # of the budget, for faulting in the DRAM pool
HUGE_SHARE = 0.25  # of what is left, for the huge-page pool
LATENCY_ROUND_S = {False: 1e-3, True: 1e-3}
CPU_CASES = ("tiers", "latency", "multicore", "curve")
GPU_CASES = ("gpu_tiers",)


def memory_system_cases(device_type: str) -> tuple[str, ...]:
    return GPU_CASES if device_type == "gpu" else CPU_CASES


class MemorySystemState:
    """What the cases share: the record, the budget, the compiled kernels and the pools."""

    def __init__(self, session: CalibrationSession) -> None:
        backend = session.backend
        self.session = session
        self.quick = session.options.quick
        self.record = MemorySystem(device=backend.device, caches=backend.stream_caches(),
                                   budget_s=session.family_budget(
                                       "memory_system",
                                       session.options.memory_s or BUDGET_S[backend.device_type, self.quick]))
        self.budget = Budget(self.record.budget_s)
        self.kernels: Kernels | None = None
        self.pool: Pool | None = None
        self.huge: Pool | None = None
        self.cpus: list[int] = []
        self.chaser: Chaser | None = None
        session.results.memory_system = self.record

    def note(self, line: str) -> None:
        if line not in self.record.notes:
            self.record.notes.append(line)

    def close(self) -> None:
        for pool in (self.pool, self.huge):
            if pool is not None:
                pool.close()
        self.pool = self.huge = None
        self.record.spent_s = round(self.budget.spent(), 3)
        self.record.notes.extend(self.budget.summary())

    # ---- set-up, once -------------------------------------------------------------------------------
    def cpu_setup(self) -> Kernels:
        """Kernels, cores, huge-page facts and the tier plan; skips the case (with the line filed) without numba."""
        rec = self.record
        if self.kernels is None:
            kernels, why = load_kernels()
            if kernels is None:
                self.note(f"memory system: {why}")
                pytest.skip(why)
            self.kernels = kernels
            rec.kernels_method, rec.compile_s = kernels.method, round(kernels.compile_s, 3)
            rec.cpuset = detect_cpuset()
            rec.huge_pages = detect_huge_pages()
            self.cpus = list(rec.cpuset.cores)
            rec.tiers, notes = plan_tiers(rec.caches, len(self.cpus))
            for line in (*rec.cpuset.notes, *notes, *rec.caches.notes):
                self.note(line)
        return self.kernels

    def dram_pool(self) -> Pool | None:
        """The DRAM pool on 4 KiB pages, faulted in by the workers; smaller than planned (with a line)
        where the budget or free memory cannot take it; None where not even that fits."""
        if self.pool is not None:
            return self.pool
        kernels, rec = self.cpu_setup(), self.record
        wanted = rec.tiers[-1].one_core_bytes
        probe = Pool(16 * 2**20, huge=False)
        rate = first_touch(probe, kernels, self.cpus)
        probe.close()
        rec.first_touch_gbps = round(rate, 3)
        size = affordable_pool(wanted, rate, POOL_SHARE * self.budget.limit_s, self.session.backend.free_memory_bytes())
        if size < wanted:
            self.note(f"DRAM pool: {size_label(size)} instead of {size_label(wanted)} (4x the last-level caches): "
                      f"faulting it in at {rate:.2f} GB/s would overrun the budget or a quarter of free memory; "
                      "DRAM figures need the full size and were not measured")
        if size < 2**20:
            return None
        self.pool = Pool(size, huge=False)
        first_touch(self.pool, kernels, self.cpus)
        rec.pool_bytes = size
        return self.pool

    def huge_pool(self, wanted: int, seconds: float) -> Pool | None:
        """A pool advised onto huge pages, as large as ``seconds`` of faulting it in allows (a fault may
        compact memory first: 0.2 GB/s on a busy VM); None, with the line, where the kernel offers none."""
        hp = self.record.huge_pages
        if hp is None or not hp.available:
            mode = hp.mode if hp is not None else None
            self.note(f"huge pages: transparent huge pages are {mode or 'not in this kernel'}: the chase ran on "
                      "4 KiB pages only (its figures include TLB walks)")
            return None
        if self.huge is None:
            kernels = self.cpu_setup()
            probe = Pool(8 * 2**20, huge=True)
            rate = first_touch(probe, kernels, self.cpus[:1])
            probe.close()
            size = affordable_pool(wanted, rate, seconds, self.session.backend.free_memory_bytes())
            if size < wanted:
                self.note(f"huge pages: the huge-page chase stops at {size_label(size)} (faulting huge pages in ran "
                          f"at {rate:.2f} GB/s; {size_label(wanted)} would overrun the budget); larger working "
                          "sets were chased on 4 KiB pages only")
            if size < 2**20:
                return None
            huge = Pool(size, huge=True)
            faulted = first_touch_until(huge, kernels, self.cpus[0], seconds)
            if faulted < size:
                kept = pow2_floor(faulted)
                self.note(f"huge pages: faulting the huge-page pool in ran slower than its probe said; after "
                          f"{seconds:.2g} s {size_label(faulted)} of {size_label(size)} were in, the huge-page chase "
                          f"stops at {size_label(kept)}; larger working sets were chased on 4 KiB pages only")
                if kept < 2**20:
                    huge.close()
                    return None
                huge.shrink(kept)
            self.huge = huge
            self.record.huge_pool_bytes = huge.size
        return self.huge


def _label(ws: int) -> str:
    return size_label(ws)


def _bench(state: MemorySystemState) -> BandwidthBench | None:
    pool = state.dram_pool()
    if pool is None:
        return None
    return BandwidthBench(state.cpu_setup(), pool, state.cpus, ROUNDS[state.quick], ROUNDS_CACHE[state.quick])


def _tier_points(state: MemorySystemState, dram_kernels: tuple[str, ...]) -> list[tuple[str, int, int, bool]]:
    """Every tier's points; DRAM's (at the pool's size, windowed) only for ``dram_kernels`` and only where the
    pool is the full 4x the last-level caches."""
    rec, pool = state.record, state.pool
    size = pool.size if pool is not None else 0
    return [(k, size if dram else ws, n, dram) for k, ws, n, dram in tier_points(rec.tiers, len(state.cpus))
            if not dram or (k in dram_kernels and rec.dram_rule_met)]


def run_tiers(state: MemorySystemState) -> None:
    """Read, write, triad and in-place update inside each cache tier, and all but write at DRAM (write at DRAM:
    ``curve``)."""
    bench = _bench(state)
    if bench is None:
        pytest.skip("no memory for the DRAM pool")
    run_points(bench, state.record, state.budget, _tier_points(state, ("read", "triad", "update")), _label)


def run_multicore(state: MemorySystemState) -> None:
    rec, pool = state.record, state.dram_pool()
    if pool is None or not rec.dram_rule_met:
        pytest.skip("all-core STREAM needs arrays of 4x the last-level caches; the DRAM pool is smaller (see notes)")
    compiled = [p.gbps_best for p in rec.bandwidth if p.kernel == "triad" and p.windowed and p.threads == 1]
    rec.multicore = measure_multicore(state.session.backend, pool, state.cpus, state.budget, ROUNDS[state.quick],
                                      compiled[0] if compiled else 5.0, rec.dram_rule_met, rec.caches.llc_total_bytes)
    if rec.multicore is None:
        pytest.skip("all-core STREAM left out: the memory budget was spent (see notes)")


class Chaser:
    """The latency case's pools, clock probe and bench; ``chase(ws)`` measures one working set on huge
    pages (where the huge pool holds it) and on 4 KiB pages, as the budget allows."""

    def __init__(self, state: MemorySystemState) -> None:
        rec = self.rec = state.record
        self.state = state
        self.pool = state.dram_pool()
        if self.pool is None:
            pytest.skip("no memory for the chase")
        clock, why = ChainClock.create()
        rec.clock_method = ChainClock.method if clock is not None else None
        if clock is None:
            state.note(f"latency in cycles: {why}; cycles from the calibration's clock under load instead")
        self.bench = LatencyBench(state.cpu_setup(), state.cpus[0], LATENCY_ROUNDS[state.quick],
                                  LATENCY_ROUND_S[state.quick], clock)
        # Building a cycle writes its whole working set: predicted at the write rate of the largest size measured.
        writes = [p for p in rec.bandwidth if p.kernel == "write" and p.threads == 1]
        self.write_gbps = (max(writes, key=lambda p: p.working_set_bytes).gbps_best if writes
                           else (rec.first_touch_gbps or 1.0))
        left = state.budget.limit_s - state.budget.spent()
        self.huge = state.huge_pool(self.pool.size, HUGE_SHARE * left)

    def chase(self, ws: int) -> None:
        done = {(p.working_set_bytes, p.pages) for p in self.rec.latency}
        for pages, target in (("huge", self.huge), ("4k", self.pool)):
            if target is None or ws > target.size or (ws, pages) in done:
                continue
            predicted, ns = predict_latency_s(self.rec.latency, ws, pages, self.bench.round_s, self.bench.rounds,
                                              self.write_gbps)
            if self.state.budget.allows(predicted, f"chase at {_label(ws)} on {pages} pages"):
                self.rec.latency.append(self.bench.measure(target, ws, pages, ns, seed=ws.bit_length()))

    def check_huge(self) -> None:
        huge = self.huge
        if huge is not None:
            backed = huge.huge_bytes()
            if backed is not None and backed < huge.size // 2:
                self.state.note(f"huge pages: madvise(MADV_HUGEPAGE) asked for {_label(huge.size)}, the kernel "
                                f"backed {backed / 2**20:.0f} MiB with huge pages (AnonHugePages): the 'huge' chase "
                                "counts TLB walks")


def run_latency(state: MemorySystemState) -> None:
    """The chase inside each tier and at DRAM (the whole pool)."""
    chaser = state.chaser = state.chaser or Chaser(state)
    for tier in state.record.tiers:
        chaser.chase(tier.one_core_bytes if tier.name != "dram" else chaser.pool.size)  # type: ignore[union-attr]
    chaser.check_huge()


def run_curve(state: MemorySystemState) -> None:
    """With what is left of the budget: write at DRAM, then bandwidth and latency at every power of two, the widest
    gap between the working sets measured first (``gaps_first``: the tiers' points are measured already)."""
    bench = _bench(state)
    if bench is None:
        pytest.skip("no memory for the DRAM pool")
    rec, workers = state.record, len(state.cpus)
    run_points(bench, rec, state.budget, _tier_points(state, ("write",)), _label)
    chaser = state.chaser = state.chaser or Chaser(state)
    for ws in gaps_first(curve_sizes(rec.tiers), [t.one_core_bytes for t in rec.tiers]):
        points = [(k, ws, n, False) for n in sorted({1, workers}) for k in CURVE_KERNELS]
        run_points(bench, rec, state.budget, points if ws <= bench.pool.size // 8 else [], _label)
        chaser.chase(ws)
    chaser.check_huge()


def run_gpu_tiers(state: MemorySystemState) -> None:
    """Read, write, triad and in-place update at half the L2 and far past it, each a CUDA graph of
    back-to-back launches."""
    backend, rec = state.session.backend, state.record
    l2 = rec.caches.llc_total_bytes
    for tier, ws in (("l2", max(2**20, l2 // 2)), ("dram", max(8 * l2, 512 * 2**20))):
        for kernel in BW_KERNELS:
            probe = backend.tier_round_times(kernel, ws, 11, 1)
            if probe is None:
                pytest.skip("this backend has no device-timed tier kernels")
            launches = max(11, math.ceil(1e-3 / max(probe[0][0] / 11, 1e-9)))
            launches |= 1  # odd: the update's x2, x1/2 ... x2 doubles its values once a replay (its check)
            times, rec.gpu_method = backend.tier_round_times(kernel, ws, launches, ROUNDS[state.quick]) or ([], "")
            arrays = 3 if kernel == "triad" else 1
            nbytes = counted_bytes(kernel, arrays * (ws // (4 * arrays)) * 4) * launches
            rates = sorted(nbytes / t / 1e9 for t in times if t > 0)
            rec.gpu.append(GpuTierPoint(tier, kernel, ws, rates[-1], rates[len(rates) // 2], launches, len(rates)))


def run_memory_system(benchmark: Any, session: CalibrationSession, state: MemorySystemState, case: str) -> None:
    """Run one case of the memory system inside one benchmark round (it times itself: pinned workers)."""
    session.families_run.add("memory_system")
    if not benchmark.enabled:
        if session.backend.device_type == "cpu":
            state.cpu_setup()  # compiles and checks the kernels
        pytest.skip("--benchmark-disable: kernels checked, the memory system is not measured")
    body = {"tiers": run_tiers, "multicore": run_multicore, "latency": run_latency, "curve": run_curve,
            "gpu_tiers": run_gpu_tiers}[case]
    if case != "gpu_tiers" and session.backend.device_type != "cpu":
        pytest.skip("CPU memory system: this run calibrates a GPU")
    skipped: list[BaseException] = []

    def once() -> None:
        try:
            body(state)
        except pytest.skip.Exception as exc:
            skipped.append(exc)

    benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    state.record.spent_s = round(state.budget.spent(), 3)
    benchmark.extra_info.update({"case": case, "spent_s": state.record.spent_s})
    if skipped:
        raise skipped[0]
