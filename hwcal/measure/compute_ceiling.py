"""The measured compute ceiling as a benchmark case: FMA chains on every core (``hwcal.machine.fma_probe``),
once per CPU calibration, filed as ``metadata.compute_ceiling`` beside the peak derived from the
microarchitecture. A GPU's measured ceiling is its max-achievable search instead.

It runs as a case like the others, so what watches the cases (clock windows, the partial-run rule)
watches it too, rather than inside the preflight where nothing did.
"""

from __future__ import annotations

from typing import Any

import pytest

from hwcal.machine.cpu import collect_cpu
from hwcal.machine.fma_probe import CeilingResult, measure_compute_ceiling
from hwcal.machine.sources import LOCAL
from hwcal.measure.session import CalibrationSession

CEILING_BUDGET_S = 1.5  # the whole probe stays under 2 s
CASES = ("all_cores",)


def run_compute_ceiling(benchmark: Any, session: CalibrationSession) -> None:
    """Measure the FMA ceiling on all cores and record it (with the reason where it cannot be measured)."""
    session.families_run.add("compute_ceiling")
    if session.backend.device_type != "cpu":
        pytest.skip("a GPU's measured ceiling is its max-achievable search (bench/test_max_achievable.py)")
    if not benchmark.enabled:
        pytest.skip("--benchmark-disable: correctness only, the FMA ceiling is not measured")
    src = session.machine_state.src if session.machine_state is not None else LOCAL
    isa_flags = collect_cpu(src).get("isa_flags")
    flags = [str(f) for f in isa_flags] if isinstance(isa_flags, list) else []
    measured: list[CeilingResult] = []
    benchmark.pedantic(lambda: measured.append(measure_compute_ceiling(flags, budget_s=CEILING_BUDGET_S, src=src)),
                       rounds=1, iterations=1, warmup_rounds=0)
    result = measured[-1]
    session.results.compute_ceiling = result
    benchmark.extra_info.update({"gflops": dict(result.gflops), "threads": result.threads,
                                 "method": result.method})
    if result.unavailable:
        pytest.skip(f"FMA ceiling not measured: {result.unavailable}")
