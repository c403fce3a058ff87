"""Importing the original system's registry: plan what each file becomes (spec, current calibration,
history, validation data, unchanged, skip, error, ignored) without writing, then write through the
registry writer. Every file under the source is accounted for, with counts per family.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.interop.legacy_calibration import (
    Converted,
    NothingMeasured,
    has_host_cpu_part,
    host_cpu_part,
    legacy_calibration_to_v1,
)
from hwcal.interop.legacy_common import LegacyFormatError
from hwcal.interop.legacy_curves import Curves, legacy_curves_to_v1, same_chip
from hwcal.interop.legacy_dla import DlaRun, is_dla_calibration, legacy_dla_run
from hwcal.interop.legacy_files import FAMILIES, LegacyFile, find_legacy_files, read_source
from hwcal.interop.legacy_spec import board_units, legacy_spec_to_v1
from hwcal.interop.migrate_curves import plan_curves
from hwcal.interop.migrate_keys import MigrationStep, finish, plan_dla_key, plan_key
from hwcal.naming import CalibrationKey, spec_path
from hwcal.registry.fsio import read_regular_bytes
from hwcal.registry.reader import BadRegistryFile, read_json
from hwcal.registry.writer import atomic_write_text, check_valid, dumps, write_calibration, write_history, write_spec

__all__ = ["ACTIONS", "MigrationStep", "counts_by_family", "execute", "make_strict", "plan_migration"]

ACTIONS = ("spec", "write", "history", "validation", "unchanged", "skip", "error", "ignored")
WRITES = ("spec", "write", "history", "validation")


@dataclass
class _Read:
    lf: LegacyFile
    raw: bytes
    doc: Any

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass
class _Planner:
    registry: Path
    imported_at: datetime
    steps: list[MigrationStep] = field(default_factory=list)
    read: list[_Read] = field(default_factory=list)
    boards: dict[str, dict[str, str]] = field(default_factory=dict)
    cpu_folders: set[str] = field(default_factory=set)
    legacy_specs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # the original spec.json
    converted: list[tuple[LegacyFile, Converted]] = field(default_factory=list)
    dla: list[tuple[LegacyFile, DlaRun]] = field(default_factory=list)
    curves: list[tuple[LegacyFile, Curves]] = field(default_factory=list)

    def add(self, action: str, lf: LegacyFile, message: str, **kw: Any) -> None:
        self.steps.append(MigrationStep(action, lf.path, lf.rel, message=message, family=kw.pop("family", lf.family),
                                        **kw))

    def load(self, files: list[LegacyFile]) -> None:
        """Read every data file once (guarded); others are listed as ignored."""
        for lf in files:
            if lf.family == "other":
                self.add("ignored", lf, lf.reason)
                continue
            try:
                raw, doc = read_source(lf.path)
            except BadRegistryFile as exc:
                self.add("error", lf, f"cannot read: {exc.reason}")
                continue
            if lf.family in ("calibration", "archived_calibration") and is_dla_calibration(doc):
                lf = replace(lf, family="dla_calibration")
            self.read.append(_Read(lf, raw, doc))
            if lf.family == "spec" and isinstance(doc, dict):
                units = board_units(doc)
                if units and lf.hardware_folder:
                    self.boards[lf.hardware_folder] = units
            if lf.type_folder in ("cpu", "cpus") and lf.hardware_folder:
                self.cpu_folders.add(lf.hardware_folder)

    def host_cpu(self, gpu_id: str) -> tuple[str | None, str]:
        """The host CPU's hardware id of a GPU: from a board spec listing both, else a sibling ``*_cpu`` folder;
        only a CPU with a spec.json (imported now or in the registry), so nothing lands in a folder without one."""
        with_spec = {hw for (t, hw) in self.legacy_specs if t == "cpu"} | registry_hardware(self.registry, "cpu")
        for board, units in sorted(self.boards.items()):
            if units.get("gpu") == gpu_id and units.get("cpu"):
                if units["cpu"] not in with_spec:
                    return None, f"the board spec {board}/spec.json names it {units['cpu']}, which has no spec.json"
                return units["cpu"], f"the board spec {board}/spec.json lists both"
        sibling = gpu_id.removesuffix("_gpu") + "_cpu"
        if gpu_id.endswith("_gpu") and sibling in self.cpu_folders and sibling in with_spec:
            return sibling, f"the original registry's cpu/{sibling} folder beside gpu/{gpu_id}"
        return None, "no board spec lists this GPU with a CPU that has a spec.json, and no cpu/<name>_cpu folder " \
                     "with one sits beside it"

    # ---- per family --------------------------------------------------------------------------------

    def plan_spec(self, r: _Read) -> None:
        doc = r.doc
        if isinstance(doc, dict) and "schema_version" in doc:
            self.add("skip", r.lf, "already an hwcal spec; not imported")
            return
        spec, notes, faults = legacy_spec_to_v1(doc, rel=r.lf.rel, type_folder=r.lf.type_folder,
                                                hardware_folder=r.lf.hardware_folder, imported_at=self.imported_at,
                                                source_sha256=r.sha)
        errors = schema_errors(spec, "spec")
        if errors:
            raise LegacyFormatError("converted spec is not valid: " + "; ".join(errors))
        self.legacy_specs[(spec["device_type"], spec["id"])] = doc if isinstance(doc, dict) else {}
        target = spec_path(self.registry, spec["device_type"], spec["id"])
        taken = [s.target for s in self.steps if s.action == "spec"]
        if target in taken:
            self.add("skip", r.lf, "another source spec.json files into the same folder; the first is kept",
                     target=target)
        elif target.exists() or target.is_symlink():
            self._existing_spec(r, target)
        else:
            self.add("spec", r.lf, "imported spec", target=target, doc=spec, corrections=notes, faults=faults)

    def _existing_spec(self, r: _Read, target: Path) -> None:
        try:
            there = read_json(target, self.registry)
        except BadRegistryFile as exc:
            self.add("skip", r.lf, f"spec.json already there (unreadable: {exc.reason}); kept", target=target)
            return
        sha = ((there.get("imported") or {}) if isinstance(there, dict) else {}).get("source_sha256")
        if sha == r.sha:
            self.add("unchanged", r.lf, "already imported", target=target)
        else:
            self.add("skip", r.lf, "a spec.json is already there; kept (never overwritten)", target=target)

    def plan_calibration(self, r: _Read) -> None:
        lf, doc = r.lf, r.doc
        if isinstance(doc, dict) and "schema_version" in doc:
            self.add("skip", lf, "already in hwcal format; not imported")
            return
        if is_dla_calibration(doc):
            spec = self.legacy_specs.get(("accelerator", lf.hardware_folder or ""))
            self.dla.append((lf, legacy_dla_run(doc, rel=lf.rel, type_folder=lf.type_folder,
                                                hardware_folder=lf.hardware_folder, spec=spec, source_sha256=r.sha)))
            return
        gpu = self._host_part(r)
        try:
            conv = legacy_calibration_to_v1(doc, rel=lf.rel, type_folder=lf.type_folder,
                                            hardware_folder=lf.hardware_folder, imported_at=self.imported_at,
                                            source_sha256=r.sha, family=lf.family)
        except NothingMeasured as exc:
            self.add("skip", lf, str(exc) + (f" (its host-CPU figures are filed: {gpu})" if gpu else ""))
            return
        self.converted.append((lf, conv))

    def _host_part(self, r: _Read) -> str:
        """File a GPU file's host-CPU all-core STREAM under the CPU's key; returns where, or ''."""
        lf = r.lf
        if lf.type_folder not in ("gpu", "gpus") or not has_host_cpu_part(r.doc, "gpu"):
            return ""
        cpu_id, why = self.host_cpu(lf.hardware_folder or "")
        if cpu_id is None:
            self.add("skip", lf, f"its host CPU's all-core STREAM has no CPU key: {why}; not imported",
                     family="host_cpu_memory")
            return ""
        try:
            part = host_cpu_part(r.doc, rel=lf.rel, type_folder=lf.type_folder, hardware_folder=lf.hardware_folder,
                                 cpu_id=cpu_id, imported_at=self.imported_at, source_sha256=r.sha)
        except HwcalError as exc:
            self.add("error", lf, f"host CPU part: {exc}", family="host_cpu_memory")
            return ""
        part.corrections.append(f"host CPU {cpu_id}: {why}")
        self.converted.append((lf, part))
        return f"cpu/{cpu_id}/{part.key.filename}"

    def plan_curves(self, r: _Read) -> None:
        curves = legacy_curves_to_v1(r.doc, rel=r.lf.rel, type_folder=r.lf.type_folder,
                                     hardware_folder=r.lf.hardware_folder, boards=self.boards,
                                     imported_at=self.imported_at, source_sha256=r.sha)
        device_type, hardware_id = curves.doc["device_type"], curves.doc["hardware_id"]
        known = {hw for (t, hw) in self.legacy_specs if t == device_type}
        known |= registry_hardware(self.registry, device_type)
        match, why = same_chip(hardware_id, device_type, known)
        if match is None:
            self.add("skip", r.lf, f"no hardware {device_type}/{hardware_id} (no spec.json for it in the source or "
                                   "the registry, none named like it): file its spec first, or rename the folder, "
                                   "then import again; not imported")
            return
        if match != hardware_id:
            curves.rehome(match, why)
        self.curves.append((r.lf, curves))

    def plan_file(self, r: _Read) -> None:
        try:
            if r.lf.family == "spec":
                self.plan_spec(r)
            elif r.lf.family in ("calibration", "archived_calibration", "dla_calibration"):
                self.plan_calibration(r)
            elif r.lf.family == "efficiency_curves":
                self.plan_curves(r)
            else:
                self.add("skip", r.lf, "a JSON file outside the original registry's layout (spec.json, "
                                       "calibration.json, calibrations/*.json, efficiency_curves.json); not imported")
        except NothingMeasured as exc:
            self.add("skip", r.lf, str(exc))
        except HwcalError as exc:
            self.add("error", r.lf, str(exc))

    # ---- across files --------------------------------------------------------------------------------

    def check_ceilings(self) -> None:
        """Files of one device and mode that record different clock ceilings: the mode in a name may be wrong."""
        groups: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        for _, conv in self.converted:
            groups[(conv.key.device_type, conv.key.hardware_id, conv.key.power_mode.casefold())].add(conv.key.freq_mhz)
        for _, conv in self.converted:
            ceilings = groups[(conv.key.device_type, conv.key.hardware_id, conv.key.power_mode.casefold())]
            if len(ceilings) > 1:
                conv.faults.append(f"files of mode {conv.doc['metadata']['power_mode']!r} on {conv.key.hardware_id} "
                                   f"record different clock ceilings ({', '.join(map(str, sorted(ceilings)))} MHz): "
                                   "the mode a file name gives may be wrong; each is keyed at its own ceiling")

    def plan_keys(self) -> None:
        taken: set[Path] = set()
        by_key: dict[CalibrationKey, list[tuple[LegacyFile, Converted]]] = defaultdict(list)
        for lf, conv in self.converted:
            try:
                finish(conv)
            except HwcalError as exc:
                self.add("error", lf, str(exc))
                continue
            by_key[conv.key].append((lf, conv))
        for key in sorted(by_key, key=lambda k: (k.device_type, k.hardware_id, k.filename)):
            self.steps += plan_key(self.registry, key, by_key[key], taken)
        runs: dict[CalibrationKey, list[tuple[LegacyFile, DlaRun]]] = defaultdict(list)
        for lf, run in self.dla:
            runs[run.key].append((lf, run))
        for key in sorted(runs, key=lambda k: (k.hardware_id, k.filename)):
            try:
                self.steps += plan_dla_key(self.registry, key, runs[key], self.legacy_specs.get((key.device_type,
                                                                                         key.hardware_id)),
                                           self.imported_at, taken)
            except HwcalError as exc:
                for lf, _ in runs[key]:
                    self.add("error", lf, str(exc), family="dla_calibration")
        self.steps += plan_curves(self.registry, self.curves)


def registry_hardware(registry: Path, device_type: str) -> set[str]:
    """Hardware ids of ``device_type`` that already have a spec.json in the registry."""
    folder = Path(registry) / device_type
    try:
        return {p.name for p in folder.iterdir() if (p / "spec.json").is_file()}
    except OSError:
        return set()


def plan_migration(source: Path, registry: Path, imported_at: datetime | None = None) -> list[MigrationStep]:
    """Decide, without writing, what importing ``source`` into ``registry`` does to each of its files."""
    planner = _Planner(Path(registry), imported_at or datetime.now(timezone.utc))
    planner.load(find_legacy_files(source))
    order = {"spec": 0}  # specs first: the board specs tie GPUs to their host CPUs, the DLA to its clocks
    for r in sorted(planner.read, key=lambda r: order.get(r.lf.family, 1)):
        planner.plan_file(r)
    planner.check_ceilings()
    planner.plan_keys()
    return planner.steps


def make_strict(actions: list[MigrationStep]) -> list[MigrationStep]:
    """``--strict``: every skipped data file becomes an error (nothing is left out quietly)."""
    for a in actions:
        if a.action == "skip":
            a.action, a.message = "error", f"--strict: not imported: {a.message}"
    return actions


def counts_by_family(actions: list[MigrationStep]) -> dict[str, dict[str, int]]:
    """Per family: the source files seen and the steps per action (a GPU file's host-CPU part is a step of
    its own family, ``host_cpu_memory``, not another file)."""
    out: dict[str, dict[str, int]] = {}
    seen = Counter(family for _, family in {(a.source, a.family) for a in actions if a.family != "host_cpu_memory"})
    steps = Counter((a.family, a.action) for a in actions)
    for family in [*FAMILIES, "host_cpu_memory"]:
        row = {"files": seen.get(family, 0), **{act: steps.get((family, act), 0) for act in ACTIONS}}
        if any(row.values()):
            out[family] = row
    return out


def _write(a: MigrationStep, registry: Path) -> None:
    if a.action == "write" and a.key is not None and a.doc is not None:
        write_calibration(registry, a.key, a.doc)
    elif a.action == "history" and a.key is not None and a.calibration_date is not None and a.doc is not None:
        check_valid(a.doc, "calibration")
        a.target = write_history(registry, a.key, dumps(a.doc), a.calibration_date)
    elif a.action == "spec" and a.doc is not None and not write_spec(registry, a.doc):
        raise HwcalError(f"{a.target} appeared meanwhile; not overwritten")
    elif a.action == "validation" and a.doc is not None and a.target is not None:
        check_valid(a.doc, "validation")
        if a.replaces is not None and a.target.exists():
            atomic_write_text(a.replaces, read_regular_bytes(a.target).decode("utf-8"), registry)
        atomic_write_text(a.target, dumps(a.doc), registry)


def execute(actions: list[MigrationStep], registry: Path) -> list[MigrationStep]:
    """Write what the plan says through the writer; a failed write turns its step (and the steps that are
    part of the same document) into an ``error`` and the rest go on."""
    for a in actions:
        if a.action not in WRITES or a.doc is None or a.target is None:
            continue
        try:
            _write(a, registry)
        except (HwcalError, OSError) as exc:
            failed_target, message = a.target, "; ".join(line.strip() for line in str(exc).splitlines())
            a.action, a.message = "error", message  # one line: the CLI's errors are one line each
            for b in actions:
                if b.action == "write" and b.doc is None and b.target == failed_target:
                    b.action, b.message = "error", f"not written: {message}"
    return actions
