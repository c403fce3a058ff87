"""The one benchmark body of the convolution, conv+BN+ReLU, attention and fused-op families.

A case is sized from one measured call, timed through the shared harness (``hwcal.measure.case``), verified
against an fp64 reference computed another way (a wrong result fails the test and blocks the later cases of
its family and precision), and recorded with what ran it (ATen's path, oneDNN's implementation or the CUDA
kernels, the SDPA backend torch would pick). On a GPU a convolution is timed with cuDNN benchmark mode on
(the autotuned algorithm: the figure filed) and again with it off (torch's default, cuDNN's heuristic), and
both results are verified.

Each family runs inside a time budget; a case that does not fit is skipped with a warning the file carries.
A framework without these kernels (numpy) files each family as unsupported with its reason, never a 0.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from hwcal.backends.nn import FUSED_OPS, NnKernels, NnOperands
from hwcal.backends.support import Support
from hwcal.measure.case import VERIFY_ONLY, best_call_s, charged, plan_for_call, run_verified
from hwcal.measure.nn_grid import NnCase, grid_precisions
from hwcal.measure.nn_records import NnRecord, NnStatus, heuristic_case
from hwcal.measure.session import CalibrationSession
from hwcal.measure.timing import RoundPlan, round_times, stats_of, timed_rounds
from hwcal.measure.verify import Verification
from hwcal.precisions import PRECISIONS

# Seconds per family and device type (x5 with --full, x0.5 with --quick): a bound, not a target; the default
# grids take about half of it on a quiet machine.
NN_BUDGET_S = {"conv": {"cpu": 10.0, "gpu": 10.0}, "conv_bn_relu": {"cpu": 3.0, "gpu": 3.0},
               "sdpa": {"cpu": 5.0, "gpu": 5.0}, "fused": {"cpu": 2.0, "gpu": 3.0}}
GRID_BUDGET_FACTOR = {"default": 1.0, "quick": 0.5, "full": 5.0}
NN_ROUNDS = {("cpu", False): 10, ("cpu", True): 5, ("gpu", False): 5, ("gpu", True): 3}
HEURISTIC_ROUNDS = 3
MIN_ROUNDS = 3
MEMORY_FRACTION_RUN = 0.5
# Norms and softmax reduce along a row: the row's length sets their rounding; GELU and SiLU are one
# vectorised erf or exp per element, accurate to a few units in the last place, not correctly rounded.
ACTIVATION_TERMS = 64


# ---- what runs --------------------------------------------------------------------------------------------
def _variants(kernels: NnKernels, family: str) -> tuple[str, ...]:
    return {"conv": ("dense", "depthwise"), "conv_bn_relu": ("",), "sdpa": kernels.sdpa_backends(),
            "fused": FUSED_OPS}[family]


def _support_variant(case: NnCase) -> str:
    if case.family == "conv":
        return "depthwise" if case.spec.kind == "depthwise" else "dense"
    return "" if case.family == "conv_bn_relu" else case.variant


def support_of(session: CalibrationSession, kernels: NnKernels, family: str, precision: str, variant: str) -> Any:
    key = (f"nn:{family}:{variant}", precision)
    if key not in session.operation_supports:
        session.operation_supports[key] = kernels.support(family, precision, variant)
    return session.operation_supports[key]


def note_statuses(session: CalibrationSession, kernels: NnKernels, family: str) -> None:
    """Once per family: every precision and variant the framework names, probed; what cannot run is filed as
    unsupported with the framework's words, what runs outside this grid as not_in_grid."""
    results = session.results
    marker = (f"nn:{family}", "*")
    if marker in session.operation_supports:
        return
    session.operation_supports[marker] = Support(True, "statuses of every precision and variant noted")
    in_grid = set(grid_precisions(session, family))
    if session.backend.device_type == "gpu" and family == "conv" and not session.options.full:
        in_grid.add("tf32")  # the standard layers' tf32 cases
    for precision in kernels.precisions(family):
        runs = False
        for variant in _variants(kernels, family):
            support = support_of(session, kernels, family, precision, variant)
            runs = runs or support.runnable
            if not support.runnable:
                results.nn_status.append(NnStatus(family, precision, variant, "unsupported", support.reason))
        if runs and precision not in in_grid:
            results.nn_status.append(NnStatus(family, precision, "", "not_in_grid",
                                              "runs here; outside this run's grid (--full times it)"))


