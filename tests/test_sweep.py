"""Early termination: never below the 256 guard unless a call took a millisecond or more; after it, too slow or
predicted over budget skips."""

from __future__ import annotations

import pytest

from hwcal.measure.sweep import COMPUTE_CALL_S, GUARD_SIZE, Sweep, SweepPolicy


def _sweep(min_gflops: float = 1.0, max_call_s: float = 1.0) -> Sweep:
    return Sweep(SweepPolicy(min_gflops=min_gflops, max_call_s=max_call_s))


def test_guard_is_256() -> None:
    assert GUARD_SIZE == 256
    assert SweepPolicy().guard_size == GUARD_SIZE


def test_no_termination_below_the_guard() -> None:
    """Small GEMMs are launch-overhead bound: 0.5 GFLOPS at 32x32 says nothing about the plateau."""
    sweep = _sweep(min_gflops=10.0, max_call_s=1e-6)
    for n in (32, 64, 128):
        assert sweep.skip_reason("fp32", n) is None
        sweep.record("fp32", n, call_s=0.9 * COMPUTE_CALL_S, gflops=0.5)  # slow and over the time budget: no cut
    for n in (256, 512, 4096):
        assert sweep.skip_reason("fp32", n) is None


def test_below_the_guard_a_long_call_forecasts_and_ends() -> None:
    """A call of a millisecond or more is compute, not launch overhead: from it the --max-call-seconds forecast
    skips a size below the guard too (torch's fp8 on an AMX Xeon: 36 ms at 128, 0.29 s at 256), and a rate
    under --min-gflops there ends the sweep."""
    sweep = _sweep(min_gflops=0.1, max_call_s=0.3)
    sweep.record("fp8", 64, call_s=0.0044, gflops=0.12)
    assert sweep.skip_reason("fp8", 128) is None  # 35 ms fits under 0.3 s and under the light plan's 0.1 s
    sweep.record("fp8", 128, call_s=0.036, gflops=0.117)
    assert sweep.skip_reason("fp8", 256) is None  # 0.29 s fits the full plan's cap
    reason = sweep.skip_reason("fp8", 256, light=True)
    assert reason is not None and "n=256 predicted 0.29 s" in reason and "light plan's 0.1 s" in reason
    assert sweep.skip_reason("fp8", 160, light=True) is not None  # 0.07 s: within 1.5x of the light cap
    assert sweep.skip_reason("fp8", 144, light=True) is None  # 0.05 s: only the sizes near or over the cap
    ended = _sweep(min_gflops=1.0, max_call_s=0.3)
    ended.record("fp8", 64, call_s=0.0044, gflops=0.12)
    reason = ended.skip_reason("fp8", 128)
    assert reason is not None and "0.12 GFLOPS at n=64, below --min-gflops 1" in reason
    assert ended.skip_reason("fp8", 4096) == reason
    quick = _sweep(min_gflops=1.0, max_call_s=0.3)
    quick.record("fp32", 64, call_s=0.9 * COMPUTE_CALL_S, gflops=0.5)  # launch-bound size: no end
    assert quick.skip_reason("fp32", 128) is None
    unwarmed = _sweep(min_gflops=1.0, max_call_s=0.3)  # --benchmark-disable's one call, or a disturbed one
    unwarmed.record("fp32", 32, call_s=0.005, gflops=0.013, flagged=True)
    assert unwarmed.skip_reason("fp32", 64) is None


def test_min_gflops_terminates_after_the_guard() -> None:
    sweep = _sweep(min_gflops=10.0)
    sweep.record("fp16", 128, call_s=0.0009, gflops=0.2)
    assert sweep.skip_reason("fp16", 256) is None
    sweep.record("fp16", 256, call_s=0.01, gflops=0.3)
    reason = sweep.skip_reason("fp16", 512)
    assert reason is not None
    assert "fp16" in reason and "n=256" in reason and "--min-gflops" in reason and "skipped" in reason
    # Ended: every larger size gives the same reason; other precisions are not affected.
    assert sweep.skip_reason("fp16", 1024) == reason
    assert sweep.skip_reason("fp16", 4096) == reason
    assert sweep.skip_reason("fp32", 512) is None


def test_min_gflops_is_strictly_below() -> None:
    sweep = _sweep(min_gflops=1.0)
    sweep.record("int8", 256, call_s=0.01, gflops=1.0)
    assert sweep.skip_reason("int8", 512) is None


def test_min_gflops_zero_never_terminates() -> None:
    sweep = _sweep(min_gflops=0.0, max_call_s=1e9)
    sweep.record("int64", 512, call_s=0.5, gflops=0.001)
    assert sweep.skip_reason("int64", 4096) is None


