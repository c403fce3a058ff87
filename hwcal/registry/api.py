"""Reading the registry back: listing, filtering, choosing the most recent calibration, and saying
why a file cannot be used.

asv's rule: a listing skips a bad file with a warning that names it; a file the user names fails
loudly with the reason (``RegistryFileError``, one line). "Most recent" is the newest
``metadata.calibration_date``, never the file's mtime (copies and checkouts rewrite mtimes).

    from hwcal import Registry
    reg = Registry()                                   # $HWCAL_REGISTRY, else the repo's registry/
    profile = reg.get("jetson_orin_nano_gpu", calibration_filter={"power_mode": "MAXN", "framework": "torch"})
    profile.calibration["precision_matrix"]["peak_gflops_by_precision"]["fp16"]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hwcal.errors import HwcalError
from hwcal.naming import CalibrationKey
from hwcal.registry.cache import ListingCache, file_signature
from hwcal.registry.filters import CalibrationFilter, normalise_filter
from hwcal.registry.layout import ENV_REGISTRY, default_registry, escape_reason, hardware_files, walk
from hwcal.registry.reader import (
    BadRegistryFile,
    CalibrationEntry,
    brief_of,
    entry_from_brief,
    read_calibration,
    read_spec,
)
from hwcal.registry.succession import FUTURE_SKEW_S, is_future


class RegistryWarning(UserWarning):
    """A registry file skipped while listing; the message names the file and the reason."""


class UnknownHardwareError(HwcalError):
    """A hardware id the registry does not hold; the message lists the ids it does."""


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class HardwareInfo:
    """One ``<device_type>/<hardware_id>/`` folder: its spec (None when missing or unreadable)."""

    hardware_id: str
    device_type: str
    path: Path
    spec: dict[str, Any] | None = None

    @property
    def model(self) -> str:
        return str((self.spec or {}).get("model") or self.hardware_id)

    def summary(self) -> dict[str, Any]:
        return {"hardware_id": self.hardware_id, "device_type": self.device_type, "model": self.model,
                "path": str(self.path), "has_spec": self.spec is not None}


@dataclass
class Profile:
    """What ``Registry.get`` returns: the hardware's spec with the chosen calibration."""

    hardware_id: str
    device_type: str
    spec: dict[str, Any] | None
    calibration: dict[str, Any]
    path: Path
    calibration_date: datetime

    @property
    def key(self) -> CalibrationKey:
        return CalibrationKey(**self.calibration["key"])

    def peak_gflops(self, precision: str) -> float | None:
        return self.calibration["precision_matrix"]["peak_gflops_by_precision"].get(precision)

    @property
    def measured_bandwidth_gbps(self) -> float | None:
        return self.calibration.get("measured_bandwidth_gbps")

    def predict(self, operation: str, precision: str, mode: str = "back_to_back", **dims: int) -> Any:
        """Predicted time of one call (``hwcal.model.predict.Prediction``: seconds, gflops, gbps,
        efficiency, basis, points, warnings); e.g. ``predict("gemm", "bf16", m=4096, n=4096, k=4096)``.
        ``mode``: back_to_back (calls in a stream, the default) or isolated (each call synchronised)."""
        from hwcal.model.predict import predictor_for  # curves built once per Profile, kept on it
        return predictor_for(self).predict(operation, precision, mode, **dims)

    def efficiency(self, operation: str, precision: str, **dims: int) -> float | None:
        """The predicted call's fraction of the precision's peak (of bandwidth for memory-bound ops)."""
        from hwcal.model.predict import predictor_for
        return predictor_for(self).efficiency(operation, precision, "back_to_back", **dims)


