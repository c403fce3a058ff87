"""The listing cache: what full validation said about each registry file, keyed by the file's identity
(size, mtime_ns, ctime_ns, inode), so ``list``, ``list --summary`` and ``Registry.get`` stay fast on a
fleet's registry (thousands of files; reading and checking one costs ~3 ms).

Stored in the registry under ``.hwcal-cache/`` (hidden: the walker never lists it) and kept in memory
for the process. A file changed in any way (content, mode, a copy over it) changes its ctime, so its
entry no longer matches and it is validated again. The cache is only a shortcut for reading: full
validation stays in ``validate``, in ``Registry.read`` of one file and in the writer. Writing the
cache is best effort: a registry the user may only read is listed all the same.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from hwcal.document.schema import schema_files
from hwcal.errors import HwcalError
from hwcal.registry import fsio
from hwcal.version import __version__

CACHE_DIR = ".hwcal-cache"
CACHE_FILE = "listing-v1.cache"  # not *.json: no tool or glob takes it for a registry file
# One process keeps each registry's cache, keyed by the cache file's own identity.
_MEMO: dict[Path, tuple[tuple[int, ...] | None, dict[str, Any]]] = {}


# The modules whose code decides whether a file is valid: a change to any of them is a new rule.
_RULE_MODULES = ("hwcal.registry.validity", "hwcal.naming", "hwcal.document.schema", "hwcal.document.format2",
                 "hwcal.registry.layout", "hwcal.registry.fsio")


@cache
def fingerprint() -> str:
    """What a cached verdict depends on besides the file: hwcal's version, the schemas' content, the source
    of the modules that apply the rules and the validators' versions. Any change invalidates every entry."""
    digest = hashlib.sha256(__version__.encode())
    for f in schema_files():
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    for name in _RULE_MODULES:
        origin = getattr(importlib.util.find_spec(name), "origin", None)
        digest.update(Path(origin).read_bytes() if origin else name.encode())
    for dist in ("jsonschema", "jsonschema-rs"):
        try:
            digest.update(f"{dist}=={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{dist} absent".encode())
    return digest.hexdigest()[:16]


def signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def file_signature(path: Path) -> tuple[int, ...] | None:
    """The identity of a regular file (symlinks followed); None for anything else or a missing file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return signature(st) if stat.S_ISREG(st.st_mode) else None


class ListingCache:
    """path (relative to the registry) -> {"sig": [...], "ok": bool, "reason": str, "brief": {...}}."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / CACHE_DIR / CACHE_FILE
        self.dirty = False
        self.entries: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        real = Path(os.path.abspath(self.root))
        sig = file_signature(self.path)
        memo = _MEMO.get(real)
        if memo is not None and memo[0] == sig:
            return memo[1]
        entries: dict[str, Any] = {}
        if sig is not None and fsio.contained(self.path, self.root):
            try:
                data = json.loads(fsio.read_regular_bytes(self.path))
                if isinstance(data, dict) and data.get("fingerprint") == fingerprint() and \
                        isinstance(data.get("entries"), dict):
                    entries = data["entries"]
            except (OSError, HwcalError, ValueError, RecursionError):
                entries = {}  # a damaged cache is only a slower listing
        _MEMO[real] = (sig, entries)
        return entries

    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.root)

    def get(self, path: Path, sig: tuple[int, ...] | None) -> dict[str, Any] | None:
        if sig is None:
            return None
        entry = self.entries.get(self._rel(path))
        if isinstance(entry, dict) and entry.get("sig") == list(sig):
            return entry
        return None

    def put(self, path: Path, sig: tuple[int, ...] | None, ok: bool, reason: str = "",
            brief: dict[str, Any] | None = None) -> None:
        if sig is None:
            return
        self.entries[self._rel(path)] = {"sig": list(sig), "ok": ok, "reason": reason, "brief": brief}
        self.dirty = True

    def save(self) -> None:
        """Write the cache (best effort; never fails a listing)."""
        if not self.dirty:
            return
        self.dirty = False
        try:
            if not self.root.is_dir():
                return
            text = json.dumps({"fingerprint": fingerprint(), "entries": self.entries}, allow_nan=False,
                              separators=(",", ":"))
            fsio.atomic_write_text(self.path, text, self.root)
            _MEMO[Path(os.path.abspath(self.root))] = (file_signature(self.path), self.entries)
        except (OSError, HwcalError, ValueError):
            return
