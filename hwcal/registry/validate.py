"""Validation of a whole registry: every file against the schemas and the naming rules, every error
reported as ``file: json_path: message``."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwcal.document.schema import schema_errors
from hwcal.registry.fsio import stale_temps
from hwcal.registry.layout import walk
from hwcal.registry.reader import BadRegistryFile, naming_problems, parse_date, read_json, version_problem
from hwcal.registry.succession import FUTURE_SKEW_S, is_future


@dataclass
class ValidationReport:
    """Every problem of a registry as ``file: json_path: message``, and how many files were checked."""

    root: Path
    errors: list[str] = field(default_factory=list)
    specs_checked: int = 0
    calibrations_checked: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, path: Path, json_path: str, message: str) -> None:
        self.errors.append(f"{path}: {json_path}: {message}")


def _check_document(report: ValidationReport, path: Path, kind: str) -> dict[str, Any] | None:
    """Schema-check one file, adding every error; the document when it parsed, else None."""
    try:
        doc = read_json(path, report.root)
    except BadRegistryFile as exc:
        report.add(path, "$", exc.reason)
        return None
    problem = version_problem(doc, kind)
    if problem:
        report.add(path, "$.schema_version" if isinstance(doc, dict) and "schema_version" in doc else "$", problem)
        return None
    for error in schema_errors(doc, kind):
        json_path, _, message = error.partition(": ")
        report.add(path, json_path, message)
    return doc


def validate_registry(root: str | Path) -> ValidationReport:
    """Check every spec.json and calibration under ``root`` against the schemas and the naming rules.

    A missing or empty registry is valid (nothing filed yet); files outside the layout are errors.
    """
    root = Path(root)
    report = ValidationReport(root)
    if not root.exists():
        report.notes.append(f"registry {root} does not exist: nothing to validate")
        return report
    if not root.is_dir():
        report.add(root, "$", "registry is not a folder")
        return report
    pending: list[Path] = []
    for spot in walk(root):
        if spot.kind == "problem":
            report.add(spot.path, "$", spot.reason)
        elif spot.kind == "corrupt":
            report.notes.append(f"{spot.path}: {spot.reason}")
        elif spot.kind == "hardware":
            _validate_spec(report, spot.device_type, spot.path)
            cal_dir = spot.path / "calibrations"
            for leftover in stale_temps([spot.path, cal_dir, cal_dir / "history"]):
                report.notes.append(f"{leftover}: temp file of a killed write; the next write to this hardware "
                                    "removes it")
        else:
            report.calibrations_checked += 1
            pending.append(spot.path)
    for errors, notes in _map(_check_calibration, [(root, p) for p in pending]):
        report.errors += errors
        report.notes += notes
    return report


# A fleet registry holds thousands of calibrations and the full schema check costs tens of ms each: check
# them in parallel, one process per core, above this many (below it, starting processes costs more).
PARALLEL_FROM = 64


def _check_calibration(args: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    root, path = args
    report = ValidationReport(root)
    doc = _check_document(report, path, "calibration")
    if isinstance(doc, dict):
        for json_path, message in naming_problems(path, doc):
            report.add(path, json_path, message)
        _note_future(report, path, doc)
    return report.errors, report.notes


def _map(fn: Callable[[tuple[Path, Path]], tuple[list[str], list[str]]],
         items: list[tuple[Path, Path]]) -> list[tuple[list[str], list[str]]]:
    workers = min(os.cpu_count() or 1, 16)
    if len(items) < PARALLEL_FROM or workers < 2:
        return [fn(i) for i in items]
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(fn, items, chunksize=max(1, len(items) // (workers * 8))))
    except (OSError, ValueError, BrokenProcessPool):  # no fork, no processes: the same work, serially
        return [fn(i) for i in items]


def _validate_spec(report: ValidationReport, device_type: str, hw_dir: Path) -> None:
    spec_file = hw_dir / "spec.json"
    if not spec_file.exists():
        report.add(spec_file, "$", "missing: every hardware folder needs a spec.json")
        return
    report.specs_checked += 1
    spec = _check_document(report, spec_file, "spec")
    if isinstance(spec, dict):
        if spec.get("id") != hw_dir.name:
            report.add(spec_file, "$.id", f"{spec.get('id')!r} disagrees with the folder {hw_dir.name!r}")
        if spec.get("device_type") != device_type:
            report.add(spec_file, "$.device_type",
                       f"{spec.get('device_type')!r} disagrees with the folder {device_type!r}")


def _note_future(report: ValidationReport, path: Path, doc: dict[str, Any]) -> None:
    try:
        date = parse_date(doc["metadata"]["calibration_date"])
    except (KeyError, TypeError, ValueError):
        return
    if is_future(date):
        report.notes.append(f"{path}: $.metadata.calibration_date: {date.isoformat()} is in the future (more than "
                            f"{FUTURE_SKEW_S / 60:g} min ahead of this host's clock); the next calibration of its "
                            "key replaces it")
