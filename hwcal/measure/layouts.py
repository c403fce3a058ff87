"""Which operand layout a precision's GEMM runs fastest in: each layout the backend offers is timed once
at a representative size, a layout the kernel refuses is recorded with the framework's words, and the
fastest is what the sweep and the search then use (and file with every result)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hwcal.backends import Backend
from hwcal.measure.timing import time_one_call

# Big enough that the kernel, not the call, is timed; small enough to cost milliseconds.
PROBE_N = {"gpu": 4096, "cpu": 256}
# ... which a precision the CPU runs as a slow emulation breaks: torch's fp8 on the Sapphire Rapids guest takes
# 0.29 s a call at 256 (0.1 GFLOPS), and the probe's 12 calls cost 3.5 s of the run per fp8 type. On a CPU the
# probe doubles from 64 while the next size's call is predicted (n^3) under this cap; a GPU keeps PROBE_N.
PROBE_CALL_S = {"cpu": 0.02}
SIZING_FROM = 64


@dataclass
class LayoutChoice:
    """The layout used, the GFLOPS each layout reached at the probe size, and why any was refused."""

    layout: str
    probe_n: int
    gflops: dict[str, float] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"layout": self.layout, "probe_n": self.probe_n,
                "gflops_by_layout": {k: round(v, 4) for k, v in self.gflops.items()}, "refused": self.refused}


def choose_layout(backend: Backend, precision: str, probe_n: int, seed: int = 7) -> LayoutChoice:
    """Time every layout of ``precision`` at ``probe_n`` (fastest of two calls after an untimed one)."""
    layouts = backend.gemm_layouts(precision)
    choice = LayoutChoice(layouts[0], probe_n)
    if len(layouts) == 1:
        return choice
    probe_n = choice.probe_n = probe_size(backend, precision, layouts, probe_n, seed)
    for layout in layouts:
        try:
            with backend.precision_mode(precision):
                ops = backend.make_operands(precision, probe_n, seed, layout=layout)
                call_s = min(time_one_call(backend, backend.gemm, ops) for _ in range(2))
        except Exception as exc:  # a layout the kernel refuses: the framework's own words
            text = str(exc).strip().splitlines()
            choice.refused[layout] = f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
            continue
        choice.gflops[layout] = 2.0 * probe_n**3 / max(call_s, 1e-12) / 1e9
    if choice.gflops:
        choice.layout = max(choice.gflops, key=lambda k: choice.gflops[k])
    return choice


def probe_size(backend: Backend, precision: str, layouts: tuple[str, ...], probe_n: int, seed: int = 7) -> int:
    """``probe_n``, or on a CPU the largest size up to it (doubling from ``SIZING_FROM``) whose call stays under
    ``PROBE_CALL_S``, timed in the first layout the kernel takes."""
    cap = PROBE_CALL_S.get(backend.device_type)
    n = min(SIZING_FROM, probe_n)
    if cap is None or n == probe_n:
        return probe_n
    for layout in layouts:
        try:
            with backend.precision_mode(precision):
                while n < probe_n:
                    ops = backend.make_operands(precision, n, seed, layout=layout)
                    bigger = min(2 * n, probe_n)
                    if time_one_call(backend, backend.gemm, ops) * (bigger / n) ** 3 > cap:
                        return n
                    n = bigger
            return probe_n
        except Exception:
            n = min(SIZING_FROM, probe_n)
    return probe_n
