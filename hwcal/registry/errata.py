"""Errata: known faults of filed calibrations that cannot be re-measured yet, kept beside them in
``<registry>/errata.json`` (never by editing a measurement), so ``list`` and ``compare`` show a warning on
the keys they concern until a new calibration supersedes the faulty one.

An erratum names a key (``device_type/hardware_id/filename-stem``), the precisions it concerns, what is
wrong, and the newest calibration date it applies to: a calibration filed later is not affected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hwcal.registry.reader import BadRegistryFile, CalibrationEntry, parse_date, read_json

ERRATA_FILE = "errata.json"


@dataclass(frozen=True)
class Erratum:
    key: str
    precisions: tuple[str, ...]
    problem: str
    applies_until: datetime

    def concerns(self, device_type: str, hardware_id: str, stem: str, date: datetime) -> bool:
        return self.key == f"{device_type}/{hardware_id}/{stem}" and date <= self.applies_until

    def describe(self) -> str:
        return f"erratum ({', '.join(self.precisions)}): {self.problem}"


def load_errata(root: Path) -> tuple[list[Erratum], str | None]:
    """The registry's errata, and why the file could not be used (None when it is fine or absent)."""
    path = Path(root) / ERRATA_FILE
    if not path.exists():
        return [], None
    try:
        doc = read_json(path, Path(root))
        items: list[Any] = doc["errata"] if isinstance(doc, dict) else []
        return [Erratum(str(e["key"]), tuple(str(p) for p in e["precisions"]), str(e["problem"]),
                        parse_date(e["applies_until"])) for e in items], None
    except BadRegistryFile as exc:
        return [], exc.reason
    except (KeyError, TypeError, ValueError) as exc:
        return [], f"{path}: not an errata file ({type(exc).__name__}: {exc}); expected {{'errata': [...]}}"


def errata_for(root: Path, device_type: str, hardware_id: str, stem: str, date: datetime) -> list[str]:
    """The warnings a calibration of that key and date carries."""
    errata, problem = load_errata(root)
    found = [e.describe() for e in errata if e.concerns(device_type, hardware_id, stem, date)]
    return found + ([f"errata file unusable: {problem}"] if problem else [])


def entry_errata(root: Path, entry: CalibrationEntry) -> list[str]:
    """The errata warnings of one listed calibration."""
    return errata_for(root, entry.key.device_type, entry.key.hardware_id, entry.key.filename.removesuffix(".json"),
                      entry.calibration_date)
