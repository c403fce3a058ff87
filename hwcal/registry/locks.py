"""Host-level state that several users of one machine share: the device locks (one calibration measures
a device at a time, whoever runs it) and the rejected-runs folders.

It lives in one fixed place, not under ``$TMPDIR`` (which differs between users and sessions):
``$HWCAL_STATE_DIR`` if set (an absolute path), else ``/var/tmp/hwcal`` (``/var/tmp`` survives reboots and
is shared like ``/tmp``). The folder is created mode 1777 (sticky and world-writable, as ``/tmp``): anyone may create
a lock there, nobody may remove another user's. Lock files are created mode 0666, so every user can
take a lock another user created; rejected runs go to a per-user subfolder ``rejected-<user>`` (0700).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import stat
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from hwcal.errors import HwcalError
from hwcal.naming import printable

ENV_STATE_DIR = "HWCAL_STATE_DIR"
DEFAULT_STATE_DIR = Path("/var/tmp/hwcal")


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def state_dir() -> Path:
    """The shared state folder, created (mode 1777) when missing; refused in one line when it is a link,
    not a folder, or writable by others without the sticky bit (anyone could remove a lock there)."""
    folder = Path(os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR)
    if not folder.is_absolute():  # relative: each working directory would have its own "host-wide" lock
        raise HwcalError(f"{ENV_STATE_DIR}={str(folder)!r} is a relative path; the host-wide lock must not "
                         f"depend on the working directory: give an absolute path (e.g. {DEFAULT_STATE_DIR})")
    try:
        folder.mkdir(parents=True)
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o1777)
    except FileExistsError:
        pass
    except OSError as exc:
        raise HwcalError(f"cannot create hwcal's state folder {folder}: {exc.strerror or exc}; set "
                         f"{ENV_STATE_DIR} to a folder every user of this machine can write") from None
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise HwcalError(f"hwcal's state folder {folder} is not a plain folder (a symlink or a file); remove it "
                         f"or set {ENV_STATE_DIR}")
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise HwcalError(f"hwcal's state folder {folder} is world-writable without the sticky bit; "
                         f"chmod 1777 {folder}")
    return folder


class HostLock:
    """An advisory lock (``flock``) on a file in the state folder, shared by every user of the host.

    The holder writes who it is into the file, so a run that waits, or gives up, names the holder.
    A lock file another user created is opened read-only when it cannot be opened for writing (flock
    works on a read-only file), so a stale file never stops a run; it is never removed (the sticky
    folder would not allow it, and removing a held lock's file would let two runs measure at once).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._writable = False

    def _open(self) -> int:
        try:
            st = os.lstat(self.path)
            if not stat.S_ISREG(st.st_mode):
                raise HwcalError(f"lock {self.path} is not a regular file (a symlink?); remove it")
        except FileNotFoundError:
            pass
        flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, os.O_RDWR | flags, 0o666)
            self._writable = True
            st = os.fstat(fd)
            if st.st_uid == os.geteuid():
                with contextlib.suppress(OSError):
                    os.fchmod(fd, 0o666)  # every user of the host must be able to take it after us
            return fd
        except PermissionError:
            pass
        except OSError as exc:
            raise HwcalError(f"cannot open lock {self.path}: {exc.strerror or exc}") from None
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise HwcalError(f"lock {self.path} belongs to {_user_name(os.stat(self.path).st_uid)} and cannot be "
                             f"opened by you ({exc.strerror or exc}); ask them or an admin to remove it "
                             "when no calibration runs") from None
        self._writable = False
        return fd

    def holder(self) -> str:
        """Who holds (or last held) the lock, in words."""
        try:
            owner = _user_name(os.stat(self.path).st_uid)
            with open(self.path, "rb") as fh:
                info = json.loads(fh.read(4096) or b"{}")
        except (OSError, ValueError):
            return "unknown"
        if not isinstance(info, dict) or not info:
            return f"a run of {printable(owner)} (file owner)"
        # Anyone may write this file (mode 0666): what it says is escaped, so it cannot forge output lines.
        user, pid, host, since = (printable(info.get(k, d), 64) for k, d in
                                  (("user", owner), ("pid", "?"), ("host", "?"), ("since", "?")))
        return f"{user} (pid {pid} on {host}, since {since})"

    def acquire(self, timeout: float, poll_s: float = 0.5) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds; False when another process still holds it."""
        fd = self._open()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        self._fd = fd
        if self._writable:
            info = {"user": getpass.getuser(), "pid": os.getpid(), "host": socket.gethostname(),
                    "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode(), 0)
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if self._writable:
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def is_held(self) -> bool:
        return self._fd is not None


def device_lock(device: str) -> HostLock:
    """The host-wide lock of one device (``cpu``, ``cuda:0``): one calibration measures it at a time."""
    token = "".join(ch for ch in device if ch.isalnum())
    return HostLock(state_dir() / f"device-{token}.lock")


def _own_private_folder(folder: Path) -> bool:
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode) and st.st_uid == os.geteuid()


def rejected_dir() -> Path:
    """This user's folder for runs that could not be filed: ``<state>/rejected-<user>`` when it is really
    this user's (created 0700; a folder or link someone else put there is not used), else a new private
    temp folder. Never raises: a run's measurements must land somewhere."""
    try:
        folder = state_dir() / f"rejected-{getpass.getuser()}"
        if _own_private_folder(folder):
            return folder
    except (HwcalError, OSError, KeyError):
        pass
    return Path(tempfile.mkdtemp(prefix="hwcal-rejected-"))


def keep_rejected_text(name: str, text: str) -> Path:
    """Write a rejected run's document under a fresh name in ``rejected_dir()`` (never over a file)."""
    folder = rejected_dir()
    stem, suffix = (name[:-5], ".json") if name.endswith(".json") else (name, "")
    for n in range(1000):
        target = folder / (f"{stem}{suffix}" if n == 0 else f"{stem}.{n}{suffix}")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        return target
    raise HwcalError(f"no free name for {name} in {folder}")