# ---- verification -----------------------------------------------------------------------------------------
def tolerance_of(case: NnCase) -> float:
    prec = PRECISIONS[case.precision]
    if case.family == "conv":
        return prec.tolerance(case.spec.inner)
    if case.family == "conv_bn_relu":  # the conv, the batch norm and the activation each round their output
        return 2 * prec.tolerance(case.spec.inner)
    if case.family == "sdpa":
        # Two products, each rounding its output: QK^T's scores, then P (softmax, rounded to the precision
        # inside flash and memory-efficient kernels) times V. A bf16 flash prefill of 4096 keys measured
        # 0.083 of the output's RMS on an H200, over one product's bound (0.063); garbage scores ~1.
        return 2 * prec.tolerance(case.spec.seq_k)
    return prec.tolerance(case.spec.cols if case.spec.op in ("layernorm", "rmsnorm", "softmax") else ACTIVATION_TERMS)


def verify_nn(kernels: NnKernels, ops: NnOperands, case: NnCase) -> Verification:
    """The last call against fp64, each checked part on its own scale: convolutions and attention relative to
    the RMS of the reference (as GEMM); fused ops per element, relative to the element plus its row's RMS (a
    softmax row of one large and many tiny probabilities would hide its errors under a global RMS)."""
    ref = kernels.reference(ops)
    error = 0.0
    for got_part, ref_part in ref.parts:
        error = max(error, _part_error(np.asarray(got_part, dtype=np.float64), np.asarray(ref_part, dtype=np.float64),
                                       per_element=case.family == "fused"))
    metric = ("per element, relative to |reference| + its row's RMS" if case.family == "fused"
              else "max error relative to the reference's RMS")
    tolerance = tolerance_of(case)
    return Verification(error <= tolerance, error, tolerance, f"{ref.what}; {metric}")


def _part_error(got: Any, want: Any, per_element: bool) -> float:
    """The largest error of a part; NaN or inf anywhere makes it inf (so it fails)."""
    diff = np.abs(got - want)
    if not diff.size:
        return 0.0
    if per_element:
        scale = np.abs(want) + np.sqrt((want * want).mean(axis=-1, keepdims=True))
        error = float((diff / np.where(scale > 0, scale, 1.0)).max())
    else:
        rms = float(np.sqrt((want * want).mean()))
        error = float(diff.max()) / rms if rms > 0 else (math.inf if float(diff.max()) > 0 else 0.0)
    return error if math.isfinite(error) else math.inf


# ---- budget -----------------------------------------------------------------------------------------------
def _budget_s(session: CalibrationSession, family: str) -> float:
    grid = "full" if session.options.full else ("quick" if session.options.quick else "default")
    return NN_BUDGET_S[family][session.backend.device_type] * GRID_BUDGET_FACTOR[grid]


def _skip_for_budget(session: CalibrationSession, case: NnCase, reason: str) -> None:
    session.warn(f"{case.family}: {case.case_id} skipped: {reason}")
    pytest.skip(reason)


def _plan(benchmark: Any, session: CalibrationSession, kernels: NnKernels, ops: NnOperands, case: NnCase,
          started: float) -> RoundPlan:
    """Rounds that fit what the family has left of its budget, sized from one measured call."""
    if not benchmark.enabled:
        return VERIFY_ONLY
    backend = session.backend
    call_s = best_call_s(backend, kernels.launch, ops)
    wanted = NN_ROUNDS[backend.device_type, session.options.quick]
    plan = plan_for_call(backend, call_s, wanted)
    round_s = plan.launches * call_s
    budget = _budget_s(session, case.family)
    left = budget - session.budget_spent_s.get(case.family, 0.0) - (time.perf_counter() - started)
    fixed_s = (plan.warmup_rounds + (3 if backend.is_async else 0)) * round_s
    fit = math.floor((left - fixed_s) / round_s) if round_s > 0 else wanted
    if fit < MIN_ROUNDS:
        _skip_for_budget(session, case, f"would take about {fixed_s + MIN_ROUNDS * round_s:.2f} s, more than the "
                                        f"{max(left, 0):.2f} s left of the {budget:g} s {case.family} budget")
    return RoundPlan(plan.launches, min(wanted, fit), plan.warmup_rounds)


