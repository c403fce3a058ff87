"""What the registry tools share: the --registry and --json options, the registry they open, plain tables.

How a tool is run (its names, exit codes, errors and warnings) is ``hwcal.cli.entry``.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwcal.cli.entry import tell
from hwcal.registry.api import Registry, SkippedFile
from hwcal.registry.layout import ENV_REGISTRY, default_registry


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
    tell(*(f"warning: skipped {item}" for item in skipped))


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
