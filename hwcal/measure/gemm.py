"""The GEMM benchmark body, written once for every backend: skip rules (unsupported, early
termination, memory), operands, timed rounds (``hwcal.measure.timing``), verification, the record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hwcal.measure.case import VERIFY_ONLY, flagged_cases, run_verified
from hwcal.measure.compute_ceiling import recheck_ceiling
from hwcal.measure.layouts import PROBE_N, choose_layout
from hwcal.measure.records import GemmRecord
from hwcal.measure.session import CalibrationSession
from hwcal.measure.sweep import GUARD_SIZE
from hwcal.measure.timing import plan_rounds, time_one_call
from hwcal.measure.verify import verify_gemm
from hwcal.precisions import PRECISIONS


def session_layout(session: CalibrationSession, precision: str) -> str:
    """The precision's fastest operand layout, chosen once per session at a representative size."""
    layouts = session.results.layouts
    if precision not in layouts:
        sizes = session.sizes()
        probe_n = min(max(sizes), PROBE_N[session.backend.device_type])
        layouts[precision] = choose_layout(session.backend, precision, probe_n)
    return layouts[precision].layout


def gemm_cases(session: CalibrationSession) -> list[tuple[str, int]]:
    """Precision-major, sizes ascending: early termination needs the smaller sizes to run first."""
    return [(p, n) for p in session.backend.precisions() for n in session.sizes()]


def _skip_reason(session: CalibrationSession, precision: str, n: int) -> str | None:
    """Why not to run this case: unsupported, failed earlier, early termination, or too big to fit."""
    if precision in session.failures:
        return f"{precision} failed verification earlier: {session.failures[precision]}"
    support = session.support(precision)
    if not support.runnable:
        return f"{precision} unsupported: {support.reason}"
    flat_stop = session.backend.device_type == "cpu" and not session.options.sizes  # named sizes all run
    reason = session.sweep.skip_reason(precision, n, light_plan(session, precision), flat_stop)
    if reason:
        session.note_skip(precision, reason)
        return reason
    backend = session.backend
    need = backend.bytes_per_gemm(precision, n)
    free = backend.free_memory_bytes()
    if need > 0.8 * free:
        reason = f"{precision} at n={n} needs {need / 2**30:.2f} GiB, more than 80% of the {free / 2**30:.2f} GiB free"
        session.note_skip(precision, reason)
        return reason
    return None


HALVING = 0.5  # a series whose throughput halves from one size to the next is re-measured at that size


def halving_suspect(session: CalibrationSession, precision: str, n: int, flops: int) -> Callable[[Any], str | None]:
    """A cross-check: this size under half the rate of the size before it in the series (a busy core, not the
    device, most likely: it is re-measured; a real cliff survives that)."""
    before = [r for r in session.results.gemm if r.precision == precision and r.n < n]
    last = max(before, key=lambda r: r.n) if before else None

    def suspect(stats: Any) -> str | None:
        gflops = flops / stats.min / 1e9
        if last is not None and gflops < HALVING * last.gflops_best:
            return (f"cross-check: {precision} at n={n} reached {gflops:.4g} GFLOPS, under half of the "
                    f"{last.gflops_best:.4g} at n={last.n}")
        return None

    return suspect


def light_plan(session: CalibrationSession, precision: str) -> bool:
    """A CPU's square sweep times the precisions its models ask for (those its BLAS sweep tries: fp32 and fp64;
    torch's bf16 and fp16 too) on the full plan, and the others (integer types, fp8, numpy's fp16: generic loops
    and emulations) on the light one. Those cost 0.9-1.8 s of rounds each at 0.3 s a size, 7.9 s of a torch run's
    12.7 s and 4.9 of numpy's 7.8, where the CPU goal is 45 s a run; a GPU keeps the full plan everywhere.
    A precision the CPU's ISA has no arithmetic for (``Support.emulation_evidence``: torch's bf16 and fp16 on a
    Zen 3, which convert in software at 0.13x fp32) is an emulation too, whatever its BLAS sweep tries."""
    backend = session.backend
    if backend.device_type != "cpu":
        return False
    return precision not in backend.blas_precisions() or bool(session.support(precision).emulation_evidence)


def run_gemm(benchmark: Any, session: CalibrationSession, precision: str, n: int) -> None:
    """Measure, verify and record one (precision, size) case, or skip it with the reason."""
    session.families_run.add("gemm")
    backend = session.backend
    reason = _skip_reason(session, precision, n)
    if reason:
        pytest.skip(reason)
    if benchmark.enabled:
        backend.warm_up()
    support = session.support(precision)
    layout = session_layout(session, precision)
    seed = 1000 * n + sum(map(ord, precision))
    with backend.precision_mode(precision) as modes:
        ops = backend.make_operands(precision, n, seed, layout=layout)
        plan = (plan_rounds(time_one_call(backend, backend.gemm, ops), backend, session.options.quick,
                            light=light_plan(session, precision))
                if benchmark.enabled else VERIFY_ONLY)
        run = run_verified(
            benchmark, session, plan, backend.gemm, (ops,),
            lambda: verify_gemm(backend, ops, ops.out if ops.out is not None else backend.gemm(ops), seed),
            info={"precision": precision, "n": n, "flops": ops.flops * plan.launches, "kernel": support.kernel},
            failure_key=precision, where=f"n={n}", what=f"{precision} GEMM at n={n}",
            suspect=halving_suspect(session, precision, n, ops.flops * plan.launches),
            footprint_bytes=3 * n * n * PRECISIONS[precision].bits // 8,
            split=backend.pool_splits("gemm", precision, n, n, n))
    flops = ops.flops * plan.launches
    stats = run.stats
    if stats is None:
        # --benchmark-disable: verified once, nothing filed; the one run still feeds early termination.
        elapsed_s = run.timed.elapsed_s
        # One unwarmed call is no evidence of a plateau (flagged=True): a correctness run verifies every size.
        session.sweep.record(precision, n, elapsed_s, flops / max(elapsed_s, 1e-9) / 1e9, flagged=True)
        return
    gflops_best = flops / stats.min / 1e9
    session.results.gemm.append(GemmRecord(
        **run.record_fields(precision, support.kernel, per_call=False),
        n=n,
        flops_per_round=flops,
        gflops_best=gflops_best,
        gflops_median=flops / stats.median / 1e9,
        layout=ops.layout,
        modes=dict(modes),
        operand_range=ops.operand_range,
        accumulator_wraps=bool(ops.extra.get("accumulator_wraps")),
    ))
    recheck_ceiling(benchmark, session, precision, gflops_best)
    # The fastest round predicts the next size: one slow round on a busy machine must not end a sweep (nor may
    # a flagged case show a plateau).
    session.sweep.record(precision, n, stats.min / plan.launches, gflops_best,
                         flagged=run.case in flagged_cases(session))
    if n >= GUARD_SIZE:
        benchmark.extra_info["gflops_best"] = gflops_best
