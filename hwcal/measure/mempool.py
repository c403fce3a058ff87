"""Memory for the memory-system measurements, and the pinned workers that use it.

``Pool``: one anonymous mapping, aligned to the huge page size, advised onto huge pages
(``MADV_HUGEPAGE``) or kept on 4 KiB pages (``MADV_NOHUGEPAGE``), and asked afterwards how much of it the
kernel really backed with huge pages (``AnonHugePages`` of the mapping in /proc/self/smaps): the advice
is a request, and the file says what was granted.

``run_pinned``: one Python thread per CPU, each pinned (``sched_setaffinity`` on Linux pins the calling
thread only) and released together by a barrier for every round, each timing its own call; the caller
turns the spans into figures over the common wall time (first start to last end), STREAM's rule for a
multi-threaded run. The compiled kernels release the GIL, so the threads run in parallel.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwcal.machine.sources import LOCAL, Sources

Span = tuple[float, float]  # (start, end) of one worker's call, perf_counter seconds
HUGE_MAX_AGE_S = 1.0  # Pool.huge_bytes reads smaps at most this often


class Pool:
    """``size`` bytes of anonymous memory starting at a ``align``-byte boundary; nothing touched yet."""

    def __init__(self, size: int, huge: bool, align: int = 2 * 2**20) -> None:
        self.size = size
        self.huge = huge
        self._map = mmap.mmap(-1, size + align, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.advised = False
        advice = getattr(mmap, "MADV_HUGEPAGE" if huge else "MADV_NOHUGEPAGE", None)
        if advice is not None:
            with contextlib.suppress(OSError, ValueError):
                self._map.madvise(advice)
                self.advised = True
        raw = np.frombuffer(self._map, dtype=np.uint8)
        self.offset = (-raw.ctypes.data) % align
        self.bytes = raw[self.offset : self.offset + size]
        self.address = int(self.bytes.ctypes.data)
        self._huge: tuple[float, int | None] | None = None  # (when read, AnonHugePages bytes)

    def f64(self, start: int = 0, nbytes: int | None = None) -> np.ndarray:
        """fp64 view of ``nbytes`` from byte ``start`` (8-byte multiples)."""
        end = self.size if nbytes is None else start + nbytes
        return self.bytes[start:end].view(np.float64)

    def u64(self, start: int = 0, nbytes: int | None = None) -> np.ndarray:
        end = self.size if nbytes is None else start + nbytes
        return self.bytes[start:end].view(np.uint64)

    def huge_bytes(self, src: Sources = LOCAL) -> int | None:
        """Bytes of this mapping backed by huge pages (AnonHugePages in /proc/self/smaps); None if unreadable.
        Read again only after HUGE_MAX_AGE_S: the kernel writes smaps for every mapping of the process (15 ms
        in a torch process), once per latency point was 1 s of a CPU run, and a touched pool's backing changes
        only when khugepaged gets to it."""
        now = time.perf_counter()
        if src is not LOCAL or self._huge is None or now - self._huge[0] > HUGE_MAX_AGE_S:
            self._huge = (now, huge_bytes_at(self.address, self.size, src))
        return self._huge[1]

    def shrink(self, size: int) -> None:
        """Use only the first ``size`` bytes (those faulted in); the rest of the mapping stays untouched."""
        self.size = min(self.size, size)
        self.bytes = self.bytes[: self.size]
        self._huge = None

    def touched(self) -> None:
        """The pool was just faulted in: its huge-page backing is read afresh next time."""
        self._huge = None

    def close(self) -> None:
        self.bytes = np.empty(0, dtype=np.uint8)
        with contextlib.suppress(BufferError):
            self._map.close()


def huge_bytes_at(address: int, size: int, src: Sources = LOCAL) -> int | None:
    """Sum of AnonHugePages over the smaps mappings overlapping [address, address + size)."""
    text = src.read("/proc/self/smaps")
    if not text:
        return None
    total, inside = 0, False
    for line in text.splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo < address + size and hi > address
        elif inside and line.startswith("AnonHugePages:"):
            total += int(line.split()[1]) * 1024
    return total


def pin(cpu: int | None) -> None:
    """Pin the calling thread to ``cpu`` (no-op where the OS has no affinity call)."""
    if cpu is not None:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, {cpu})


@dataclass(frozen=True)
class PinnedRun:
    """Spans per round (one per worker, in worker order) and what each worker's calls returned last."""

    spans: list[list[Span]]
    results: list[Any]


def run_pinned(cpus: list[int], call: Callable[[int, int], Any], rounds: int,
               prepare: Callable[[int], None] | None = None) -> PinnedRun:
    """``rounds`` rounds of ``call(worker, round)`` on every worker at once, each worker pinned to its CPU.

    ``prepare(worker)`` runs once per worker after pinning, before the first barrier (first touch of its
    memory happens there, so pages land on the worker's own NUMA node). An exception in a worker is
    raised here after all have stopped."""
    n = len(cpus)
    spans: list[list[Span]] = [[(0.0, 0.0)] * n for _ in range(rounds)]
    results: list[Any] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def worker(w: int) -> None:
        try:
            pin(cpus[w])
            if prepare is not None:
                prepare(w)
            for r in range(rounds):
                barrier.wait()
                t0 = time.perf_counter()
                results[w] = call(w, r)
                spans[r][w] = (t0, time.perf_counter())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        raise (real or errors)[0]
    return PinnedRun(spans, results)


def common_span(spans: list[Span]) -> float:
    """First start to last end: the wall time of a round in which all workers ran."""
    return max(e for _, e in spans) - min(s for s, _ in spans)
