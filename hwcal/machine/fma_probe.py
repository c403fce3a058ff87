"""A measured compute ceiling: FMA throughput on every core (the Empirical Roofline Toolkit's idea).

The table peak (``uarch.peak_flops_per_cycle``) says what the core can issue; this says what it
sustains here, in this VM, at this clock and power limit. Each online core runs one pinned thread of
hand-encoded machine code through ctypes (which releases the GIL, so Python threads run in parallel):
a loop of independent ``acc_i += x * y`` chains, enough of them to cover FMA latency x FMA pipes, so
the loop runs at the issue rate, not the latency. The kernel is described once (``isa.fma_kernel``)
and encoded per form (``FORMS``): x86-64 ``vfmadd231pd/ps`` on ymm (AVX2+FMA) and zmm (AVX-512F);
A64 ``FMLA`` on NEON v-registers (fp64, fp32, and fp16 with FEAT_FP16 / ``asimdhp``) and SVE
z-registers at the core's vector length (``sve``).

Before any timing, each kernel runs a short loop on distinct per-lane inputs and every lane of every
accumulator must equal ``init + n * x * y`` exactly: a wrong encoding cannot produce a number. A form
runs only where both the flags given and this CPU's own (x86 /proc/cpuinfo, Arm AT_HWCAP) list it.
Under an emulator the figures are the emulator's speed and the result says so. Never raises.
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

from hwcal.machine.cpuclock import executable, native_arch
from hwcal.machine.identity import live_flags, live_ids, verify_identity
from hwcal.machine.isa import A64, X86, Encoder, fma_kernel
from hwcal.machine.sources import LOCAL, Sources

_DTYPES = {"fp64": np.float64, "fp32": np.float32, "fp16": np.float16}
_X, _Y = 1.5, 0.25  # x * y = 0.375 = 3/8: exact in fp16 while accumulators stay below 256


@dataclass(frozen=True)
class Form:
    """One vector form of the FMA kernel: its ISA flags (cpuinfo spelling), the extra flag a precision needs,
    the encoder, and how the method text names it. ``width_bits`` 0: the SVE vector length, read live."""

    key: str
    arch: str
    needs: tuple[str, ...]
    precisions: dict[str, tuple[str, ...]]
    encoder: Encoder
    width_bits: int
    instruction: str


FORMS: tuple[Form, ...] = (
    Form("256", "x86_64", ("avx2", "fma"), {"fp64": (), "fp32": ()}, X86(256), 256, "vfmadd231pd/ps ymm (AVX2+FMA)"),
    Form("512", "x86_64", ("avx512f",), {"fp64": (), "fp32": ()}, X86(512), 512, "vfmadd231pd/ps zmm (AVX-512F)"),
    Form("128", "aarch64", ("asimd",), {"fp64": (), "fp32": (), "fp16": ("asimdhp",)}, A64(), 128,
         "FMLA v.2d/.4s/.8h (NEON; .8h needs FEAT_FP16)"),
    Form("sve", "aarch64", ("sve",), {"fp64": (), "fp32": (), "fp16": ()}, A64(sve=True), 0,
         "FMLA z.d/.s/.h, p0/m (SVE)"),
)


@dataclass(frozen=True)
class CeilingResult:
    """GFLOPS on all ``threads`` cores: ``gflops`` best over forms per precision, ``by_width`` per form ("256",
    "512" x86; "128" NEON, "sve<bits>" SVE) then precision. ``unavailable`` says why nothing was measured."""

    gflops: dict[str, float]
    by_width: dict[str, dict[str, float]]
    method: str
    duration_s: float
    unavailable: str | None = None
    threads: int = 0
    verified: bool = False
    notes: list[str] = field(default_factory=list)


class _Kernel:
    def __init__(self, fn: Callable[[int, int], None], page: mmap.mmap, form: Form, width_bits: int,
                 precision: str) -> None:
        self.fn, self._page, self.form, self.precision = fn, page, form, precision
        self.width, self.dtype = width_bits, np.dtype(_DTYPES[precision])
        self.chains = len(form.encoder.acc_regs)
        self.lanes = width_bits // (8 * self.dtype.itemsize)

    @property
    def key(self) -> str:
        return f"sve{self.width}" if self.form.key == "sve" else self.form.key

    def buffer(self, init: np.ndarray | None = None) -> np.ndarray:
        """One vector per accumulator (init, or zeros), then x, then y."""
        buf = np.zeros((self.chains + 2, self.lanes), dtype=self.dtype)
        if init is not None:
            buf[:self.chains] = init
        buf[self.chains], buf[self.chains + 1] = _X, _Y
        return buf

    def run(self, n: int, buf: np.ndarray) -> None:
        self.fn(n, buf.ctypes.data)

    def verify(self, n: int = 200) -> bool:
        """A distinct value in each lane of each accumulator (eighths below 32, exact in every precision);
        every one must advance by exactly n * x * y, so a lane, chain or register mixed up shows."""
        init = (np.arange(self.chains * self.lanes) % 256 / 8).reshape(self.chains, self.lanes).astype(self.dtype)
        buf = self.buffer(init)
        self.run(n, buf)
        return bool(np.array_equal(buf[:self.chains], init + self.dtype.type(n * _X * _Y)))


def _make_kernel(form: Form, precision: str, width_bits: int | None = None) -> tuple[_Kernel | None, str]:
    width = width_bits or form.width_bits
    label = f"{form.key if form.key != 'sve' else f'sve{width}'} {precision}"
    try:
        code = fma_kernel(form.encoder, precision)
        fn, page = executable(code, ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_void_p))
        kernel = _Kernel(fn, page, form, width, precision)
        if kernel.lanes < 1 or not kernel.verify():
            return None, f"{label} FMA kernel failed its arithmetic check"
        return kernel, ""
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return None, f"{label} FMA kernel unavailable ({type(exc).__name__}: {exc})"


def _timed(kernel: _Kernel, n: int, buf: np.ndarray) -> float:
    t0 = time.perf_counter()
    kernel.run(n, buf)
    return time.perf_counter() - t0


def per_iteration_s(kernel: _Kernel) -> float:
    """Seconds per loop iteration, from a run grown tenfold until it lasts 2 ms (an emulator is slow enough
    that the first already does)."""
    buf, n = kernel.buffer(), 1000
    while True:
        t = min(_timed(kernel, n, buf) for _ in range(2))
        if t >= 0.002 or n >= 10_000_000:
            return max(t / n, 1e-10)
        n *= 10


def affinity_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def all_cores_gflops(kernel: _Kernel, cpus: list[int], n: int, reps: int, deadline: float) -> float:
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
    flops = len(cpus) * n * kernel.chains * kernel.lanes * 2.0
    best = max(flops / (max(e for _, e in rep) - min(s for s, _ in rep)) for rep in spans if rep)
    return best / 1e9


def _why_not_here(src: Sources) -> str | None:
    if not src.is_local:
        return "not the local machine: the FMA probe measures only the machine it runs on"
    if native_arch() is None:
        return f"no FMA probe for {sys.platform} {platform.machine()} (x86-64 and aarch64 Linux only)"
    return None


def _select(wanted: set[str], live: set[str]) -> tuple[list[tuple[Form, str]], list[str]]:
    """(form, precision) pairs of this ISA that both flag sets allow, and notes on what the host lacks."""
    chosen: list[tuple[Form, str]] = []
    notes: list[str] = []
    for form in (f for f in FORMS if f.arch == native_arch()):
        for precision, extra in form.precisions.items():
            need = (*form.needs, *extra)
            if not all(f in wanted for f in need):
                continue
            if all(f in live for f in need):
                chosen.append((form, precision))
            else:
                lacks = "+".join(f for f in need if f not in live)
                notes.append(f"{form.key} {precision} skipped: this CPU lacks {lacks}")
    return chosen, notes


def _build(chosen: list[tuple[Form, str]], notes: list[str]) -> list[_Kernel]:
    kernels = []
    sve_bits = (live_ids().sve_bytes or 0) * 8
    for form, precision in chosen:
        kernel, why = _make_kernel(form, precision, sve_bits if form.key == "sve" else None)
        if kernel is None:
            notes.append(why)
        else:
            kernels.append(kernel)
    return kernels


def _measure(kernels: list[_Kernel], cpus: list[int], budget_s: float, t_start: float,
             reps: int) -> dict[str, dict[str, float]]:
    # Many short repetitions, best of: on a shared machine another process that takes a core for a few
    # milliseconds spoils one repetition, not the figure (3 of 50 ms read 0.25 of the table peak there).
    rep_s = _rep_seconds(budget_s, len(kernels), reps)
    by_width: dict[str, dict[str, float]] = {}
    for i, kernel in enumerate(kernels):
        # This kernel's share of what is left of the budget: a busy machine cannot stretch the total.
        deadline = time.perf_counter() + 0.8 * (t_start + budget_s - time.perf_counter()) / (len(kernels) - i)
        n = max(1000, int(rep_s / per_iteration_s(kernel)))
        gflops = all_cores_gflops(kernel, cpus, n, reps, deadline)
        by_width.setdefault(kernel.key, {})[kernel.precision] = round(gflops, 3)
    return by_width


def probe_kernel(src: Sources = LOCAL, precision: str = "fp64") -> tuple[_Kernel | None, str]:
    """The widest verified FMA kernel of ``precision`` this CPU runs (its own flags), or None and why: for
    probes other than the ceiling (``hwcal.machine.host_share``)."""
    why = _why_not_here(src)
    if why:
        return None, why
    live = live_flags(src)
    chosen, notes = _select(live, live)
    kernels = _build([(f, p) for f, p in chosen if p == precision], notes)
    if not kernels:
        return None, "; ".join(notes) or f"no {precision} FMA vector ISA of {native_arch()} (needs {_needs_text()})"
    return kernels[-1], ""


def _rep_seconds(budget_s: float, kernels: int, reps: int) -> float:
    return max(0.005, min(0.025, 0.7 * budget_s / (kernels * reps)))


def _method(kernels: list[_Kernel], reps: int, rep_s: float) -> str:
    """What ran: each form's instruction, its chains and precisions, the ISA of the machine code."""
    forms: dict[str, list[str]] = {}
    for k in kernels:
        forms.setdefault(f"{k.form.instruction} at {k.width} bits, {k.chains} chains", []).append(k.precision)
    arch = "A64" if kernels and kernels[0].form.arch == "aarch64" else "x86-64"
    ran = "; ".join(f"{what}: {', '.join(precisions)}" for what, precisions in forms.items())
    return (f"independent FMA chains per core ({ran}), hand-encoded {arch} machine code via ctypes, one pinned "
            "thread per core; GFLOPS = threads x iterations x chains x lanes x 2 / span (first start to last "
            "finish); every kernel verified lane by lane first; "
            f"best of up to {reps} repetitions of ~{rep_s * 1e3:.0f} ms within the budget")


