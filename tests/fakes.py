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


def v1_matrix(doc: dict[str, Any]) -> dict[str, Any]:
    """The format-1 view of a document's precision matrix (legacy keys + hwcal's detail, supported meaning
    native only), so tests written against format 1 read a format-2 document the same way."""
    from hwcal.document.format2 import precision_detail

    detail = precision_detail(doc)
    emulated = set(detail.get("emulated_precisions", []))
    matrix = {**doc["precision_matrix"], **detail}
    matrix["supported_precisions"] = [p for p in matrix.get("supported_precisions", []) if p not in emulated]
    matrix.pop("hardware_name", None)
    return matrix
