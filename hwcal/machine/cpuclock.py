"""The CPU's effective clock, measured: a chain of dependent integer adds timed on the wall clock.

An ``add`` whose input is the previous ``add``'s output takes one cycle on every x86-64 core of the
last twenty years and on every Arm core of note (Cortex-A, Neoverse, Apple), so ``adds / seconds`` is
the clock of the core that ran them, turbo included, whatever cpufreq or a hypervisor reports. Python
is far too slow for such a loop, so a few dozen bytes of machine code (``hwcal.machine.isa``: the same
kernel for x86-64 and A64) are placed in an executable page (mmap, then mprotect to read+execute) and
called through ctypes, which releases the GIL: the probe runs while the benchmark's BLAS threads do.

Only on x86-64 and aarch64 Linux; elsewhere (and where the kernel refuses executable memory)
``ChainClock.create`` returns None with the reason, and the caller falls back to sysfs or says the clock
is unknown. Under an emulator the chain measures the emulator, not a clock: the caller says so.
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from hwcal.machine.isa import A64, ADDS_PER_ITERATION, X86, Encoder, add_chain_kernel

__all__ = ["ADDS_PER_ITERATION", "ChainClock", "executable", "native_arch", "native_encoder"]

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def native_arch() -> str | None:
    """"x86_64" or "aarch64" when this process runs Linux code of that ISA (the probes' own code), else None."""
    return _ARCH.get(platform.machine().lower()) if sys.platform == "linux" else None


def native_encoder() -> Encoder | None:
    """The scalar/NEON/AVX2 encoder of this process's ISA (the add chain needs nothing wider)."""
    arch = native_arch()
    return X86() if arch == "x86_64" else A64() if arch == "aarch64" else None


def executable(code: bytes, functype: type) -> tuple[Callable[..., Any], mmap.mmap]:
    """``code`` in a page mapped read+execute, as a ctypes function of ``functype``, and the page (keep it:
    the code lives as long as it does). OSError where the kernel refuses executable memory.

    A fresh anonymous page is written, then made executable once and never written again: on arm64 Linux
    mapping a page executable cleans it to the point of unification first (``__sync_icache_dcache``), so
    the instruction stream sees what was written; the kernels' self-checks would catch it if not."""
    size = max(mmap.PAGESIZE, -(-len(code) // mmap.PAGESIZE) * mmap.PAGESIZE)
    page = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    page.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(addr, size, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), f"kernel refused executable memory (mprotect errno {ctypes.get_errno()})")
    return functype(addr), page


class ChainClock:
    """Measures the clock (MHz) of whichever core runs it, from ``iterations`` x 16 dependent adds."""

    # The process's ISA is fixed, so the method is known before a probe exists (callers file it either way).
    method = (f"dependent-add chain ({ADDS_PER_ITERATION} register adds per iteration, 1-cycle latency), "
              f"{'A64' if native_arch() == 'aarch64' else 'x86-64'} machine code via ctypes")

    def __init__(self, fn: Callable[[int, int], int], page: mmap.mmap, iterations: int = 25_000) -> None:
        self._fn = fn
        self._page = page  # keeps the code mapped while the function object lives
        self.iterations = iterations
        self._overhead_s = min(self._time(1) for _ in range(20))

    @classmethod
    def create(cls, iterations: int = 25_000) -> tuple[ChainClock | None, str]:
        """The probe, or None with the reason it cannot run here."""
        encoder = native_encoder()
        if encoder is None:
            return None, f"no dependent-add probe for {sys.platform} {platform.machine()} (x86-64 and aarch64 Linux)"
        try:
            fn, page = executable(add_chain_kernel(encoder),
                                  ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64))
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
