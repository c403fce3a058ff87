"""Superseded calibrations kept compressed: ``calibrations/history/<name>.json`` becomes ``<name>.json.gz``.

A registry keeps every calibration it replaced, and a CPU torch run files 1.2 MB of JSON: this project's own
registry grew past 58 MB, most of it history, which gzip packs about 11x (1,206,892 -> 104,005 bytes). The
writer now packs the history it files (``hwcal.registry.writer``); this packs what an older one left. Every
reader takes both forms (``hwcal.registry.fsio.read_registry_bytes``: at most 64 MiB unpacked, so a small file
cannot unpack into gigabytes). Current files, ``.format1`` originals, writer-kept ``.corrupt`` copies and
files in an older format (``hwcal-upgrade`` rewrites those first) stay as they are. Lossless: the packed file
must unpack to the very bytes it replaces before the original goes. Under the hardware folder's lock, so a
writer is never raced, and with Ctrl-C deferred; a kill between the packed file's write and the original's
removal leaves both, identical, and the next run removes the original.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import Timeout

from hwcal.document.schema import CALIBRATION_FORMAT_VERSION
from hwcal.registry import fsio
from hwcal.registry.fsio import GZ_SUFFIX
from hwcal.registry.layout import walk
from hwcal.registry.reader import BadRegistryFile, read_json
from hwcal.registry.writer import LOCK_TIMEOUT_S, lock_for


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
        try:
            with lock_for(registry, spot.device_type, spot.hardware_dir.name):
                steps.append(compress_file(spot.path, registry))
        except Timeout:
            steps.append(Compression(spot.path, "error", message=f"another writer held the folder's lock for over "
                                     f"{LOCK_TIMEOUT_S:g} s; left as it is"))
    return steps


def _packable(path: Path, registry: Path) -> bytes | Compression:
    """The file's bytes where it may be packed, else why not: only what reads as a registry file (a damaged one
    stays as evidence) in the current format (an older one is for ``hwcal-upgrade``, which rewrites it)."""
    try:
        doc = read_json(path, registry)
        raw = fsio.read_regular_bytes(path)
    except (BadRegistryFile, OSError, fsio.UnsafePathError) as exc:
        return Compression(path, "left", message=f"not read, left as it is: {exc}")
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version != CALIBRATION_FORMAT_VERSION:
        return Compression(path, "left", message=f"format {version}, not {CALIBRATION_FORMAT_VERSION}: left for "
                           "hwcal-upgrade")
    return raw


def _target(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".json") + GZ_SUFFIX)


def _clash(path: Path, raw: bytes) -> Compression | None:
    """An error where the packed name is taken by a file that does not unpack to ``raw``; None where it is free
    or holds these very bytes (an earlier, interrupted run packed it)."""
    target = _target(path)
    if not target.exists():
        return None
    try:
        same = fsio.read_registry_bytes(target) == raw
    except (OSError, fsio.UnsafePathError) as exc:
        return Compression(path, "error", len(raw), message=f"{target.name} exists and cannot be read ({exc}); "
                           "original kept")
    return None if same else Compression(path, "error", len(raw), message=f"{target.name} exists and holds other "
                                         "bytes; original kept")


def _plan(path: Path, registry: Path) -> Compression:
    raw = _packable(path, registry)
    if isinstance(raw, Compression):
        return raw
    return _clash(path, raw) or Compression(path, "would compress", len(raw), len(fsio.packed(raw)))


def compress_file(path: Path, registry: Path) -> Compression:
    """One history file packed beside itself, checked, then the original removed; call with its folder's lock."""
    raw = _packable(path, registry)
    if isinstance(raw, Compression):
        return raw
    clash = _clash(path, raw)
    if clash is not None:
        return clash
    target = _target(path)
    try:
        with fsio.interrupts_deferred():  # a Ctrl-C waits for the pair to be settled: packed and checked, one left
            if not target.exists():  # else an earlier, interrupted run packed it: only the original is left to go
                fsio.atomic_write_bytes(target, fsio.packed(raw), registry)
                if fsio.read_registry_bytes(target) != raw:
                    target.unlink()
                    return Compression(path, "error", len(raw), message="the packed file did not unpack to the "
                                       "same bytes; original kept")
            os.unlink(path)
            size = target.stat().st_size
    except (OSError, fsio.UnsafePathError) as exc:
        return Compression(path, "error", len(raw), message=f"{exc}; original kept")
    return Compression(target, "compressed", len(raw), size)