class _Rounds:
    """The part of pytest-benchmark's fixture the harness uses, for a second figure of one case (a test times
    one thing through pytest-benchmark): the same rounds, on the wall clock, named for the watch."""

    enabled = True

    def __init__(self, fullname: str) -> None:
        self.fullname = fullname
        self.extra_info: dict[str, Any] = {}
        self.stats: Any = None

    def pedantic(self, fn: Any, rounds: int, warmup_rounds: int, iterations: int, teardown: Any = None) -> None:
        times = []
        for i in range(warmup_rounds + rounds):
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if teardown:
                teardown()
            if i >= warmup_rounds:
                times.append(max(elapsed, 1e-9))
        self.stats = SimpleNamespace(stats=stats_of(times))


def _heuristic(session: CalibrationSession, kernels: NnKernels, ops: NnOperands, case: NnCase, name: str
               ) -> dict[str, Any]:
    """The same convolution with cuDNN benchmark mode off (torch's default: cuDNN's heuristic algorithm),
    timed by the same harness, watched under ``name`` (``heuristic_case``) and verified."""
    backend = session.backend
    with kernels.modes(case.precision, cudnn_benchmark=False):
        call_s = best_call_s(backend, kernels.launch, ops, tries=1)
        plan = RoundPlan(plan_for_call(backend, call_s, HEURISTIC_ROUNDS).launches, HEURISTIC_ROUNDS, 1)
        timed = timed_rounds(_Rounds(name), backend, plan, kernels.launch, ops,
                             watch=session.watch, footprint_bytes=case_bytes(case))
        check = verify_nn(kernels, ops, case)
        details = kernels.describe(ops, session.options.kernel_names)
    if not check.ok:
        session.failures[f"{case.family}:{case.precision}"] = f"{case.case_id} (cuDNN heuristic): {check.describe()}"
        pytest.fail(f"{case.case_id} with cuDNN benchmark mode off gave wrong results: {check.describe()}")
    per_call = round_times(timed.stats, plan.launches)
    out = {"cudnn_benchmark": False, "time_s": {k: float(f"{v:.6g}") for k, v in per_call.items()},
           "rounds": int(timed.stats.rounds), "launches_per_round": plan.launches,
           "max_error": float(f"{check.max_error:.3g}"), **{k: v for k, v in details.items() if k != "kernel"}}
    if case.spec.flops:
        out["gflops_best"] = float(f"{case.spec.flops / per_call['min'] / 1e9:.5g}")
    return out


# ---- the body ---------------------------------------------------------------------------------------------
def run_nn(benchmark: Any, session: CalibrationSession, case: NnCase) -> None:
    """Measure, verify and record one case, or skip it with the reason (unsupported, budget, memory)."""
    session.families_run.add(case.family)
    kernels = session.backend.nn_kernels()
    if not kernels.available:
        reason = kernels.unsupported_reason(case.family)
        if not any(s.family == case.family for s in session.results.nn_status):
            session.results.nn_status.append(NnStatus(case.family, None, "", "unsupported", reason))
        pytest.skip(f"{case.family} unsupported on {kernels.framework}: {reason}")
    note_statuses(session, kernels, case.family)
    if benchmark.enabled:
        session.backend.warm_up()  # once per session (GPU clocks): not this family's budget
    with charged(session, case.family):
        _run(benchmark, session, kernels, case)


def _skip_reason(session: CalibrationSession, kernels: NnKernels, case: NnCase) -> str | None:
    support = support_of(session, kernels, case.family, case.precision, _support_variant(case))
    if not support.runnable:
        what = " ".join(w for w in (case.family, case.precision, _support_variant(case)) if w)
        return f"{what} unsupported: {support.reason}"
    failed = session.failures.get(f"{case.family}:{case.precision}")
    if failed:
        return f"{case.family} {case.precision} failed verification earlier: {failed}"
    budget = _budget_s(session, case.family)
    if session.budget_spent_s.get(case.family, 0.0) >= budget:
        session.warn(f"{case.family}: {case.case_id} skipped: the {budget:g} s budget is spent")
        return f"the {budget:g} s {case.family} budget is spent"
    need = 4 * case_bytes(case)  # operands, output, and the allocator's spare block
    free = session.backend.free_memory_bytes()
    if need > MEMORY_FRACTION_RUN * free:
        return f"{case.case_id} needs about {need / 2**30:.2f} GiB, more than half of the {free / 2**30:.2f} GiB free"
    return None


