"""The host-share looks: CPUs a hypervisor runs on one core deliver half of separate cores' work at once,
and a neighbour that takes the LLC slows one thread's read of it; /proc/stat and steal time show neither.
A real probe with both threads pinned to one CPU must read about half, and its cache read over 4x the LLC
must come out well below its read of a quarter of it; scripted probes drive the monitor and the watch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hwcal.document.builder import build_calibration
from hwcal.document.schema import schema_errors
from hwcal.machine.fma_probe import probe_kernel
from hwcal.machine.host_share import HostShareProbe
from hwcal.machine.interference import Monitor
from hwcal.machine.sources import Sources
from hwcal.measure.watch import Watch
from tests.conftest import make_input


class ScriptedProbe(HostShareProbe):
    """(core, cache) looks from a list (the last one repeats); the references are a quiet run's."""

    def __init__(self, looks: list[tuple[float | None, float | None]], reference: float = 0.95) -> None:
        super().__init__(None, [0, 1], True, None)
        self.script = list(looks)
        self.best = {"core": reference, "cache_gbps": 60.0}

    @property
    def description(self) -> str:
        return "scripted looks"

    def look(self) -> tuple[float | None, float | None]:
        value = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        self.looks += 1
        return value


def _monitor(tmp_path: Path, probe: HostShareProbe) -> Monitor:
    return Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0, host_share=probe)


def test_cpus_on_one_core_are_a_reason(tmp_path: Path) -> None:
    mon = _monitor(tmp_path, ScriptedProbe([(0.95, 1.0), (0.50, 1.0)]))
    ev = mon.evidence(mon.snapshot(), mon.snapshot())
    assert ev.disturbed and ev.core_share == 0.5 and len(ev.reasons) == 1
    assert "sharing cores" in ev.reasons[0] and "1.0 CPUs' worth" in ev.reasons[0]
    assert ev.as_dict()["core_share"] == 0.5
    assert any("scripted looks" in s for s in mon.sources)


def test_a_taken_cache_is_a_reason(tmp_path: Path) -> None:
    mon = _monitor(tmp_path, ScriptedProbe([(0.95, 0.9), (0.95, 0.4)]))
    ev = mon.evidence(mon.snapshot(), mon.snapshot())
    assert ev.disturbed and ev.cache_share == 0.4 and len(ev.reasons) == 1
    assert "the shared cache was taken" in ev.reasons[0] and "24 of 60 GB/s" in ev.reasons[0]
    assert ev.as_dict()["cache_share"] == 0.4


def test_a_taken_cache_does_not_judge_a_case_that_fits_the_private_caches(tmp_path: Path) -> None:
    probe = ScriptedProbe([(0.95, 0.9), (0.95, 0.4)])
    probe.private_bytes = 2 << 20
    mon = _monitor(tmp_path, probe)
    start, end = mon.snapshot(), mon.snapshot()
    assert not mon.evidence(start, end, footprint_bytes=1 << 20).disturbed  # a 1 MiB GEMM lives in L2
    assert mon.evidence(start, end, footprint_bytes=64 << 20).disturbed
    assert mon.evidence(start, end).disturbed  # unknown bytes: judged


def test_a_look_within_its_noise_is_not_a_reason(tmp_path: Path) -> None:
    # 0.86 of the reference: a noisy look, not sharing; a cache read at 0.8 of the best: not taken
    mon = _monitor(tmp_path, ScriptedProbe([(0.96, 1.0), (0.82, 0.8)]))
    ev = mon.evidence(mon.snapshot(), mon.snapshot())
    assert not ev.disturbed and ev.core_share == 0.82 and ev.cache_share == 0.8


def test_a_case_on_shared_cores_is_re_measured_once_they_are_separate_and_filed(tmp_path: Path) -> None:
    # start 0.95, end 0.48 (shared); the wait sees 0.95 twice; the re-measurement 0.95 twice
    watch = Watch(_monitor(tmp_path, ScriptedProbe([(0.95, 1.0), (0.48, 1.0), (0.95, 1.0)])), "cpu")
    watch.quiet_wait_s = 0.6
    assert watch.settle("test_gemm_shape[fp32-16x256x256x64]", watch.start(), "first", lambda: "again") == "again"
    (case,) = watch.log.cases
    assert case["action"] == "re-measured" and case["evidence"][0]["core_share"] == 0.48
    assert watch.log.host_share is not None and watch.log.host_share["looks"] >= 4
    doc = build_calibration(make_input(interference=watch.log))
    assert schema_errors(doc) == []
    assert doc["metadata"]["interference"]["host_share"]["looks"] >= 4


def test_still_shared_after_the_retries_is_flagged(tmp_path: Path) -> None:
    watch = Watch(_monitor(tmp_path, ScriptedProbe([(0.95, 1.0), (0.5, 1.0)])), "cpu")
    watch.quiet_wait_s = 0.3
    assert watch.settle("case", watch.start(), "first", lambda: "again") == "first"
    (case,) = watch.flagged()
    assert "sharing cores" in case["reasons"][0]


def test_no_probe_for_another_machine(tmp_path: Path) -> None:
    probe, why = HostShareProbe.for_this_machine(Sources(root=tmp_path, commands={}))
    assert probe is None and why == "not the local machine"
    mon = Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0, host_share_why=why)
    assert any("no host-share look" in s for s in mon.sources)
    assert mon.snapshot().core_share is None and mon.snapshot().cache_share is None


