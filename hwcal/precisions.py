"""The precisions hwcal knows, in the canonical order consumers of the registry expect.

Unit roundoffs set the verification tolerance: a GEMM result counts only when its error against an
fp64 (or exact integer) reference is at the level its precision implies: the rounding of the result
(or, for tf32, of the operands) plus accumulation error growing like sqrt(n).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    name: str
    is_integer: bool
    bits: int
    # Unit roundoff of the result's rounding (tf32: of the operands; fp8: of its bf16 output).
    unit_roundoff: float
    # Below this fraction of fp32 throughput a precision is running far below its class: emulated.
    emulated_below_fp32_ratio: float
    description: str
    # Roundoff of the accumulator: fp32 for every reduced precision (tensor cores, BLAS), fp64 for fp64.
    accumulate_roundoff: float = 2.0**-24

    def tolerance(self, n: int) -> float:
        """Largest accepted error of an entry, relative to the RMS of the reference result.

        16 x (result rounding + accumulation ~ sqrt(n)): measured errors sit 5-30x below it, while
        an unwritten (zero) output scores ~4 and one garbage 128x128 tile in n=4096 ~0.2, both far above.
        """
        if self.is_integer:
            return 0.0
        return 16.0 * (self.unit_roundoff + self.accumulate_roundoff * n**0.5)


_TABLE = (
    # fp64 on consumer and embedded GPUs runs at 1/32 .. 1/64 of fp32 by design: still native.
    Precision("fp64", False, 64, 2.0**-53, 1 / 200, "IEEE binary64", accumulate_roundoff=2.0**-53),
    Precision("fp32", False, 32, 2.0**-24, 0.0, "IEEE binary32, TF32 off"),
    Precision("tf32", False, 32, 2.0**-11, 0.5, "fp32 operands rounded to a 10-bit mantissa by tensor cores"),
    Precision("fp16", False, 16, 2.0**-11, 0.25, "IEEE binary16"),
    Precision("bf16", False, 16, 2.0**-8, 0.25, "bfloat16"),
    Precision("fp8", False, 8, 2.0**-8, 0.25, "fp8 e4m3 operands, bf16 output"),
    Precision("fp8_e5m2", False, 8, 2.0**-8, 0.25, "fp8 e5m2 operands, bf16 output"),
    Precision("int64", True, 64, 0.0, 0.02, "64-bit integers"),
    Precision("int32", True, 32, 0.0, 0.05, "32-bit integers"),
    Precision("int16", True, 16, 0.0, 0.1, "16-bit integers"),
    Precision("int8", True, 8, 0.0, 0.25, "8-bit integers"),
)

PRECISIONS: dict[str, Precision] = {p.name: p for p in _TABLE}
CANONICAL_ORDER: tuple[str, ...] = tuple(PRECISIONS)


def rate_unit(precision: str) -> str:
    """The unit a precision's GEMM rate is given in: GOPS for the integer types, GFLOPS for the rest."""
    known = PRECISIONS.get(precision)
    return "GOPS" if known is not None and known.is_integer else "GFLOPS"


def canonical_sorted(names: Iterable[str]) -> list[str]:
    """Sort precision names in canonical order; unknown names go last, alphabetically."""
    order = {name: i for i, name in enumerate(CANONICAL_ORDER)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))

