"""Interference: other work on the machine is seen (/proc/stat less this process tree, steal, GPU
neighbours), a disturbed case is re-measured once the machine is quiet, and a case that never is gets
filed with the evidence and a warning; a real run beside a busy process says so in its file."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hwcal.document.builder import interference_metadata
from hwcal.document.schema import schema_errors
from hwcal.machine.interference import Evidence, Monitor, Snapshot, Thresholds
from hwcal.machine.sources import Sources
from hwcal.measure.watch import Watch
from tests.conftest import make_input

REPO = Path(__file__).resolve().parent.parent


def _stat(busy_ticks: int, steal_ticks: int, cpus: int = 2) -> str:
    # user nice system idle iowait irq softirq steal: busy split between user and system
    line = f"cpu  {busy_ticks // 2} 0 {busy_ticks - busy_ticks // 2} 100000 0 0 0 {steal_ticks} 0 0\n"
    return line + "".join(f"cpu{i} 0 0 0 0 0 0 0 0 0 0\n" for i in range(cpus))


class FakeMachine:
    """/proc/stat written between snapshots, and this process's CPU seconds as the test says."""

    def __init__(self, root: Path) -> None:
        (root / "proc").mkdir(parents=True)
        self.root, self.own_s = root, 0.0
        self.set(0, 0)

    def set(self, busy_ticks: int, steal_ticks: int) -> None:
        (self.root / "proc" / "stat").write_text(_stat(busy_ticks, steal_ticks))

    def monitor(self) -> Monitor:
        return Monitor(Sources(root=self.root, commands={}), own_cpu_s=lambda: self.own_s)


def _window(mon: Monitor, machine: FakeMachine, seconds: float, busy_ticks: int, own_s: float,
            steal_ticks: int = 0) -> Evidence:
    start = mon.snapshot()
    machine.set(busy_ticks, steal_ticks)
    machine.own_s += own_s
    end = dataclasses.replace(mon.snapshot(), t=start.t + seconds)
    return mon.evidence(start, end)


