"""Schema validation: each schema checked once, one validator each, format checking on, and every
error reported as ``json_path: message`` (not only the first).

Two validators judge the same schemas. jsonschema (Python) is the reference: its verdict and its
messages are the ones reported. A compiled validator (jsonschema-rs) answers "valid?" first, ~300x
faster (0.2 ms against ~70 ms for a format-2 file, most of it in the ~100 strict operation profiles);
only a document it does not accept is handed to jsonschema for the full list of errors. So a verdict
is jsonschema's whenever the compiled one refuses, and the compiled one is only trusted to accept what
jsonschema accepts: the formats are jsonschema's own checkers (the compiled ones differ, e.g. on leap
seconds), it is given only plain JSON data (it would take a tuple for an array), and a test compares
the two on thousands of altered documents.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from functools import cache, lru_cache
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # 3.10 has no importlib.resources.abc
    from importlib.abc import Traversable

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

try:
    import jsonschema_rs

    HAVE_COMPILED = True
except ImportError:  # no wheel for this platform: jsonschema alone, same verdicts, slower
    HAVE_COMPILED = False

# The repository's schema/ folder is the source; the wheel ships it as the package ``hwcal.schemas``
# (pyproject maps it), so an installed hwcal and a checkout read the same files.
SCHEMA_PACKAGE = "hwcal.schemas"
CALIBRATION_FORMAT_VERSION = 2  # format 1 is still read (hwcal.document.format2.update_to_2 upgrades it)
OLDEST_CALIBRATION_FORMAT = 1
SPEC_FORMAT_VERSION = 1
VALIDATION_FORMAT_VERSION = 1  # validation data: measured efficiency curves (hwcal.interop.legacy_curves)
_NAMES = {"calibration": "calibration.schema.json", "spec": "spec.schema.json", "validation": "validation.schema.json"}
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER


@cache
def schema_dir() -> Traversable:
    """Where the schemas are read from: the installed ``hwcal.schemas``, else (hwcal imported straight
    from a checkout, as pytest and the tools do there) the checkout's ``schema/``."""
    try:
        return resources.files(SCHEMA_PACKAGE)
    except ModuleNotFoundError:
        return resources.files("hwcal").joinpath("..").joinpath("schema")


def schema_files() -> list[Traversable]:
    """The JSON Schemas (``*.schema.json``), sorted by name."""
    return sorted((f for f in schema_dir().iterdir() if f.name.endswith(".schema.json")), key=lambda f: f.name)


def _check_schema(contents: dict[str, Any]) -> None:
    """Raise where ``contents`` is not a valid draft 2020-12 schema. The compiled meta-validator takes ~5 ms
    for every schema where jsonschema's takes ~0.8 s, a share of each calibration's filing; the tests
    check every schema with jsonschema's (``tests/test_schema.py``)."""
    if HAVE_COMPILED:
        jsonschema_rs.meta.validate(contents)
    else:
        Draft202012Validator.check_schema(contents)


@lru_cache(maxsize=1)
def _schemas() -> dict[str, dict[str, Any]]:
    """Every schema by ``$id``, each checked against its meta-schema once."""
    found = {}
    for path in schema_files():
        contents = json.loads(path.read_text(encoding="utf-8"))
        _check_schema(contents)
        found[contents["$id"]] = contents
    return found


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resources((uri, Resource.from_contents(c)) for uri, c in _schemas().items())


def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_dir().joinpath(_NAMES[kind]).read_text(encoding="utf-8"))
    return schema


@cache
def validator(kind: str) -> Draft202012Validator:
    """The reference validator of ``kind`` (``calibration`` or ``spec``), format checking on."""
    return Draft202012Validator(_schema(kind), registry=_registry(), format_checker=FORMAT_CHECKER)


def _format_check(name: str) -> Callable[[str], bool]:
    return lambda value: FORMAT_CHECKER.conforms(value, name)


@cache
def compiled_validator(kind: str) -> Any | None:
    """The compiled validator of ``kind``, or None where jsonschema-rs is not installed.

    Every format jsonschema checks is checked by jsonschema's own function (called back from the
    compiled code), so the two cannot disagree on a date; ``offline``: no ``$ref`` leaves the schemas.
    """
    if not HAVE_COMPILED:
        return None
    registry = jsonschema_rs.Registry(list(_schemas().items()))
    formats = {name: _format_check(name) for name in FORMAT_CHECKER.checkers}
    return jsonschema_rs.Draft202012Validator(_schema(kind), registry=registry, validate_formats=True,
                                              formats=formats, offline=True)


def reference_problems(doc: Any, kind: str = "calibration") -> list[tuple[str, str]]:
    """Every error jsonschema finds, as (json_path, message), sorted by path: the reference verdict."""
    errors = sorted(validator(kind).iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [(e.json_path, e.message) for e in errors]


def schema_problems(data: Any, kind: str = "calibration") -> list[tuple[str, str]]:
    """Every schema error of ``data`` as (json_path, message); empty when valid.

    ``data`` must be what ``json.loads`` returns (dicts, lists, str, int, finite float, bool, None): the
    compiled validator is trusted only there. ``schema_errors`` takes any Python object.
    """
    fast = compiled_validator(kind)
    if fast is not None:
        try:
            if fast.is_valid(data):
                return []
        except ValueError:  # a value JSON has no form for; the reference says what is wrong with it
            pass
    return reference_problems(data, kind)


def is_json_data(value: Any) -> bool:
    """Whether ``value`` is plain JSON data, as ``json.loads`` returns it (no tuple, no NaN, str keys)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if not all(type(k) is str for k in item):
                return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind not in (str, int, bool, type(None)):
            return False
    return True


def non_json_path(value: Any, where: str = "$") -> str | None:
    """The JSON path of the first value in ``value`` that JSON cannot hold as it is (NaN, a tuple, a numpy
    scalar, a non-string key), or None: says where a document that cannot be filed goes wrong."""
    if type(value) is dict:
        for k, v in value.items():
            found = where if type(k) is not str else non_json_path(v, f"{where}.{k}")
            if found:
                return found
        return None
    if type(value) is list:
        return next((p for i, v in enumerate(value) if (p := non_json_path(v, f"{where}[{i}]"))), None)
    return None if is_json_data(value) else where


def schema_errors(doc: Any, kind: str = "calibration") -> list[str]:
    """Every validation error as ``json_path: message``, sorted by path; empty when valid."""
    problems = schema_problems(doc, kind) if is_json_data(doc) else reference_problems(doc, kind)
    return [f"{json_path}: {message}" for json_path, message in problems]
