"""The late pass's second windows (``hwcal.measure.late_pass``): each kind of record timed again as its first
pass timed it, on fresh operands, and checked as it was checked; None where the window would not fit the time
left."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from hwcal.measure.blas import blas_round_s, verify_blas
from hwcal.measure.case import best_call_s, plan_for_call
from hwcal.measure.floors import FLOOR_ROUNDS, MIN_CALLS
from hwcal.measure.records import (
    STREAM_EPSILON,
    STREAM_INITIAL,
    STREAM_SCALAR,
    BlasRecord,
    LaunchFloor,
    ShapeRecord,
    StreamRecord,
    after_kernel,
)
from hwcal.measure.session import CalibrationSession
from hwcal.measure.shape_plan import Shape
from hwcal.measure.shapes import operand_bytes, shape_seed, verify_shape
from hwcal.measure.stream import StreamState
from hwcal.measure.timing import TimedRounds, own_rounds, round_cv, round_of, round_times


def shape_of(rec: ShapeRecord) -> Shape:
    return Shape(rec.family, rec.batch, rec.m, rec.n, rec.k)


def operand_bytes_of(rec: ShapeRecord) -> int:
    return operand_bytes(shape_of(rec), rec.precision)


def blas_again(session: CalibrationSession, rec: BlasRecord, time_left_s: float) -> BlasRecord | None:
    """The case's rounds again on fresh operands, verified; None when they would not fit ``time_left_s``."""
    backend = session.backend
    m = rec.m if rec.m is not None else 1
    per_round_s = max(rec.time_s["min"] * rec.launches_per_round, blas_round_s(backend))
    if (rec.rounds + 3) * per_round_s + rec.bytes / 1e9 > time_left_s:
        return None
    ops = backend.blas_operands(rec.operation, rec.precision, rec.n, m, seed=rec.bytes + 11)
    backend.synchronize()
    call = backend.blas_bound(ops)
    plan = plan_for_call(backend, best_call_s(backend, call), rec.rounds, round_s=blas_round_s(backend))
    timed = rounds(session, plan, call)
    stats = timed.stats
    check = verify_blas(backend, ops)
    if not check.ok:
        raise AssertionError(f"late pass: {rec.operation} {rec.precision} n={rec.n} gave wrong results: "
                             f"{check.describe()}")
    per_call = round_times(stats, plan.launches)
    return dataclasses.replace(
        rec, launches_per_round=plan.launches, rounds=int(stats.rounds), warmup_rounds=plan.warmup_rounds,
        time_s=per_call, cv=round_cv(stats), max_error=check.max_error,
        gflops_best=rec.flops / per_call["min"] / 1e9, gflops_median=rec.flops / per_call["median"] / 1e9,
        gbps_best=rec.bytes / per_call["min"] / 1e9, gbps_median=rec.bytes / per_call["median"] / 1e9,
        cpu_busy=timed.cpu_busy if backend.device_type == "cpu" else None)


def shape_again(session: CalibrationSession, rec: ShapeRecord, time_left_s: float) -> ShapeRecord | None:
    """The shape's rounds again on fresh operands, verified; None when they would not fit ``time_left_s``."""
    backend = session.backend
    per_round_s = max(rec.time_s["min"] * rec.launches_per_round, backend.min_round_s)
    if (rec.rounds + 3) * per_round_s + 2 * operand_bytes_of(rec) / 1e9 > time_left_s:
        return None
    seed = shape_seed(shape_of(rec), rec.precision) + 11
    with backend.precision_mode(rec.precision):
        ops = backend.make_shape_operands(rec.precision, rec.m, rec.n, rec.k, rec.batch, seed,
                                          rotate=rec.operands == "rotated")
        call = backend.shape_call(ops)
        plan = plan_for_call(backend, best_call_s(backend, call), rec.rounds)
        timed = rounds(session, plan, call)
        check = verify_shape(backend, ops, ops.out, seed)
    if not check.ok:
        raise AssertionError(f"late pass: {rec.precision} GEMM {rec.m}x{rec.n}x{rec.k} gave wrong results: "
                             f"{check.describe()}")
    per_call = round_times(timed.stats, plan.launches)
    return dataclasses.replace(
        rec, launches_per_round=plan.launches, rounds=int(timed.stats.rounds), warmup_rounds=plan.warmup_rounds,
        time_s=per_call, cv=round_cv(timed.stats), max_error=check.max_error,
        gflops_best=rec.flops / per_call["min"] / 1e9, gflops_median=rec.flops / per_call["median"] / 1e9,
        cpu_busy=timed.cpu_busy)


