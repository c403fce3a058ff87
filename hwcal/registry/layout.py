"""Where things live in a registry folder and how a folder is walked: the one walker that listing,
``get`` and validation share, and the containment rule (nothing that resolves outside the registry)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hwcal.naming import DEVICE_TYPES, hardware_id_token
from hwcal.registry.fsio import GZ_SUFFIX

ENV_REGISTRY = "HWCAL_REGISTRY"
UPGRADE_HINT = "upgrade hwcal (pip install --upgrade hwcal, or git pull in its checkout)"
MIGRATE_HINT = "python tools/migrate_calibrations.py SOURCE --registry REGISTRY"
# calibrations/history/<stem>.<UTC stamp>[.n][.corrupt][.format1|.prebound].json, as the writer names superseded
# files (.corrupt: unreadable when superseded; .format1, .prebound: the original bytes of a file hwcal-upgrade
# rewrote as format 2, or with its efficiencies bounded to (0, 1]), or the
# same name with .gz: packed by the writer as it files history, or by ``hwcal-upgrade --compress-history``
# (``hwcal.registry.compress``) where an older writer left it unpacked.
HISTORY_RE = re.compile(r"^(?P<stem>[^.]+)\.(?P<stamp>\d{8}T\d{6}\d*Z)(?:\.(?P<n>\d+))?(?P<corrupt>\.corrupt)?"
                        r"(?P<format1>\.format1|\.prebound)?\.json(?P<gz>\.gz)?$")


def default_registry() -> Path:
    """``$HWCAL_REGISTRY``, else the checkout's ``registry/`` (an editable install), else ``./registry``."""
    env = os.environ.get(ENV_REGISTRY)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "registry").is_dir():
        return checkout / "registry"
    return Path.cwd() / "registry"


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` really (symlinks followed) lies inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _lexically_inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return False
    return True


def escape_reason(path: Path, root: Path | None) -> str | None:
    """Why a file that sits in the registry may not be read: a symlink leading out of it."""
    if root is None or not _lexically_inside(path, root) or inside(path, root):
        return None
    return f"symlink pointing outside the registry (to {path.resolve()}); not read"


def layout_of(path: Path) -> tuple[str, str | None]:
    """('current'|'history'|'other', expected key stem) from where the file sits."""
    parent = path.parent
    if parent.name == "calibrations":
        return "current", path.name[:-5] if path.name.endswith(".json") else None
    if parent.name == "history" and parent.parent.name == "calibrations":
        m = HISTORY_RE.match(path.name)
        return "history", m["stem"] if m else None
    return "other", None


@dataclass(frozen=True)
class Spot:
    """One thing the walker found: a hardware folder, a calibration file, a writer-kept corrupt copy,
    or a problem (``listed``: listing warns about it too; otherwise only validation reports it)."""

    kind: str  # "hardware" | "calibration" | "corrupt" | "problem"
    path: Path
    device_type: str = ""
    hardware_dir: Path | None = None
    history: bool = False
    reason: str = ""
    listed: bool = True


def _children(folder: Path) -> tuple[list[Path], str | None]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".")), None
    except OSError as exc:
        return [], f"cannot list folder: {exc.strerror or exc}"


def history_files(folder: Path, stem: str | None = None) -> list[Path]:
    """The history files of a ``calibrations/history/`` folder (of one key's ``stem``, or all), compressed or
    not, sorted by name; [] where the folder does not exist."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        m = HISTORY_RE.match(path.name)
        if m and (stem is None or m["stem"] == stem) and path.is_file():
            found.append(path)
    return sorted(found)


def walk(root: Path, *, hardware_id: str | None = None, calibrations: bool = True,
         history: bool = True) -> Iterator[Spot]:
    """Every hardware folder of ``root`` (or the one named), then, with ``calibrations``, its files.

    The root itself must be a folder (the caller checks); everything below that breaks the layout
    is a ``problem`` spot rather than an exception, so one bad file never hides the others.
    """
    types, why = _children(root)
    if why:
        yield Spot("problem", root, reason=why)
    for type_dir in types:
        if not type_dir.is_dir() or type_dir.name not in DEVICE_TYPES:
            problem = _not_a_type_dir(type_dir)
            if problem is not None:
                yield problem
            continue
        hw_dirs, why = _children(type_dir)
        if why:
            yield Spot("problem", type_dir, reason=why)
        for hw_dir in hw_dirs:
            if hardware_id is not None and hw_dir.name != hardware_id:
                continue
            problem = _hardware_dir_problem(hw_dir, root)
            if problem is not None:
                yield problem
                continue
            yield Spot("hardware", hw_dir, type_dir.name, hw_dir)
            if calibrations:
                yield from hardware_files(hw_dir, type_dir.name, history)


def _not_a_type_dir(path: Path) -> Spot | None:
    """What to report of an entry of the root that is not a ``<device_type>/`` folder (None: nothing)."""
    if not path.is_dir():
        if path.suffix != ".json" or path.name == "errata.json":  # errata: hwcal.registry.errata checks it
            return None
        return Spot("problem", path, reason="JSON file outside <device_type>/<hardware_id>/; not part of the layout",
                    listed=False)
    hint = f"; an original-registry layout? import it: {MIGRATE_HINT}" if path.name in ("boards", "gpus", "cpus") \
        else ""
    return Spot("problem", path, reason=f"folder {path.name!r} is not a device type ({', '.join(DEVICE_TYPES)}){hint}")


def _hardware_dir_problem(hw_dir: Path, root: Path) -> Spot | None:
    """None for a usable ``<hardware_id>/`` folder; else why it is not one."""
    if not hw_dir.is_dir():
        return Spot("problem", hw_dir, reason="file where a <hardware_id>/ folder belongs", listed=False)
    if not inside(hw_dir, root):
        return Spot("problem", hw_dir, reason=f"symlink pointing outside the registry (to {hw_dir.resolve()}); "
                    "not read")
    if hardware_id_token(hw_dir.name) != hw_dir.name:
        return Spot("problem", hw_dir, reason="folder name is not a hardware id (lower-case letters, digits, "
                    f"single underscores, e.g. {hardware_id_token(hw_dir.name)!r})")
    return None


def hardware_files(hw_dir: Path, device_type: str, history: bool) -> Iterator[Spot]:
    """The files of one hardware folder: calibrations (and history), and what does not belong there."""
    files, why = _children(hw_dir)
    if why:
        yield Spot("problem", hw_dir, device_type, hw_dir, reason=why)
    for path in files:
        if path.name == "calibration.json":
            yield Spot("problem", path, device_type, hw_dir,
                       reason=f"single calibration.json of the original registry; import it: {MIGRATE_HINT}")
        elif path.name not in ("spec.json", "calibrations") and path.suffix == ".json":
            yield Spot("problem", path, device_type, hw_dir,
                       reason="unexpected JSON file; calibrations belong in calibrations/", listed=False)
    cal_dir = hw_dir / "calibrations"
    if cal_dir.is_dir():
        yield from _calibrations_folder(cal_dir, device_type, hw_dir, history)


def _calibrations_folder(cal_dir: Path, device_type: str, hw_dir: Path, history: bool) -> Iterator[Spot]:
    entries, why = _children(cal_dir)
    if why:
        yield Spot("problem", cal_dir, device_type, hw_dir, reason=why)
    for path in entries:
        if path.name == "history" and path.is_dir():
            if history:
                yield from _history_folder(path, device_type, hw_dir)
        elif path.is_dir():
            yield Spot("problem", path, device_type, hw_dir,
                       reason="unexpected folder in calibrations/ (only history/ belongs there)")
        else:
            yield _calibration_spot(path, device_type, hw_dir, False)


def _history_folder(folder: Path, device_type: str, hw_dir: Path) -> Iterator[Spot]:
    old, why = _children(folder)
    if why:
        yield Spot("problem", folder, device_type, hw_dir, reason=why)
    for hist in old:
        yield _calibration_spot(hist, device_type, hw_dir, True)


def _calibration_spot(path: Path, device_type: str, hw_dir: Path, in_history: bool) -> Spot:
    if path.is_dir():
        return Spot("problem", path, device_type, hw_dir, in_history, reason="unexpected folder")
    if path.suffix != ".json" and not (in_history and path.name.endswith(GZ_SUFFIX)):
        return Spot("problem", path, device_type, hw_dir, in_history, reason="not a .json calibration file; ignored")
    m = HISTORY_RE.match(path.name)
    if in_history and m and m["format1"]:
        return Spot("corrupt", path, device_type, hw_dir, in_history, listed=False,
                    reason="the original of a file hwcal-upgrade rewrote (as format 2, or with its efficiencies "
                           "bounded to (0, 1]); kept, not listed")
    if in_history and m and m["corrupt"]:
        return Spot("corrupt", path, device_type, hw_dir, in_history,
                    reason="kept by the writer as unreadable when it was superseded; not checked")
    return Spot("calibration", path, device_type, hw_dir, in_history)
