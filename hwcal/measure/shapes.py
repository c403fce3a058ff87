"""GEMM beyond square: the shape families performance models ask about, one body for every backend.

- ``small_m``: a dense sweep of M = 1 .. 512 rows against N x K weights at layer-like sizes (decode and
  small batches: bound by reading the weights at small M, turning compute-bound as M grows);
- ``batched``: attention per head, stacks (B,M,K) @ (B,K,N) (QK^T and PV, and one decode step): numpy
  matmul on 3-D stacks, ``torch.bmm``;
- ``proj_up`` / ``proj_down``: a transformer block's projections, M x 4H x H and M x H x 4H.

Which shapes, in what order, and the rule that skips a refinement where the curve is straight:
``hwcal.measure.shape_plan``. ``--shapes MxNxK[,..]`` (``bBxMxNxK`` for a batch) replaces the list. The
small-M and batched operands are the same every call (warm: they live in whatever cache tier holds them, as
a layer's operands do when its calls run back to back); the projections rotate operand sets on a GPU (L2
flushed). Rounds are the shared harness's; the figure is the best of a fixed number of rounds inside a time
budget shared fairly by the precisions (--quick: the backend's first precision only). Every result is
verified (Freivalds per matrix of the batch, plus one block against exact fp64 inner products).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from hwcal.backends import Backend
from hwcal.backends.base import GemmOperands, ShapeOperands
from hwcal.measure.adaptive import bend_reason
from hwcal.measure.blas import fair_allowance
from hwcal.measure.case import VERIFY_ONLY, charged, run_verified
from hwcal.measure.records import ShapeRecord
from hwcal.measure.session import CalibrationSession
from hwcal.measure.shape_plan import Shape, default_shapes, line_of
from hwcal.measure.shape_weights import SharedWeights
from hwcal.measure.timing import RoundPlan, launches_for, time_one_call, warmup_rounds
from hwcal.measure.verify import Verification, verify_gemm
from hwcal.precisions import PRECISIONS

FAMILIES = ("small_m", "proj_up", "proj_down", "batched", "pow2_n")
# The dense small-M sweep and the attention batches share the budget with the projections: CPU 8 s (was 4, then 6
# before the pair beyond the LLC, 7 before the power-of-two width: each took ~0.8 s of fp32's share on the Zen 4
# guest), GPU 14 s (was 12, then 8: the GPU grid is smaller and its rounds fewer, ~0.2 s a case; the GPU run must
# fit 120 s).
# GPU 12 s since its rounds are 10 ms (GPU_ROUND_S): 104 of 130 planned cases ran in 14 s with 20 ms rounds on an H200.
# The shares of the shape budget: a CPU's first precision (fp32, the one models run there) counts triple. With
# equal thirds, a noisy torch run on this VM spent fp32's 2 s on the small-M sweep and left out its attention
# and projections (the referee's attention at 1-16 tokens, then extrapolated, was predicted 27-109 % off); counted
# double, three noisy torch runs (92-107 cases flagged) left out half or all of fp32's wide weights (the pair
# beyond the LLC, the power-of-two width) where bf16 and fp16, which no CPU referee asks for, ran theirs.
FIRST_SHARE = {"cpu": 3, "gpu": 1}
SHAPES_BUDGET_S = {("cpu", False): 8.0, ("cpu", True): 2.0, ("gpu", False): 12.0, ("gpu", True): 6.0}
GPU_ROUND_S = 0.01  # a GPU case's round: >= 10 ms of queued launches (one ~20 us synchronisation: 0.2 %)
SHAPE_ROUNDS = {False: 10, True: 5}
LONG_ROUND_S = 0.01  # rounds this long vary little: half as many of them (the M = 512 sweep points)


def _rounds_wanted(session: CalibrationSession, round_s: float) -> int:
    """Rounds for a case: a GPU's rounds are 10 ms of queued launches timed by the device (3 agree within a
    per cent), a CPU's long rounds half as many."""
    wanted = SHAPE_ROUNDS[session.options.quick]
    if session.backend.device_type == "gpu":
        return MIN_ROUNDS
    return max(MIN_ROUNDS, wanted // 2) if round_s >= LONG_ROUND_S else wanted
MIN_ROUNDS = 3
MEMORY_FRACTION_RUN = 0.8
WARM_FAMILIES = ("small_m", "batched", "pow2_n")  # same operands every call; the projections rotate them on a GPU

__all__ = ["FAMILIES", "Shape", "classify", "default_shapes", "parse_shape_list", "run_shape", "shape_cases"]


def classify(batch: int, m: int, n: int, k: int) -> str:
    """The family of a --shapes shape: batched if B > 1, small_m if M <= 512 (the small-M sweep's range),
    else proj_up when N >= K (widening) and proj_down when N < K."""
    if batch > 1:
        return "batched"
    if m <= 512:
        return "small_m"
    return "proj_up" if n >= k else "proj_down"


def parse_shape_list(value: str) -> list[tuple[int, int, int, int]]:
    """``MxNxK[,..]``, ``bBxMxNxK`` for a batch, into (B, M, N, K); ValueError names the bad part."""
    shapes: list[tuple[int, int, int, int]] = []
    for raw in value.replace(" ", "").lower().split(","):
        if not raw:
            continue
        part = raw
        batch = 1
        if part.startswith("b"):
            head, _, part = part[1:].partition("x")
            if not head.isdigit() or int(head) <= 0:
                raise ValueError(f"shape {raw!r} in {value!r}: the batch of bBxMxNxK must be a positive whole number")
            batch = int(head)
        dims = part.split("x")
        if len(dims) != 3 or not all(d.isascii() and d.isdigit() and int(d) > 0 for d in dims):
            raise ValueError(f"shape {raw!r} in {value!r} is not MxNxK (or bBxMxNxK) with positive whole numbers, "
                             "e.g. 128x3072x768")
        m, n, k = (int(d) for d in dims)
        shapes.append((batch, m, n, k))
    if not shapes:
        raise ValueError(f"shapes {value!r} name no shape; give e.g. 1x4096x4096,128x3072x768,b32x128x128x64")
    return list(dict.fromkeys(shapes))


def planned_shapes(session: CalibrationSession) -> list[Shape]:
    if session.options.shapes:
        return [Shape(classify(b, m, n, k), b, m, n, k, "--shapes") for b, m, n, k in session.options.shapes]
    backend = session.backend
    llc = backend.stream_caches().llc_total_bytes if backend.device_type == "cpu" else None
    return default_shapes(backend.device_type, session.options.quick, llc)


def shape_precisions(session: CalibrationSession) -> list[str]:
    """The backend's shape precisions, most asked-about first; --quick keeps that one."""
    precisions = session.backend.shape_precisions()
    return precisions[:1] if session.options.quick else precisions


def shape_cases(session: CalibrationSession) -> list[tuple[str, Shape]]:
    """(precision, shape), precision-major in the backend's order."""
    return [(p, s) for p in shape_precisions(session) for s in planned_shapes(session)]


# ---- verification ---------------------------------------------------------------------------------------
def verify_shape(backend: Backend, ops: ShapeOperands, c: Any, seed: int,
                 bx: tuple[Any, Any] | None = None) -> Verification:
    """Every matrix of the batch through the GEMM check (Freivalds plus sampled exact blocks against fp64,
    ``hwcal.measure.verify``); the worst counts. ``bx``: a single GEMM's shared (X, B X)."""
    checks = []
    for i in range(ops.batch):
        a_i, b_i, c_i = (t[i] if ops.batch > 1 else t for t in (ops.a, ops.b, c))
        one = GemmOperands(ops.precision, ops.n, a_i, b_i, out=c_i, m=ops.m, k=ops.k)
        checks.append(verify_gemm(backend, one, c_i, seed + i, bx=bx if ops.batch == 1 else None))
    worst = max(checks, key=lambda check: (not check.ok, check.max_error))
    method = worst.method + (", every matrix of the batch" if ops.batch > 1 else "")
    return Verification(worst.ok, worst.max_error, worst.tolerance, method)


# ---- the body -------------------------------------------------------------------------------------------
def _predicted_call_s(session: CalibrationSession, precision: str, shape: Shape) -> float | None:
    """From the best square-GEMM rate of this precision in this run: a lower bound on the call's time."""
    rates = [r.gflops_best for r in session.results.gemm if r.precision == precision]
    return shape.flops / (max(rates) * 1e9) if rates else None


def _allowance(session: CalibrationSession, precision: str) -> tuple[float, float]:
    """(seconds this precision may still spend, the whole budget): its share plus what the precisions before
    it left unused; on a CPU the first precision's share counts triple (``FIRST_SHARE``)."""
    backend = session.backend
    budget = session.family_budget("gemm_shapes", SHAPES_BUDGET_S[backend.device_type, session.options.quick])
    precisions = shape_precisions(session)
    index = precisions.index(precision) if precision in precisions else len(precisions) - 1
    weights = [FIRST_SHARE[backend.device_type]] + [1] * (len(precisions) - 1)
    # fair_allowance counted in equal units, a precision holding as many as its weight
    return fair_allowance(budget, session.budget_spent_s.get("gemm_shapes", 0.0), sum(weights[: index + 1]) - 1,
                          sum(weights)), budget


def _refinement_reason(session: CalibrationSession, precision: str, shape: Shape) -> str | None:
    """Why a refinement need not run: its line's measured neighbours lie on a straight stretch."""
    where = line_of(shape.family, shape.batch, shape.m, shape.n, shape.k)
    if not shape.refine or where is None:
        return None
    line, position = where
    points = []
    for r in session.results.shapes:
        on = line_of(r.family, r.batch, r.m, r.n, r.k)
        if r.precision == precision and on is not None and on[0] == line:
            points.append((on[1], r.time_s["min"]))
    return bend_reason(points, position, f"{precision} {shape.label}")


def _skip_before(session: CalibrationSession, precision: str, shape: Shape) -> str | None:
    """Why not even to size this case, warned: its precision's share is spent (one warning names all such shapes
    of the precision), or a call would be too slow (a warning of its own)."""
    left, budget = _allowance(session, precision)
    if left <= 0:
        session.warn_grouped(f"gemm_shapes: {precision}: its share of the {budget:g} s shape budget was spent; left "
                             "out", shape.label)
        return f"{precision} {shape.label}: its share of the {budget:g} s shape budget is spent"
    call_s = _predicted_call_s(session, precision, shape)
    if call_s is not None and call_s > session.options.max_call_s:
        reason = (f"{precision} {shape.label} predicted {call_s:.2g} s per GEMM from the square GEMM rate, over "
                  f"--max-call-seconds {session.options.max_call_s:g}")
        session.warn(f"gemm_shapes: {reason}")
        return reason
    return None


def _rounds_that_fit(session: CalibrationSession, precision: str, shape: Shape, round_s: float, spent_s: float,
                     wanted: int) -> tuple[int, str | None]:
    """Rounds of ``round_s`` (measured) that fit what the precision has left, after ``spent_s`` already
    spent on this case and its warm-up rounds; a skip reason when not even MIN_ROUNDS do."""
    left, budget = _allowance(session, precision)
    left -= spent_s
    fixed_s = (warmup_rounds(session.backend, round_s) + (3 if session.backend.is_async else 0)) * round_s
    fit = math.floor((left - fixed_s) / round_s)
    if fit >= MIN_ROUNDS:
        return min(wanted, fit), None
    return 0, (f"{precision} {shape.label} would take about {fixed_s + MIN_ROUNDS * round_s:.2f} s more, beyond the "
               f"{max(left, 0):.2f} s its precision has left of the {budget:g} s shape budget")


def _shared_weights(session: CalibrationSession, precision: str, shape: Shape) -> tuple[Any, Any] | None:
    """A CPU's single warm GEMM: the B (and its check's B X) every M of this N x K shares
    (``hwcal.measure.shape_weights``)."""
    if session.backend.device_type != "cpu" or shape.batch != 1:
        return None
    if session.shape_weights is None:
        session.shape_weights = SharedWeights(session.backend)
    weights: SharedWeights = session.shape_weights
    return weights.get(precision, shape.n, shape.k, seed=shape.n + 3 * shape.k + sum(map(ord, precision)))


def run_shape(benchmark: Any, session: CalibrationSession, precision: str, shape: Shape) -> None:
    """Measure, verify and record one (precision, shape) case, or skip it with the reason."""
    session.families_run.add("gemm_shapes")
    if benchmark.enabled:
        session.backend.warm_up()  # once per session (GPU clocks): not this sweep's budget
    with charged(session, "gemm_shapes"):
        _run(benchmark, session, precision, shape)


def operand_bytes(shape: Shape, precision: str) -> int:
    """The bytes of A, B and C of the shape's GEMMs in ``precision``: its working set."""
    return shape.batch * (shape.m * shape.k + shape.k * shape.n + shape.m * shape.n) * max(
        1, PRECISIONS[precision].bits // 8)


def shape_seed(shape: Shape, precision: str) -> int:
    """The operands' seed of the shape's case (the late pass adds to it for fresh ones)."""
    return shape.batch * 7 + shape.m * 1000 + shape.n + shape.k * 3 + sum(map(ord, precision))


def _skip_reason(session: CalibrationSession, precision: str, shape: Shape) -> str | None:
    if precision in session.failures:
        return f"{precision} failed verification earlier: {session.failures[precision]}"
    support = session.support(precision)
    if not support.runnable:
        return f"{precision} unsupported: {support.reason}"
    need = operand_bytes(shape, precision)
    free = session.backend.free_memory_bytes()
    if need > MEMORY_FRACTION_RUN * free:
        return (f"{precision} {shape.label} needs {need / 2**30:.2f} GiB, more than "
                f"{MEMORY_FRACTION_RUN:.0%} of the {free / 2**30:.2f} GiB free")
    refinement = _refinement_reason(session, precision, shape)
    if refinement:
        return refinement  # a refinement left out is the plan working, not a missing figure: no warning
    return _skip_before(session, precision, shape)  # it files the warning


def _plan(benchmark: Any, session: CalibrationSession, precision: str, shape: Shape, call: Callable[[], Any]
          ) -> RoundPlan:
    """Rounds that fit what the precision has left of the budget, sized from one measured call."""
    backend = session.backend
    if not benchmark.enabled:
        return VERIFY_ONLY
    started = time.perf_counter()
    call_s = time_one_call(backend, call)
    launches = launches_for(backend, call_s, GPU_ROUND_S if backend.device_type == "gpu" else None)
    rounds, reason = _rounds_that_fit(session, precision, shape, launches * call_s,
                                      time.perf_counter() - started, _rounds_wanted(session, launches * call_s))
    if reason:
        session.warn(f"gemm_shapes: {reason}")
        pytest.skip(reason)
    return RoundPlan(launches, rounds, warmup_rounds(backend, launches * call_s))


def _run(benchmark: Any, session: CalibrationSession, precision: str, shape: Shape) -> None:
    backend = session.backend
    reason = _skip_reason(session, precision, shape)
    if reason:
        pytest.skip(reason)
    seed = shape_seed(shape, precision)
    kernel = backend.shape_kernel(precision, shape.batch)
    with backend.precision_mode(precision) as modes:
        warm = shape.family in WARM_FAMILIES
        shared = _shared_weights(session, precision, shape) if warm else None
        ops = backend.make_shape_operands(precision, shape.m, shape.n, shape.k, shape.batch, seed, rotate=not warm,
                                          b=shared[0] if shared else None)
        call = backend.shape_call(ops)  # sized and timed: the same bound call
        plan = _plan(benchmark, session, precision, shape, call)
        run = run_verified(
            benchmark, session, plan, call, (),
            lambda: verify_shape(backend, ops, ops.out, seed, bx=shared[1] if shared else None),
            info={"family": shape.family, "precision": precision, "shape": shape.label,
                  "flops": shape.flops * plan.launches, "kernel": kernel},
            failure_key=precision, where=shape.label, what=f"{precision} GEMM {shape.label}",
            footprint_bytes=operand_bytes(shape, precision),
            split=backend.pool_splits("gemm", precision, shape.m, shape.n, shape.k))
    if run.stats is None:
        return
    fields = run.record_fields(precision, kernel, per_call=True)
    per_call = fields["time_s"]
    session.results.shapes.append(ShapeRecord(
        **fields,
        family=shape.family,
        m=shape.m,
        n=shape.n,
        k=shape.k,
        batch=shape.batch,
        layout=backend.shape_layout(shape.batch),
        flops=shape.flops,
        gflops_best=shape.flops / per_call["min"] / 1e9,
        gflops_median=shape.flops / per_call["median"] / 1e9,
        source=shape.source,
        modes=dict(modes),
        operands="warm" if warm else "rotated",
        cpu_busy=run.timed.cpu_busy if backend.device_type == "cpu" else None,
    ))
    benchmark.extra_info["gflops_best"] = shape.flops / per_call["min"] / 1e9
