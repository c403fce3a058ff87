"""The numba kernels of ``hwcal.measure.memkernels``, at module level so that ``cache=True`` keeps their
machine code on disk between runs (functions made inside another function are compiled every time).
Imported only through ``memkernels.load_kernels``, which turns a missing numba into a line in the file."""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def load_u64(typingctx: Any, addr: Any) -> Any:
    """``*(uint64_t *)addr``: one load whose address is the previous load's value."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.load(builder.inttoptr(args[0], ir.PointerType(ir.IntType(64))))

    return sig, codegen


@njit(nogil=True, fastmath=True, cache=True)
def read(a: Any, passes: int) -> float:
    s = 0.0
    for _ in range(passes):
        for i in range(a.size):
            s += a[i]
    return s


@njit(nogil=True, cache=True)
def write(a: Any, value: float, passes: int) -> None:
    for p in range(passes):
        v = value + (p & 7)
        for i in range(a.size):
            a[i] = v


@njit(nogil=True, cache=True)
def triad(a: Any, b: Any, c: Any, s: float, passes: int) -> None:
    for p in range(passes):
        q = s + (p & 7)
        for i in range(a.size):
            a[i] = b[i] + q * c[i]


@njit(nogil=True, cache=True)
def update(a: Any, q: float, passes: int) -> None:
    """In place: even passes multiply every element by q, odd passes by 1 / q (q a power of two: exact, so
    the result is checkable; no fastmath, so no pass can be merged with the next)."""
    for p in range(passes):
        s = q if (p & 1) == 0 else 1.0 / q
        for i in range(a.size):
            a[i] = s * a[i]


@njit(nogil=True, cache=True)
def chase(start: int, hops: int) -> int:
    p = np.uint64(start)
    for _ in range(hops):
        p = load_u64(p)  # type: ignore[call-arg]
    return p


@njit(nogil=True, cache=True)
def fill(a: Any, value: float) -> None:
    for i in range(a.size):
        a[i] = value


@njit(nogil=True, cache=True)
def _f(x: Any, keys: Any, mask: Any) -> Any:
    x = (x ^ keys[6]) & mask
    for r in range(3):
        x = (x * keys[r]) & mask
        x = x ^ (x >> keys[3 + r])
    return x


@njit(nogil=True, cache=True)
def _finv(y: Any, keys: Any, invs: Any, mask: Any, bits: Any) -> Any:
    for r in range(2, -1, -1):
        s = keys[3 + r]
        x = y
        t = s
        while t < bits:
            x = x ^ (y >> t)
            t += s
        y = (x * invs[r]) & mask
    return (y ^ keys[6]) & mask


@njit(nogil=True, cache=True)
def build_cycle(words: Any, base: Any, bits: Any, keys: Any, invs: Any) -> None:
    """words[8 i] = the address of line f(f^-1(i) + 1): written in address order."""
    one = np.uint64(1)
    n = one << bits
    mask = n - one
    line = np.uint64(64)
    for i in range(n):
        j = np.uint64(i)
        nxt = _f((_finv(j, keys, invs, mask, bits) + one) & mask, keys, mask)
        words[i * 8] = base + nxt * line
