"""The CPU's effective clock, measured: a chain of dependent integer adds timed on the wall clock.

An ``add`` whose input is the previous ``add``'s output takes one cycle on every x86-64 core of the
last twenty years, so ``adds / seconds`` is the clock of the core that ran them, turbo included,
whatever cpufreq or a hypervisor reports. Python is far too slow for such a loop, so 60 bytes of
x86-64 machine code are placed in an executable page (mmap, then mprotect to read+execute) and
called through ctypes, which releases the GIL: the probe runs while the benchmark's BLAS threads
do. Register-register adds are used because recent Intel cores fold immediate adds at rename.

Only on x86-64 Linux; elsewhere (and where the kernel refuses executable memory) ``ChainClock.create``
returns None with the reason, and the caller falls back to sysfs or says the clock is unknown.
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

ADDS_PER_ITERATION = 16
# mov rax, rsi ; loop: (add rax, rsi) x16 ; dec rdi ; jnz loop ; ret     (System V: rdi = n, rsi = step)
_BODY = bytes([0x48, 0x01, 0xF0]) * ADDS_PER_ITERATION + bytes([0x48, 0xFF, 0xCF])
_CODE = bytes([0x48, 0x89, 0xF0]) + _BODY + bytes([0x75, (256 - (len(_BODY) + 2)) & 0xFF, 0xC3])


def executable(code: bytes, functype: type) -> tuple[Callable[..., Any], mmap.mmap]:
    """``code`` in a page mapped read+execute, as a ctypes function of ``functype``, and the page (keep it:
    the code lives as long as it does). OSError where the kernel refuses executable memory."""
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    page.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(addr, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), f"kernel refused executable memory (mprotect errno {ctypes.get_errno()})")
    return functype(addr), page


class ChainClock:
    """Measures the clock (MHz) of whichever core runs it, from ``iterations`` x 16 dependent adds."""

    method = "dependent-add chain (16 register adds per iteration, 1-cycle latency), x86-64 machine code via ctypes"

    def __init__(self, fn: Callable[[int, int], int], page: mmap.mmap, iterations: int = 25_000) -> None:
        self._fn = fn
        self._page = page  # keeps the code mapped while the function object lives
        self.iterations = iterations
        self._overhead_s = min(self._time(1) for _ in range(20))

    @classmethod
    def create(cls, iterations: int = 25_000) -> tuple[ChainClock | None, str]:
        """The probe, or None with the reason it cannot run here."""
        if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
            return None, f"no dependent-add probe for {sys.platform} {platform.machine()} (x86-64 Linux only)"
        try:
            fn, page = executable(_CODE, ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64))
            # The chain computes step * (1 + 16 n): a wrong answer means the code did not run as written.
            if fn(1000, 3) != 3 * (1 + ADDS_PER_ITERATION * 1000):
                return None, "dependent-add probe self-check failed"
            return cls(fn, page, iterations), ""
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            return None, f"dependent-add probe unavailable ({type(exc).__name__}: {exc})"

    def _time(self, n: int) -> float:
        t0 = time.perf_counter()
        self._fn(n, 1)
        return time.perf_counter() - t0

    def read_mhz(self, repeats: int = 3) -> float | None:
        """Fastest of ``repeats`` chains: a chain preempted by another thread reads low, never high."""
        best = min(self._time(self.iterations) for _ in range(repeats)) - self._overhead_s
        if best <= 0:
            return None
        return self.iterations * ADDS_PER_ITERATION / best / 1e6
