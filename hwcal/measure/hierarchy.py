"""Cache tiers and DRAM of a CPU, measured with compiled loops (``hwcal.measure.memkernels``): read, write,
triad and in-place update bandwidth at working sets inside each tier, on one core and on every core at once, and the
latency of a dependent load (pointer chase) on huge pages and on 4 KiB pages.

Bandwidth: a round is ``passes`` passes of the kernel over the working set on each worker (pinned,
released together); its figure is all bytes over the common wall time, the best of ``rounds`` rounds is
filed (STREAM's best-of) with the median beside it. At DRAM the pool is >= 4x the last-level caches and
each round runs over the next eighth of it, so a byte is touched again only after 7/8 of the pool has
gone through the caches: the rule's guarantee at an eighth of the time per round. Every kernel's result
is checked after its rounds.

Latency: the chase runs on one pinned core; ns per hop is the best of ``rounds`` rounds of ``hops``
hops; the core's clock is read right after by the dependent-add probe (``hwcal.machine.cpuclock``) where
there is one, so cycles are cycles of the clock the chase ran at.

Everything is budgeted: before each step its time is predicted from what was measured so far, and a step
that would overrun is left out with a line saying so.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwcal.machine.cpuclock import ChainClock
from hwcal.measure.memkernels import LINE_BYTES, Kernels, bijection_keys, expected_line
from hwcal.measure.mempool import Pool, common_span, run_pinned
from hwcal.measure.memsys import (
    BW_KERNELS,
    BandwidthPoint,
    LatencyPoint,
    MemorySystem,
    TierPlan,
    counted_bytes,
    pow2_floor,
)

WINDOWS = 8  # DRAM rounds run over one eighth of the pool each
MIN_ROUND_S = {1: 1e-3, 0: 4e-3}  # one worker; several (the barrier's release skew is ~0.1 ms)
GBPS_GUESS = 5.0  # before anything was measured: a slow DRAM
NS_GUESS = 100.0


class Budget:
    """Seconds a case may spend, and the steps it left out."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.start = time.perf_counter()
        self.skipped: list[str] = []

    def summary(self) -> list[str]:
        """The steps left out, in one line (the first few named)."""
        if not self.skipped:
            return []
        named = "; ".join(self.skipped[:3])
        more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
        return [f"memory system: {len(self.skipped)} step{'s' if len(self.skipped) > 1 else ''} left out to stay "
                f"within the {self.limit_s:g} s budget: {named}{more}"]

    def spent(self) -> float:
        return time.perf_counter() - self.start

    def allows(self, predicted_s: float, what: str) -> bool:
        if self.spent() + predicted_s <= self.limit_s:
            return True
        self.skipped.append(f"{what} (about {predicted_s:.2f} s, {max(self.limit_s - self.spent(), 0):.2f} s left)")
        return False


