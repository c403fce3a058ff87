"""Compiled memory kernels: read, write, triad and in-place update loops and a dependent pointer chase,
through numba.

A Python loop measures the interpreter, and numpy's calls cost a microsecond each (a whole pass over an
L1-sized array), so cache tiers and latency need compiled loops. numba is used rather than a C kernel
built at run time or hand-encoded machine code because it is a wheel on PyPI for x86-64 and aarch64
(a calibration needs no compiler on the machine, which a Jetson or a container may lack), LLVM
vectorises the loops for the host's own ISA (AVX-512, AVX2, NEON, SVE), and the project's referee
(``tools/memory_referee.py``: C, gcc, OpenMP) then shares neither code nor toolchain with it. The
kernels are cached on disk (``cache=True``), so only a machine's first run pays the ~2 s of compiling.

Each kernel changes what it writes from pass to pass (a pass index enters the value), so no compiler may
drop a pass as a repeat of the one before; each result is checked after the timed passes.

The chase loads an absolute address from the line it is on (``p = *p``, one instruction a hop, no index
arithmetic: an indexed load costs a cycle more on several cores). The cycle is a keyed bijection of the
line indices (xorshift-multiply rounds on k bits, random odd keys): hop i goes to line f(f^-1(i) + 1),
so every line is visited once per cycle in an order no prefetcher can follow, and the cycle is written
in address order (sequential stores) instead of by random swaps, which took 7 s for 1 GiB on a busy VM.
Where numba cannot be imported, ``load_kernels`` says why and the caller files that line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

LINE_BYTES = 64
WORDS_PER_LINE = LINE_BYTES // 8
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Kernels:
    """The compiled loops; ``compile_s`` is what loading (or compiling) them cost this run."""

    read: Callable[[Any, int], float]  # (fp64 array, passes) -> sum
    write: Callable[[Any, float, int], None]  # (fp64 array, value, passes): pass p writes value + (p & 7)
    triad: Callable[[Any, Any, Any, float, int], None]  # (a, b, c, s, passes): pass p: a = b + (s + (p & 7)) c
    update: Callable[[Any, float, int], None]  # (a, q, passes): in place, pass p: a = q a (p even), a / q (p odd)
    chase: Callable[[int, int], int]  # (start address, hops) -> address reached
    build: Callable[[Any, int, int, Any], None]  # (uint64 view, base address, bits, keys)
    fill: Callable[[Any, float], None]  # (fp64 array, value): first touch
    method: str
    compile_s: float


# ---- the keyed bijection of line indices (shared by the build kernel and its check) -------------------------

def bijection_keys(bits: int, seed: int) -> np.ndarray:
    """Random odd multipliers and shifts of the three rounds: [m1, m2, m3, s1, s2, s3, xor]."""
    rng = np.random.default_rng(seed)
    mask = (1 << bits) - 1
    mults = [int(rng.integers(0, 2**62)) * 2 + 1 for _ in range(3)]
    shifts = [max(1, (bits + 1) // 2), max(1, bits // 3 + 1), max(1, (2 * bits) // 3)]
    return np.array([m & mask for m in mults] + shifts + [int(rng.integers(0, 2**62)) & mask], dtype=np.uint64)


def _xorshift_inverse(y: int, shift: int, bits: int) -> int:
    x, s = y, shift
    while s < bits:
        x ^= y >> s
        s += shift
    return x


def forward(x: int, keys: np.ndarray, bits: int) -> int:
    """f(x): xor with a key, then three (multiply by an odd key, xorshift right) rounds, all mod 2^bits."""
    mask = (1 << bits) - 1
    k = [int(v) for v in keys]
    x = (x ^ k[6]) & mask
    for r in range(3):
        x = (x * k[r]) & mask
        x ^= x >> k[3 + r]
    return x


def inverse(y: int, keys: np.ndarray, bits: int) -> int:
    """f^-1(y), so that a chase's position after any number of hops can be predicted exactly."""
    mask = (1 << bits) - 1
    k = [int(v) for v in keys]
    for r in (2, 1, 0):
        y = _xorshift_inverse(y, k[3 + r], bits)
        y = (y * pow(k[r], -1, 1 << bits)) & mask if bits else 0
    return (y ^ k[6]) & mask


def expected_line(start_line: int, hops: int, keys: np.ndarray, bits: int) -> int:
    """The line a chase started on ``start_line`` reaches after ``hops`` hops."""
    n = 1 << bits
    return forward((inverse(start_line, keys, bits) + hops) % n, keys, bits)


# ---- numba -------------------------------------------------------------------------------------------------

def _compile(numba: Any) -> Kernels:
    from hwcal.measure import memkernels_numba as nk

    def build(words: Any, base: int, bits: int, keys: Any) -> None:
        invs = np.array([pow(int(k), -1, 1 << bits) for k in keys[:3]], dtype=np.uint64)
        nk.build_cycle(words, np.uint64(base), np.uint64(bits), keys, invs)

    start = time.perf_counter()
    small = np.ones(64)
    nk.read(small, 1)
    nk.write(small, 1.0, 1)
    nk.triad(small, small.copy(), small.copy(), 3.0, 1)
    nk.update(small, 2.0, 2)
    nk.fill(small, 1.0)
    words = np.zeros(64 * WORDS_PER_LINE, dtype=np.uint64)
    build(words, words.ctypes.data, 6, bijection_keys(6, 0))
    nk.chase(words.ctypes.data, 1)
    method = (f"numba {numba.__version__} (LLVM, compiled for this CPU; nogil, so pinned Python threads run "
              "them in parallel): read = sum of fp64 (fastmath, vectorised), write = fill, triad = a = b + s c; "
              "update = a = q a in place (q = 2, then 1/2: exact); chase = p = *p")
    return Kernels(nk.read, nk.write, nk.triad, nk.update, nk.chase, build, nk.fill, method,
                   time.perf_counter() - start)


_LOADED: list[tuple[Kernels | None, str]] = []


def load_kernels() -> tuple[Kernels | None, str]:
    """The compiled kernels, or None with the reason (numba missing or failing); compiled once a process."""
    if not _LOADED:
        try:
            import numba
        except ImportError as exc:
            _LOADED.append((None, f"numba is not installed ({exc}): pip install numba; cache tiers and latency "
                                  "need compiled loops, so they were not measured"))
            return _LOADED[0]
        try:
            _LOADED.append((_compile(numba), ""))
        except Exception as exc:  # a numba that cannot compile here says so in its own words
            text = (str(exc).strip().splitlines() or [""])[0]
            _LOADED.append((None, f"numba could not compile the memory kernels ({type(exc).__name__}: {text[:200]})"))
    return _LOADED[0]
