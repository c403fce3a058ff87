"""Schema validation: each schema checked once, one validator each, format checking on, and every
error reported as ``json_path: message`` (not only the first)."""

from __future__ import annotations

import json
import sys
from functools import cache, lru_cache
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # 3.10 has no importlib.resources.abc
    from importlib.abc import Traversable

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

# The repository's schema/ folder is the source; the wheel ships it as the package ``hwcal.schemas``
# (pyproject maps it), so an installed hwcal and a checkout read the same files.
SCHEMA_PACKAGE = "hwcal.schemas"
CALIBRATION_FORMAT_VERSION = 2  # format 1 is still read (hwcal.document.format2.update_to_2 upgrades it)
OLDEST_CALIBRATION_FORMAT = 1
SPEC_FORMAT_VERSION = 1
_NAMES = {"calibration": "calibration.schema.json", "spec": "spec.schema.json", "validation": "validation.schema.json"}


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


@lru_cache(maxsize=1)
def _registry() -> Registry:
    found = []
    for path in schema_files():
        contents = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(contents)
        found.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(found)


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = json.loads(schema_dir().joinpath(_NAMES[kind]).read_text(encoding="utf-8"))
    return Draft202012Validator(schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(doc: Any, kind: str = "calibration") -> list[str]:
    """Every validation error as ``json_path: message``, sorted by path; empty when valid."""
    errors = sorted(validator(kind).iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{e.json_path}: {e.message}" for e in errors]