def floor_again(session: CalibrationSession, rec: LaunchFloor, time_left_s: float) -> LaunchFloor | None:
    """The floor's rounds again, as ``hwcal.measure.floors`` timed them; None when they would not fit."""
    backend = session.backend
    floor = backend.floor_calls().get(rec.operation)
    if floor is None:
        return None
    launch = floor.launch
    if rec.timing == "isolated":
        def launch() -> None:
            floor.launch()
            backend.synchronize()
    backend.warm_up()  # as the first pass did
    plan = plan_for_call(backend, rec.seconds_min, FLOOR_ROUNDS[session.options.quick], MIN_CALLS, shortest_s=1e-8)
    if (plan.rounds + plan.warmup_rounds + 1) * plan.launches * rec.seconds_min * 2 > time_left_s:
        return None
    stats = rounds(session, plan, launch).stats
    how = ("back-to-back calls then one synchronisation" if rec.timing == "back_to_back"
           else "calls each followed by a synchronisation")
    return dataclasses.replace(
        rec, seconds_min=float(stats.min) / plan.launches, seconds_median=float(stats.median) / plan.launches,
        calls=plan.launches, rounds=int(stats.rounds),
        method=(f"{floor.description}: {plan.launches} {how}, per call = round / calls; best and median of "
                f"{int(stats.rounds)} rounds (the late pass's window)"))


def stream_again(session: CalibrationSession, rec: StreamRecord, time_left_s: float) -> StreamRecord | None:
    """The kernel's rounds again on fresh arrays, validated as STREAM validates; None when they would not fit."""
    backend = session.backend
    per_round_s = max(rec.time_s["min"], backend.min_round_s)
    if (rec.rounds + 3) * per_round_s + 3 * rec.array_bytes / 1e9 > time_left_s:
        return None
    state = StreamState(backend)
    try:
        arrays = state.arrays_for(rec.n)
        call = backend.stream_call(rec.kernel, arrays, STREAM_SCALAR)
        plan = plan_for_call(backend, best_call_s(backend, call), rec.rounds)
        stats = rounds(session, plan, call).stats
        state.expected = after_kernel(rec.kernel, STREAM_INITIAL, STREAM_SCALAR)
        error = state.validate()
    finally:
        state.release()
    if error > STREAM_EPSILON.get(rec.element_bytes, 1e-6):
        raise AssertionError(f"late pass: STREAM {rec.kernel} n={rec.n} gave wrong values (relative error {error:.3g})")
    bytes_per_round = rec.bytes_per_pass * plan.launches
    return dataclasses.replace(
        rec, passes_per_round=plan.launches, rounds=int(stats.rounds), warmup_rounds=plan.warmup_rounds,
        time_s=round_times(stats), cv=round_cv(stats), max_rel_error=error,
        gbps_best=bytes_per_round / stats.min / 1e9, gbps_median=bytes_per_round / stats.median / 1e9)


def rounds(session: CalibrationSession, plan: Any, call: Any) -> TimedRounds:
    """The plan's rounds of ``call`` as the first pass timed them, with the process's CPU seconds (cpu_busy)."""
    backend = session.backend
    cpu_start, start = time.process_time(), time.perf_counter()
    stats = own_rounds(backend, plan, round_of(backend, plan.launches, call))
    return TimedRounds(stats, time.perf_counter() - start, None, time.process_time() - cpu_start)
