"""Early termination of a precision's size sweep, as a pure state machine.

Only a size at or above the guard (256), or a call of a millisecond or more, may end a sweep: the original
system stopped after 32x32 and filed 0.5 GFLOPS for a 50 GFLOPS CPU because tiny GEMMs are launch-overhead
bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hwcal.precisions import rate_unit

GUARD_SIZE = 256
# A light-plan precision's largest call: a third of --max-call-seconds (as its rounds are a third of the full
# plan's, ``hwcal.measure.gemm.light_plan``). Its peak comes from a size below (torch's int64 GEMM on the Zen 3
# guest: 0.24 s a call at n=512, 1.3 s of the run for one size, at 1.12 GOPS against 1.15 at 256; fp8 0.19 s at
# 2048, 7.5x its 1024 call for 6 % more).
LIGHT_CALL_SHARE = 1 / 3
# ... and its forecast must keep this margin: a light precision runs a generic loop, whose time jumps past n^3 at
# a cache cliff the last step cannot show (torch's int32 on the AMX Xeon guest: 1.3 ms at 256, 11.2 at 512,
# n^3.1; then 219 ms at 1024, n^4.3, where 97 were forecast: 1-2 s of the run for 9.9 GOPS against 26 at 256).
LIGHT_FORECAST_MARGIN = 1.5
# A CPU's curve is flat past its knee: two successive sizes, both at least FLAT_FROM, the larger within FLAT_GAIN
# of the smaller's rate either way (and neither flagged by the watch), end the precision's sweep. On the Zen 4
# guest every torch and numpy precision's rate moved under 5 % from 512 to 2048 (fp64 97, 93, 98 GFLOPS; fp32 206,
# 198, 187; bf16 439, 431, 421), and the 2048 calls cost 2.7 s of a torch run's 53 (1.2 of them fp64's). A larger
# drop is no plateau: in a slow phase of that host fp32 read 207 then 171 unflagged, and the next size is another
# chance at a quick moment. A GPU keeps its large sizes: there the tensor cores' peak and the wave quantisation
# move up to the largest.
FLAT_FROM = 512
FLAT_GAIN = 0.05
# The guard keeps launch overhead from ending a sweep, but a call of a millisecond or more is no launch overhead
# (CPU floors are 1-3 us, a GPU's about 10): from such a call the --min-gflops end and the --max-call-seconds
# forecast hold below the guard too. torch's fp8 on the Sapphire Rapids guest took 36 ms a call at n=128 and
# 0.29 s at 256 (0.1 GFLOPS, flat from 32 up): 1.5 s of rounds per fp8 type for the same rate, and 0.34 s at
# 128 once the forecast held; its 4.9 ms call at 64 now ends it.
COMPUTE_CALL_S = 1e-3


@dataclass
class SweepPolicy:
    min_gflops: float = 1.0
    max_call_s: float = 0.3
    guard_size: int = GUARD_SIZE


@dataclass
class _Last:
    n: int
    call_s: float
    gflops: float
    # How time grew from the previous size: above n^3 once operands fall out of cache (a generic
    # int GEMM loop went 2.6x worse than cubic from 1024 to 2048 here), never taken below it.
    exponent: float = 3.0
    flagged: bool = False  # measured while something else ran (the watch's flag): no evidence of a plateau


@dataclass
class Sweep:
    """Per precision: the largest size run so far, and the reason the sweep ended (if it did)."""

    policy: SweepPolicy
    _last: dict[str, _Last] = field(default_factory=dict)
    _before: dict[str, _Last] = field(default_factory=dict)  # the size run before the last, for the plateau
    _ended: dict[str, str] = field(default_factory=dict)

    def record(self, precision: str, n: int, call_s: float, gflops: float, flagged: bool = False) -> None:
        last = self._last.get(precision)
        if last is None or n > last.n:
            exponent = 3.0
            if last is not None:
                self._before[precision] = last
                if last.call_s > 0 and call_s > 0:
                    exponent = min(4.5, max(3.0, math.log(call_s / last.call_s) / math.log(n / last.n)))
            self._last[precision] = _Last(n, call_s, gflops, exponent, flagged)
        elif n == last.n:
            self._last[precision] = _Last(n, call_s, gflops, last.exponent, flagged)

    def end(self, precision: str, reason: str) -> None:
        self._ended.setdefault(precision, reason)

    def skip_reason(self, precision: str, n: int, light: bool = False, flat_stop: bool = False) -> str | None:
        """Why size ``n`` of ``precision`` should not run, or None to run it; on the ``light`` plan one call may
        take ``LIGHT_CALL_SHARE`` of the policy's cap; with ``flat_stop`` (a CPU's default sizes) a plateau
        ends the sweep."""
        if precision in self._ended:
            return self._ended[precision]
        last = self._last.get(precision)
        if last is None or n <= last.n:
            return None
        below_guard = last.n < self.policy.guard_size
        if below_guard and last.call_s < COMPUTE_CALL_S:
            return None
        # Below the guard only a clean call ends a sweep: an unwarmed one (--benchmark-disable) or one timed while
        # something else ran may take milliseconds for a tiny GEMM (QEMU's first 32x32 numpy call).
        if last.gflops < self.policy.min_gflops and not (below_guard and last.flagged):
            reason = (f"{precision} reached {last.gflops:.3g} {rate_unit(precision)} at n={last.n}, below --min-gflops "
                      f"{self.policy.min_gflops:g}: larger sizes skipped")
            self.end(precision, reason)
            return reason
        if below_guard:
            return self._too_long(precision, n, last, light)
        before = self._before.get(precision)
        if (flat_stop and before is not None and before.n >= FLAT_FROM and not (before.flagged or last.flagged)
                and abs(last.gflops / max(before.gflops, 1e-12) - 1) <= FLAT_GAIN):
            reason = (f"{precision}: not needed, the curve is flat ({before.gflops:.4g} {rate_unit(precision)} at "
                      f"n={before.n}, {last.gflops:.4g} at n={last.n}: within {FLAT_GAIN:.0%}): larger sizes skipped")
            self.end(precision, reason)
            return reason
        return self._too_long(precision, n, last, light)

    def _too_long(self, precision: str, n: int, last: _Last, light: bool) -> str | None:
        """Why size ``n`` would take over the cap a call, from the time of the last size, or None."""
        predicted_s = last.call_s * (n / last.n) ** last.exponent
        cap = self.policy.max_call_s * (LIGHT_CALL_SHARE if light else 1.0)
        if predicted_s * (LIGHT_FORECAST_MARGIN if light else 1.0) > cap:
            # Not an end: a smaller size in between could still fit, so only this size is skipped.
            limit = (f"the light plan's {cap:.2g} s (a third of --max-call-seconds)" if light
                     else f"--max-call-seconds {cap:g}")
            over = f"over {limit}" if predicted_s > cap else f"within {LIGHT_FORECAST_MARGIN:g}x of {limit}"
            return (f"{precision} at n={n} predicted {predicted_s:.2g} s per GEMM (from {last.call_s:.2g} s at "
                    f"n={last.n}, time ~ n^{last.exponent:.2g}), {over}")
        return None
