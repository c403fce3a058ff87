"""The document's clock summary: ``metadata.clock`` from the sampler's windows, the throttling
warnings, and the clock each precision's theoretical peak is scaled to before efficiency is computed.

Pure: reads a stopped sampler's windows; the plugin stops it and detects mode changes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from hwcal.machine import KeyFacts
from hwcal.machine.sampler import THROTTLE_FRACTION, MachineState, _robust_min, summarise
from hwcal.measure.records import GemmRecord


@dataclass
class ClockOutcome:
    metadata: dict[str, Any]
    warnings: list[str]
    peaks_clock_mhz: float | None
    peaks_clock_by_precision: dict[str, float] = field(default_factory=dict)


def clock_by_precision(state: MachineState, records: list[GemmRecord]) -> dict[str, float]:
    """Per precision, the median clock while its best result was measured.

    Clocks differ a lot between precisions (an H200 holds 1980 MHz on fp32 GEMMs and drops to ~1400 MHz
    at its 700 W cap on fp8), so one session median would mis-state every efficiency. A window with
    fewer than 2 samples falls back to all windows of that precision, then to the session median.
    """
    best: dict[str, Any] = {}
    for rec in records:
        if rec.precision not in best or rec.gflops_best > best[rec.precision].gflops_best:
            best[rec.precision] = rec
    out = {}
    for p, rec in best.items():
        window = state.case_windows.get((p, rec.n))
        samples = window.samples if window else []
        if len(samples) < 2:
            samples = [s for (q, _), w in state.case_windows.items() if q == p for s in w.samples]
        if len(samples) >= 2:
            out[p] = round(statistics.median(samples), 1)
    return out


def _under_load(state: MachineState, samples: list[float]) -> tuple[dict[str, Any], list[str]]:
    """``metadata.clock.under_load``: the samples' summary, or why there are none; sampling lost mid-run."""
    mon = state.monitor
    under: dict[str, Any] = {"source": state.probe_source or "none"}
    warnings: list[str] = []
    if samples:
        under["status"] = "partial" if mon.failure else "measured"
        under.update(summarise(samples))
    else:
        under["status"] = "unknown"
        under["reason"] = mon.unavailable or mon.failure or "no sample was taken while the device was busy"
    if mon.failure:
        under["failure"] = f"sampling stopped mid-run: {mon.failure}"
        warnings.append(f"clock under load: sampling stopped mid-run ({mon.failure}); {len(samples)} samples "
                        "before that are kept, throttling after it is unknown")
    reasons = sorted({r for w in mon.measured_windows() for r in w.reasons})
    if reasons:
        under["clock_event_reasons"] = reasons
    return under, warnings


def _per_test(state: MachineState) -> tuple[list[dict[str, Any]], list[str]]:
    """Each sampled test's clock, and a warning for each one that ran throttled."""
    mon = state.monitor
    per_test, warnings = [], []
    for w in mon.measured_windows():
        if not w.samples:
            continue
        entry = {"test": w.test, **summarise(w.samples), "throttled": bool(mon.throttled(w))}
        per_test.append(entry)
        if entry["throttled"]:
            why = f" ({', '.join(sorted(w.reasons))})" if w.reasons else ""
            warnings.append(f"{w.test}: clock fell to {_robust_min(w.samples):.0f} MHz{why}, below "
                            f"{THROTTLE_FRACTION:.0%} of the {mon.ceiling_mhz:.0f} MHz ceiling: "
                            "result flagged throttled")
    return per_test, warnings


def _key_clock(key: KeyFacts) -> dict[str, Any]:
    meta: dict[str, Any] = {"ceiling_mhz": key.freq_mhz, "ceiling_source": key.freq_source,
                            "throttle_threshold_fraction": THROTTLE_FRACTION}
    if key.power_mode_id is not None:
        meta["power_mode_id"] = key.power_mode_id
    if key.notes:
        meta["detection_notes"] = list(key.notes)
    return meta


NOT_MEASURED = "spec peaks at their stated clock (clock under load not measured)"


def clock_summary(state: MachineState | None, records: list[GemmRecord], key: KeyFacts,
                  mode_changed: str | None = None) -> ClockOutcome:
    """metadata.clock for the document, warnings (throttling, NVML lost, mode changed), and the clock
    the theoretical peaks are scaled to (the median under load; None when it was not measured).

    ``state``'s sampler must be stopped; ``mode_changed`` is the plugin's end-of-run detection."""
    meta = _key_clock(key)
    if state is None:
        meta["under_load"] = {"status": "unknown", "source": "none", "reason": "clock sampling was not started"}
        meta["peaks_clock_source"] = NOT_MEASURED
        return ClockOutcome(meta, [], None)
    samples = state.monitor.all_samples()
    meta["under_load"], warnings = _under_load(state, samples)
    per_test, throttled = _per_test(state)
    warnings += throttled
    if per_test:
        meta["per_test"] = per_test
    peaks_clock = round(statistics.median(samples), 1) if len(samples) >= 3 else None
    by_precision = clock_by_precision(state, records) if peaks_clock else {}
    if peaks_clock:
        meta["peaks_clock_mhz"] = peaks_clock
        meta["peaks_clock_source"] = ("per precision: median clock while its best result was measured; "
                                      "the session median where that window had too few samples")
        if by_precision:
            meta["peaks_clock_by_precision_mhz"] = by_precision
    else:
        meta["peaks_clock_source"] = NOT_MEASURED
    meta["detect_s"] = round(state.detect_s, 3)
    warnings.extend(state.clock_warnings)
    if mode_changed:
        warnings.append(mode_changed)
        meta["mode_changed"] = mode_changed
    return ClockOutcome(meta, warnings, peaks_clock, by_precision)
