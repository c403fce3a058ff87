"""Superseded calibrations kept compressed: ``calibrations/history/<name>.json`` becomes ``<name>.json.gz``.

A registry keeps every calibration it replaced, and a CPU torch run files 1.2 MB of JSON: this project's own
registry grew past 58 MB, most of it history, which gzip packs about 11x (1,206,892 -> 104,005 bytes). Every
reader takes both forms (``hwcal.registry.fsio.read_registry_bytes``: at most 64 MiB unpacked, so a small file
cannot unpack into gigabytes); current files, ``.format1`` originals and writer-kept ``.corrupt`` copies stay
as they are. Lossless: the packed file must unpack to the very bytes it replaces before the original goes.
Under the hardware folder's lock, so a writer is never raced; a kill between the packed file's write and the
original's removal leaves both, identical, and the next run removes the original.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwcal.registry import fsio
from hwcal.registry.layout import GZ_SUFFIX, walk
from hwcal.registry.reader import BadRegistryFile, read_json
from hwcal.registry.writer import lock_for

LEVEL = 9  # history is written once and read seldom: the smallest file


@dataclass(frozen=True)
class Compression:
    """What happened to one history file: ``compressed``, ``would compress`` (a dry run), ``left`` (not
    readable as JSON: kept as it is) or ``error``."""

    path: Path
    action: str
    before: int = 0
    after: int = 0
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "action": self.action, "bytes_before": self.before,
                "bytes_after": self.after, "message": self.message}


def compress_history(registry: Path, dry_run: bool = False) -> list[Compression]:
    """Compress every readable, uncompressed history calibration of ``registry`` (see the module docstring)."""
    steps: list[Compression] = []
    for spot in walk(registry):
        if spot.kind != "calibration" or not spot.history or not spot.path.name.endswith(".json"):
            continue
        if dry_run:
            steps.append(_plan(spot.path, registry))
            continue
        assert spot.hardware_dir is not None
        with lock_for(registry, spot.device_type, spot.hardware_dir.name):
            steps.append(compress_file(spot.path, registry))
    return steps


def _plan(path: Path, registry: Path) -> Compression:
    try:
        read_json(path, registry)
        raw = fsio.read_regular_bytes(path)
    except (BadRegistryFile, OSError, fsio.UnsafePathError) as exc:
        return Compression(path, "left", message=f"not read, left as it is: {exc}")
    return Compression(path, "would compress", len(raw), len(gzip.compress(raw, LEVEL, mtime=0)))


def compress_file(path: Path, registry: Path) -> Compression:
    """One history file packed beside itself, checked, then the original removed; call with its folder's lock."""
    try:
        read_json(path, registry)  # only what reads as a registry file: a damaged one stays as evidence
        raw = fsio.read_regular_bytes(path)
    except (BadRegistryFile, OSError, fsio.UnsafePathError) as exc:
        return Compression(path, "left", message=f"not read, left as it is: {exc}")
    packed = gzip.compress(raw, LEVEL, mtime=0)
    target = path.with_name(path.name.removesuffix(".json") + GZ_SUFFIX)
    try:
        if target.exists():
            if fsio.read_registry_bytes(target) != raw:
                return Compression(path, "error", len(raw), message=f"{target.name} exists and holds other bytes; "
                                   "original kept")
            # else an earlier, interrupted run packed it: only the original is left to remove
        else:
            fsio.atomic_write_bytes(target, packed, registry)
            if fsio.read_registry_bytes(target) != raw:
                target.unlink()
                return Compression(path, "error", len(raw), message="the packed file did not unpack to the same "
                                   "bytes; original kept")
        os.unlink(path)
    except (OSError, fsio.UnsafePathError) as exc:
        return Compression(path, "error", len(raw), message=f"{exc}; original kept")
    return Compression(target, "compressed", len(raw), target.stat().st_size)
