"""The operations file of ``hwcal-predict --ops``: a model's list of operations, read as hostile input.

A file of JSON or YAML: a list of ``{op, precision, m, n, k, batch, count, name}``, or an object whose
``ops`` is that list. What a file can make the tool do is bounded: at most ``MAX_FILE_BYTES`` read (a
regular file only: a FIFO never hangs it), YAML aliases refused (nine nested aliases expand a 1 kB file
to gigabytes), at most ``MAX_OPS`` operations, every dimension and count a whole number up to ``MAX_DIM``
(2^40: no device holds an operand that long, and products of four such numbers stay finite floats). Every
problem is one short line naming the file and the operation; a value is quoted, never the whole input.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwcal.cli.entry import printable, quote
from hwcal.errors import HwcalError
from hwcal.model.predict import OPERATIONS
from hwcal.registry.fsio import UnsafePathError, read_regular_bytes
from hwcal.registry.reader import parse_json_text

MAX_FILE_BYTES = 2 * 2**20
MAX_OPS = 10_000
MAX_DIM = 2**40
DIMS = ("m", "n", "k", "batch")
OP_KEYS = frozenset({"op", "operation", "precision", "count", "name", *DIMS})
_PRECISION_RE = re.compile(r"[A-Za-z0-9_]{1,32}")


@dataclass(frozen=True)
class OpSpec:
    """One line of the file, checked: what to predict and how many times it runs."""

    operation: str
    precision: str
    dims: dict[str, int] = field(default_factory=dict)
    count: int = 1
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.operation


def read_ops(path: Path) -> list[OpSpec]:
    """The checked operations of ``path``; any problem is one HwcalError line naming the file."""
    data = _parse(path, _read_text(path))
    if isinstance(data, dict) and "ops" in data:
        data = data["ops"]
    if not isinstance(data, list) or not data:
        raise HwcalError(f"{path}: expected a non-empty list of operations (or an object with 'ops'), "
                         f"got {_kind(data)}")
    if len(data) > MAX_OPS:
        raise HwcalError(f"{path}: {len(data):,} operations, more than the {MAX_OPS:,} a file may list; give "
                         "repeated operations a 'count'")
    return [_op(item, f"{path}: operation {i + 1}") for i, item in enumerate(data)]


def _read_text(path: Path) -> str:
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            raise HwcalError(f"{path}: {size:,} bytes, more than the {MAX_FILE_BYTES // 2**20} MiB an operations "
                             "file may have; not read")
        raw = read_regular_bytes(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise HwcalError(f"{path}: no such file") from None
    except UnsafePathError as exc:
        raise HwcalError(f"{path}: {exc}") from None
    except OSError as exc:
        raise HwcalError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HwcalError(f"{path}: not UTF-8 text") from None


def _parse(path: Path, text: str) -> Any:
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return _parse_yaml(path, text)
        try:
            return parse_json_text(text)
        except json.JSONDecodeError as exc:
            raise HwcalError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except ValueError as exc:  # NaN, Infinity, an integer of thousands of digits
            raise HwcalError(f"{path}: not valid JSON: {printable(exc, 200)}") from None
    except RecursionError:
        raise HwcalError(f"{path}: nested too deep to be a list of operations") from None


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise HwcalError(f"{path}: reading YAML needs pyyaml (pip install 'hwcal[test]' or pyyaml), "
                         "or give the list as JSON") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where built: ~4x faster
    try:
        for event in yaml.parse(text, Loader=loader):  # events only: an alias is refused before it expands
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
                raise HwcalError(f"{path}: YAML aliases (*name) are not accepted in an operations file{where}; "
                                 "write each operation out")
        return yaml.load(text, Loader=loader)  # a safe loader: CSafeLoader or SafeLoader
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise HwcalError(f"{path}: not valid YAML: {printable(problem, 200)}{where}") from None


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def _op(item: object, where: str) -> OpSpec:
    if not isinstance(item, dict):
        raise HwcalError(f"{where}: is {_kind(item)}, not a mapping such as "
                         "{op: gemm, precision: bf16, m: 4096, n: 4096, k: 4096}")
    unknown = [k for k in item if k not in OP_KEYS]
    if unknown:
        shown = ", ".join(quote(k) for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise HwcalError(f"{where}: unknown key(s) {shown}; known: {', '.join(sorted(OP_KEYS))}")
    if "op" not in item and "operation" not in item:
        raise HwcalError(f"{where}: needs 'op' (one of {', '.join(OPERATIONS)})")
    if "op" in item and "operation" in item and item["op"] != item["operation"]:
        raise HwcalError(f"{where}: 'op' and 'operation' disagree; give one")
    operation = item.get("op", item.get("operation"))
    if operation not in OPERATIONS:
        raise HwcalError(f"{where}: op {quote(operation)} is not one of {', '.join(OPERATIONS)}")
    if "precision" not in item:
        raise HwcalError(f"{where}: needs 'precision' (fp32, bf16, int8, ...)")
    precision = item["precision"]
    if not isinstance(precision, str) or not _PRECISION_RE.fullmatch(precision):
        raise HwcalError(f"{where}: precision {quote(precision)} is not a precision name (fp32, bf16, int8, ...)")
    name = item.get("name", "")
    if not isinstance(name, (str, int)) or isinstance(name, bool) or len(str(name)) > 200:
        raise HwcalError(f"{where}: name {quote(name)} is not a text of at most 200 characters")
    dims = {k: _whole(item[k], k, where) for k in DIMS if k in item}
    count = _whole(item.get("count", 1), "count", where)
    return OpSpec(str(operation), precision, dims, count, str(name))


def _whole(value: object, key: str, where: str) -> int:
    """A whole number in 1..MAX_DIM (4096.0 is 4096; 1e29, 0, -1, true and "64" are refused)."""
    number = int(value) if isinstance(value, float) and value.is_integer() else value
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_DIM:
        raise HwcalError(f"{where}: {key} must be a whole number from 1 to 2^40 ({MAX_DIM:,}), got {quote(value)}")
    return number
