"""The memory system: cores and quotas from a faked sysfs, huge pages, the tier plan, the compiled kernels
and the chase's cycle, a real (small) run of every case, the document's levels, multicore and BLAS
ceilings, the schema, and the pictures. No timed assertions: the machine is shared."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwcal.document.memory import memory_section
from hwcal.document.memory_system import (
    LEVEL_FIELDS,
    blas_ceiling,
    levels_view,
    measured_edges,
    memory_system_parts,
)
from hwcal.document.schema import schema_errors
from hwcal.document.sections import blas_section
from hwcal.machine.caches import CacheInfo, CacheLevel, detect_huge_pages
from hwcal.machine.cpuset import CpuSet, detect_cpuset, parse_cpu_list
from hwcal.machine.sources import Sources
from hwcal.measure import memkernels
from hwcal.measure.hierarchy import BandwidthBench, LatencyBench
from hwcal.measure.memory_system import MemorySystemState, run_memory_system
from hwcal.measure.mempool import Pool
from hwcal.measure.memsys import (
    BandwidthPoint,
    LatencyPoint,
    MemorySystem,
    MulticoreResult,
    ScalingPoint,
    counted_bytes,
    curve_sizes,
    gaps_first,
    inside,
    plan_tiers,
)
from hwcal.measure.records import BlasRecord, MemorySweep, StreamRecord
from hwcal.measure.session import CalibrationOptions, CalibrationSession
from tests.fakes import FakeBenchmark

KiB, MiB, GiB = 2**10, 2**20, 2**30
# This machine's shape as sysfs reports it: private 48 KiB L1d and 2 MiB L2 per core, one 480 MiB L3.
VM = CacheInfo((CacheLevel(1, 48 * KiB, 2), CacheLevel(2, 2 * MiB, 2), CacheLevel(3, 480 * MiB, 1)), "test")
SMALL = CacheInfo((CacheLevel(1, 32 * KiB, 2), CacheLevel(2, 256 * KiB, 2), CacheLevel(3, 4 * MiB, 1)), "test")


# ---- cores, quotas, huge pages (faked sysfs trees) -----------------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> Sources:
    for rel, text in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Sources(root=root, commands={})


def _topology(siblings: dict[int, str]) -> dict[str, str]:
    files = {"/sys/devices/system/cpu/online": f"0-{len(siblings) - 1}\n"}
    for cpu, sib in siblings.items():
        files[f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"] = sib + "\n"
    return files


def test_cpu_lists_parse() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("") == [] and parse_cpu_list(None) == [] and parse_cpu_list("x") == []


def test_one_worker_per_physical_core(tmp_path: Path) -> None:
    src = _tree(tmp_path, _topology({0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}))
    cs = detect_cpuset(src, affinity={0, 1, 2, 3})
    assert cs.cores == (0, 1) and cs.workers == 2
    assert any("SMT siblings" in n for n in cs.notes)


def test_affinity_smaller_than_online_cpus_is_said(tmp_path: Path) -> None:
    src = _tree(tmp_path, _topology({i: str(i) for i in range(8)}))
    cs = detect_cpuset(src, affinity={2, 5})
    assert cs.cores == (2, 5) and cs.online == 8
    assert any("2 of the 8 online CPUs" in n for n in cs.notes)


def test_cgroup_v2_quota_limits_the_workers(tmp_path: Path) -> None:
    files = {**_topology({i: str(i) for i in range(4)}), "/proc/self/cgroup": "0::/job\n",
             "/sys/fs/cgroup/job/cpu.max": "150000 100000\n"}
    cs = detect_cpuset(_tree(tmp_path, files), affinity={0, 1, 2, 3})
    assert cs.quota_cpus == 1.5 and cs.cores == (0,)
    assert any("pays for 1.5 CPUs: 1 worker" in n for n in cs.notes) and any("one core" in n for n in cs.notes)


def test_cgroup_v1_quota_and_no_limit(tmp_path: Path) -> None:
    files = {**_topology({i: str(i) for i in range(4)}), "/proc/self/cgroup": "4:cpu,cpuacct:/ci\n",
             "/sys/fs/cgroup/cpu,cpuacct/ci/cpu.cfs_quota_us": "200000\n",
             "/sys/fs/cgroup/cpu,cpuacct/ci/cpu.cfs_period_us": "100000\n"}
    assert detect_cpuset(_tree(tmp_path / "v1", files), affinity={0, 1, 2, 3}).cores == (0, 1)
    unlimited = {**_topology({0: "0", 1: "1"}), "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n"}
    cs = detect_cpuset(_tree(tmp_path / "v2", unlimited), affinity={0, 1})
    assert cs.quota_cpus is None and cs.cores == (0, 1) and cs.notes == ()


def test_no_topology_in_sysfs_is_said(tmp_path: Path) -> None:
    cs = detect_cpuset(_tree(tmp_path, {"/sys/devices/system/cpu/online": "0-1\n"}), affinity={0, 1})
    assert cs.cores == (0, 1) and any("no CPU topology" in n for n in cs.notes)


@pytest.mark.parametrize(("enabled", "mode", "available"), [("always [madvise] never", "madvise", True),
                                                             ("[always] madvise never", "always", True),
                                                             ("always madvise [never]", "never", False)])
def test_huge_page_modes(tmp_path: Path, enabled: str, mode: str, available: bool) -> None:
    base = "/sys/kernel/mm/transparent_hugepage"
    hp = detect_huge_pages(_tree(tmp_path, {f"{base}/enabled": enabled, f"{base}/defrag": "[madvise] never",
                                            f"{base}/hpage_pmd_size": "2097152"}))
    assert (hp.mode, hp.available, hp.defrag, hp.page_bytes) == (mode, available, "madvise", 2 * MiB)


def test_no_thp_in_the_kernel(tmp_path: Path) -> None:
    hp = detect_huge_pages(_tree(tmp_path, {"/proc/meminfo": "Hugepagesize:       1024 kB\n"}))
    assert hp.mode is None and not hp.available and hp.page_bytes == MiB


# ---- the plan ----------------------------------------------------------------------------------------------

def test_tier_points_lie_inside_each_tier() -> None:
    plans, notes = plan_tiers(VM, 2)
    by = {p.name: p for p in plans}
    assert notes == [] and list(by) == ["l1", "l2", "l3", "dram"]
    assert by["l1"].one_core_bytes == 16 * KiB and by["l1"].all_core_bytes == 32 * KiB
    assert by["l2"].one_core_bytes == 256 * KiB  # >= 4x past L1, at most half of L2
    assert 2 * MiB * 4 <= by["l3"].one_core_bytes <= 240 * MiB
    # STREAM: all arrays together >= 4x the last-level cache, not rounded up to 2 GiB
    assert by["dram"].one_core_bytes == 1920 * MiB
    sizes = curve_sizes(plans)
    assert sizes[0] == 4 * KiB and sizes[-1] < 1920 * MiB and all(b == 2 * a for a, b in itertools.pairwise(sizes))


def test_a_tier_with_no_room_inside_is_left_out_with_a_note() -> None:
    plans, notes = plan_tiers(CacheInfo((CacheLevel(1, 32 * KiB), CacheLevel(2, 48 * KiB)), "test"), 1)
    assert [p.name for p in plans] == ["l1", "dram"] and "l2: no working set lies inside it" in notes[0]
    assert inside(0, 48 * KiB) == 16 * KiB


# ---- the compiled kernels -----------------------------------------------------------------------------------

def test_the_bijection_is_a_permutation_and_inverts() -> None:
    for bits in (6, 9, 12):
        keys = memkernels.bijection_keys(bits, seed=bits)
        images = [memkernels.forward(x, keys, bits) for x in range(1 << bits)]
        assert sorted(images) == list(range(1 << bits))
        assert all(memkernels.inverse(y, keys, bits) == x for x, y in enumerate(images))


@pytest.fixture(scope="module")
def kernels() -> memkernels.Kernels:
    k, why = memkernels.load_kernels()
    if k is None:
        pytest.skip(why)
    return k


def test_the_chase_is_one_cycle_through_every_line_and_lands_where_predicted(kernels: memkernels.Kernels) -> None:
    bits = 10
    words = np.zeros((1 << bits) * 8, dtype=np.uint64)
    base = words.ctypes.data
    keys = memkernels.bijection_keys(bits, seed=7)
    kernels.build(words, base, bits, keys)
    seen, addr = set(), base
    for _ in range(1 << bits):
        seen.add((addr - base) // 64)
        addr = int(words[(addr - base) // 8])
    assert addr == base and len(seen) == 1 << bits
    end = kernels.chase(base + 64 * 3, 5000)
    assert (end - base) // 64 == memkernels.expected_line(3, 5000, keys, bits)


def test_a_chase_leaves_normal_floats_behind(kernels: memkernels.Kernels) -> None:
    """The cycle's words are addresses (fp64 denormals): left in the pool, the bandwidth kernels run after the
    chase (all-core STREAM, the curve) timed x86's denormal assists (one worker at 0.36 of the other)."""
    pool = Pool(256 * KiB, huge=False)
    LatencyBench(kernels, 0, 1, 1e-4).measure(pool, 64 * KiB, "4k", 5.0, seed=3)
    values = pool.f64(0, 64 * KiB)
    assert np.all(values == 1.0) and not np.any((values != 0) & (np.abs(values) < np.finfo(np.float64).tiny))