def element_bytes(precision: str) -> int:
    return max(1, PRECISIONS[precision].bits // 8)


def case_bytes(case: NnCase) -> int:
    """The least traffic of one call (``hwcal.backends.nn``); a conv+BN+ReLU block adds its per-filter
    parameters (the folded bias, or BN's four vectors)."""
    eb = element_bytes(case.precision)
    if case.family == "conv_bn_relu":
        return int(case.spec.bytes(eb, 1 if case.variant.startswith("folded") else 4))
    return int(case.spec.bytes(eb))


def _dims(case: NnCase) -> dict[str, Any]:
    s = case.spec
    if case.family in ("conv", "conv_bn_relu"):
        return {"n": s.n, "c": s.c, "h": s.h, "w": s.w, "k": s.k, "r": s.r, "s": s.s, "stride": s.stride,
                "padding": s.padding, "groups": s.groups, "p": s.p, "q": s.q, "kind": s.kind}
    if case.family == "sdpa":
        return {"batch": s.batch, "heads": s.heads, "seq_q": s.seq_q, "seq_k": s.seq_k, "head_dim": s.head_dim,
                "causal": s.causal}
    return {"op": s.op, "rows": s.rows, "cols": s.cols}


def _run(benchmark: Any, session: CalibrationSession, kernels: NnKernels, case: NnCase) -> None:
    started = time.perf_counter()
    reason = _skip_reason(session, kernels, case)
    if reason:
        pytest.skip(reason)
    backend = session.backend
    gpu_conv = backend.device_type == "gpu" and case.family in ("conv", "conv_bn_relu")
    seed = 7919 * sum(map(ord, case.case_id)) % (2**31)
    sdpa_backend = case.variant if case.family == "sdpa" else None
    with kernels.modes(case.precision, True if gpu_conv else None, sdpa_backend) as modes:
        ops = kernels.operands(case.family, case.spec, case.precision, case.layout, seed, case.variant)
        backend.synchronize()
        plan = _plan(benchmark, session, kernels, ops, case, started)
        flops, nbytes = int(case.spec.flops) if case.family != "fused" else 0, case_bytes(case)
        run = run_verified(
            benchmark, session, plan, kernels.launch, (ops,), lambda: verify_nn(kernels, ops, case),
            info={"family": case.family, "layer": case.name, "precision": case.precision, "layout": case.layout,
                  "variant": case.variant, "flops": flops * plan.launches, "bytes": nbytes * plan.launches},
            failure_key=f"{case.family}:{case.precision}", where=case.case_id, what=f"{case.family} {case.case_id}",
            footprint_bytes=nbytes)
        if run.stats is None:
            return
        details = kernels.describe(ops, session.options.kernel_names)
        modes = dict(modes)
    default = kernels.default_sdpa_backend(ops) if case.family == "sdpa" else None
    heuristic = _heuristic(session, kernels, ops, case, heuristic_case(run.case)) if gpu_conv else None
    fields = run.record_fields(case.precision, str(details.pop("kernel", "")), per_call=True)
    per_call = fields["time_s"]
    session.results.nn.append(NnRecord(
        **fields, family=case.family, name=case.name, source=case.source, role=case.role, dims=_dims(case),
        layout=case.layout, variant=case.variant, flops=flops, bytes=nbytes,
        element_bytes=element_bytes(case.precision),
        gflops_best=flops / per_call["min"] / 1e9 if flops else None,
        gflops_median=flops / per_call["median"] / 1e9 if flops else None,
        gbps_best=nbytes / per_call["min"] / 1e9, gbps_median=nbytes / per_call["median"] / 1e9,
        threads=kernels.threads(), modes=modes, details=details, heuristic=heuristic, default_backend=default))
    benchmark.extra_info["seconds_min"] = per_call["min"]