def test_the_same_or_a_smaller_size_is_never_skipped() -> None:
    sweep = _sweep(min_gflops=100.0, max_call_s=1e-9)
    sweep.record("fp64", 512, call_s=1.0, gflops=1.0)
    assert sweep.skip_reason("fp64", 512) is None
    assert sweep.skip_reason("fp64", 256) is None


def test_predicted_time_over_budget_skips_that_size_only() -> None:
    sweep = _sweep(min_gflops=1.0, max_call_s=1.0)
    sweep.record("fp64", 256, call_s=0.1, gflops=50.0)
    assert sweep.skip_reason("fp64", 512) is None  # 0.1 s x 2^3 = 0.8 s fits
    reason = sweep.skip_reason("fp64", 1024)  # 0.1 s x 4^3 = 6.4 s does not
    assert reason is not None
    assert "predicted" in reason and "n=1024" in reason and "--max-call-seconds" in reason
    # Not an end: a size in between could still fit.
    assert sweep.skip_reason("fp64", 512) is None


def test_prediction_uses_the_largest_size_run() -> None:
    sweep = _sweep(max_call_s=1.0)
    sweep.record("fp32", 512, call_s=0.5, gflops=50.0)
    sweep.record("fp32", 256, call_s=0.0001, gflops=50.0)  # out of order: ignored for prediction
    assert sweep.skip_reason("fp32", 1024) is not None  # 0.5 s x 8 = 4 s


def test_explicit_end_is_kept_first_reason() -> None:
    sweep = _sweep()
    sweep.end("bf16", "first")
    sweep.end("bf16", "second")
    assert sweep.skip_reason("bf16", 32) == "first"


@pytest.mark.parametrize(("n_last", "gflops", "call_s", "cut"),
                         [(128, 0.01, 0.0009, False), (256, 0.01, 0.0009, True), (255, 0.01, 0.0009, False),
                          (1024, 0.01, 0.0009, True), (256, 5.0, 0.0009, False), (128, 0.01, COMPUTE_CALL_S, True),
                          (128, 5.0, COMPUTE_CALL_S, False)])
def test_guard_boundary(n_last: int, gflops: float, call_s: float, cut: bool) -> None:
    sweep = _sweep(min_gflops=1.0, max_call_s=1e9)
    sweep.record("fp32", n_last, call_s=call_s, gflops=gflops)
    assert (sweep.skip_reason("fp32", n_last * 2) is not None) is cut


def test_growth_faster_than_cubic_is_learned_from_the_last_two_sizes() -> None:
    sweep = Sweep(SweepPolicy(min_gflops=0.0, max_call_s=10.0))
    sweep.record("int32", 512, 0.1, 2.0)
    sweep.record("int32", 1024, 1.6, 1.3)  # 16x for 2x: time ~ n^4 once operands leave the cache
    reason = sweep.skip_reason("int32", 2048)
    assert reason is not None and "n^4" in reason and "predicted 26 s" in reason


def test_growth_never_predicted_below_cubic() -> None:
    sweep = Sweep(SweepPolicy(min_gflops=0.0, max_call_s=1.0))
    sweep.record("fp32", 256, 0.01, 3.0)
    sweep.record("fp32", 512, 0.02, 13.0)  # overhead-bound: 2x for 2x
    reason = sweep.skip_reason("fp32", 4096)
    assert reason is not None and "n^3" in reason and "predicted 10 s" in reason


def test_the_light_plan_times_a_third_as_long_and_at_most_30_rounds() -> None:
    from types import SimpleNamespace

    from hwcal.measure.timing import plan_rounds

    backend = SimpleNamespace(min_round_s=1e-3, warmup_s=0.0)
    full = plan_rounds(2e-3, backend, quick=False)  # type: ignore[arg-type]
    light = plan_rounds(2e-3, backend, quick=False, light=True)  # type: ignore[arg-type]
    assert (full.rounds, light.rounds) == (100, 30)  # 0.3 s of 2 ms rounds is 150, capped
    assert plan_rounds(0.02, backend, quick=False, light=True).rounds == 5  # type: ignore[arg-type]
    assert plan_rounds(0.02, backend, quick=False).rounds == 15  # type: ignore[arg-type]
    assert plan_rounds(0.2, backend, quick=False, light=True).rounds == 3  # type: ignore[arg-type]


