"""The calibration builder: a pure function from a run's typed results, the identity detected at its
start and how the run went, to the format-2 calibration document. No I/O, no clocks.

Each section has its module: the precision views (``precision``), the per-case sections (``sections``),
memory (``memory``), the clock summary arrives computed (``clocks``); ``format2.compose`` adds what the
original loader reads. The spec a new hardware folder gets is built here too (``new_spec``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hwcal.document.clocks import ClockOutcome
from hwcal.document.energy import energy_section
from hwcal.document.format2 import compose
from hwcal.document.memory import memory_section
from hwcal.document.memory_system import blas_ceiling
from hwcal.document.nn import nn_sections
from hwcal.document.peaks import peaks_at_clock, with_ceiling_efficiency, with_derived_gpu_peaks
from hwcal.document.precision import PrecisionInput, precision_views, r4, spec_peaks
from hwcal.document.sections import blas_section, gemm_section, gemm_shapes_section, launch_floors_section
from hwcal.document.spec import build_cpu_spec, build_gpu_spec
from hwcal.machine.fma_probe import CeilingResult
from hwcal.measure.session import CalibrationOptions, Results, RunIdentity
from hwcal.measure.watch import InterferenceLog
from hwcal.precisions import canonical_sorted
from hwcal.version import __version__


@dataclass(frozen=True)
class RunRecord:
    """How the run went, beside its results: when it held the device, what was asked, how long it took,
    the preflight report and the clock under load."""

    started_at: datetime
    options: CalibrationOptions
    command_line: list[str]
    selection: dict[str, Any]
    wall_time_s: float
    preflight: dict[str, Any] | None
    clock: ClockOutcome
    schedule: dict[str, Any] | None = None  # the run's target and each budgeted family's share of it


@dataclass(frozen=True)
class BuildInput:
    """Everything a calibration document is built from. ``spec`` is the hardware's spec (the folder's,
    or ``new_spec``'s for a first calibration): its peaks are filed, efficiency is against them scaled to
    the clock run at."""

    results: Results
    identity: RunIdentity
    run: RunRecord
    spec: dict[str, Any]


def new_spec(identity: RunIdentity, started_at: datetime) -> dict[str, Any]:
    """The spec.json a hardware folder gets with its first calibration: a GPU's from its facts (datasheet
    peaks, else derived), a CPU's with peaks derived from the microarchitecture at the key's clock."""
    key = identity.key
    spec = (build_gpu_spec(key.hardware_id, identity.gpu or {}, started_at) if key.device_type == "gpu"
            else build_cpu_spec(key.hardware_id, identity.host, float(key.freq_mhz), started_at))
    return with_derived_gpu_peaks(spec, identity.gpu, float(key.freq_mhz))


def ceiling_metadata(result: CeilingResult) -> dict[str, Any]:
    """``metadata.compute_ceiling`` as measured (before the GEMM peaks are set against it)."""
    out: dict[str, Any] = {"gflops": dict(result.gflops), "by_width": {w: dict(v) for w, v in result.by_width.items()},
                           "method": result.method, "duration_s": round(result.duration_s, 3),
                           "threads": result.threads, "unavailable": result.unavailable}
    if result.notes:
        out["notes"] = list(result.notes)
    return out


def interference_metadata(log: InterferenceLog) -> tuple[dict[str, Any], list[str]]:
    """``metadata.interference`` and a warning per case filed while something else ran."""
    flagged = log.flagged()
    meta = {"monitor": list(log.sources), "thresholds": dict(log.thresholds), "budget_s": log.budget_s,
            "spent_s": round(log.spent_s, 2), "cases_watched": log.watched,
            "re_measured": sum(1 for c in log.cases if c["action"] == "re-measured"), "flagged": len(flagged),
            "cases": log.cases}
    if log.host_share is not None:
        meta["host_share"] = dict(log.host_share)
    if log.launch is not None:
        meta["launch"] = dict(log.launch)
    if log.call is not None:
        meta["call"] = dict(log.call)
    if log.late_pass is not None:
        meta["late_pass"] = dict(log.late_pass)
    if log.pace_tried:
        meta["pace_tries"] = {"tried": log.pace_tried, "quick": log.pace_quick}
    warnings = [f"interference: {c['case']} was measured while {'; '.join(c['reasons'])} and could not be "
                f"re-measured on a quiet machine ({c['re_measured']} tries): its figure is flagged, not the "
                "device's alone" for c in flagged]
    ratio = (log.host_share or {}).get("cache_dram_ratio")
    fraction = log.thresholds.get("host_share_fraction")
    if isinstance(ratio, (int, float)) and isinstance(fraction, (int, float)) and ratio >= fraction:
        warnings.append(f"interference: one thread reads DRAM at {ratio:.2f} of its read of the cache look's "
                        f"buffer here, at or above the {fraction:g} the look judges at: a neighbour taking the "
                        "last-level cache is seen only when it loads the memory bus too")
    return meta, warnings


def _metadata(inp: BuildInput) -> dict[str, Any]:
    ident, run, o = inp.identity, inp.run, inp.run.options
    facts = ident.facts
    metadata: dict[str, Any] = {
        "hardware_id": ident.key.hardware_id,
        "hardware_name": facts.hardware_name,
        "device_type": ident.key.device_type,
        "device": ident.device,
        "calibration_date": run.started_at.isoformat(),
        "tool_version": __version__,
        "power_mode": facts.power_mode,
        "power_mode_source": facts.power_mode_source,
        "freq_mhz": ident.key.freq_mhz,
        "freq_source": facts.freq_source,
        "framework": ident.key.framework,
        **ident.framework_facts,
        "host": ident.host,
        "blas": ident.blas,
        "command_line": run.command_line,
        "selection": run.selection,
        "options": {"quick": o.quick, "sizes": o.sizes, "min_gflops": o.min_gflops, "max_call_s": o.max_call_s,
                    "force": o.force},
        "wall_time_s": round(run.wall_time_s, 2),
    }
    if run.schedule is not None:
        metadata["schedule"] = run.schedule
    if inp.results.compute_ceiling is not None:
        metadata["compute_ceiling"] = ceiling_metadata(inp.results.compute_ceiling)
    if run.preflight is not None:
        metadata["preflight"] = run.preflight
    metadata["clock"] = run.clock.metadata
    if inp.results.interference is not None:
        metadata["interference"], _ = interference_metadata(inp.results.interference)
    return metadata


def build_calibration(inp: BuildInput) -> dict[str, Any]:
    """The format-2 calibration document of one run."""
    res, ident, clock = inp.results, inp.identity, inp.run.clock
    efficiency_spec = peaks_at_clock(inp.spec, clock.peaks_clock_mhz, clock.peaks_clock_by_precision)
    reference = spec_peaks(efficiency_spec)
    theoretical = spec_peaks(inp.spec)
    matrix, detail, warnings = precision_views(PrecisionInput(
        records=res.gemm, supports=res.supports, precisions=ident.precisions, skips=res.skips,
        layouts={p: c.as_dict() for p, c in res.layouts.items()}, max_achievable=res.max_achievable,
        spec=inp.spec, efficiency_spec=efficiency_spec), ident.facts.hardware_name or ident.key.hardware_id)
    peaks = matrix["peak_gflops_by_precision"]
    metadata = _metadata(inp)
    if "compute_ceiling" in metadata and metadata["compute_ceiling"].get("gflops"):
        # The measured FMA ceiling beside the derived peak: efficiency against both.
        metadata["compute_ceiling"], ceiling_warnings = with_ceiling_efficiency(
            metadata["compute_ceiling"], peaks, reference)
        warnings += ceiling_warnings
    bandwidth = inp.spec.get("peak_bandwidth_gbps") or None
    # The cases the watch left flagged: their figures say so, and predictions prefer the unflagged ones
    flagged = frozenset(c["case"] for c in res.interference.flagged()) if res.interference is not None else frozenset()
    memory, memory_warnings = memory_section(res.memory, peaks, theoretical, bandwidth, res.memory_system,
                                             clock.peaks_clock_mhz, "the calibration's clock under load (median)",
                                             flagged)
    measured_bw = (memory or {}).get("sustained_gbps")
    headline = {
        "theoretical_peak_gflops": theoretical.get("fp32"),
        "theoretical_bandwidth_gbps": bandwidth,
        "best_measured_gflops": peaks.get("fp32"),
        "measured_bandwidth_gbps": measured_bw,
        "bandwidth_efficiency": r4(measured_bw / bandwidth) if measured_bw and bandwidth else None,
    }
    interference = interference_metadata(res.interference)[1] if res.interference is not None else []
    sections: dict[str, Any] = {"gemm": gemm_section(res.gemm, reference, flagged),
                                "warnings": [*res.warnings, *clock.warnings, *interference, *warnings,
                                             *memory_warnings]}
    if memory is not None:
        sections["memory"] = memory
    if res.max_achievable:
        sections["max_achievable"] = {p: res.max_achievable[p].as_dict() for p in canonical_sorted(res.max_achievable)}
    if res.blas:
        system = res.memory_system
        ceiling_of = ((lambda ws, threads, in_place: blas_ceiling(system, ws, threads, in_place))
                      if system is not None and (system.bandwidth or system.gpu) else None)
        sections["blas"], blas_warnings = blas_section(res.blas, measured_bw, bandwidth, ceiling_of, flagged)
        sections["warnings"] += blas_warnings
    if res.shapes:
        sections["gemm_shapes"], shape_warnings = gemm_shapes_section(res.shapes, reference, flagged)
        sections["warnings"] += shape_warnings
    if res.floors or res.isolated_floors:
        sections["launch_floors"] = launch_floors_section(res.floors, res.isolated_floors, flagged)
    if res.nn or res.nn_status:
        options = inp.run.options
        grid = "full" if options.full else ("quick" if options.quick else "default")
        nn, nn_warnings = nn_sections(res.nn, res.nn_status, reference, memory, grid, res.memory_system, flagged)
        sections.update(nn)
        sections["warnings"] += nn_warnings
    energy, energy_warnings = energy_section(res.energy)
    if energy is not None:
        sections["energy"] = energy
        sections["warnings"] += energy_warnings
    return compose(ident.key.as_dict(), metadata, headline, matrix, detail, sections)
