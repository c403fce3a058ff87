"""Validation of a whole registry: every file judged where it sits by the one rule (``validity.problems``:
format version, schema, names), every problem reported as ``file: json_path: message``."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwcal.document.schema import compiled_validator
from hwcal.registry.fsio import stale_temps
from hwcal.registry.layout import walk
from hwcal.registry.reader import BadRegistryFile, parse_date, read_json
from hwcal.registry.succession import FUTURE_SKEW_S, is_future
from hwcal.registry.validity import problems


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
    """Check one file where it sits (``validity.problems``), adding every problem; its JSON when it parsed."""
    try:
        doc = read_json(path, report.root)
    except BadRegistryFile as exc:
        report.add(path, "$", exc.reason)
        return None
    for problem in problems(doc, kind, path):
        report.add(path, problem.json_path, problem.message)
    return doc if isinstance(doc, dict) else None


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
            _validate_spec(report, spot.path)
            cal_dir = spot.path / "calibrations"
            for leftover in stale_temps([spot.path, cal_dir, cal_dir / "history"]):
                report.notes.append(f"{leftover}: temp file of a killed write; the next write to this hardware "
                                    "removes it")
        else:
            report.calibrations_checked += 1
            pending.append(spot.path)
    compiled_validator("calibration")  # built once here, not once per worker process
    for errors, notes in _map(_check_calibration, [(root, p) for p in pending]):
        report.errors += errors
        report.notes += notes
    return report


# A fleet registry holds thousands of calibrations at ~3 ms of CPU each (2.4 of them parsing the JSON, 0.3
# the compiled schema check): check them in parallel, one process per core, above this many (below it,
# forking the workers costs about what it saves).
PARALLEL_FROM = 64


def _check_calibration(args: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    root, path = args
    report = ValidationReport(root)
    doc = _check_document(report, path, "calibration")
    if doc is not None:
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


def _validate_spec(report: ValidationReport, hw_dir: Path) -> None:
    spec_file = hw_dir / "spec.json"
    if not spec_file.exists():
        report.add(spec_file, "$", "missing: every hardware folder needs a spec.json")
        return
    report.specs_checked += 1
    _check_document(report, spec_file, "spec")


def _note_future(report: ValidationReport, path: Path, doc: dict[str, Any]) -> None:
    try:
        date = parse_date(doc["metadata"]["calibration_date"])
    except (KeyError, TypeError, ValueError):
        return
    if is_future(date):
        report.notes.append(f"{path}: $.metadata.calibration_date: {date.isoformat()} is in the future (more than "
                            f"{FUTURE_SKEW_S / 60:g} min ahead of this host's clock); the next calibration of its "
                            "key replaces it")
