"""The registry's file primitives: the one write path (temp file in the same folder, fsync, ``os.replace``),
the one read rule (regular files only, bounded size), containment (a resolved path inside the registry)
and the clean-up of temp files a killed writer left behind.

Every file hwcal creates in a registry goes through ``atomic_write_text``; every file it reads goes
through ``read_regular_bytes``. Both refuse, in one line, what they must not touch.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import signal
import stat
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from hwcal.errors import HwcalError

# A calibration is ~100 KiB; 64 MiB leaves room for any real one and stops a hostile file from eating memory.
MAX_FILE_BYTES = 64 * 2**20
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
# Tests stop the writer at a named step (``HWCAL_FAULT_AT=replace`` exits the process just before
# ``os.replace``), to show that a kill at any step leaves the registry whole.
FAULT_ENV = "HWCAL_FAULT_AT"
WRITE_STEPS = ("mkstemp", "write", "fsync", "replace", "dirsync")


class UnsafePathError(HwcalError):
    """A path the registry may not read or write: outside it, a special file, too large."""


def _fault_point(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        os._exit(137)  # as a SIGKILL would: no clean-up, no finally


def current_umask() -> int:
    """The process umask (read without changing it for long; no threads race on it here)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def contained(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks followed, as far as they exist) lies inside ``root``.

    A folder that does not exist yet is judged through the links above it, so a symlinked
    ``calibrations/`` leading outside is caught before anything is created through it.
    """
    try:
        Path(os.path.abspath(path)).resolve().relative_to(Path(os.path.abspath(root)).resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def check_write_target(path: Path, root: Path | None) -> None:
    """Refuse a write that would land outside ``root`` or over something that is not a regular file."""
    if root is not None and not contained(path.parent, root):
        raise UnsafePathError(f"{path.parent} leads outside the registry {root} (a symlink?); nothing written")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafePathError(f"{path}: cannot check: {exc.strerror or exc}; nothing written") from None
    if stat.S_ISLNK(st.st_mode):
        if root is not None and not contained(path, root):
            raise UnsafePathError(f"{path} is a symlink pointing outside the registry (to {path.resolve()}); "
                                  "remove it, nothing written")
        return  # a link inside the registry: os.replace replaces the link itself
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(f"{path} is not a regular file ({_kind(st.st_mode)}); remove it, nothing written")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def read_regular_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is an ``UnsafePathError``.

    Opened non-blocking and checked with ``fstat`` before reading, so a FIFO or a device never hangs
    a reader; the size is checked on the open file, so a file swapped meanwhile cannot slip through.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"is {_kind(st.st_mode)}, not a regular file; not read")
        if st.st_size > max_bytes:
            raise UnsafePathError(f"is {st.st_size:,} bytes, over the {max_bytes // 2**20} MiB a registry file "
                                  "may have; not read")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise UnsafePathError(f"grew over {max_bytes // 2**20} MiB while being read; not read")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


GZ_SUFFIX = ".json.gz"  # a compressed history file (only calibrations/history/ holds them)
GZ_LEVEL = 9  # history is written once and read seldom: the smallest file


def packed(data: bytes) -> bytes:
    """``data`` as a history file packs it (``read_registry_bytes`` unpacks it): gzip, no timestamp, so the same
    bytes always pack the same."""
    return gzip.compress(data, GZ_LEVEL, mtime=0)


def read_registry_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """``read_regular_bytes``, decompressed where the name ends in ``.json.gz`` (a compressed history file):
    at most ``max_bytes`` after decompression too, so a small file cannot unpack into gigabytes."""
    raw = read_regular_bytes(path, max_bytes)
    if not path.name.endswith(GZ_SUFFIX):
        return raw
    unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the gzip container
    try:
        out = unpack.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise UnsafePathError(f"not a readable gzip file ({exc}); not read") from None
    if len(out) > max_bytes:
        raise UnsafePathError(f"unpacks to over {max_bytes // 2**20} MiB, more than a registry file may have; not read")
    if not unpack.eof or unpack.unused_data:
        raise UnsafePathError("a truncated or padded gzip file; not read")
    return out


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block is done, then raise it: a write step is all or nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except (ValueError, OSError):  # not the main interpreter, or signals unavailable
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def atomic_write_text(path: Path, text: str, root: Path | None = None) -> None:
    """``atomic_write_bytes`` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), root)


def atomic_write_bytes(path: Path, data: bytes, root: Path | None = None) -> None:
    """Write ``data`` to ``path``: a temp file in the same folder, fsync, ``os.replace``, fsync the folder.

    Readers see the old file or the new one, never half of one; a kill leaves at most a ``.*.tmp`` file,
    which the next writer removes (``remove_stale_temps``). The file gets the mode the umask allows
    (0666 & ~umask), as any file a user creates, so a team registry stays readable to the team.
    """
    path = Path(path)
    check_write_target(path, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    if root is not None and not contained(path.parent, root):  # re-checked: mkdir may have followed a link
        raise UnsafePathError(f"{path.parent} leads outside the registry {root} (a symlink?); nothing written")
    _fault_point("mkstemp")
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600 whatever the umask
        _fault_point("write")
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        _fault_point("fsync")
        os.fsync(fd)
        os.close(fd)
        fd = -1
        _fault_point("replace")
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fault_point("dirsync")
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a crash after os.replace must not bring the old file back)."""
    try:
        dfd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(dfd)


def is_temp_leftover(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX) and name != TEMP_PREFIX + TEMP_SUFFIX


def stale_temps(folders: list[Path]) -> list[Path]:
    """The ``.*.tmp`` files of killed writers in ``folders`` (regular files only, links never followed)."""
    found: list[Path] = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if is_temp_leftover(entry.name) and entry.is_file(follow_symlinks=False):
                found.append(Path(entry.path))
    return sorted(found)


def remove_stale_temps(folders: list[Path]) -> list[Path]:
    """Remove what killed writers left; called under the hardware folder's lock, where no live writer
    of that folder can be (every writer takes the lock first). Returns what was removed."""
    removed = []
    for path in stale_temps(folders):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed
