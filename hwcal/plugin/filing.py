"""End of a calibration session: detect the key, build the document, validate, file it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.document.builder import BuildInput, build_calibration
from hwcal.document.peaks import peaks_at_clock, with_derived_gpu_peaks
from hwcal.document.spec import (
    build_cpu_spec,
    build_gpu_spec,
    identity_conflict,
)
from hwcal.errors import HwcalError
from hwcal.machine import KeyFacts, collect_blas, collect_host
from hwcal.machine.cpu import collect_cpu
from hwcal.measure.session import CalibrationSession
from hwcal.naming import CalibrationKey, calibration_path, check_power_mode, spec_path
from hwcal.plugin.clocks import finish_clocks, session_gpu_facts, session_key_facts
from hwcal.registry.locks import keep_rejected_text
from hwcal.registry.reader import BadRegistryFile, read_json, read_spec
from hwcal.registry.succession import is_partial
from hwcal.registry.writer import check_valid, write_calibration
from hwcal.version import __version__


@dataclass
class Filed:
    doc: dict[str, Any]
    path: Path
    written: bool
    history: Path | None = None


def detect_key(cal: CalibrationSession) -> tuple[CalibrationKey, KeyFacts, str]:
    """The registry key, with the options overriding detection; also returns the device type."""
    opts = cal.options
    facts = session_key_facts(cal)  # detected at session start: NVML failing later cannot change the key
    power_mode, pm_source = (opts.power_mode, "--power-mode") if opts.power_mode else \
        (facts.power_mode, facts.power_mode_source)
    freq, freq_source = (opts.frequency_mhz, "--frequency-mhz") if opts.frequency_mhz else \
        (facts.freq_mhz, facts.freq_source)
    if not freq or freq <= 0:
        raise HwcalError("could not detect the clock ceiling for the registry key; give --frequency-mhz")
    facts = replace(facts, hardware_id=opts.hardware_id or facts.hardware_id, power_mode=power_mode,
                    power_mode_source=pm_source, freq_mhz=int(freq), freq_source=freq_source,
                    power_mode_id=None if opts.power_mode else facts.power_mode_id)
    key = CalibrationKey(cal.backend.device_type, facts.hardware_id, check_power_mode(power_mode),
                         int(freq), cal.backend.framework)
    return key, facts, cal.backend.device_type


def _load_spec(registry: Path, key: CalibrationKey) -> dict[str, Any] | None:
    path = spec_path(registry, key.device_type, key.hardware_id)
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return read_spec(path, registry)
    except BadRegistryFile as exc:
        raise HwcalError(f"{exc}; fix or remove it, nothing written") from None


def check_identity(spec: dict[str, Any] | None, cpu: dict[str, Any], key: CalibrationKey,
                   detected_id: str) -> None:
    """Refuse a CPU run whose identity disagrees with the spec.json of the folder it would file into:
    it would be filed as another chip's history."""
    if spec is None or key.device_type != "cpu":
        return
    conflict = identity_conflict(spec, cpu)
    if conflict is None:
        return
    other = (f"drop --hardware-id to file under this machine's own id {detected_id}, or give "
             if detected_id != key.hardware_id else "give ")
    raise HwcalError(f"{conflict}: refusing to file this machine's calibration as that chip's history; "
                     f"{other}--hardware-id ID to choose another folder")


def _machine_cpu(cal: CalibrationSession) -> dict[str, Any]:
    """The CPU facts of the machine the session measures (the session's Sources: faked in tests)."""
    state = cal.machine_state
    return collect_cpu(state.src) if state is not None else collect_host()["cpu"]  # type: ignore[return-value]


