"""Upgrading a registry's files to the current format in place, asv-style (``update_to_2``).

Every format-1 calibration (current and history) is rewritten as format 2; the bytes it had are kept
first in ``calibrations/history/<stem>.<stamp>.format1.json``, which listing skips. A format-2 file whose
efficiencies are not all shares of their ceilings, or whose derived parts the current rules derive otherwise
(``bound_efficiencies``), is rewritten the same way, its bytes kept packed as ``<stem>.<stamp>.prebound.json.gz``.
Each step is two atomic writes under the hardware folder's lock (keep, then replace), so a run interrupted
anywhere leaves every file whole, and running it again finishes the job: a file already current is left alone, and a
kept original with the same bytes is reused rather than kept twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwcal.document.format2 import update_to_2
from hwcal.document.rebound import bound_efficiencies
from hwcal.document.schema import CALIBRATION_FORMAT_VERSION
from hwcal.errors import HwcalError
from hwcal.naming import CalibrationKey, history_dir, history_path, history_stamp, packed_history_path
from hwcal.registry import fsio
from hwcal.registry.layout import walk
from hwcal.registry.reader import BadRegistryFile, parse_date, read_json
from hwcal.registry.validity import problems
from hwcal.registry.writer import atomic_write_text, dumps, lock_for


@dataclass
class UpgradeStep:
    """What happened to one file: ``upgraded``, ``current`` (already the current format) or ``error``."""

    path: Path
    action: str
    kept: Path | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "action": self.action, "kept": str(self.kept) if self.kept else None,
                "message": self.message}


def _kept_original(key: CalibrationKey, registry: Path, original: bytes, suffix: str) -> Path | None:
    """A ``<suffix>`` copy (``.format1``, ``.prebound``) of these exact bytes kept by an earlier, interrupted
    run."""
    folder = history_dir(registry, key)
    for kept in sorted(folder.glob(f"{key.filename.removesuffix('.json')}.*{suffix}.json*")):
        try:
            if fsio.read_registry_bytes(kept) == original:
                return kept
        except (OSError, BadRegistryFile):
            continue
    return None


PREBOUND_SUFFIX = ".prebound"


def upgrade_file(registry: Path, path: Path, dry_run: bool = False) -> UpgradeStep:
    """Upgrade one calibration file of ``registry`` to the current format (see the module docstring)."""
    try:
        doc = read_json(path, registry)
        version = doc.get("schema_version") if isinstance(doc, dict) else None
        suffix, what = ".format1", f"format {version} -> {CALIBRATION_FORMAT_VERSION}"
        # update_to_2: a format-1 file converted, a format-2 file's shape checked; then today's bounds (a format-1
        # GEMM may sit above its peak)
        upgraded, changed = bound_efficiencies(update_to_2(doc))
        if version == CALIBRATION_FORMAT_VERSION:
            if not changed:
                return UpgradeStep(path, "current")
            suffix, what = PREBOUND_SUFFIX, (f"efficiencies bounded to (0, 1] and derived parts composed again: "
                                             f"{len(changed)} change(s)")
        found = problems(upgraded, "calibration", path)  # the writer's one rule: what validate refuses
        if found:
            raise HwcalError(f"format {version} file does not upgrade to a valid format 2: {found[0]}")
        key = CalibrationKey(**upgraded["key"])
        stamp = history_stamp(parse_date(upgraded["metadata"]["calibration_date"]))
    except (BadRegistryFile, HwcalError, ValueError, TypeError, KeyError) as exc:
        return UpgradeStep(path, "error", message=str(exc))
    if dry_run:
        return UpgradeStep(path, "upgraded", message=f"would upgrade: {what} (dry run)")
    try:
        with lock_for(registry, key.device_type, key.hardware_id):
            original = fsio.read_registry_bytes(path)  # a packed history file (.json.gz) unpacked
            kept = _kept_original(key, registry, original, suffix)
            # kept packed where the file was, and always for a bounded one (history is most of a registry)
            if kept is None and (path.name.endswith(fsio.GZ_SUFFIX) or suffix == PREBOUND_SUFFIX):
                kept = packed_history_path(registry, key, stamp, suffix)
                fsio.atomic_write_bytes(kept, fsio.packed(original), registry)
            elif kept is None:
                kept = history_path(registry, key, stamp, suffix)
                atomic_write_text(kept, original.decode("utf-8"), registry)
            if path.name.endswith(fsio.GZ_SUFFIX):  # packed it stays
                fsio.atomic_write_bytes(path, fsio.packed(dumps(upgraded).encode("utf-8")), registry)
            else:
                atomic_write_text(path, dumps(upgraded), registry)
    except (HwcalError, OSError, UnicodeDecodeError) as exc:
        return UpgradeStep(path, "error", message=f"not upgraded: {exc}")
    return UpgradeStep(path, "upgraded", kept, what)


def upgrade_registry(registry: Path, dry_run: bool = False) -> list[UpgradeStep]:
    """Upgrade every calibration of ``registry`` (current and history) that is not in the current format."""
    if not registry.is_dir():
        raise HwcalError(f"registry {registry} is not a folder")
    return [upgrade_file(registry, spot.path, dry_run) for spot in walk(registry) if spot.kind == "calibration"]