class Registry:
    """Read access to a registry folder (``<device_type>/<hardware_id>/spec.json`` and ``calibrations/``).

    Every call rescans the folder, so a calibration filed meanwhile is seen. Files that cannot be used
    are skipped, reported once each as a ``RegistryWarning`` and kept in ``skipped``.
    """

    def __init__(self, root: str | Path | None = None, *, emit_warnings: bool = True) -> None:
        self.root = Path(root) if root is not None else default_registry()
        self.emit_warnings = emit_warnings
        self.skipped: list[SkippedFile] = []
        # Files used, but worth a warning (a calibration dated in the future).
        self.notices: list[SkippedFile] = []
        self._warned: set[tuple[Path, str]] = set()
        self._cache: ListingCache | None = None

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # -- scanning --
    def _skip(self, path: Path, reason: str) -> None:
        item = SkippedFile(path, reason)
        if item not in self.skipped:
            self.skipped.append(item)
        if self.emit_warnings and (path, reason) not in self._warned:
            self._warned.add((path, reason))
            warnings.warn(str(item), RegistryWarning, stacklevel=3)

    def _check_root(self) -> bool:
        if not self.root.exists():
            return False
        if not self.root.is_dir():
            raise HwcalError(f"registry {self.root} is not a folder; give --registry PATH or set {ENV_REGISTRY}")
        return True

    def _hardware_dirs(self) -> list[tuple[str, Path]]:
        if not self._check_root():
            return []
        found: list[tuple[str, Path]] = []
        for spot in walk(self.root, calibrations=False):
            if spot.kind == "hardware":
                found.append((spot.device_type, spot.path))
            elif spot.kind == "problem" and spot.listed:
                self._skip(spot.path, spot.reason)
        return found

    def _notice(self, path: Path, reason: str) -> None:
        item = SkippedFile(path, reason)
        if item not in self.notices:
            self.notices.append(item)
            if self.emit_warnings:
                warnings.warn(str(item), RegistryWarning, stacklevel=3)

    @property
    def cache(self) -> ListingCache:
        if self._cache is None:
            self._cache = ListingCache(self.root)
        return self._cache

    def _hardware_info(self, device_type: str, hw_dir: Path) -> HardwareInfo:
        info = HardwareInfo(hw_dir.name, device_type, hw_dir)
        spec_file = hw_dir / "spec.json"
        if not spec_file.exists() and not spec_file.is_symlink():
            self._skip(spec_file, "missing: this hardware has no spec.json (theoretical peaks unknown)")
            return info
        escape = escape_reason(spec_file, self.root)
        sig = None if escape else file_signature(spec_file)
        hit = self.cache.get(spec_file, sig)
        if hit is not None:
            if hit["ok"]:
                info.spec = hit["brief"]
            else:
                self._skip(spec_file, hit["reason"])
            return info
        try:
            info.spec = read_spec(spec_file, self.root)
            self.cache.put(spec_file, sig, True, brief=info.spec)
        except BadRegistryFile as exc:
            self._skip(exc.path, exc.reason)
            self.cache.put(spec_file, sig, False, exc.reason)
        return info

    def _read_one(self, path: Path) -> CalibrationEntry | None:
        """One listed calibration: from the cache when the file is unchanged, else fully read and checked."""
        escape = escape_reason(path, self.root)
        sig = None if escape else file_signature(path)  # None (links out, FIFOs, devices): never cached
        hit = self.cache.get(path, sig)
        entry: CalibrationEntry | None = None
        if hit is not None:
            if not hit["ok"]:
                self._skip(path, hit["reason"])
                return None
            try:
                entry = entry_from_brief(path, hit["brief"], self.root)
            except (KeyError, TypeError, ValueError, HwcalError):
                entry = None  # a cache entry of another shape: read the file
        if entry is None:
            try:
                entry = read_calibration(path, self.root)
                self.cache.put(path, sig, True, brief=brief_of(entry.doc))
            except BadRegistryFile as exc:
                self._skip(exc.path, exc.reason)
                self.cache.put(path, sig, False, exc.reason)
                return None
        if is_future(entry.calibration_date):
            self._notice(path, f"calibration_date {entry.calibration_date.isoformat()} is in the future (more "
                               f"than {FUTURE_SKEW_S / 60:g} min ahead of this host's clock); the next calibration "
                               "of its key replaces it")
        return entry

    def _read_entries(self, hw_dir: Path, history: bool) -> list[CalibrationEntry]:
        entries: list[CalibrationEntry] = []
        for spot in hardware_files(hw_dir, hw_dir.parent.name, history):
            if spot.kind == "calibration":
                entry = self._read_one(spot.path)
                if entry is not None:
                    entries.append(entry)
            elif spot.kind in ("problem", "corrupt") and spot.listed:
                self._skip(spot.path, spot.reason)
        return entries

    # -- public API --
    def hardware(self) -> list[HardwareInfo]:
        """Every hardware folder, sorted by id; a missing or invalid spec.json is warned about."""
        return [self._hardware_info(t, d) for t, d in self._hardware_dirs()]

    def hardware_ids(self) -> list[str]:
        return sorted({d.name for _, d in self._hardware_dirs()})

    def search(self, text: str) -> list[HardwareInfo]:
        """Hardware whose id, model or vendor contains ``text`` (case-insensitive)."""
        needle = text.casefold()
        found = []
        for info in self.hardware():
            spec = info.spec or {}
            hay = " ".join(str(v) for v in (info.hardware_id, spec.get("model"), spec.get("vendor")) if v)
            if needle in hay.casefold():
                found.append(info)
        return found

    def _dirs_for(self, hardware_id: str | None) -> list[tuple[str, Path]]:
        dirs = self._hardware_dirs()
        if hardware_id is None:
            return dirs
        chosen = [(t, d) for t, d in dirs if d.name == hardware_id]
        if not chosen:
            known = sorted({d.name for _, d in dirs})
            raise UnknownHardwareError(
                f"unknown hardware {hardware_id!r} in registry {self.root}; known: "
                + (", ".join(known) if known else "none (the registry is empty)"))
        return chosen

    def list_calibrations(self, hardware_id: str | None = None,
                          calibration_filter: Mapping[str, object] | CalibrationFilter | None = None,
                          *, history: bool = False) -> list[CalibrationEntry]:
        """Valid calibrations (of one hardware, or all), filtered, sorted naturally by power mode.

        With ``history`` the superseded ones under ``calibrations/history/`` are included.
        """
        flt = normalise_filter(calibration_filter)
        entries: list[CalibrationEntry] = []
        for device_type, hw_dir in self._dirs_for(hardware_id):
            self._hardware_info(device_type, hw_dir)  # warns about a missing or broken spec.json
            entries += [e for e in self._read_entries(hw_dir, history) if flt.matches(e.key)]
        self.cache.save()
        return sorted(entries, key=CalibrationEntry.sort_key)

    def history(self, hardware_id: str,
                calibration_filter: Mapping[str, object] | CalibrationFilter | None = None
                ) -> list[CalibrationEntry]:
        """Current and superseded calibrations matching the filter, newest first."""
        entries = self.list_calibrations(hardware_id, calibration_filter, history=True)
        return sorted(entries, key=lambda e: e.calibration_date, reverse=True)

    def get(self, hardware_id: str, calibration_filter: Mapping[str, object] | None = None) -> Profile:
        """The spec with the most recent (by ``calibration_date``) calibration matching every filter key."""
        flt = normalise_filter(calibration_filter)
        dirs = self._dirs_for(hardware_id)
        candidates = self.list_calibrations(hardware_id, flt)
        if not candidates:
            available = [e.path.name for e in self.list_calibrations(hardware_id)]
            raise HwcalError(f"no calibration of {hardware_id!r} matches {flt.describe()}; available: "
                             + (", ".join(available) if available else "none"))
        best = max(candidates, key=lambda e: e.calibration_date)
        hw_dir = next(d for t, d in dirs if t == best.key.device_type)
        spec = self._hardware_info(best.key.device_type, hw_dir).spec
        self.cache.save()
        try:
            doc = best.doc  # read and fully checked now (the listing may have come from the cache)
        except BadRegistryFile as exc:  # changed since it was listed
            raise HwcalError(str(exc)) from None
        return Profile(hardware_id, best.key.device_type, spec, doc, best.path, best.calibration_date)

    def read(self, path: str | Path) -> CalibrationEntry:
        """One calibration the user named; fails with the reason (RegistryFileError)."""
        return read_calibration(Path(path), self.root)

    def spec(self, hardware_id: str) -> dict[str, Any]:
        """The hardware's spec.json; fails with the reason when missing or invalid."""
        _device_type, hw_dir = self._dirs_for(hardware_id)[0]
        return read_spec(hw_dir / "spec.json", self.root)
