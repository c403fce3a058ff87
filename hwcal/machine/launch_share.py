"""What a call costs the host right now: on a GPU run, the figures of short calls are paced by the host's
launch path (the framework's dispatch, the driver), not by the GPU, and that path's speed moves in episodes
that neither /proc/stat nor NVML shows. On a CPU run whose framework splits a call over its threads (torch's
ATen on OpenMP), a short call is paced by how fast the other threads join it, which moves the same way.

Seen on the lent H100/H200 hosts (2026-12-05, 16-vCPU VMs, one NUMA node): 3,000 back-to-back
``torch.add`` calls on 16 elements took 5.5-6.2 us a call, or 7.2-8.5 us in episodes of tenths of a second
to minutes, within one process, on whichever CPU it was pinned to. A calibration run in such an episode
filed an add floor of 8.19 us, a 4x4 mm floor of 12.2 us and small GEMMs 30-90 % over what a later,
quieter process timed.

Seen on the 2-vCPU development VM (2026-12-07, AMD EPYC Zen 4 under KVM, numpy): every tiny one-thread call
slowed together, 1.6-1.9x (``np.add`` on 16 elements 0.39 -> 0.71 us, ``np.multiply(x, a, out=x)`` 0.67 -> 1.2,
a 16x16 ``np.dot`` 0.57 -> 1.0, a 4x4 ``np.matmul`` 0.98 -> 1.6), for most of 90 s of looks every 20 ms
(3,546 of 4,226 looks had the add 1.25x its best, and 95 % of the looks with a slow multiply or dot had it
too), with no other process, no steal time and no thread pool involved. A numpy calibration in such an
episode filed the scal, axpy, gemv and gemm floors 1.6-1.8x a quiet run's, and its predictions of a model's
small element-wise ops and small-M GEMMs ran 30-50 % high. A call look (a CPU run's own tiny call, one
thread) judges the cases whose calls are that short.

Seen on the 2-vCPU development VM (2026-12-05, AMD EPYC Zen 5 under KVM, torch 2.13 with 2 OpenMP threads):
``x.mul_(a)`` on 65,536 fp32 elements (two of ATen's 32,768-element grains, one per thread) took 3.3-3.7 us
a call, or 5.2-6.2 us in episodes of a second to tens of seconds, in any process, with /proc/stat, steal
time, the host-share looks and a core-to-core cache-line round trip (80-90 ns either way) all unchanged;
with ``OMP_WAIT_POLICY=ACTIVE`` it stayed at 3.4-3.5 us: the slow state is the worker thread's wake-up.
Every short call split over the threads pays it: three torch calibrations of this VM filed scal and axpy
at 65,536-131,072 elements 1.4-1.6x slower than a referee process timed them.

A look: ``CALLS`` back-to-back tiny calls and one synchronisation, best of ``REPS``; the launch share is the
run's best time per call over this look's (1 when the host is as quick as it has been, ~0.65 in a slow
episode). The run's best is seeded by ``SEED_LOOKS`` looks at the start, so a run that opens in an episode
still finds the quick state if it comes within them. Never raises.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

CALLS = 100  # a look: ~0.6 ms of calls at 6 us, long enough that one sync is a few per cent of it ...
LOOK_S = 0.6e-3  # ... and fewer calls of a slower one, to about this long (at least MIN_CALLS): the thread-pool
MIN_CALLS = 5  # look's GEMM took 28 us on the Zen 4 guest, and under QEMU (the aarch64 rehearsal) ~5 ms
REPS = 2
MAX_AGE_S = 0.2  # a look younger than this answers again: an episode lasts tenths of a second or more
SEED_LOOKS = 40  # at the start, spaced SEED_GAP_S apart: ~0.4 s in which a quick moment is likely,
SEED_GAP_S = 0.01
SEED_MAX_S = 1.0  # and no longer than this (at least 3 looks)
SIZING_CALLS = 10
# A call moving more than this through a GPU's memory outlasts a launch several times over (64 MiB at
# 3.35 TB/s: 20 us): the queue hides the host's pace and the look does not judge it.
LAUNCH_BOUND_BYTES = 64 << 20
# A CPU call longer than this hides a 2 us wake-up (under 4 %); one on fewer bytes than ATen's grain (32,768
# elements of 2 bytes) runs on one thread and waits for no other.
FORK_JOIN_BOUND_S = 50e-6
SPLIT_BYTES = 64 << 10
# A call look's tiny call (a CPU's own dispatch, one thread) paces the cases whose calls take under this: the
# floors and the smallest BLAS and element-wise calls, where dispatch is most of the time.
SHORT_CALL_S = 10e-6
# A thread-pool look (numpy: OpenBLAS's threads) judges the cases whose calls the pool splits (numpy: the GEMMs
# OpenBLAS threads), however long: the slow episode there is a pool thread's core, which paces every such call.
# Which calls those are is the backend's word: the CPU time the rounds took cannot tell, as OpenBLAS's idle
# threads spin a while after each split call (the look's own among them) and read 1.3-2 CPUs busy under
# numpy's one-thread STREAM.


class LaunchProbe:
    """Times a tiny call back to back; remembers the run's best and slowest per-call time.

    ``fork_join``: the call is a CPU call split over the framework's threads, and the cases judged are those
    whose calls are short and could be split (per-call time under FORK_JOIN_BOUND_S, bytes from SPLIT_BYTES);
    ``pool``: a call the BLAS splits over its thread pool, judging the cases whose calls the backend says the
    pool splits (``split``), from SPLIT_BYTES; otherwise (a GPU's launch) those that move under
    LAUNCH_BOUND_BYTES."""

    def __init__(self, call: Callable[[], Any], sync: Callable[[], Any], what: str, fork_join: bool = False,
                 pool: bool = False, single: bool = False) -> None:
        self.call = call
        self.sync = sync
        self.what = what
        self.fork_join = fork_join
        self.single = single  # a CPU's own tiny call on one thread (judging: cases of calls under SHORT_CALL_S)
        self.pool = pool  # a BLAS call on the library's thread pool (judging: cases whose calls it splits)
        self.calls = CALLS  # per look (``seed`` sizes it)
        self.best_s = float("inf")
        self.slowest_s = 0.0
        self.looks = 0
        self._last: tuple[float, float | None] | None = None

    @property
    def description(self) -> str:
        if self.pool:
            look, judged = "a thread-pool look", (f"judging cases whose calls the pool splits, on {SPLIT_BYTES >> 10} "
                                                  "KiB or more")
        elif self.fork_join:
            look, judged = "a fork-join look", (f"judging cases whose calls take under {FORK_JOIN_BOUND_S * 1e6:g} us "
                                                f"on {SPLIT_BYTES >> 10} KiB or more")
        elif self.single:
            look, judged = "a call look", f"judging cases whose calls take under {SHORT_CALL_S * 1e6:g} us"
        else:
            look, judged = "a launch look", f"judging cases that move under {LAUNCH_BOUND_BYTES >> 20} MiB"
        return (f"{look}: {self.calls} back-to-back {self.what} and one synchronisation, best of {REPS}, against the "
                f"run's best (seeded by {SEED_LOOKS} looks at the start), {judged}, at most every {MAX_AGE_S:g} s")

    def _per_call_s(self) -> float:
        best = float("inf")
        for _ in range(REPS):
            t0 = time.perf_counter()
            for _ in range(self.calls):
                self.call()
            self.sync()
            best = min(best, (time.perf_counter() - t0) / self.calls)
        return best

    def seed(self) -> None:
        """Looks over ~0.4 s at the start (at most SEED_MAX_S): the run's best should be a quick moment's. First,
        SIZING_CALLS calls set the calls per look: CALLS for a call of up to twice LOOK_S / CALLS (the GPU's launch
        and torch's fork-join calls, as before), else about LOOK_S of them (at least MIN_CALLS)."""
        try:
            t0 = time.perf_counter()
            for _ in range(SIZING_CALLS):
                self.call()
            self.sync()
            per_call = (time.perf_counter() - t0) / SIZING_CALLS
        except Exception:
            per_call = 0.0
        if per_call > 2 * LOOK_S / CALLS:
            self.calls = max(MIN_CALLS, math.ceil(LOOK_S / per_call))
        started = time.perf_counter()
        for i in range(SEED_LOOKS):
            self._last = None
            self.look()
            if i >= 2 and time.perf_counter() - started > SEED_MAX_S:
                break
            time.sleep(SEED_GAP_S)

    def matters(self, footprint_bytes: int | None, call_s: float | None = None, split: bool | None = None) -> bool:
        """Whether the host's pace can set a case's time. A GPU's: its calls move little; unknown bytes: no
        (the GPU cases that pass none are the long ones, the max-achievable bursts and the energy windows). A
        CPU's fork-join: its calls are short (known) and not too small to be split (unknown bytes: could be). A
        thread pool's: the case's calls go to the pool (``split``, the backend's word), on bytes it could split."""
        if self.pool:
            return bool(split) and (footprint_bytes is None or footprint_bytes >= SPLIT_BYTES)
        if self.single:
            return call_s is not None and call_s < SHORT_CALL_S
        if self.fork_join:
            return call_s is not None and call_s < FORK_JOIN_BOUND_S and (
                footprint_bytes is None or footprint_bytes >= SPLIT_BYTES)
        return footprint_bytes is not None and footprint_bytes < LAUNCH_BOUND_BYTES

    def reason(self, share: float) -> str:
        """Why a case was judged disturbed, with the look's figures."""
        best = self.best_s
        now = best / share * 1e6
        if self.pool:
            return (f"a call on the BLAS's thread pool took {now:.1f} us, {1 / share:.2f}x this run's best "
                    f"({best * 1e6:.1f} us): a slow episode of a pool thread's core")
        if self.single:
            return (f"a tiny call took {now:.2f} us, {1 / share:.2f}x this run's best ({best * 1e6:.2f} us): a slow "
                    "episode of this core's call path")
        if self.fork_join:
            return (f"a call split over the threads took {now:.1f} us, {1 / share:.2f}x this run's best "
                    f"({best * 1e6:.1f} us): a slow episode of the threads' wake-up")
        return (f"the host took {now:.1f} us to launch a tiny call, {1 / share:.2f}x this run's best "
                f"({best * 1e6:.1f} us): a slow episode of the launch path")

    def look(self) -> float | None:
        """The launch share now (run's best per call / this look's), or a look's under MAX_AGE_S old."""
        now = time.perf_counter()
        if self._last is not None and now - self._last[0] < MAX_AGE_S:
            return self._last[1]
        try:
            per_call = self._per_call_s()
        except Exception:
            return None
        self.looks += 1
        self.best_s = min(self.best_s, per_call)
        self.slowest_s = max(self.slowest_s, per_call)
        share = self.best_s / per_call if per_call > 0 else None
        self._last = (time.perf_counter(), share)
        return share

    def summary(self) -> dict[str, Any]:
        """For ``metadata.interference.launch`` (``.call``): what was looked at, how often, the run's extremes."""
        out: dict[str, Any] = {"method": self.description, "looks": self.looks}
        if self.looks:
            out.update(per_call_us_best=round(self.best_s * 1e6, 3), per_call_us_slowest=round(self.slowest_s * 1e6, 3))
        return out