def test_bandwidth_kernels_compute_what_they_say(kernels: memkernels.Kernels) -> None:
    a, b, c = np.ones(1000), np.full(1000, 2.0), np.full(1000, 0.5)
    assert kernels.read(a, 3) == 3000.0
    kernels.write(a, 1.0, 10)  # pass p writes 1 + (p & 7): the last (p = 9) writes 2
    assert np.all(a == 2.0)
    kernels.triad(a, b, c, 3.0, 2)  # last pass: a = b + (3 + 1) c
    assert np.all(a == 4.0)
    kernels.update(b, 2.0, 3)  # in place: x 2, x 1/2, x 2
    assert np.all(b == 4.0)
    kernels.update(b, 0.5, 2)  # an even count leaves it
    assert np.all(b == 4.0)


@pytest.mark.parametrize("windowed", [False, True])
def test_an_update_kernel_that_skips_its_work_is_caught(kernels: memkernels.Kernels, windowed: bool) -> None:
    """The update's values are predicted exactly (powers of two), in cache and over DRAM windows revisited
    with the factor turned; a kernel that leaves the data as it was is not filed."""
    pool = Pool(16 * MiB, huge=False)
    try:
        pool.f64().fill(1.0)
        bench = BandwidthBench(kernels, pool, [0], rounds=9, cache_rounds=3)
        point = bench.measure("update", 16 * MiB if windowed else 64 * KiB, 1, windowed)
        assert point.kernel == "update" and point.gbps_best > 0
        lazy = dataclasses.replace(kernels, update=lambda a, q, passes: None)
        with pytest.raises(AssertionError, match="update kernel gave wrong values"):
            BandwidthBench(lazy, pool, [0], rounds=9, cache_rounds=3).measure(
                "update", 16 * MiB if windowed else 64 * KiB, 1, windowed)
    finally:
        pool.close()


