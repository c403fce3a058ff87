"""Schema validation: each schema checked once, one validator each, format checking on, and every
error reported as ``json_path: message`` (not only the first)."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
CALIBRATION_FORMAT_VERSION = 1
SPEC_FORMAT_VERSION = 1
_NAMES = {"calibration": "calibration.schema.json", "spec": "spec.schema.json"}


@lru_cache(maxsize=1)
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        contents = json.loads(path.read_text())
        Draft202012Validator.check_schema(contents)
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / _NAMES[kind]).read_text())
    return Draft202012Validator(schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(doc: Any, kind: str = "calibration") -> list[str]:
    """Every validation error as ``json_path: message``, sorted by path; empty when valid."""
    errors = sorted(validator(kind).iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{e.json_path}: {e.message}" for e in errors]