def test_our_own_work_is_not_interference(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    mon = machine.monitor()
    ev = _window(mon, machine, 1.0, busy_ticks=200, own_s=2.0)  # both CPUs busy, all of it ours
    assert not ev.disturbed and ev.other_cpu_pct == 0.0


def test_another_process_on_one_core_is_seen(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    mon = machine.monitor()
    ev = _window(mon, machine, 1.0, busy_ticks=200, own_s=1.0)  # we used one core, someone the other
    assert ev.disturbed and ev.other_cpu_pct == pytest.approx(50.0)
    assert "other processes used 50% of the 2 CPUs" in ev.reasons[0]


def test_steal_time_is_seen(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    mon = machine.monitor()
    ev = _window(mon, machine, 1.0, busy_ticks=100, own_s=1.0, steal_ticks=30)
    assert ev.disturbed and ev.steal_pct == pytest.approx(15.0) and "stole 15%" in ev.reasons[0]


def test_a_tick_or_two_in_a_short_case_is_not_interference(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    mon = machine.monitor()
    ev = _window(mon, machine, 0.05, busy_ticks=3, own_s=0.0)  # 30 ms of someone's CPU in a 50 ms case
    assert ev.other_cpu_pct is not None and ev.other_cpu_pct > 10 and not ev.disturbed


def test_without_proc_stat_nothing_is_claimed(tmp_path: Path) -> None:
    mon = Monitor(Sources(root=tmp_path, commands={}), own_cpu_s=lambda: 0.0)
    ev = mon.evidence(mon.snapshot(), mon.snapshot())
    assert ev.other_cpu_pct is None and not ev.disturbed
    assert any("no /proc/stat" in s for s in mon.sources)


class ScriptedMonitor(Monitor):
    """Judges windows from a script: True = disturbed."""

    def __init__(self, script: list[bool]) -> None:
        super().__init__(Sources(root=Path("/nonexistent"), commands={}), own_cpu_s=lambda: 0.0)
        self.script = list(script)

    def evidence(self, start: Snapshot, end: Snapshot, footprint_bytes: int | None = None,
                 call_s: float | None = None, split: bool | None = None) -> Evidence:
        busy = self.script.pop(0) if self.script else False
        return Evidence(0.1, 60.0 if busy else 1.0, 0.1, 0.0, None, None,
                        reasons=("other processes used 60% of the 2 CPUs",) if busy else ())


def _watch(script: list[bool]) -> Watch:
    watch = Watch(ScriptedMonitor(script), "cpu")
    watch.quiet_wait_s = 0.3
    return watch


def test_a_quiet_case_is_kept_as_measured() -> None:
    watch = _watch([False])
    assert watch.settle("case", watch.start(), "first", lambda: "again") == "first"
    assert watch.log.cases == []


def test_a_disturbed_case_is_re_measured_once_quiet() -> None:
    # judged disturbed; the wait sees a quiet window; the re-measurement is quiet
    watch = _watch([True, False, False])
    assert watch.settle("test_gemm[fp64-256]", watch.start(), "first", lambda: "again") == "again"
    (case,) = watch.log.cases
    assert case["action"] == "re-measured" and case["re_measured"] == 1 and case["other_cpu_pct"] == 60.0


def test_a_case_never_quiet_is_flagged_with_the_evidence() -> None:
    watch = _watch([True] * 50)
    assert watch.settle("test_gemm[fp64-256]", watch.start(), "first", lambda: "again") == "first"
    (case,) = watch.flagged()
    # the wait found no quiet window: nothing to re-measure in, so the first try is filed, saying why
    assert case["action"] == "flagged" and len(case["evidence"]) == 1 and case["re_measured"] == 0
    assert "no quiet moment came within the 0.3 s wait" in case["not_tried_again"]
    meta, warnings = interference_metadata(watch.log)
    assert meta["flagged"] == 1 and meta["cases_watched"] == 1
    assert warnings and "test_gemm[fp64-256]" in warnings[0] and "flagged" in warnings[0]


def test_re_measured_twice_while_still_disturbed_then_flagged() -> None:
    # judged; quiet wait; re-measurement disturbed; quiet wait; re-measurement disturbed: the first and two tries
    watch = _watch([True, False, True, False, True])
    assert watch.settle("case", watch.start(), "first", lambda: "again") in ("first", "again")
    (case,) = watch.flagged()
    assert len(case["evidence"]) == 3 and case["re_measured"] == 2 and "not_tried_again" not in case


def test_after_a_fruitless_wait_the_watch_backs_off_then_tries_again() -> None:
    """One long episode must not spend the run's budget on its first cases: after a wait that found no quiet
    moment, disturbed cases are flagged at once for ``backoff_s``; after it, the next one is waited for."""
    watch = _watch([True, True, True])  # a: judged, one window of its wait; b: judged
    watch.backoff_s = 0.4
    watch.settle("a", watch.start(), "first", lambda: "again")  # judged, then the wait's windows: none quiet
    started = time.perf_counter()
    watch.settle("b", watch.start(), "first", lambda: "again")  # within the back-off: flagged, no wait
    assert time.perf_counter() - started < 0.1
    assert "backing off" in watch.log.cases[1]["not_tried_again"]
    time.sleep(0.45)
    watch.monitor.script = [True, False, False]  # type: ignore[attr-defined]
    assert watch.settle("c", watch.start(), "first", lambda: "again") == "again"
    assert [c["action"] for c in watch.log.cases] == ["flagged", "flagged", "re-measured"]
    from hwcal.document.builder import build_calibration

    assert schema_errors(build_calibration(make_input(interference=watch.log))) == []


def test_the_run_budget_bounds_the_waiting() -> None:
    watch = _watch([True] * 500)
    watch.log.budget_s = 0.0
    started = time.perf_counter()
    watch.settle("case", watch.start(), "first", lambda: "again")
    assert time.perf_counter() - started < 0.2 and watch.flagged()[0]["re_measured"] == 0
    assert "budget for the run was spent" in watch.flagged()[0]["not_tried_again"]


def test_a_cross_check_suspect_is_re_measured_on_a_quiet_machine() -> None:
    watch = _watch([False, False, False])
    got = watch.settle("case", watch.start(), "first", lambda: "again", suspect="cross-check: halved")
    assert got == "again" and watch.log.cases[0]["reasons"] == ["cross-check: halved"]


def test_the_file_carries_the_interference_and_validates() -> None:
    watch = _watch([True] * 50)
    watch.settle("test_gemm[fp64-256]", watch.start(), 1, lambda: 2)
    from hwcal.document.builder import build_calibration

    doc = build_calibration(make_input(interference=watch.log))
    assert schema_errors(doc) == []
    assert doc["metadata"]["interference"]["cases"][0]["case"] == "test_gemm[fp64-256]"
    assert any(w.startswith("interference: test_gemm[fp64-256]") for w in doc["warnings"])


def test_thresholds_are_filed() -> None:
    assert Thresholds().as_dict()["other_cpu_pct"] == 10.0


def _spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc/stat")
def test_a_real_run_beside_a_busy_process_says_so_in_its_file(tmp_path: Path) -> None:
    """A short real calibration while a busy process holds every core: the file names the disturbed cases."""
    stop_at = time.time() + 60
    ctx = multiprocessing.get_context("fork")
    spinners = [ctx.Process(target=_spin, args=(stop_at,), daemon=True) for _ in range(os.cpu_count() or 1)]
    for s in spinners:
        s.start()
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-m", "pytest", str(REPO / "bench" / "test_gemm.py"), "-q", "-p", "no:randomly",
             "-p", "no:cacheprovider", "--sizes", "64,128", "-k", "fp64", "--registry", str(tmp_path / "reg"),
             "--power-mode", "7W", "--frequency-mhz", "2450", "--hardware-id", "test_cpu", "--force",
             "--allow-partial"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    finally:
        for s in spinners:
            s.terminate()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (path,) = (tmp_path / "reg").glob("cpu/*/calibrations/*.json")
    doc: dict[str, Any] = json.loads(path.read_text())
    interference = doc["metadata"]["interference"]
    assert interference["cases_watched"] >= 2 and interference["cases"]
    assert all(c["reasons"] and c["action"] in ("re-measured", "flagged") for c in interference["cases"])
    if interference["flagged"]:
        assert any(w.startswith("interference: ") for w in doc["warnings"])


def test_a_flagged_cases_figures_say_so_in_the_file_and_a_re_measured_ones_do_not() -> None:
    """Each figure carries the pytest id that measured it; the document marks ``flagged`` those the watch left
    flagged (here a BLAS size and an isolated launch floor) so a reader can prefer the quiet ones beside them."""
    from hwcal.document.builder import build_calibration
    from hwcal.measure.records import LaunchFloor
    from tests.conftest import make_record
    from tests.test_blas_body import blas_record

    watch = _watch([True] * 50 + [False] * 50)
    slow, quiet = "bench/test_blas.py::test_blas[dot-fp64-128MiB]", "bench/test_blas.py::test_blas[dot-fp64-16KiB]"
    floor_case = "bench/test_floors.py::test_launch_floor[dot-isolated]"
    for case in (slow, floor_case):
        watch.settle(case, watch.start(), 1, lambda: 2)
    assert [c["action"] for c in watch.log.cases] == ["flagged", "flagged"]
    blas = [dataclasses.replace(blas_record(), case=slow), dataclasses.replace(blas_record(nbytes=16 * 2**10),
                                                                                case=quiet)]
    floor = LaunchFloor("dot", 5e-7, 6e-7, 2000, 20, "np.dot 1 element", "numpy", "cpu", "fp64",
                        case="bench/test_floors.py::test_launch_floor[dot-back_to_back]")
    isolated = dataclasses.replace(floor, seconds_min=9e-7, timing="isolated", case=floor_case)
    doc = build_calibration(make_input([dataclasses.replace(make_record("fp32", 256), case="gemm-case")],
                                       interference=watch.log, blas=blas, floors={"dot": floor},
                                       isolated_floors={"dot": isolated}))
    assert schema_errors(doc) == []
    by_bytes = {e["bytes"]: e for e in doc["blas"]}
    assert by_bytes[blas[0].bytes]["flagged"] is True and "flagged" not in by_bytes[blas[1].bytes]
    assert doc["launch_floors"]["dot"]["isolated"]["flagged"] is True and "flagged" not in doc["launch_floors"]["dot"]
    assert "flagged" not in doc["gemm"][0]
    doc["blas"][0]["flagged"] = False  # only ever true: absent when not flagged
    assert schema_errors(doc) != []


def test_the_process_tree_holds_children_and_grandchildren_and_their_cpu_is_ours() -> None:
    """A child that spawns a busy grandchild: both are found from /proc's children lists (psutil's full scan
    is the fallback), and the grandchild's CPU seconds count as this run's own, not as another process's."""
    from hwcal.machine.interference import _descendants

    code = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
            "'import time\\nt = time.time()\\nwhile time.time() - t < 3: pass']); print(p.pid, flush=True); p.wait()")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    grandchild = 0
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        kids = _descendants(os.getpid())
        if kids is None:
            pytest.skip("this kernel lists no /proc/PID/task/TID/children")
        assert child.pid in kids and grandchild in kids
        mon = Monitor()
        before = mon._process_tree_cpu_s()
        time.sleep(0.5)
        after = mon._process_tree_cpu_s()
        assert before is not None and after is not None and after - before > 0.2  # the busy grandchild's
    finally:
        if grandchild:
            with contextlib.suppress(OSError):
                os.kill(grandchild, signal.SIGKILL)
        child.kill()
        child.wait()


def test_a_child_gone_since_the_listing_leaves_the_process_trees_cpu_time(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process now
    mon = Monitor()
    monkeypatch.setattr("hwcal.machine.interference._descendants", lambda pid: [])
    alone = mon._process_tree_cpu_s()
    monkeypatch.setattr("hwcal.machine.interference._descendants", lambda pid: [gone.pid])
    own = mon._process_tree_cpu_s()
    # the figure is kept, as without the gone child (under QEMU user emulation both read 0.0)
    assert alone is not None and own is not None and own >= alone