def check_before_run(cal: CalibrationSession, selection: dict[str, Any]) -> None:
    """What would make filing fail, checked before the benchmarks run rather than after them:
    the key's power-mode token, a corrupt spec, a spec describing another chip, and a partial run
    about to replace a complete one."""
    key, _, _ = detect_key(cal)
    spec = _load_spec(cal.options.registry, key)
    check_identity(spec, _machine_cpu(cal), key, session_key_facts(cal).hardware_id)
    if not selection.get("partial") or cal.options.allow_partial or cal.options.dry_run:
        return
    path = calibration_path(cal.options.registry, key)
    try:
        current = read_json(path, cal.options.registry) if path.exists() else None
    except BadRegistryFile:
        current = None  # unreadable: the writer keeps it in history as .corrupt
    if isinstance(current, dict) and not is_partial(current):
        raise HwcalError(
            f"this run is partial ({selection.get('partial_why')}) and {path} holds a complete calibration of "
            "the same key: run the whole suite, or pass --allow-partial (the complete one goes to history), "
            "or --dry-run"
        )


def file_calibration(cal: CalibrationSession, command_line: list[str], selection: dict[str, Any]) -> Filed:
    """Build and validate the calibration; write it unless --dry-run. Raises HwcalError, writes nothing then."""
    key, facts, _ = detect_key(cal)
    clock = finish_clocks(cal, facts)
    host = collect_host()
    spec = _load_spec(cal.options.registry, key)
    host_cpu = host.get("cpu")
    check_identity(spec, host_cpu if isinstance(host_cpu, dict) else {}, key, session_key_facts(cal).hardware_id)
    new_spec = None
    if spec is None:
        # A CPU's derived peaks use the key's clock, whatever the framework (and --frequency-mhz).
        new_spec = build_gpu_spec(key.hardware_id, session_gpu_facts(cal) or {}, cal.started_at) \
            if key.device_type == "gpu" else build_cpu_spec(key.hardware_id, host, float(key.freq_mhz), cal.started_at)
        new_spec = spec = with_derived_gpu_peaks(new_spec, session_gpu_facts(cal), float(key.freq_mhz))
    o = cal.options
    inp = BuildInput(
        key=key,
        hardware_name=facts.hardware_name,
        device=cal.backend.device,
        power_mode=facts.power_mode,
        power_mode_source=facts.power_mode_source,
        freq_source=facts.freq_source,
        calibration_date=cal.started_at,
        tool_version=__version__,
        framework_facts=cal.backend.facts(),
        records=cal.records,
        supports=cal.supports,
        precisions=cal.backend.precisions(),
        spec=spec,
        # efficiency against the clock really run at
        efficiency_spec=peaks_at_clock(spec, clock.peaks_clock_mhz, clock.peaks_clock_by_precision),
        host=host,
        blas=collect_blas(),
        command_line=command_line,
        selection=selection,
        options={"quick": o.quick, "sizes": o.sizes, "min_gflops": o.min_gflops, "max_call_s": o.max_call_s,
                 "force": o.force},
        wall_time_s=cal.wall_time_s(),
        skips=cal.skips,
        extra_metadata={**cal.extra_metadata, "clock": clock.metadata},
        warnings=[*cal.warnings, *clock.warnings],
        memory=cal.memory,
        layouts={p: choice.as_dict() for p, choice in cal.layouts.items()},
        max_achievable={p: result.as_dict() for p, result in cal.max_achievable.items()},
        blas_records=cal.blas_records,
        shape_records=cal.shape_records,
        launch_floors=cal.launch_floors,
    )
    doc = build_calibration(inp)
    path = calibration_path(o.registry, key)
    try:
        if o.dry_run:
            check_valid(doc, "calibration")  # the writer validates what it files: once, there
            return Filed(doc, path, written=False)
        path, kept = write_calibration(o.registry, key, doc, new_spec)
    except HwcalError as exc:
        raise HwcalError(f"{exc}\n  the measurements are kept in {_keep_rejected(doc, key)}") from None
    return Filed(doc, path, written=True, history=kept)


def _keep_rejected(doc: dict[str, Any], key: CalibrationKey) -> Path:
    """A run that cannot be filed still keeps what it measured, outside the registry, for a look or a retry:
    in this user's own folder of the host's shared state folder (``hwcal.registry.locks``)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"{key.hardware_id}__{key.filename.removesuffix('.json')}.{stamp}.json"
    return keep_rejected_text(name, json.dumps(doc, indent=2, default=str) + "\n")
