"""Test doubles shared by the benchmark-body tests."""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace
from typing import Any


class FakeBenchmark:
    """The parts of pytest-benchmark's fixture the bodies use, timing rounds on the wall clock (each round's
    time in ``stats.data``, as pytest-benchmark keeps them)."""

    def __init__(self, enabled: bool = True) -> None:
        self.extra_info: dict[str, Any] = {}
        self.enabled = enabled
        self.stats: Any = None

    def pedantic(self, fn: Any, rounds: int, warmup_rounds: int, iterations: int, teardown: Any = None) -> None:
        for _ in range(warmup_rounds if self.enabled else 0):
            fn()
            if teardown:
                teardown()
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            fn()
            times.append(max(time.perf_counter() - t, 1e-9))
            if teardown:
                teardown()
        if self.enabled:
            self.stats = SimpleNamespace(stats=SimpleNamespace(
                min=min(times), max=max(times), mean=statistics.fmean(times), median=statistics.median(times),
                stddev=statistics.pstdev(times), iqr=0.0, rounds=rounds, data=times))


def matrix_and_detail(doc: dict[str, Any]) -> dict[str, Any]:
    """The format-1 view of a document's precision matrix (legacy keys + hwcal's detail, supported meaning
    native only), so tests written against format 1 read a format-2 document the same way."""
    from hwcal.document.format2 import precision_detail

    detail = precision_detail(doc)
    emulated = set(detail.get("emulated_precisions", []))
    matrix = {**doc["precision_matrix"], **detail}
    matrix["supported_precisions"] = [p for p in matrix.get("supported_precisions", []) if p not in emulated]
    matrix.pop("hardware_name", None)
    return matrix


def dram_sweep(gbps: float, array_bytes: int = 256 * 2**20) -> Any:
    """A STREAM sweep whose only result is a DRAM-sized triad at exactly ``gbps`` (every round alike)."""
    from hwcal.machine.caches import CacheInfo, CacheLevel
    from hwcal.measure.records import MemorySweep, StreamRecord, stream_bytes

    n = array_bytes // 8
    moved = stream_bytes("triad", n, 8)
    t = moved / (gbps * 1e9)
    record = StreamRecord(kernel="triad", n=n, element_bytes=8, bytes_per_pass=moved, arrays_moved=3,
                          passes_per_round=1, rounds=10, warmup_rounds=1,
                          time_s={"min": t, "max": t, "mean": t, "median": t, "stddev": 0.0, "iqr": 0.0},
                          gbps_best=gbps, gbps_median=gbps, cv=0.0, max_rel_error=0.0, method="test triad")
    caches = CacheInfo((CacheLevel(1, 32 * 2**10), CacheLevel(3, 32 * 2**20)), "test")
    return MemorySweep(caches=caches, device="cpu", threads=1, records=[record], methods={"triad": "test triad"})
