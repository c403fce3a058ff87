"""The one entry of every command-line tool: its names, its parser, its body, one exit-code rule.

Each tool module describes itself as a ``Tool`` and exposes ``main = TOOL.main``; the console scripts of
pyproject.toml and the wrappers under ``tools/`` and ``fleet/`` all call that ``main``. The rule:

- 0   success;
- 1   the answer is "no" (unknown hardware, invalid files, a regression, something refused) or a user
      error (a file that cannot be used, a registry that cannot be written); one line on stderr;
- 2   bad usage (argparse's own code: an unknown option, a value out of bounds, a missing input);
- 130 interrupted (Ctrl-C): one line, no traceback; every registry write is all or nothing, so the
      registry is whole.

Never a traceback for a user's mistake: a traceback is a bug. Warnings (a calibration dated in the future,
say) reach the user once each, as ``PROG: warning: ...`` on stderr; no category is silenced here.

Text that came from a file (a power mode, a model name, a warning in a calibration) may hold newlines or
terminal escape sequences: ``printable`` escapes them, and ``say`` / ``tell`` print every line through
it, so a value can never forge a line of output. This module needs only the standard library: the fleet's
plan job runs ``fleet/matrix.py`` before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from hwcal.errors import HwcalError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

MESSAGE_MAX_CHARS = 2000  # an error quoting a whole hostile input must not print megabytes
MESSAGE_MAX_LINES = 25


class UsageError(HwcalError):
    """Arguments that parse but do not fit together: printed as argparse prints usage errors, exit 2."""


def _escape(ch: str) -> str:
    code = ord(ch)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or (f"\\x{code:02x}" if code < 0x100 else
                                                             f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as one line a terminal shows as written: control characters, line and paragraph separators
    and bidirectional overrides (everything ``str.isprintable`` refuses, bar the space) become escapes;
    beyond ``limit`` characters the rest is counted, not printed."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit:,} more characters)"
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def quote(value: object, limit: int = 60) -> str:
    """A value from a file or the command line, for a message: its repr, escaped and cut short."""
    return printable(repr(value), limit)


def say(*lines: str, file: TextIO | None = None) -> None:
    """Print each line escaped by ``printable`` (stdout unless ``file``): one line of the tool is one line."""
    stream = sys.stdout if file is None else file
    stream.write("".join(printable(line) + "\n" for line in lines))


def tell(*lines: str) -> None:
    """``say`` on stderr: warnings and notes for the person at the terminal."""
    say(*lines, file=sys.stderr)


def message_lines(prog: str, kind: str, message: object) -> list[str]:
    """``PROG: kind: first line`` and any further lines of the message indented beneath it, every line
    escaped, the whole bounded: a continuation can never pose as a line of its own."""
    text = str(message)
    if len(text) > MESSAGE_MAX_CHARS:
        text = f"{text[:MESSAGE_MAX_CHARS]}... ({len(text) - MESSAGE_MAX_CHARS:,} more characters)"
    first, *rest = text.split("\n")
    if len(rest) > MESSAGE_MAX_LINES:
        rest = [*rest[:MESSAGE_MAX_LINES], f"... ({len(rest) - MESSAGE_MAX_LINES} more lines)"]
    return [f"{prog}: {kind}: {printable(first)}", *("  " + printable(line.strip()) for line in rest)]


@contextlib.contextmanager
def _warnings_to(prog: str) -> Iterator[None]:
    """Show each distinct warning once, as one clean line; which categories show stays Python's defaults."""
    seen: set[tuple[type[Warning], str]] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        key = (category, str(message))
        if key not in seen:
            seen.add(key)
            sys.stderr.write("\n".join(message_lines(prog, "warning", message)) + "\n")

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _error(prog: str, message: object, code: int) -> int:
    sys.stderr.write("\n".join(message_lines(prog, "error", message)) + "\n")
    return code


def run(body: Callable[[], int], prog: str, error_code: int = EXIT_FAIL) -> int:
    """Run a tool's body under the rule: user errors become one line on stderr and ``error_code``."""
    try:
        with _warnings_to(prog):
            try:
                return body()
            finally:
                sys.stdout.flush()  # a reader gone (`tool | head`) shows here, under the rule, not at exit
    except HwcalError as exc:
        return _error(prog, exc, error_code)
    except BrokenPipeError:  # `tool | head` closed the pipe: not an error of ours
        with contextlib.suppress(OSError, ValueError):  # what is still buffered goes nowhere at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted; the registry is unchanged by the step under way\n")
        return EXIT_INTERRUPTED
    except RecursionError:
        return _error(prog, "input nested too deep to be read", EXIT_FAIL)
    except MemoryError:
        return _error(prog, "out of memory", EXIT_FAIL)
    except OSError as exc:  # a disk full, a permission: the user's to fix, in one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _error(prog, f"{where}{exc.strerror or exc}", EXIT_FAIL)


@dataclass(frozen=True)
class Tool:
    """One command-line tool: the names it is run by, its parser and its body.

    ``command`` is the console script (``hwcal-list``), ``script`` the file under ``tools/`` or ``fleet/``
    (``list_calibrations.py``). Messages name the one the user typed; run in-process, the script.
    ``parser(prog)`` builds the parser; ``body(args)`` (``args.prog`` is the name) does the work and returns
    the exit code, raising
    ``HwcalError`` for a user's mistake and ``UsageError`` for arguments that do not fit together.
    ``error_code`` is the exit code of a user error (compare: 2, an input it cannot read).
    """

    script: str
    parser: Callable[[str], argparse.ArgumentParser]
    body: Callable[[argparse.Namespace], int]
    command: str | None = None
    error_code: int = EXIT_FAIL
    intermixed: bool = False  # options may come between the positionals (parse_intermixed_args)

    def prog(self, argv: list[str] | None) -> str:
        if argv is None and sys.argv and sys.argv[0]:
            typed = os.path.basename(sys.argv[0])
            if typed in (self.command, self.script):
                return typed
        return self.script

    def main(self, argv: list[str] | None = None) -> int:
        """The tool's command line (``sys.argv[1:]`` when ``argv`` is None); returns the exit code.
        argparse's own exits (--help: 0, bad usage: 2) raise SystemExit as argparse does."""
        prog = self.prog(argv)

        def body() -> int:
            parser = self.parser(prog)
            parser.set_defaults(prog=prog)  # the body's own messages name the tool as its errors do
            args = parser.parse_intermixed_args(argv) if self.intermixed else parser.parse_args(argv)
            try:
                return self.body(args)
            except UsageError as exc:
                parser.error(printable(exc, MESSAGE_MAX_CHARS))

        return run(body, prog, self.error_code)