def test_a_cpu_times_the_precisions_its_models_ask_for_on_the_full_plan() -> None:
    from types import SimpleNamespace

    from hwcal.measure.gemm import light_plan

    def session(device_type: str, emulated: tuple[str, ...] = ()) -> SimpleNamespace:
        evidence = {p: f"no {p} arithmetic in this CPU's ISA" for p in emulated}
        return SimpleNamespace(backend=SimpleNamespace(device_type=device_type,
                                                       blas_precisions=lambda: ["fp32", "bf16", "fp16", "fp64"]),
                               support=lambda p: SimpleNamespace(emulation_evidence=evidence.get(p, "")))

    cpu, gpu = session("cpu"), session("gpu", ("fp16",))
    assert [p for p in ("fp32", "bf16", "fp16", "fp64", "int8", "int16", "fp8") if light_plan(cpu, p)] == \
        ["int8", "int16", "fp8"]  # type: ignore[arg-type]
    assert not any(light_plan(gpu, p) for p in ("int8", "fp8", "int64", "fp16"))  # type: ignore[arg-type]
    zen3 = session("cpu", ("bf16", "fp16"))  # torch converts them in software there (0.13x fp32): emulations
    assert [p for p in ("fp32", "bf16", "fp16", "fp64") if light_plan(zen3, p)] == ["bf16", "fp16"]  # type: ignore[arg-type]


def test_a_lighter_cap_on_one_call_skips_what_the_policy_would_run() -> None:
    """The light plan's cap (a third of --max-call-seconds) skips a size the full plan runs, and says whose cap."""
    sweep = _sweep(max_call_s=0.3)
    sweep.record("int64", 256, call_s=0.029, gflops=1.15)  # 512 predicted at 0.23 s
    assert sweep.skip_reason("int64", 512) is None
    reason = sweep.skip_reason("int64", 512, light=True)
    assert reason is not None and "light plan's 0.1 s" in reason and "0.23 s per GEMM" in reason
    assert sweep.skip_reason("int64", 1024, light=True) is not None  # only that size: not an end
    assert sweep.skip_reason("int64", 320, light=True) is None  # 0.057 s, not within 1.5x of the cap
    near = sweep.skip_reason("int64", 384, light=True)  # 0.098 s: a cache cliff would take it over
    assert near is not None and "within 1.5x of the light plan's 0.1 s" in near


def test_the_light_plan_keeps_a_margin_under_its_cap() -> None:
    """torch's int32 on the AMX Xeon guest: 11.2 ms at 512 forecast 97 ms at 1024 (under the 0.1 s light cap) and
    took 219 ms at a cache cliff; the light plan's forecast keeps 1.5x under its cap, the full plan's none."""
    sweep = _sweep(max_call_s=0.3)
    sweep.record("int32", 256, call_s=0.00129, gflops=26.0)
    sweep.record("int32", 512, call_s=0.0112, gflops=24.0)
    reason = sweep.skip_reason("int32", 1024, light=True)
    assert reason is not None and "within 1.5x" in reason
    assert sweep.skip_reason("int32", 1024) is None


def test_a_flat_curve_ends_the_sweep_where_asked() -> None:
    """Two sizes from 512 up within 5 % of each other end the precision (a CPU's default sizes), once."""
    sweep = _sweep(max_call_s=10.0)
    for n, gflops in ((256, 88.0), (512, 97.0), (1024, 93.0)):
        assert sweep.skip_reason("fp64", n, flat_stop=True) is None
        sweep.record("fp64", n, call_s=2 * n**3 / gflops / 1e9, gflops=gflops)
    reason = sweep.skip_reason("fp64", 2048, flat_stop=True)
    assert reason is not None and "flat" in reason and "n=512" in reason and "n=1024" in reason
    assert sweep.skip_reason("fp64", 4096, flat_stop=True) == reason  # an end, not one size
    assert _sweep(max_call_s=10.0).skip_reason("fp64", 2048, flat_stop=True) is None


@pytest.mark.parametrize(("sizes", "flagged", "flat_stop"), [
    (((256, 88.0), (512, 90.0)), False, True),  # the smaller size under 512: the knee may be later
    (((512, 90.0), (1024, 95.0)), False, True),  # 5.6 % more: still climbing
    (((512, 207.0), (1024, 171.0)), False, True),  # 17 % less: a slow moment more likely than a plateau
    (((512, 97.0), (1024, 93.0)), True, True),  # a flagged point is no evidence
    (((512, 97.0), (1024, 93.0)), False, False),  # a GPU, or sizes the user named
])
def test_no_plateau_stop(sizes: tuple[tuple[int, float], ...], flagged: bool, flat_stop: bool) -> None:
    sweep = _sweep(max_call_s=10.0)
    for n, gflops in sizes:
        sweep.record("fp32", n, call_s=2 * n**3 / gflops / 1e9, gflops=gflops, flagged=flagged)
    assert sweep.skip_reason("fp32", 2048, flat_stop=flat_stop) is None
