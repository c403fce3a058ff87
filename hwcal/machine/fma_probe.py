"""A measured compute ceiling: FMA throughput on every core (the Empirical Roofline Toolkit's idea).

The table peak (``uarch.peak_flops_per_cycle``) says what the core can issue; this says what it
sustains here, in this VM, at this clock and power limit. Each online core runs one thread of
x86-64 machine code through ctypes (which releases the GIL, so Python threads run in parallel): a
loop of ``CHAINS`` independent ``vfmadd231pd/ps acc_i, x, y`` chains. Twelve chains cover FMA
latency (4 cycles on Zen 2-5, Skylake-SP, Ice Lake, Golden Cove) x two FMA pipes with room to spare,
so the loop runs at the FMA issue rate, not the latency. 256-bit (VEX, AVX2+FMA) and 512-bit (EVEX,
AVX-512F) forms are built by a small encoder below.

Before any timing, each kernel runs a short loop on distinct per-lane inputs and every lane of every
accumulator must equal ``init + n * x * y`` exactly: a wrong encoding cannot produce a number.
Only on x86-64 Linux; elsewhere, or where executable memory is refused, the result is marked
unavailable with the reason. Never raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from hwcal.machine.cpuclock import executable
from hwcal.machine.sources import LOCAL, Sources

CHAINS = 12  # accumulators ymm/zmm 0..11; x in register 14, y in 15
_X_REG, _Y_REG = 14, 15
_DTYPES = {"fp64": np.float64, "fp32": np.float32}
# (width bits, flags that must all be present) -- the same ISA names /proc/cpuinfo uses.
_WIDTHS: dict[int, tuple[str, ...]] = {256: ("avx2", "fma"), 512: ("avx512f",)}


# ---- a tiny encoder for exactly the instructions the kernel needs -------------------------------------

def _vex3(r: int, b: int, mmmmm: int, w: int, vvvv: int, l256: int, pp: int) -> bytes:
    """3-byte VEX prefix (C4); r, b are the high (bit 3) register bits, stored inverted."""
    byte1 = ((~r & 1) << 7) | (1 << 6) | ((~b & 1) << 5) | mmmmm
    byte2 = (w << 7) | ((~vvvv & 0xF) << 3) | (l256 << 2) | pp
    return bytes([0xC4, byte1, byte2])


def _evex(r: int, b: int, mm: int, w: int, vvvv: int, pp: int) -> bytes:
    """EVEX prefix (62) for 512-bit ops on registers 0..15, no masking, no broadcast."""
    p0 = ((~r & 1) << 7) | (1 << 6) | ((~b & 1) << 5) | (1 << 4) | mm  # X=1, R'=1 (regs < 16)
    p1 = (w << 7) | ((~vvvv & 0xF) << 3) | (1 << 2) | pp
    p2 = (0b10 << 5) | (1 << 3)  # L'L = 10 (512-bit), V'=1
    return bytes([0x62, p0, p1, p2])


def _fma(width: int, fp64: bool, acc: int) -> bytes:
    """vfmadd231p[d|s] acc, x, y  (acc += x * y): 66.0F38 B8 /r, W1 = pd, W0 = ps."""
    w = 1 if fp64 else 0
    modrm = 0xC0 | ((acc & 7) << 3) | (_Y_REG & 7)
    if width == 256:
        prefix = _vex3(acc >> 3, _Y_REG >> 3, 0b00010, w, _X_REG, 1, 0b01)
    else:
        prefix = _evex(acc >> 3, _Y_REG >> 3, 0b10, w, _X_REG, 0b01)
    return prefix + bytes([0xB8, modrm])


def _mov(width: int, reg: int, disp: int, store: bool) -> bytes:
    """vmovups reg <-> [rsi + disp32] (0F 10 load, 0F 11 store); bits are bits, so ps serves pd too."""
    modrm = 0x80 | ((reg & 7) << 3) | 0b110  # mod=10 (disp32, never EVEX-compressed), rm=rsi
    prefix = _vex3(reg >> 3, 0, 0b00001, 0, 0, 1, 0b00) if width == 256 else _evex(reg >> 3, 0, 0b01, 0, 0, 0b00)
    return prefix + bytes([0x11 if store else 0x10, modrm]) + disp.to_bytes(4, "little", signed=True)


def kernel_code(width: int, fp64: bool) -> bytes:
    """``void k(uint64 n, void *buf)`` (System V: rdi, rsi). buf holds CHAINS accumulators, then x, y;
    the accumulators are loaded, advanced n iterations of CHAINS independent FMAs, and stored back."""
    vec = width // 8
    code = b"".join(_mov(width, i, i * vec, store=False) for i in range(CHAINS))
    code += _mov(width, _X_REG, CHAINS * vec, store=False) + _mov(width, _Y_REG, (CHAINS + 1) * vec, store=False)
    loop = len(code)
    code += b"".join(_fma(width, fp64, i) for i in range(CHAINS))
    code += bytes([0x48, 0xFF, 0xCF])  # dec rdi
    rel = loop - (len(code) + 6)
    code += bytes([0x0F, 0x85]) + rel.to_bytes(4, "little", signed=True)  # jnz loop (rel32)
    code += b"".join(_mov(width, i, i * vec, store=True) for i in range(CHAINS))
    return code + bytes([0xC5, 0xF8, 0x77, 0xC3])  # vzeroupper ; ret


# ---- running it ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CeilingResult:
    """GFLOPS on all ``threads`` cores: ``gflops`` best over widths per precision, ``by_width`` per
    width ("256", "512") then precision. ``unavailable`` says why nothing was measured (else None)."""

    gflops: dict[str, float]
    by_width: dict[str, dict[str, float]]
    method: str
    duration_s: float
    unavailable: str | None = None
    threads: int = 0
    verified: bool = False
    notes: list[str] = field(default_factory=list)


class _Kernel:
    def __init__(self, fn: Callable[[int, int], None], page: mmap.mmap, width: int, dtype: type) -> None:
        self.fn, self._page, self.width, self.dtype = fn, page, width, np.dtype(dtype)
        self.lanes = width // (8 * self.dtype.itemsize)

    def buffer(self, init: np.ndarray | None = None) -> np.ndarray:
        """CHAINS accumulators (init, or zeros), x = 1.5, y = 0.25: exact in fp32 for any n < 2**20."""
        buf = np.zeros((CHAINS + 2, self.lanes), dtype=self.dtype)
        if init is not None:
            buf[:CHAINS] = init
        buf[CHAINS], buf[CHAINS + 1] = 1.5, 0.25
        return buf

    def run(self, n: int, buf: np.ndarray) -> None:
        self.fn(n, buf.ctypes.data)

    def verify(self) -> bool:
        """Distinct value in each lane of each accumulator; every one must advance by exactly n * x * y."""
        n = 1000
        init = np.arange(CHAINS * self.lanes, dtype=self.dtype).reshape(CHAINS, self.lanes)
        buf = self.buffer(init)
        self.run(n, buf)
        return bool(np.array_equal(buf[:CHAINS], init + self.dtype.type(n * 1.5 * 0.25)))


def _make_kernel(width: int, precision: str) -> tuple[_Kernel | None, str]:
    code = kernel_code(width, precision == "fp64")
    try:
        fn, page = executable(code, ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_void_p))
        kernel = _Kernel(fn, page, width, _DTYPES[precision])
        if not kernel.verify():
            return None, f"{width}-bit {precision} FMA kernel failed its arithmetic check"
        return kernel, ""
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return None, f"FMA kernel unavailable ({type(exc).__name__}: {exc})"


def _timed(kernel: _Kernel, n: int, buf: np.ndarray) -> float:
    t0 = time.perf_counter()
    kernel.run(n, buf)
    return time.perf_counter() - t0


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _all_cores_gflops(kernel: _Kernel, cpus: list[int], n: int, reps: int, deadline: float) -> float:
    """Best over up to ``reps`` of: flops of all threads / span from the first start to the last finish.
    A repetition that would start after ``deadline`` is not run (the first always is)."""
    spans: list[list[tuple[float, float]]] = [[] for _ in range(reps)]
    started = [0]
    stop = [False]

    def decide() -> None:  # runs once per barrier crossing, before any thread is released
        stop[0] = started[0] > 0 and time.perf_counter() > deadline
        started[0] += 1

    barrier = threading.Barrier(len(cpus), action=decide)
    lock = threading.Lock()

    def worker(cpu: int) -> None:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, {cpu})  # Linux: pins the calling thread only
        buf = kernel.buffer()
        for rep in range(reps):
            barrier.wait()
            if stop[0]:
                return
            t0 = time.perf_counter()
            kernel.run(n, buf)
            t1 = time.perf_counter()
            with lock:
                spans[rep].append((t0, t1))

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in cpus]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flops = len(cpus) * n * CHAINS * kernel.lanes * 2.0
    best = max(flops / (max(e for _, e in rep) - min(s for s, _ in rep)) for rep in spans if rep)
    return best / 1e9


def _live_flags() -> set[str]:
    text = LOCAL.read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def measure_compute_ceiling(flags: Iterable[str], threads: int | None = None, budget_s: float = 1.5,  # noqa: C901 -- TODO(issue 21): split
                            src: Sources = LOCAL) -> CeilingResult:
    """FMA GFLOPS on all online cores (or ``threads`` of them), per precision (fp64, fp32) and width.

    ``flags`` are the CPU's ISA flags (cpuinfo spelling). A width runs only when both ``flags`` and
    this machine's own /proc/cpuinfo list its ISA, so a faked flag set can never execute an
    unsupported instruction. ``src`` is the machine being described: the probe runs only when it is
    the local one.
    """
    t_start = time.perf_counter()
    method = (f"{CHAINS} independent vfmadd231pd/ps chains per core, x86-64 machine code via ctypes, "
              "one pinned thread per core; GFLOPS = threads x iterations x chains x lanes x 2 / span "
              "(first start to last finish), best of repetitions; every kernel verified lane by lane first")

    def unavailable(reason: str) -> CeilingResult:
        return CeilingResult({}, {}, method, time.perf_counter() - t_start, unavailable=reason)

    if not src.is_local:
        return unavailable("not the local machine: the FMA probe measures only the machine it runs on")
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return unavailable(f"no FMA probe for {sys.platform} {platform.machine()} (x86-64 Linux only)")
    wanted = set(flags)
    live = _live_flags()
    notes: list[str] = []
    widths = []
    for width, need in _WIDTHS.items():
        if not all(f in wanted for f in need):
            continue
        if not all(f in live for f in need):
            notes.append(f"{width}-bit skipped: this machine's /proc/cpuinfo lacks {'+'.join(need)}")
            continue
        widths.append(width)
    if not widths:
        return CeilingResult({}, {}, method, time.perf_counter() - t_start, notes=notes,
                             unavailable="no FMA vector ISA in the flags (needs avx2+fma or avx512f)")
    cpus = _cpus()
    if threads is not None and threads > 0:
        cpus = cpus[:threads]
    kernels: list[tuple[int, str, _Kernel]] = []
    for width in widths:
        for precision in _DTYPES:
            kernel, why = _make_kernel(width, precision)
            if kernel is None:
                notes.append(why)
            else:
                kernels.append((width, precision, kernel))
    if not kernels:
        return CeilingResult({}, {}, method, time.perf_counter() - t_start, notes=notes,
                             unavailable="; ".join(notes) or "no kernel could be built")
    # Many short repetitions, best of: on a shared machine another process that takes a core for a few
    # milliseconds spoils one repetition, not the figure (3 of 50 ms read 0.25 of the table peak there).
    reps = 10
    rep_s = max(0.005, min(0.025, 0.7 * budget_s / (len(kernels) * reps)))
    by_width: dict[str, dict[str, float]] = {}
    for i, (width, precision, kernel) in enumerate(kernels):
        # This kernel's share of what is left of the budget: a busy machine cannot stretch the total.
        deadline = time.perf_counter() + 0.8 * (t_start + budget_s - time.perf_counter()) / (len(kernels) - i)
        probe_n, buf = 50_000, kernel.buffer()
        per_iter_s = max(min(_timed(kernel, probe_n, buf) for _ in range(2)) / probe_n, 1e-10)
        n = max(1000, int(rep_s / per_iter_s))
        by_width.setdefault(str(width), {})[precision] = round(_all_cores_gflops(kernel, cpus, n, reps, deadline), 3)
    gflops: dict[str, float] = {}
    for per_precision in by_width.values():
        for precision, value in per_precision.items():
            gflops[precision] = max(value, gflops.get(precision, 0.0))
    method += f"; best of up to {reps} repetitions of ~{rep_s * 1e3:.0f} ms within the budget"
    return CeilingResult(gflops, by_width, method,
                         round(time.perf_counter() - t_start, 4), None, len(cpus), True, notes)
