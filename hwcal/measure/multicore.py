"""All-core STREAM through the framework, by STREAM's rules: one worker per physical core, pinned, released
together by a barrier every round, each on its own arrays (its share of a pool it first touched itself),
the arrays of all workers together >= 4x the last-level caches. A round's figure is all workers' bytes
over the common wall time (first start to last end), never a sum of per-worker bests; the best round of
``rounds`` is filed with each worker's own figure in that round. The same on 1, 2, 4 ... all workers
gives the scaling curve.

numpy's ufuncs run on one thread and release the GIL, so the workers are Python threads calling the
backend's own triad (numpy: per-chunk multiply and add, as ``hwcal.measure.stream`` runs it). torch runs
it as a user does, on its intra-op threads in one call (filed beside the pinned form), and pinned with
one intra-op thread per call.
"""

from __future__ import annotations

import numpy as np

from hwcal.backends import Backend
from hwcal.backends.base import StreamArrays
from hwcal.measure.hierarchy import WINDOWS, Budget, kernel_arrays, region
from hwcal.measure.mempool import Pool, common_span, run_pinned
from hwcal.measure.memsys import MulticoreResult, ScalingPoint

SCALAR = 3.0


def scaling_counts(workers: int) -> list[int]:
    """1, 2, 4 ... and all workers."""
    counts, k = [], 1
    while k < workers:
        counts.append(k)
        k *= 2
    return [*counts, workers]


def _arrays(pool: Pool, workers: int, w: int, window: int) -> tuple[np.ndarray, ...]:
    start, share = region(pool, workers, w)
    return kernel_arrays(pool, start, 0, "triad", window % WINDOWS, share)


def _check(arrays: tuple[np.ndarray, ...]) -> float:
    """Largest relative error of a == b + s c over a sample of the window (the values are the pool's)."""
    a, b, c = arrays
    idx = np.unique(np.linspace(0, a.size - 1, num=min(a.size, 257)).astype(np.int64))
    want = b[idx] + SCALAR * c[idx]
    return float(np.max(np.abs(a[idx] - want) / np.maximum(np.abs(want), 1e-300)))


def _point(backend: Backend, pool: Pool, cpus: list[int], k: int, rounds: int) -> tuple[ScalingPoint, float]:
    def call(w: int, r: int) -> None:
        a, b, c = (backend.host_array(x) for x in _arrays(pool, k, w, r))
        backend.stream_kernel("triad", StreamArrays(a.shape[0], 8, a, b, c), SCALAR)

    run_pinned(cpus[:k], call, 1)  # untimed: threads, pools and the first window warm
    run = run_pinned(cpus[:k], lambda w, r: call(w, r + 1), rounds)
    error = max(_check(_arrays(pool, k, w, rounds)) for w in range(k))
    nbytes = [3 * _arrays(pool, k, w, 1)[0].nbytes for w in range(k)]
    rates = [sum(nbytes) / common_span(spans) / 1e9 for spans in run.spans]
    best = max(range(rounds), key=rates.__getitem__)
    own = tuple(round(b / max(e - s, 1e-12) / 1e9, 4) for b, (s, e) in zip(nbytes, run.spans[best], strict=True))
    return ScalingPoint(k, rates[best], own, rounds), error


def _intraop_gbps(backend: Backend, pool: Pool, rounds: int) -> float:
    """The framework's own threads in one call over a window of all three arrays (torch as a user runs it)."""
    import time

    rates = []
    for r in range(rounds + 1):
        a, b, c = (backend.host_array(x) for x in _arrays(pool, 1, 0, r))
        launch = backend.stream_call("triad", StreamArrays(a.shape[0], 8, a, b, c), SCALAR)
        t0 = time.perf_counter()
        launch()
        backend.synchronize()
        if r:
            rates.append(3 * a.shape[0] * 8 / (time.perf_counter() - t0) / 1e9)
    return max(rates)


def measure_multicore(backend: Backend, pool: Pool, cpus: list[int], budget: Budget, rounds: int,
                      guess_gbps: float, rule_met: bool, llc_bytes: int) -> MulticoreResult | None:
    """The scaling curve of the framework's triad over the DRAM pool; None when the budget allows none."""
    window_bytes = 3 * (pool.size // 3 // WINDOWS)
    points: list[ScalingPoint] = []
    error = 0.0
    with backend.one_thread_per_call():
        for k in scaling_counts(len(cpus)):
            gbps = points[-1].gbps if points else guess_gbps
            if not budget.allows((rounds + 1) * window_bytes / (gbps * 1e9) + 5e-3,
                                 f"all-core STREAM ({backend.framework}) on {k} worker{'s' if k > 1 else ''}"):
                break
            point, err = _point(backend, pool, cpus, k, rounds)
            points.append(point)
            error = max(error, err)
    if not points:
        return None
    if error > 1e-12:
        raise AssertionError(f"all-core STREAM triad gave wrong values (relative error {error:.3g}): not filed")
    other: dict[str, float] = {}
    intra = backend.intraop_threads()
    if intra is not None and budget.allows((rounds + 1) * window_bytes / (points[-1].gbps * 1e9),
                                           f"{backend.framework} triad on its {intra} intra-op threads"):
        other[f"{backend.framework}_intraop_{intra}_threads"] = round(_intraop_gbps(backend, pool, rounds), 4)
    total = 3 * (pool.size // 3)
    method = (f"{backend.stream_method('triad').description.split(', 1 thread')[0]}; one Python thread per "
              f"physical core, pinned (sched_setaffinity), released together by a barrier each round, each on "
              f"its own arrays (its share of one {pool.size / 2**20:,.0f} MiB pool on 4 KiB pages, first touched "
              f"by the worker itself); a round runs over the next 1/{WINDOWS} of each worker's arrays (a byte is "
              f"used again only after 7/{WINDOWS} of the pool has passed); GB/s = all workers' bytes (STREAM's "
              f"count, 3 arrays) / common wall time (first start to last end), best of {rounds} rounds, "
              f"never a sum of per-worker bests; arrays of all workers {total / 2**20:,.0f} MiB = "
              f"{total / max(llc_bytes, 1):.1f}x the {llc_bytes / 2**20:,.0f} MiB last-level cache")
    return MulticoreResult(f"{backend.framework} pinned threads", points, total, rule_met, method, error, other)

