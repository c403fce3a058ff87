"""The weights (B) a CPU's warm GEMM shapes share across their Ms, and their check's pass over them.

Every M of a small-M pair multiplies the same kind of B (N x K): making one per case, and the check's fp64 pass
over it (Freivalds needs B X), cost more than timing the case. On the AMX Xeon guest a 72576 x 1152 fp32 B
(334 MB) took 0.06-0.9 s to make and 0.2-1.0 s to check per case, its rounds 0.05-0.2 s: four such cases took
3.7 s of the 8 s shape budget. Kept here, B and (X, B X) are made once per (precision, N, K); A is drawn per
case as before, and each case's C is still checked in full (C X against A (B X), and sampled exact blocks).
Held up to ``LIMIT_BYTES`` (and an eighth of the free memory), the least recently used let go first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from hwcal.backends import Backend
from hwcal.measure.verify import freivalds_pass, freivalds_vectors
from hwcal.precisions import PRECISIONS

LIMIT_BYTES = 1 << 30
FREE_SHARE = 8


class SharedWeights:
    """B and (X, B X) by (precision, N, K), for single GEMMs whose operands stay the same every call."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.held: OrderedDict[tuple[str, int, int], tuple[Any, tuple[Any, Any]]] = OrderedDict()
        self.made = 0
        self.reused = 0

    def get(self, precision: str, n: int, k: int, seed: int) -> tuple[Any, tuple[Any, Any]] | None:
        """(B, (X, B X)) of this precision and shape, made from ``seed`` the first time; None where B would not fit
        what may be held (the case then makes its own)."""
        key = (precision, n, k)
        if key in self.held:
            self.held.move_to_end(key)
            self.reused += 1
            return self.held[key]
        size = n * k * max(1, PRECISIONS[precision].bits // 8)
        limit = min(LIMIT_BYTES, self.backend.free_memory_bytes() // FREE_SHARE)
        if size > limit:
            return None
        while self.held and self._bytes() + size > limit:
            self.held.popitem(last=False)
        b = self.backend.make_shape_operands(precision, 1, n, k, 1, seed, rotate=False).b
        x = freivalds_vectors(self.backend, precision, n, seed)
        entry = (b, (x, freivalds_pass(self.backend, b, x)))
        self.held[key] = entry
        self.made += 1
        return entry

    def _bytes(self) -> int:
        return sum(int(b.nbytes) for b, _ in self.held.values())
