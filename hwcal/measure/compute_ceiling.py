"""The measured compute ceiling as a benchmark case: FMA chains on every core (``hwcal.machine.fma_probe``),
once per CPU calibration, filed as ``metadata.compute_ceiling`` beside the peak derived from the
microarchitecture. A GPU's measured ceiling is its max-achievable search instead.

It runs as a case like the others, so the interference watch sees it (it lasts about a second: a busy
core took a third off it unnoticed when it ran inside the preflight), and a verified GEMM above it makes
it the suspect: it is measured again, and the higher figure kept (a ceiling is a maximum).
"""

from __future__ import annotations

from typing import Any

import pytest

from hwcal.machine.cpu import collect_cpu
from hwcal.machine.fma_probe import CeilingResult, measure_compute_ceiling
from hwcal.machine.sources import LOCAL
from hwcal.measure.session import CalibrationSession
from hwcal.measure.watch import case_name

CEILING_BUDGET_S = 1.5  # the whole probe stays under 2 s
CASES = ("all_cores",)
ABOVE_CEILING = 1.05  # a GEMM this far above the measured ceiling makes the ceiling the suspect


def _probe(session: CalibrationSession) -> CeilingResult:
    src = session.machine_state.src if session.machine_state is not None else LOCAL
    isa_flags = collect_cpu(src).get("isa_flags")
    flags = [str(f) for f in isa_flags] if isinstance(isa_flags, list) else []
    return measure_compute_ceiling(flags, budget_s=CEILING_BUDGET_S, src=src)


def _higher(a: CeilingResult, b: CeilingResult) -> CeilingResult:
    """Per width and precision the higher figure of two runs of the probe (a disturbed run reads low)."""
    by_width = {w: {p: max(v, b.by_width.get(w, {}).get(p, 0.0)) for p, v in per.items()}
                for w, per in a.by_width.items()}
    gflops = {p: max(v, b.gflops.get(p, 0.0)) for p, v in a.gflops.items()}
    return CeilingResult(gflops, by_width, a.method + "; the higher of two runs of the probe per width",
                         a.duration_s + b.duration_s, a.unavailable, a.threads, a.verified and b.verified,
                         [*a.notes, *b.notes])


def run_compute_ceiling(benchmark: Any, session: CalibrationSession) -> None:
    """Measure the FMA ceiling on all cores and record it (with the reason where it cannot be measured)."""
    session.families_run.add("compute_ceiling")
    if session.backend.device_type != "cpu":
        pytest.skip("a GPU's measured ceiling is its max-achievable search (bench/test_max_achievable.py)")
    if not benchmark.enabled:
        pytest.skip("--benchmark-disable: correctness only, the FMA ceiling is not measured")
    watch = session.watch
    snap = watch.start() if watch is not None else None
    measured: list[CeilingResult] = []
    benchmark.pedantic(lambda: measured.append(_probe(session)), rounds=1, iterations=1, warmup_rounds=0)
    result = measured[-1]
    if watch is not None and snap is not None and not result.unavailable:
        # The FMA chains live in registers: a taken LLC cannot slow them (footprint 0); shared cores can.
        result = watch.settle(case_name(benchmark), snap, result, lambda: _probe(session), footprint_bytes=0)
    session.results.compute_ceiling = result
    benchmark.extra_info.update({"gflops": dict(result.gflops), "threads": result.threads,
                                 "method": result.method})
    if result.unavailable:
        pytest.skip(f"FMA ceiling not measured: {result.unavailable}")


def recheck_ceiling(benchmark: Any, session: CalibrationSession, precision: str, gemm_gflops: float) -> None:
    """A verified GEMM above the measured ceiling: the ceiling run was the disturbed one. Measure it again
    (once a run) and keep the higher figure per width; a ceiling still below stays with a warning."""
    ceiling = session.results.compute_ceiling
    measured = ceiling.gflops.get(precision) if ceiling is not None else None
    if ceiling is None or not measured or gemm_gflops <= ABOVE_CEILING * measured:
        return
    if "compute_ceiling" in session.rechecked:
        return
    session.rechecked.add("compute_ceiling")
    suspect = (f"cross-check: {precision} GEMM {gemm_gflops:.4g} GFLOPS is above the measured FMA ceiling "
               f"{measured:.4g}: the ceiling is measured again")
    watch = session.watch
    again = _probe(session) if watch is None else watch.settle(
        "test_compute_ceiling[all_cores]", watch.start(), ceiling, lambda: _probe(session), suspect, 0)
    session.results.compute_ceiling = _higher(ceiling, again) if not again.unavailable else ceiling
    benchmark.extra_info["compute_ceiling_rechecked"] = True
