"""Energy of a predicted operation, from the calibration's ``energy`` section (``hwcal.document.energy``).

With the fit (the roofline energy model) the joules of a call that takes ``seconds`` and does ``flops`` and
moves ``bytes`` are

    static_w x seconds + pJ/FLOP_precision x flops + pJ/byte x bytes

so a slow call (small, launch-bound, memory-bound) pays the device's constant power for longer, and at the
sustained shape the prediction is the measured power x time. Without a fit, the power measured under the
precision's GEMM (or the STREAM copy, for memory operations) x the predicted time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PJ = 1e-12


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class EnergyModel:
    static_w: float | None
    pj_per_flop: dict[str, float]  # fitted, per precision
    pj_per_byte: float | None  # fitted
    watts_by_precision: dict[str, float]  # measured under each precision's GEMM
    copy_watts: float | None  # measured under the STREAM copy

    def joules(self, operation: str, precision: str, seconds: float, flops: float, bytes_moved: float
               ) -> tuple[float | None, str]:
        """(joules, how) of one call; None with the reason when the calibration cannot say."""
        gemm = operation == "gemm"
        if self.static_w is not None and (not gemm or precision in self.pj_per_flop):
            e_flop = self.pj_per_flop.get(precision, 0.0)
            e_byte = self.pj_per_byte or 0.0
            joules = self.static_w * seconds + (e_flop * flops + e_byte * bytes_moved) * PJ
            return joules, (f"fit: {self.static_w:.4g} W x time + {e_flop:.4g} pJ/FLOP x FLOPs + {e_byte:.4g} "
                            "pJ/byte x bytes")
        watts = self.watts_by_precision.get(precision) if gemm else self.copy_watts
        if watts is not None:
            what = f"the {precision} GEMM" if gemm else "the STREAM copy"
            return watts * seconds, f"{watts:.4g} W measured under {what} x time"
        if gemm:
            return None, f"no {precision} GEMM energy measured"
        return None, "no memory energy measured"


def energy_model(doc: dict[str, Any]) -> EnergyModel | None:
    """The model of a calibration's measured ``energy`` section; None when it has none or it is unavailable."""
    section = doc.get("energy")
    if not isinstance(section, dict) or section.get("status") != "measured":
        return None
    fit: dict[str, Any] = section["fit"] if isinstance(section.get("fit"), dict) else {}
    static = _num(fit.get("static_w"))
    flop = {p: float(v) for p, v in (fit.get("pj_per_flop_by_precision") or {}).items() if _num(v) is not None}
    watts = {p: float(v) for p, v in (section.get("watts_by_precision") or {}).items() if _num(v) is not None}
    copy: dict[str, Any] = next((c for c in section.get("cases") or [] if isinstance(c, dict)
                                 and c.get("case") == "stream" and str(c.get("label", "")).startswith("copy")), {})
    return EnergyModel(static, flop, _num(fit.get("pj_per_byte")), watts, _num(copy.get("watts")))