def _needs_text() -> str:
    return " or ".join("+".join(f.needs) for f in FORMS if f.arch == native_arch())


def measure_compute_ceiling(flags: Iterable[str], threads: int | None = None, budget_s: float = 1.5,
                            src: Sources = LOCAL) -> CeilingResult:
    """FMA GFLOPS on all online cores (or ``threads`` of them), per precision (fp64, fp32, fp16) and form.

    ``flags`` are the CPU's ISA flags (cpuinfo spelling). A form runs only when both ``flags`` and this
    CPU's own flags list it, so a faked flag set can never execute an unsupported instruction. ``src`` is
    the machine being described: the probe runs only when it is the local one.
    """
    t_start = time.perf_counter()

    def unavailable(reason: str, notes: list[str] | None = None) -> CeilingResult:
        return CeilingResult({}, {}, "no FMA kernel ran", time.perf_counter() - t_start, unavailable=reason,
                             notes=notes or [])

    why = _why_not_here(src)
    if why:
        return unavailable(why)
    chosen, notes = _select(set(flags), live_flags(src))
    if not chosen:
        return unavailable(f"no FMA vector ISA of {native_arch()} in the flags (needs {_needs_text()})", notes)
    kernels = _build(chosen, notes)
    if not kernels:
        return unavailable("; ".join(notes) or "no kernel could be built", notes)
    cpus = affinity_cpus()
    if threads is not None and threads > 0:
        cpus = cpus[:threads]
    reps = 10
    by_width = _measure(kernels, cpus, budget_s, t_start, reps)
    gflops: dict[str, float] = {}
    for per_precision in by_width.values():
        for precision, value in per_precision.items():
            gflops[precision] = max(value, gflops.get(precision, 0.0))
    emulator = verify_identity(src).emulator
    if emulator:
        notes.append(f"run under an emulator ({emulator}): these GFLOPS are the emulator's speed, not the CPU's; "
                     "they mean nothing (the lane-by-lane checks still hold)")
    return CeilingResult(gflops, by_width, _method(kernels, reps, _rep_seconds(budget_s, len(kernels), reps)),
                         round(time.perf_counter() - t_start, 4), None, len(cpus), True, notes)