def test_numba_missing_is_a_line_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memkernels, "_LOADED", [])
    monkeypatch.setitem(sys.modules, "numba", None)
    k, why = memkernels.load_kernels()
    assert k is None and "numba is not installed" in why and "pip install numba" in why


# ---- a real, small run of every case ------------------------------------------------------------------------

class SmallCaches:
    """The session's backend with tiny caches, so the DRAM pool is 64 MiB and the run takes a second or two."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def stream_caches(self) -> CacheInfo:
        return SMALL


def _session(tmp_path: Path) -> CalibrationSession:
    opts = CalibrationOptions(power_mode="7W", framework="numpy", device="cpu", frequency_mhz=2450, hardware_id=None,
                              registry=tmp_path, quick=True, sizes=None, min_gflops=1.0, max_call_s=0.3,
                              dry_run=True, force=False)
    session = CalibrationSession(opts)
    session._backend = SmallCaches(session.backend)  # type: ignore[assignment]
    return session


def _run_all(session: CalibrationSession, state: MemorySystemState) -> None:
    for case in ("tiers", "latency", "multicore", "curve"):
        with contextlib.suppress(pytest.skip.Exception):
            run_memory_system(FakeBenchmark(), session, state, case)


def test_every_case_runs_and_files_checked_figures(tmp_path: Path, kernels: memkernels.Kernels) -> None:
    session = _session(tmp_path)
    state = MemorySystemState(session)
    state.budget.limit_s = 60.0  # what is tested is the figures, not the budget
    _run_all(session, state)
    state.close()
    rec = session.results.memory_system
    assert rec is not None and rec.pool_bytes == 64 * MiB and rec.dram_rule_met
    tiers = {(p.kernel, p.working_set_bytes, p.threads) for p in rec.bandwidth}
    one = {t.name: t.one_core_bytes for t in rec.tiers}
    assert {("read", one["l1"], 1), ("write", one["l2"], 1), ("triad", rec.pool_bytes, 1), ("update", one["l1"], 1),
            ("update", rec.pool_bytes, 1)} <= tiers
    assert all(p.gbps_best > 0 and p.gbps_median > 0 for p in rec.bandwidth)
    assert {p.working_set_bytes for p in rec.latency} >= {one["l1"], one["l2"], rec.pool_bytes}
    assert all(p.ns_best > 0 for p in rec.latency)
    assert rec.multicore is not None and rec.multicore.scaling[0].threads == 1
    workers = rec.cpuset.workers if rec.cpuset else 1
    assert rec.multicore.all_cores.threads == workers and len(rec.multicore.all_cores.per_thread_gbps) == workers
    parts, _ = memory_system_parts(rec, 2450.0, "test clock")
    assert set(parts["levels"]) == {"l1", "l2", "l3", "dram"}
    assert all(set(level) == set(LEVEL_FIELDS) for level in parts["levels"].values())
    assert parts["levels"]["l1"]["latency_cycles"] and parts["multicore"]["threads"] == workers
    assert parts["levels"]["l1"]["update_gbps"] and parts["levels"]["dram"]["update_gbps"]


def test_benchmark_disable_checks_the_kernels_and_measures_nothing(tmp_path: Path,
                                                                    kernels: memkernels.Kernels) -> None:
    session = _session(tmp_path)
    state = MemorySystemState(session)
    with pytest.raises(pytest.skip.Exception, match="--benchmark-disable"):
        run_memory_system(FakeBenchmark(enabled=False), session, state, "tiers")
    assert session.results.memory_system is not None and not session.results.memory_system.bandwidth


def test_without_numba_the_file_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hwcal.measure.memory_system.load_kernels", lambda: (None, "numba is not installed (x)"))
    session = _session(tmp_path)
    state = MemorySystemState(session)
    _run_all(session, state)
    rec = session.results.memory_system
    assert rec is not None and not rec.bandwidth and any("numba is not installed" in n for n in rec.notes)
    parts, _ = memory_system_parts(rec, None, "")
    assert "numba is not installed" in " ".join(parts["memory_system"]["notes"])


def test_a_budget_too_small_for_the_pool_says_so(tmp_path: Path, kernels: memkernels.Kernels) -> None:
    session = _session(tmp_path)
    state = MemorySystemState(session)
    state.budget.limit_s = 1e-4
    _run_all(session, state)
    state.close()
    rec = session.results.memory_system
    assert rec is not None and not rec.dram_rule_met and rec.multicore is None
    assert any("DRAM pool" in n for n in rec.notes)
    parts, _ = memory_system_parts(rec, None, "")
    assert parts["levels"]["dram"] == dict.fromkeys(LEVEL_FIELDS) and "dram: not measured" in parts["levels_notes"][0]


# ---- the document ---------------------------------------------------------------------------------------------

def _system(workers: int = 2, one_worker_gbps: float = 10.0, all_gbps: float = 18.0) -> MemorySystem:
    plans, _ = plan_tiers(SMALL, workers)
    rec = MemorySystem(device="cpu", caches=SMALL, tiers=plans, pool_bytes=plans[-1].one_core_bytes,
                       cpuset=CpuSet(tuple(range(workers)), tuple(range(workers)), workers))
    speeds = {"l1": 200.0, "l2": 100.0, "l3": 50.0, "dram": one_worker_gbps}
    for t in plans:
        ws1 = rec.pool_bytes if t.name == "dram" else t.one_core_bytes
        wsn = rec.pool_bytes if t.name == "dram" else t.all_core_bytes
        for k, f in (("read", 1.0), ("write", 0.6), ("triad", 0.8), ("update", 1.5)):
            rec.bandwidth.append(BandwidthPoint(k, ws1, 1, speeds[t.name] * f, speeds[t.name] * f * 0.9, 5, 1))
            rec.bandwidth.append(BandwidthPoint(k, wsn, workers, speeds[t.name] * f * 1.8, 1.0, 5, 1,
                                                per_thread_gbps=(1.0,) * workers))
        rec.latency.append(LatencyPoint(ws1, "huge", 1.0, {"l1": 1.2, "l2": 4.0, "l3": 15.0, "dram": 90.0}[t.name],
                                        2.0, 1000, 5, 3000.0))
    rec.multicore = MulticoreResult("numpy pinned threads", [ScalingPoint(1, one_worker_gbps, (one_worker_gbps,), 5),
                                                              ScalingPoint(workers, all_gbps, (9.0, 9.0), 5)],
                                    rec.pool_bytes, True, "test method", 0.0)
    return rec


def test_levels_multicore_and_cycles() -> None:
    parts, warnings = memory_system_parts(_system(), None, "")
    levels = parts["levels"]
    assert levels["l1"]["read_gbps"] == 200.0 and levels["l1"]["allcore_triad_gbps"] == pytest.approx(288.0)
    assert levels["dram"]["latency_ns"] == 90.0 and levels["dram"]["latency_cycles"] == 270.0  # 3000 MHz
    assert levels["dram"]["huge_pages"] is True and levels["dram"]["working_set_bytes"] == 64 * MiB
    assert parts["multicore"] == {"threads": 2, "aggregate_gbps": 18.0, "per_thread_gbps": [9.0, 9.0],
                                  "scaling": [{"threads": 1, "gbps": 10.0}, {"threads": 2, "gbps": 18.0}],
                                  "scaling_efficiency": 0.9, "method": "test method"}
    assert warnings == []


def test_super_linear_scaling_is_flagged() -> None:
    _, warnings = memory_system_parts(_system(one_worker_gbps=5.0, all_gbps=12.0), None, "")
    assert warnings and "super-linearly" in warnings[0]


def test_measured_edges_sit_between_the_tiers() -> None:
    rec = _system()
    for ws, ns in ((32 * KiB, 1.3), (64 * KiB, 3.0), (1 * MiB, 12.0)):
        rec.latency.append(LatencyPoint(ws, "huge", 1.0, ns, ns, 1000, 5, None))
    edges = measured_edges(rec)
    assert 16 * KiB < edges["l1"]["latency"] < 64 * KiB


def test_legacy_levels_read_in_the_new_shape() -> None:
    legacy = {"threads": 1, "levels": {"l3": {"gbps": 58.8, "kernel": "triad", "working_set_bytes": 3 * MiB},
                                       "dram": {"gbps": 19.0, "kernel": "triad"}}}
    view = levels_view(legacy)
    assert view["l3"]["triad_gbps"] == 58.8 and view["l3"]["working_set_bytes"] == 3 * MiB
    assert view["dram"]["allcore_triad_gbps"] is None
    assert levels_view({**legacy, "threads": 2})["dram"]["allcore_triad_gbps"] == 19.0


def _blas(op: str, nbytes: int, gbps: float, threads: int) -> BlasRecord:
    n = nbytes // 16
    return BlasRecord(operation=op, n=n, m=None, flops=2 * n, bytes=nbytes, element_bytes=8, gflops_best=gbps / 8,
                      gflops_median=gbps / 8, gbps_best=gbps, gbps_median=gbps, threads=threads, llc_bytes=4 * MiB,
                      precision="fp64", kernel="test", launches_per_round=1, max_error=0.0, tolerance=1e-12,
                      verify_method="test", rounds=5, warmup_rounds=1, time_s={"min": 1e-6}, cv=0.0)


def test_blas_efficiency_is_against_its_tier_on_its_threads() -> None:
    rec = _system()
    ceiling = lambda ws, threads, in_place=False: blas_ceiling(rec, ws, threads, in_place)  # noqa: E731
    assert ceiling(16 * KiB, 1).tier == "l1" and ceiling(16 * KiB, 1).threads == 1  # type: ignore[union-attr]
    assert ceiling(48 * KiB, 2).tier == "l1" and ceiling(48 * KiB, 2).threads == 2  # type: ignore[union-attr]
    assert ceiling(256 * MiB, 2).tier == "dram" and ceiling(256 * MiB, 2).kernel == "read"  # type: ignore[union-attr]
    # the in-place update (1.5x read here) is a roof only for what writes back what it reads
    assert ceiling(256 * MiB, 2, True).kernel == "update"  # type: ignore[union-attr]
    records = [_blas("dot", 16 * KiB, 150.0, 1), _blas("dot", 256 * MiB, 16.0, 2), _blas("axpy", 256 * MiB, 9.0, 1)]
    entries, warnings = blas_section(records, None, None, ceiling)
    effs = [e["efficiency"] for e in entries]
    assert effs == pytest.approx([0.75, 16 / 18, 9.0 / 15.0], rel=1e-3)
    assert all(0 < e <= 1 for e in effs) and warnings == []
    assert entries[1]["efficiency_ceiling"] == {"tier": "dram", "threads": 2, "kernel": "read", "gbps": 18.0,
                                                "working_set_bytes": 64 * MiB}


def test_blas_above_its_roof_is_set_against_the_faster_tier_it_is_served_from() -> None:
    """An efficiency is in (0, 1]: a figure 1.2x the roof of the tier sysfs puts its working set in is served
    partly from the faster one, whose roof is its ceiling then, said in the entry and the warnings."""
    rec = _system()
    entries, warnings = blas_section([_blas("dot", 512 * KiB, 60.0, 1)], None, None,
                                     lambda ws, threads, in_place: blas_ceiling(rec, ws, threads, in_place))
    assert entries[0]["efficiency_ceiling"]["tier"] == "l2"
    assert entries[0]["efficiency"] == pytest.approx(60.0 / entries[0]["efficiency_ceiling"]["gbps"], rel=1e-3)
    assert 0 < entries[0]["efficiency"] <= 1
    assert len(warnings) == 1 and "1.2x the l3 roof" in warnings[0] and "served from l2" in warnings[0]


def test_in_place_operations_are_set_against_the_update_by_their_working_set() -> None:
    """scal and axpy write back what they read: their roof is the in-place update, at the tier their distinct
    bytes live in (scal of 2 MiB counts 4 MiB but occupies 2); without an update measured there, no
    efficiency rather than one against read, write or triad, which reads high."""
    rec = _system()
    scal = _blas("scal", 2 * 16 * KiB, 250.0, 1)  # counts 32 KiB, occupies 16 KiB: inside l1
    assert scal.working_set_bytes == 16 * KiB and scal.in_place
    ceiling = lambda ws, threads, in_place: blas_ceiling(rec, ws, threads, in_place)  # noqa: E731
    entries, warnings = blas_section([scal, _blas("dot", 16 * KiB, 150.0, 1)], None, None, ceiling)
    assert entries[1]["efficiency_ceiling"]["kernel"] == "update"
    assert entries[1]["efficiency"] == pytest.approx(250 / 300, rel=1e-3)
    assert entries[0]["efficiency_ceiling"]["kernel"] == "read" and warnings == []  # dot: never the update
    # measured there but slower than another kernel: the fastest is the roof, update or not
    rec.bandwidth = [dataclasses.replace(p, gbps_best=1.0) if p.kernel == "update" else p for p in rec.bandwidth]
    entries, warnings = blas_section([scal], None, None, ceiling)
    assert entries[0]["efficiency_ceiling"]["kernel"] == "read" and entries[0]["efficiency"] is None  # 1.25x
    assert len(warnings) == 1 and "1.25x the l1 roof" in warnings[0] and "above the next" in warnings[0]
    rec.bandwidth = [p for p in rec.bandwidth if p.kernel != "update"]
    entries, warnings = blas_section([scal], None, None, ceiling)
    assert entries[0]["efficiency"] is None and entries[0]["efficiency_ceiling"] is None
    assert len(warnings) == 1 and "no in-place update was measured in l1" in warnings[0]


def test_blas_above_every_roof_keeps_the_general_reason() -> None:
    rec = _system()
    _, warnings = blas_section([_blas("scal", 32 * KiB, 400.0, 1), _blas("dot", 16 * KiB, 400.0, 1)], None, None,
                               lambda ws, threads, in_place: blas_ceiling(rec, ws, threads, in_place))
    assert len(warnings) == 2 and all("above the next faster tier" in w and w.endswith("no efficiency filed")
                                      for w in warnings)
    assert "(update," in warnings[1] and "(read," in warnings[0]


def test_schema_takes_the_new_levels_and_the_legacy_shape(valid_doc: dict[str, Any]) -> None:
    doc = valid_doc
    memory = doc.setdefault("memory", {"sustained_gbps": None})
    parts, _ = memory_system_parts(_system(), 3000.0, "test")
    memory.update(parts)
    assert schema_errors(doc, "calibration") == []
    memory["levels"] = {"l3": {"gbps": 58.8, "kernel": "triad"}}
    assert schema_errors(doc, "calibration") == []
    memory["levels"] = {"l3": {"gbps": 58.8, "kernel": "triad", "read_gbps": 1.0}}
    assert schema_errors(doc, "calibration") != []
    memory["levels"] = {"l3": {"latency_ns": -1.0}}
    assert schema_errors(doc, "calibration") != []


# ---- pictures ---------------------------------------------------------------------------------------------------

def test_pictures_of_tiers_and_latency() -> None:
    pytest.importorskip("matplotlib")
    from hwcal.report.figures import series_gids
    from hwcal.report.memory_figures import hierarchy_figure, latency_figure

    parts, _ = memory_system_parts(_system(), 3000.0, "test")
    doc = {"memory": parts, "metadata": {}, "key": {}}
    gids = series_gids(hierarchy_figure(doc))
    assert {"series-tier-read-1", "series-tier-triad-2"} <= set(gids)
    assert "series-latency-huge" in series_gids(latency_figure(doc))
    assert series_gids(latency_figure({"memory": {}})) == []


# ---- a GPU's L2 tier beside HBM (the logic on a fake device; the lead runs the real one) ---------------------

class FakeGpu:
    """A device whose L2 (50 MiB) streams at 8 TB/s and whose HBM at 3 TB/s, timed as a graph replay would be."""

    device, device_type, framework = "cuda:0", "gpu", "pytorch"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int, int]] = []

    def stream_caches(self) -> CacheInfo:
        from hwcal.machine.caches import gpu_caches

        return gpu_caches(50 * MiB, "fake")

    def tier_round_times(self, kernel: str, ws: int, launches: int, rounds: int) -> tuple[list[float], str]:
        self.calls.append((kernel, ws, launches, rounds))
        arrays = 3 if kernel == "triad" else 1
        nbytes = counted_bytes(kernel, arrays * (ws // (4 * arrays)) * 4) * launches
        tbps = (8e12 if ws <= 25 * MiB else 3e12) * (1.1 if kernel == "update" else 1.0)
        return [nbytes / tbps * f for f in (1.1, 1.0, 1.05)][:rounds], "fake graph replay"


def test_gpu_l2_tier_beside_hbm_and_its_blas_ceiling(tmp_path: Path) -> None:
    session = _session(tmp_path)
    gpu = FakeGpu()
    session._backend = gpu  # type: ignore[assignment]
    state = MemorySystemState(session)
    run_memory_system(FakeBenchmark(), session, state, "gpu_tiers")
    rec = session.results.memory_system
    assert rec is not None and {(p.tier, p.kernel) for p in rec.gpu} == {(t, k) for t in ("l2", "dram")
                                                                       for k in ("read", "write", "triad", "update")}
    assert all(c[1] == 25 * MiB for c in gpu.calls if c[1] < 100 * MiB)  # half the L2
    assert all(c[2] % 2 == 1 for c in gpu.calls)  # odd: the update's graph doubles its values once a replay
    parts, _ = memory_system_parts(rec, None, "")
    assert parts["levels"]["l2"]["triad_gbps"] == pytest.approx(8000.0, rel=1e-3)
    assert parts["levels"]["dram"]["read_gbps"] == pytest.approx(3000.0, rel=1e-3)
    assert parts["levels"]["l2"]["latency_ns"] is None and "multicore" not in parts
    ceiling = blas_ceiling(rec, 8 * MiB, None)
    assert ceiling is not None and ceiling.tier == "l2" and ceiling.gbps == pytest.approx(8000.0, rel=1e-3)
    assert blas_ceiling(rec, 1024 * MiB, None).tier == "dram"  # type: ignore[union-attr]
    assert parts["levels"]["dram"]["update_gbps"] == pytest.approx(3300.0, rel=1e-3)
    assert blas_ceiling(rec, 1024 * MiB, None, in_place=True).kernel == "update"  # type: ignore[union-attr]


def test_the_gpu_tier_kernels_compute_what_they_say_and_their_checks_catch_a_skipped_update() -> None:
    """The calls a CUDA graph captures, run eagerly on CPU tensors: after the warm-up, b restarts at 1 and an
    odd count of launches (x2, x1/2 ... x2) doubles it once a replay, so the check knows how many replays ran:
    a graph that did nothing, or lost a launch, is caught."""
    torch = pytest.importorskip("torch")
    from hwcal.backends import torch_tiers

    def replayed(replays: int, launches: int = 11) -> dict[str, Any]:
        calls, tensors = torch_tiers._kernels(4096, torch.device("cpu"))
        for _ in range(3):
            calls["update"]()  # the warm-up
        torch_tiers.restart_update(tensors)
        for _ in range(replays):  # eagerly, what each replay of the captured launches runs
            tensors["turn"][0] = 0
            for _ in range(launches):
                calls["update"]()
        return tensors

    torch_tiers._verify("update", replayed(3), 4096, replays=3)  # 2^3
    for wrong in (replayed(0), replayed(3, launches=10)):  # nothing ran; an even count (a lost launch)
        with pytest.raises(AssertionError, match="GPU update kernel gave wrong values"):
            torch_tiers._verify("update", wrong, 4096, replays=3)
    for kernel in ("read", "write", "triad"):  # each on tensors of its own, as graph_round_times makes them
        calls, tensors = torch_tiers._kernels(4096, torch.device("cpu"))
        calls[kernel]()
        torch_tiers._verify(kernel, tensors, 4096)
    assert "update b.mul_(q)" in torch_tiers.METHOD


@pytest.mark.gpu
def test_gpu_graph_replayed_tiers_on_a_real_device() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from hwcal.backends.torch_tiers import graph_round_times

    for kernel in ("read", "write", "triad", "update"):
        times, method = graph_round_times(torch.device("cuda:0"), kernel, 8 * MiB, 20, 3)
        assert len(times) == 3 and all(t > 0 for t in times) and "CUDA graph" in method


def _stream(kernel: str, array_bytes: int, gbps: float) -> StreamRecord:
    arrays = 3 if kernel in ("add", "triad") else 2
    return StreamRecord(rounds=5, warmup_rounds=1, time_s={"min": 1e-3}, cv=0.01, kernel=kernel, n=array_bytes // 8,
                        element_bytes=8, bytes_per_pass=arrays * array_bytes, arrays_moved=arrays, passes_per_round=1,
                        gbps_best=gbps, gbps_median=gbps, max_rel_error=0.0, method="test")


def test_a_sweep_that_stops_short_of_dram_takes_the_memory_systems_dram_triad_and_tier_efficiencies() -> None:
    """A large LLC (a VM's 480 MiB) puts STREAM's 4x rule past the sweep's budget: the sustained figure is then
    the memory system's one-core DRAM triad, said so, never 0 or null; each sweep point is set against its tier."""
    system = _system()
    assert system.dram_rule_met
    sweep = MemorySweep(caches=SMALL, device="cpu", threads=1, records=[
        _stream("triad", 16 * KiB, 120.0), _stream("triad", 1 * MiB, 30.0), _stream("copy", 1 * MiB, 45.0)])
    section, warnings = memory_section(sweep, {}, {}, None, system)
    assert section is not None and section["sustained_gbps"] == pytest.approx(8.0)  # dram triad, one core
    assert "one-core triad" in section["sustained_source"] and any("(sustained_source)" in w for w in warnings)
    by = {(e["kernel"], e["array_bytes"]): e for e in section["sweep"]}
    l2 = by[("triad", 16 * KiB)]  # 48 KiB of arrays: L2 on one core (read there: 100 GB/s)
    # 1.2x the l2 roof: set against l1, the faster tier part of its arrays is served from, and said so
    assert l2["efficiency_ceiling"]["tier"] == "l1" and 0 < l2["efficiency"] <= 1
    assert "1.2x the l2 roof" in l2["efficiency_note"] and any("1.2x the l2 roof" in w for w in warnings)
    assert by[("copy", 1 * MiB)]["efficiency"] == pytest.approx(45.0 / 50.0)  # l3
    without, _ = memory_section(sweep, {}, {}, None, None)
    assert without is not None and without["sustained_gbps"] is None and "sustained_source" not in without


def test_a_huge_page_chase_slower_than_the_4k_one_is_flagged_and_the_level_takes_the_4k_figure() -> None:
    rec = _system()
    l3 = next(t for t in rec.tiers if t.name == "l3").one_core_bytes
    rec.latency = [p for p in rec.latency if p.working_set_bytes != l3]
    rec.latency += [LatencyPoint(l3, "huge", 1.0, 138.6, 142.6, 1000, 5, None),  # a torch run here, 2026-12-05
                    LatencyPoint(l3, "4k", None, 43.75, 44.1, 1000, 5, None)]
    parts, warnings = memory_system_parts(rec, 3000.0, "")
    assert parts["levels"]["l3"]["latency_ns"] == 43.75 and parts["levels"]["l3"]["huge_pages"] is False
    assert any("138.6 ns on huge pages, slower than 43.75 ns on 4 KiB pages" in w for w in warnings)
    assert parts["levels"]["l1"]["huge_pages"] is True  # the others keep their huge-page figure


def test_a_pools_huge_page_backing_is_read_once_a_second_and_afresh_after_its_first_touch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc/self/smaps costs 15 ms a read in a torch process: a pool reads it at most once per HUGE_MAX_AGE_S,
    and again once it is touched (its backing is set then)."""
    from hwcal.measure import mempool

    reads: list[int] = []
    monkeypatch.setattr(mempool, "huge_bytes_at", lambda address, size, src: reads.append(size) or len(reads))
    pool = mempool.Pool(2**21, huge=True)
    try:
        assert pool.huge_bytes() == 1 and pool.huge_bytes() == 1 and len(reads) == 1
        pool.touched()
        assert pool.huge_bytes() == 2
        monkeypatch.setattr(mempool, "HUGE_MAX_AGE_S", 0.0)
        assert pool.huge_bytes() == 3
    finally:
        pool.close()


def test_a_first_touch_with_a_deadline_stops_and_says_how_much_is_in(monkeypatch: pytest.MonkeyPatch,
                                                                      kernels: memkernels.Kernels) -> None:
    """first_touch_until faults chunk by chunk and stops once its seconds are spent (one chunk at least)."""
    from hwcal.measure import hierarchy

    monkeypatch.setattr(hierarchy, "TOUCH_CHUNK", 2 * MiB)
    pool = Pool(16 * MiB, huge=False)
    try:
        assert hierarchy.first_touch_until(pool, kernels, 0, 0.0) == 2 * MiB
        assert float(pool.f64(0, 2 * MiB).min()) == 1.0
        assert hierarchy.first_touch_until(pool, kernels, 0, 60.0) == 16 * MiB
        pool.shrink(4 * MiB)
        assert pool.size == 4 * MiB and pool.f64().nbytes == 4 * MiB
    finally:
        pool.close()


def test_a_huge_pool_that_faults_in_slower_than_its_probe_is_cut_to_what_is_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernels: memkernels.Kernels) -> None:
    """The huge-page chase keeps the part of its pool faulted in by the deadline (a power of two), with a note,
    instead of the whole memory budget (the AMX Xeon guest: 1.9 GiB at 0.34 GB/s, 5.9 s, no latency filed)."""
    from hwcal.measure import memory_system

    session = _session(tmp_path)
    state = MemorySystemState(session)
    state.cpu_setup()
    if state.record.huge_pages is None or not state.record.huge_pages.available:
        pytest.skip("no transparent huge pages here")
    monkeypatch.setattr(memory_system, "first_touch_until", lambda pool, k, cpu, seconds: 3 * MiB)
    pool = state.huge_pool(16 * MiB, 60.0)
    try:
        assert pool is not None and pool.size == 2 * MiB and state.record.huge_pool_bytes == 2 * MiB
        notes = state.record.notes
        assert any("3MiB of 16MiB were in" in n and "stops at 2MiB" in n for n in notes), notes
    finally:
        state.close()


def test_the_curve_meets_the_widest_gap_between_measured_working_sets_first() -> None:
    """Each next size is the farthest (log2) from all measured so far, the tiers' points first: a budget that runs
    out leaves the gaps it had least to say about (the AMX Xeon guest's ascending curve stopped at 0.5 MiB, with
    nothing between its 16 MiB L3 point and its 1.9 GiB DRAM pool)."""
    sizes = [4 * KiB * 2**i for i in range(19)]
    order = gaps_first(sizes, [16 * KiB, 256 * KiB, 16 * MiB, 1920 * MiB])
    assert sorted(order) == sizes
    assert order[:3] == [128 * MiB, 2 * MiB, 64 * KiB]  # L3 to DRAM, L2 to L3, L1 to L2
    assert order[-4:] == [MiB * 1024, 16 * MiB, 256 * KiB, 16 * KiB]  # the tiers' own sizes last
    assert gaps_first([], [KiB]) == [] and gaps_first([KiB, 4 * KiB], []) == [4 * KiB, KiB]