def region(pool: Pool, workers: int, w: int) -> tuple[int, int]:
    """(start, bytes) of worker ``w``'s share of the pool, page aligned."""
    share = (pool.size // workers) // 4096 * 4096
    return w * share, share


def kernel_arrays(pool: Pool, start: int, ws: int, kernel: str, window: int | None, share: int
                  ) -> tuple[np.ndarray, ...]:
    """The arrays one worker's pass uses: ``ws`` bytes at ``start`` (in cache), or window ``window`` of
    its ``share`` (DRAM: read/write one array per window, triad one window of each third)."""
    if kernel != "triad":
        if window is None:
            return (pool.f64(start, ws),)
        size = share // WINDOWS // LINE_BYTES * LINE_BYTES
        return (pool.f64(start + window * size, size),)
    if window is None:
        n = ws // 24 * 8
        return tuple(pool.f64(start + i * n, n) for i in range(3))
    third = share // 3 // LINE_BYTES * LINE_BYTES
    size = third // WINDOWS // LINE_BYTES * LINE_BYTES
    return tuple(pool.f64(start + i * third + window * size, size) for i in range(3))


UPDATE_FACTOR = 2.0  # a power of two: exact, so the update's values are known after any number of calls


def pass_bytes(kernel: str, arrays: tuple[np.ndarray, ...]) -> int:
    return counted_bytes(kernel, sum(a.nbytes for a in arrays))


@dataclass
class BandwidthBench:
    """Runs one (kernel, working set, workers) point on the DRAM pool and checks the kernel's result."""

    kernels: Kernels
    pool: Pool
    cpus: list[int]
    rounds: int  # at DRAM (a round is an eighth of the pool)
    cache_rounds: int  # in cache (a round is a few milliseconds)

    def _call(self, kernel: str, arrays: tuple[np.ndarray, ...], passes: int) -> Any:
        k = self.kernels
        if kernel == "read":
            return k.read(arrays[0], passes)
        if kernel == "write":
            return k.write(arrays[0], 1.0, passes)
        if kernel == "update":
            return k.update(arrays[0], UPDATE_FACTOR, passes)
        return k.triad(arrays[0], arrays[1], arrays[2], 3.0, passes)

    @staticmethod
    def _sampled(a: np.ndarray) -> np.ndarray:
        return np.unique(np.linspace(0, a.size - 1, num=min(a.size, 257)).astype(np.int64))

    def _check(self, kernel: str, arrays: tuple[np.ndarray, ...], passes: int, result: Any,
               update_want: np.ndarray | None = None) -> None:
        if kernel == "read":
            expected = passes * float(np.sum(arrays[0]))
            ok = math.isclose(float(result), expected, rel_tol=1e-9, abs_tol=1e-9)
        elif kernel == "update":  # powers of two: exact
            ok = update_want is not None and bool(np.array_equal(arrays[0][self._sampled(arrays[0])], update_want))
        else:
            a = arrays[0]
            idx = self._sampled(a)
            last = (passes - 1) & 7
            want = 1.0 + last if kernel == "write" else arrays[1][idx] + (3.0 + last) * arrays[2][idx]
            ok = bool(np.allclose(a[idx], want, rtol=1e-12, atol=0.0))
        if not ok:
            raise AssertionError(f"compiled {kernel} kernel gave wrong values ({passes} passes): not filed")

    def measure(self, kernel: str, ws: int, workers: int, windowed: bool) -> BandwidthPoint:
        cpus = self.cpus[:workers]
        shares = [region(self.pool, workers, w) if windowed or workers > 1 else (0, self.pool.size)
                  for w in range(workers)]
        per_worker = ws // workers

        def arrays(w: int, r: int) -> tuple[np.ndarray, ...]:
            start, share = shares[w]
            return kernel_arrays(self.pool, start, per_worker, kernel, r % WINDOWS if windowed else None, share)

        def fill(w: int) -> None:  # in cache: known values (1.0), and the worker's own cache warmed
            if not windowed:
                for a in arrays(w, 0):
                    self.kernels.fill(a, 1.0)

        target_s = MIN_ROUND_S[1 if workers == 1 else 0]

        def calibrate(w: int, r: int) -> int:
            """Passes for a round of ``target_s`` on the first worker alone: grown until a call lasts a quarter
            of it (a single pass of an L1-sized array is shorter than the call itself)."""
            passes = 1
            while True:
                t0 = time.perf_counter()
                self._call(kernel, arrays(w, 0), passes)
                took = time.perf_counter() - t0
                if windowed or took >= target_s / 4 or passes >= 1 << 26:
                    return 1 if windowed else max(1, math.ceil(passes * target_s / max(took, 1e-9)))
                passes *= 4

        passes = run_pinned(cpus[:1], calibrate, 1, prepare=fill).results[0]
        if kernel == "update":
            # An odd count: each call doubles the values (its passes x2, x1/2 ... x2), so a call that did nothing
            # shows; a round touches its arrays (DRAM: a window, revisited every WINDOWS rounds) a few times.
            passes |= 1
        rounds = self.rounds if windowed else self.cache_rounds
        calls = sum(1 for r in range(rounds + 1) if not windowed or r % WINDOWS == rounds % WINDOWS)
        sampled = [self._sampled(arrays(w, rounds)[0]) for w in range(workers)]
        if kernel == "update" and windowed:  # known, normal values: a chase leaves addresses (fp64 denormals)
            for w in range(workers):
                start, share = shares[w]
                self.kernels.fill(self.pool.f64(start, share // 8 * 8), 1.0)
        # Round 0 is untimed: every worker's arrays filled and in its cache (DRAM: window 0, not timed after).
        run = run_pinned(cpus, lambda w, r: self._call(kernel, arrays(w, r), passes), rounds + 1, prepare=fill)
        for w in range(workers):
            want = np.full(sampled[w].size, UPDATE_FACTOR**calls) if kernel == "update" else None  # from 1.0
            self._check(kernel, arrays(w, rounds), passes, run.results[w], want)
        nbytes = [pass_bytes(kernel, arrays(w, 1)) * passes for w in range(workers)]
        rates = [sum(nbytes) / common_span(spans) / 1e9 for spans in run.spans[1:]]
        best = max(range(len(rates)), key=rates.__getitem__)
        own = tuple(round(b / max(e - s, 1e-12) / 1e9, 4) for b, (s, e) in zip(nbytes, run.spans[best + 1],
                                                                                 strict=True))
        return BandwidthPoint(kernel, ws, workers, rates[best], statistics.median(rates), rounds, passes,
                              windowed, own if workers > 1 else ())


def predict_bw_s(points: list[BandwidthPoint], kernel: str, ws: int, workers: int, rounds: int,
                 windowed: bool) -> float:
    """Seconds a point will take, from the nearest smaller point of the same kernel and workers."""
    seen = [p for p in points if p.kernel == kernel and p.threads == workers and p.working_set_bytes <= ws]
    gbps = min((p.gbps_best for p in seen if p.working_set_bytes == max(q.working_set_bytes for q in seen)),
               default=GBPS_GUESS)
    pass_s = counted_bytes(kernel, ws // WINDOWS if windowed else ws) / (gbps * 1e9)  # update: read and written
    round_s = pass_s if windowed else max(pass_s, MIN_ROUND_S[1 if workers == 1 else 0])
    return (rounds + 1) * round_s + 2e-3 + (2 * pass_s if windowed else 0.0)


@dataclass
class LatencyBench:
    """Builds the chase's cycle in a pool and times it on one pinned core (the first worker's)."""

    kernels: Kernels
    cpu: int
    rounds: int
    round_s: float
    clock: ChainClock | None = None

    def measure(self, pool: Pool, ws: int, pages: str, ns_guess: float, seed: int) -> LatencyPoint:
        bits = int(math.log2(ws // LINE_BYTES))
        lines = 1 << bits
        keys = bijection_keys(bits, seed)
        hops = int(min(max(self.round_s / (ns_guess * 1e-9), 2000), 50_000_000))
        # In a cache, go round the cycle twice first; at DRAM sizes a short warm-up (the lines are cold anyway).
        warm = 2 * lines if lines * ns_guess * 1e-9 < 0.05 else 1000
        start_line = int(keys[0]) % lines
        times: list[float] = []
        clock: list[float | None] = [None]
        end = [0]

        def prepare(_: int) -> None:
            self.kernels.build(pool.u64(0, ws), pool.address, bits, keys)

        def call(_: int, r: int) -> None:
            addr = self.kernels.chase(pool.address + start_line * LINE_BYTES, warm)
            for _ in range(self.rounds):
                t0 = time.perf_counter()
                addr = self.kernels.chase(addr, hops)
                times.append(time.perf_counter() - t0)
            end[0] = int(addr)
            if self.clock is not None:
                clock[0] = self.clock.read_mhz()

        run_pinned([self.cpu], call, 1, prepare=prepare)
        # The cycle's words are addresses, which read as fp64 denormals: a bandwidth kernel run on them later
        # (all-core STREAM, the curve) would time x86's denormal assists (one worker ran at 0.36 of the other).
        pool.f64(0, ws).fill(1.0)
        reached = (end[0] - pool.address) // LINE_BYTES
        if reached != expected_line(start_line, warm + hops * self.rounds, keys, bits):
            raise AssertionError(f"pointer chase over {ws:,} bytes ended on line {reached}, not where its cycle "
                                 "leads: not filed")
        fraction = None
        huge = pool.huge_bytes()
        if huge is not None:
            fraction = round(min(huge / ws, 1.0), 4)
        ns = [t / hops * 1e9 for t in times]
        return LatencyPoint(ws, pages, fraction, min(ns), statistics.median(ns), hops, self.rounds, clock[0])


def predict_latency_s(points: list[LatencyPoint], ws: int, pages: str, round_s: float, rounds: int,
                      write_gbps: float) -> tuple[float, float]:
    """(seconds, ns per hop guessed) for a chase point: building the cycle plus its rounds."""
    seen = [p for p in points if p.pages == pages and p.working_set_bytes <= ws]
    ns = max((p.ns_best for p in seen if p.working_set_bytes == max(q.working_set_bytes for q in seen)),
             default=NS_GUESS if ws > 2**20 else 5.0)
    build_s = ws / (write_gbps * 1e9) * 2
    return build_s + (rounds + 1) * max(round_s, 2000 * ns * 1e-9) + 1e-3, ns


def first_touch(pool: Pool, kernels: Kernels, cpus: list[int]) -> float:
    """Fault in the pool, each worker its own share (pages land on its NUMA node); GB/s of it."""
    start = time.perf_counter()

    def prepare(w: int) -> None:
        begin, share = region(pool, len(cpus), w)
        kernels.fill(pool.f64(begin, share), 1.0)

    run_pinned(cpus, lambda w, r: None, 1, prepare=prepare)
    tail = pool.size - region(pool, len(cpus), len(cpus) - 1)[0] - region(pool, len(cpus), 0)[1]
    if tail > 0:
        kernels.fill(pool.f64(pool.size - tail, tail), 1.0)
    pool.touched()
    return pool.size / max(time.perf_counter() - start, 1e-9) / 1e9


TOUCH_CHUNK = 64 * 2**20  # first_touch_until's step: 0.2 s at the slowest huge-page fault rate seen (0.34 GB/s)


def first_touch_until(pool: Pool, kernels: Kernels, cpu: int, seconds: float) -> int:
    """Fault in the pool from its start on ``cpu``, a chunk at a time, until it is whole or ``seconds`` have
    passed; the bytes faulted in. A small probe's rate does not bound a large pool's: on the AMX Xeon guest the
    8 MiB huge-page probe read fast and the process's first 1.9 GiB of huge pages then faulted at 0.34 GB/s
    (5.9 s, the whole memory budget: the run filed no latency), later ones at 5 GB/s."""
    deadline = time.perf_counter() + seconds
    done = [0]

    def prepare(_: int) -> None:
        while done[0] < pool.size and (done[0] == 0 or time.perf_counter() < deadline):
            step = min(TOUCH_CHUNK, pool.size - done[0])
            kernels.fill(pool.f64(done[0], step), 1.0)
            done[0] += step

    run_pinned([cpu], lambda w, r: None, 1, prepare=prepare)
    pool.touched()
    return done[0]


def affordable_pool(wanted: int, touch_gbps: float, seconds: float, free_bytes: int) -> int:
    """``wanted`` where its first touch fits ``seconds`` and a quarter of free memory, else the largest power
    of two that does."""
    limit = min(touch_gbps * 1e9 * seconds, free_bytes / 4)
    return wanted if wanted <= limit else pow2_floor(limit)


def tier_points(plans: list[TierPlan], workers: int) -> list[tuple[str, int, int, bool]]:
    """(kernel, working set, workers, windowed) of every tier: all kernels on one core, then on all."""
    out = []
    for plan in plans:
        dram = plan.name == "dram"
        for kernel in BW_KERNELS:
            out.append((kernel, plan.one_core_bytes, 1, dram))
        if workers > 1:
            for kernel in BW_KERNELS:
                out.append((kernel, plan.all_core_bytes, workers, dram))
    return out


def run_points(bench: BandwidthBench, mem: MemorySystem, budget: Budget,
               points: list[tuple[str, int, int, bool]], label: Callable[[int], str]) -> None:
    """Measure each point not measured yet that the budget allows, in order."""
    done = {(p.kernel, p.working_set_bytes, p.threads) for p in mem.bandwidth}
    for kernel, ws, workers, windowed in points:
        if (kernel, ws, workers) in done:
            continue
        predicted = predict_bw_s(mem.bandwidth, kernel, ws, workers, bench.rounds if windowed else bench.cache_rounds,
                                 windowed)
        if budget.allows(predicted, f"{kernel} at {label(ws)} on {workers} core{'s' if workers > 1 else ''}"):
            mem.bandwidth.append(bench.measure(kernel, ws, workers, windowed))
            done.add((kernel, ws, workers))
