"""End of a calibration session: detect the key, build the document, validate, file it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.document.builder import BuildInput, RunRecord, build_calibration, new_spec
from hwcal.document.spec import (
    identity_conflict,
)
from hwcal.errors import HwcalError
from hwcal.machine import collect_blas, collect_host
from hwcal.machine.sources import LOCAL
from hwcal.measure.session import CalibrationSession, RunIdentity
from hwcal.naming import CalibrationKey, calibration_path, check_power_mode, spec_path
from hwcal.plugin.clocks import finish_clocks, session_gpu_facts, session_key_facts
from hwcal.registry.locks import keep_rejected_text
from hwcal.registry.reader import BadRegistryFile, read_json, read_spec
from hwcal.registry.succession import is_partial
from hwcal.registry.writer import check_valid, held_back_by_current, place_calibration


@dataclass
class Filed:
    doc: dict[str, Any]
    path: Path
    written: bool
    history: Path | None = None
    held_back: str | None = None  # why the run went to history instead of becoming current


def detect_identity(cal: CalibrationSession) -> RunIdentity:
    """The run's key and the facts it rests on, detected once (at session start, after the preflight) from
    the session's own sources, with the options overriding detection; the folder's spec as it is now."""
    opts = cal.options
    facts = session_key_facts(cal)  # detected at session start: NVML failing later cannot change the key
    power_mode, pm_source = (opts.power_mode, "--power-mode") if opts.power_mode else \
        (facts.power_mode, facts.power_mode_source)
    freq, freq_source = (opts.frequency_mhz, "--frequency-mhz") if opts.frequency_mhz else \
        (facts.freq_mhz, facts.freq_source)
    if not freq or freq <= 0:
        raise HwcalError("could not detect the clock ceiling for the registry key; give --frequency-mhz")
    detected_id = facts.hardware_id
    facts = replace(facts, hardware_id=opts.hardware_id or facts.hardware_id, power_mode=power_mode,
                    power_mode_source=pm_source, freq_mhz=int(freq), freq_source=freq_source,
                    power_mode_id=None if opts.power_mode else facts.power_mode_id)
    backend = cal.backend
    key = CalibrationKey(backend.device_type, facts.hardware_id, check_power_mode(power_mode), int(freq),
                         backend.framework)
    src = cal.machine_state.src if cal.machine_state is not None else LOCAL
    return RunIdentity(key=key, facts=facts, detected_hardware_id=detected_id, host=collect_host(src),
                       gpu=session_gpu_facts(cal), blas=collect_blas(), framework_facts=backend.facts(),
                       device=backend.device, precisions=backend.precisions(),
                       spec=_load_spec(opts.registry, key))


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


def _cpu(identity: RunIdentity) -> dict[str, Any]:
    cpu = identity.host.get("cpu")
    return cpu if isinstance(cpu, dict) else {}


def check_before_run(cal: CalibrationSession, selection: dict[str, Any]) -> RunIdentity:
    """Detect the run's identity once and check what would make filing fail, before the benchmarks run
    rather than after them: the key's power-mode token, a corrupt spec, a spec describing another chip,
    and a partial run about to replace a complete one."""
    identity = cal.identity = detect_identity(cal)
    key = identity.key
    check_identity(identity.spec, _cpu(identity), key, identity.detected_hardware_id)
    if not selection.get("partial") or cal.options.allow_partial or cal.options.dry_run:
        return identity
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
    return identity


def file_calibration(cal: CalibrationSession, command_line: list[str], selection: dict[str, Any]) -> Filed:
    """Build and validate the calibration; write it unless --dry-run. Raises HwcalError, writes nothing then."""
    identity = cal.identity or detect_identity(cal)
    key, o = identity.key, cal.options
    clock = finish_clocks(cal, identity.facts)
    # The folder's spec now (another run may have filed one since the start): it must describe this chip.
    spec = _load_spec(o.registry, key)
    check_identity(spec, _cpu(identity), key, identity.detected_hardware_id)
    spec_to_file = new_spec(identity, cal.started_at) if spec is None else None
    run = RunRecord(started_at=cal.started_at, options=o, command_line=command_line, selection=selection,
                    wall_time_s=cal.wall_time_s(), preflight=cal.preflight, clock=clock,
                    schedule=cal.schedule.as_dict() if cal.schedule is not None else None)
    doc = build_calibration(BuildInput(cal.results, identity, run, spec or spec_to_file or {}))
    path = calibration_path(o.registry, key)
    try:
        if o.dry_run:
            check_valid(doc, "calibration")  # the writer validates what it files: once, there
            held = None if o.file_disturbed else held_back_by_current(o.registry, path, doc)
            return Filed(doc, path, written=False, held_back=held)
        placed = place_calibration(o.registry, key, doc, spec_to_file, keep_quieter=not o.file_disturbed)
    except HwcalError as exc:
        raise HwcalError(f"{exc}\n  the measurements are kept in {_keep_rejected(doc, key)}") from None
    return Filed(doc, placed.path, written=True, history=placed.kept, held_back=placed.held_back)


def _keep_rejected(doc: dict[str, Any], key: CalibrationKey) -> Path:
    """A run that cannot be filed still keeps what it measured, outside the registry, for a look or a retry:
    in this user's own folder of the host's shared state folder (``hwcal.registry.locks``)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"{key.hardware_id}__{key.filename.removesuffix('.json')}.{stamp}.json"
    return keep_rejected_text(name, json.dumps(doc, indent=2, default=str) + "\n")
