"""What the registry tools share: the --registry option, one-line errors, exit codes, plain tables.

Every tool (list, validate, compare, merge, migrate, plot, tools/bare_loop.py) runs its body through
``run``, so every tool follows one exit-code rule:

- 0   success;
- 1   the answer is "no" (unknown hardware, invalid files, a regression, something refused) or a user
      error (a file that cannot be used, a registry that cannot be written); one line on stderr;
- 2   bad usage (argparse's own code: an unknown option, a value out of bounds, a missing input);
- 130 interrupted (Ctrl-C): one line, no traceback; every registry write is all or nothing, so the
      registry is whole.

Never a traceback for a user's mistake: a traceback is a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwcal.errors import HwcalError
from hwcal.registry.api import Registry, SkippedFile
from hwcal.registry.layout import ENV_REGISTRY, default_registry

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def registry_path(value: str) -> Path:
    """argparse type of --registry: an empty path would mean "the current folder", never what was meant."""
    if not value.strip():
        raise argparse.ArgumentTypeError("registry path is empty; give a folder (or leave the option out)")
    return Path(value)


def make_parser(prog: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A parser whose --help ends with examples, as every tool's does."""
    return argparse.ArgumentParser(
        prog=prog, description=textwrap.fill(description, 100), epilog="examples:\n" + examples.strip("\n") + "\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)


def add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", metavar="PATH", type=registry_path, default=None,
                        help=f"registry folder. Env {ENV_REGISTRY}. Default: the checkout's registry/ "
                             f"({default_registry()})")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of text. Default: off")


def open_registry(path: Path | None) -> Registry:
    # Skipped files are printed by the tool itself (once, at the end), not as Python warnings.
    return Registry(path, emit_warnings=False)


def print_json(data: Any) -> None:
    """Strict JSON (no NaN or Infinity, which JSON parsers refuse): scripts read it."""
    json.dump(data, sys.stdout, indent=2, default=str, allow_nan=False)
    sys.stdout.write("\n")


def warn_skipped(skipped: Sequence[SkippedFile]) -> None:
    for item in skipped:
        print(f"warning: skipped {item}", file=sys.stderr)


def table(rows: Sequence[Sequence[str]], right: Sequence[int] = (), indent: str = "") -> list[str]:
    """Plain aligned columns: the first row is the header, underlined; ``right`` columns align right."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return (indent + "  ".join(cells)).rstrip()

    out = [line(rows[0]), indent + "  ".join("-" * w for w in widths)]
    return out + [line(r) for r in rows[1:]]


def fmt_num(value: float | None, digits: int = 4) -> str:
    """Readable magnitude: 4 significant digits, thousands separated; '-' when unknown."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def run(main: Callable[[list[str] | None], int], argv: list[str] | None, prog: str,
        error_code: int = EXIT_FAIL) -> int:
    """Run a tool's body: user errors become one line on stderr and ``error_code``, never a traceback."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            return main(argv)
    except HwcalError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return error_code
    except BrokenPipeError:  # `tool | head` closed the pipe: not an error of ours
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the registry is unchanged by the step under way", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RecursionError:
        print(f"{prog}: error: input nested too deep to be a calibration", file=sys.stderr)
        return EXIT_FAIL
    except MemoryError:
        print(f"{prog}: error: out of memory", file=sys.stderr)
        return EXIT_FAIL
    except OSError as exc:  # a disk full, a permission: the user's to fix, in one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAIL
