"""Validation of a whole registry: every file against the schemas and the naming rules, every error
reported as ``file: json_path: message``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwcal.document.schema import schema_errors
from hwcal.registry.layout import walk
from hwcal.registry.reader import BadRegistryFile, naming_problems, read_json, version_problem


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
    for spot in walk(root):
        if spot.kind == "problem":
            report.add(spot.path, "$", spot.reason)
        elif spot.kind == "corrupt":
            report.notes.append(f"{spot.path}: {spot.reason}")
        elif spot.kind == "hardware":
            _validate_spec(report, spot.device_type, spot.path)
        else:
            report.calibrations_checked += 1
            doc = _check_document(report, spot.path, "calibration")
            if isinstance(doc, dict):
                for json_path, message in naming_problems(spot.path, doc):
                    report.add(spot.path, json_path, message)
    return report


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