def _real_kernel() -> Any:
    kernel, why = probe_kernel()
    if kernel is None:
        pytest.skip(f"no FMA kernel here: {why}")
    return kernel


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_real_look_on_separate_cpus_is_near_one_and_cached() -> None:
    """A live look on a shared host can fall out of the band once (its one-CPU half slowed by a neighbour:
    1.305 in one CI run on the Zen 3 guest); up to three fresh probes, one of them in the band, tell a broken
    look (always out of it) from a noisy moment."""
    cores: list[float] = []
    for _ in range(3):
        probe, why = HostShareProbe.for_this_machine()
        assert probe is not None, why
        core, cache = first = probe.look()
        assert core is not None and cache == 1.0  # the first cache read is the best so far
        assert probe.look() == first and probe.looks == 1  # a look under MAX_AGE_S old answers again
        cores.append(core)
        if 0.3 < core < 1.3:
            break
    assert 0.3 < cores[-1] < 1.3, cores
    summary = probe.summary()
    assert summary["looks"] == 1 and summary["cache_gbps_best"] > 0 and summary["core_share_reference"] >= 0.9


def test_the_real_look_sees_two_threads_on_one_cpu() -> None:
    """Both threads pinned to one CPU is what a hypervisor does to two vCPUs it runs on one core: about half
    of separate cores (a mirror would read 1)."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    probe = HostShareProbe(_real_kernel(), [cpu, cpu], separate_cores=True, llc_bytes=None)
    core, cache = probe.look()
    assert core is not None and core < 0.7 and cache is None, core


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_real_cache_read_tells_a_resident_quarter_from_data_the_cache_lost() -> None:
    """What a taken LLC leaves is data that is not resident: the same read over 4x the LLC (DRAM) must come
    out clearly under the read of a quarter of it, or the look would not read from the cache at all. How far
    under depends on the chip: 0.5-0.6 on the Zen 5 guest, 0.74 on the Zen 4 one (one thread reads DRAM at
    38 GB/s there, its L3 at 51), where the look's 0.7 catches a taken LLC only with the memory bus loaded
    too (its reads fell to 20-33 GB/s in such episodes); the run files the ratio, and a warning where it is
    at or above the threshold. (A neighbour process on this VM's other core cannot take the LLC the way the
    host's neighbours do: one sweeping 4x the LLC slowed the read by a few per cent at best.)"""
    from hwcal.machine.caches import detect_cpu_caches

    last = detect_cpu_caches().last_level
    llc = last.size_bytes if last is not None else 0
    if not llc:
        pytest.skip("no LLC size here")
    probe = HostShareProbe(None, [0, 1], True, llc)
    probe.look()
    ratio = probe.dram_ratio()
    assert ratio is not None and 0 < ratio < 0.85, ratio
    assert probe.dram_ratio() is ratio  # once a run: its buffer is 4x the LLC
    assert probe.summary()["cache_dram_ratio"] == round(ratio, 3)
    assert HostShareProbe(None, [0, 1], True, None).dram_ratio() is None  # no cache look, nothing to read


def test_the_dram_ratio_is_read_at_the_end_of_a_run_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The summaries the watch keeps during a run leave the DRAM ratio out (its read first-touches up to 512 MiB,
    1.5 s as a run's first case on the AMX Xeon guest); the final one reads it, and later ones keep it."""
    import hwcal.machine.host_share as host_share

    probe = HostShareProbe(None, [0, 1], True, 4 << 20)
    probe.look()
    reads: list[int] = []
    monkeypatch.setattr(host_share, "_read_gbps", lambda buffer, n, *_: reads.append(buffer.nbytes) or 1.0)
    assert "cache_dram_ratio" not in probe.summary(final=False) and reads == []
    ratio = probe.summary()["cache_dram_ratio"]
    assert ratio > 0 and (16 << 20) in reads
    assert probe.summary(final=False)["cache_dram_ratio"] == ratio


@pytest.mark.parametrize(("ratio", "warned"), [(0.74, True), (0.7, True), (0.55, False)])
def test_a_cache_look_that_cannot_see_a_taken_cache_alone_is_a_warning(ratio: float, warned: bool) -> None:
    from hwcal.measure.watch import InterferenceLog

    log = InterferenceLog(["scripted"], {"host_share_fraction": 0.7}, 12.0, watched=3,
                          host_share={"method": "scripted looks", "looks": 3, "cache_dram_ratio": ratio})
    doc = build_calibration(make_input(interference=log))
    assert schema_errors(doc) == []
    found = [w for w in doc["warnings"] if "reads DRAM at" in w]
    assert bool(found) == warned
    if warned:
        assert found[0].startswith(f"interference: one thread reads DRAM at {ratio:.2f} of its read")


def test_a_cache_look_stops_at_its_first_read_near_the_runs_best() -> None:
    """Judged at 0.7 of the run's best, a read within 5 % of it settles the look: the rest of the 8 are not read
    (19 ms a look, 2.2 s of a torch run on the AMX Xeon guest)."""
    import types

    from hwcal.machine.host_share import CACHE_READS, _read_gbps

    sums: list[int] = []
    buffer = types.SimpleNamespace(nbytes=1 << 20, sum=lambda: sums.append(1))
    _read_gbps(buffer, CACHE_READS)  # type: ignore[arg-type]
    assert len(sums) == CACHE_READS
    sums.clear()
    _read_gbps(buffer, CACHE_READS, enough=1e-6)  # type: ignore[arg-type]
    assert len(sums) == 1
    sums.clear()
    _read_gbps(buffer, CACHE_READS, enough=1e12)  # type: ignore[arg-type]  # never reached: every read
    assert len(sums) == CACHE_READS
    probe = HostShareProbe(None, [0, 1], True, 4 << 20)
    probe.look()  # the first look has no best to stop at
    assert probe.best["cache_gbps"] > 0
