"""The compiled validator (jsonschema-rs) only speeds validation up: it never accepts a document jsonschema
refuses, so every verdict and every message stays jsonschema's. Checked on real files, on the cases where
the two libraries are known to differ, and on thousands of altered real documents."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwcal.document import schema
from hwcal.document.schema import (
    compiled_validator,
    is_json_data,
    non_json_path,
    reference_problems,
    schema_errors,
    schema_files,
    schema_problems,
)

DATA = Path(__file__).resolve().parent / "data"
pytestmark = pytest.mark.skipif(not schema.HAVE_COMPILED, reason="jsonschema-rs is not installed")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _real_files() -> list[tuple[Path, str]]:
    found = [(p, "spec" if p.name == "spec.json" or p.name.endswith("_spec.json") else "calibration")
             for p in sorted(DATA.glob("golden/cpu_*.json")) if p.name != "cpu_run.json"]
    for folder in ("site_registry", "zen3_vm_registry"):
        found += [(p, "spec" if p.name == "spec.json" else "calibration")
                  for p in sorted((DATA / folder).rglob("*.json"))]
    return found


REAL = _real_files()
GOLDEN = _load(DATA / "golden" / "cpu_calibration.json")
GPU = _load(DATA / "site_registry" / "gpu" / "h100_sxm5" / "calibrations" / "700W_1980MHz_pytorch.json")


def _agree(doc: Any, kind: str = "calibration") -> None:
    """The one direction that matters: the compiled validator's "valid" is jsonschema's "valid"."""
    reference = reference_problems(doc, kind)
    if compiled_validator(kind).is_valid(doc):
        assert reference == [], f"compiled validator accepted what jsonschema refuses: {reference[:3]}"
    assert schema_problems(doc, kind) == reference  # what is reported is always jsonschema's


@pytest.mark.parametrize(("path", "kind"), REAL, ids=[str(p.relative_to(DATA)) for p, _ in REAL])
def test_real_files_get_the_same_verdict(path: Path, kind: str) -> None:
    doc = _load(path)
    assert compiled_validator(kind).is_valid(doc) == (reference_problems(doc, kind) == [])
    _agree(doc, kind)


# Where jsonschema-rs and jsonschema are known to differ: its own date-time format accepts leap seconds and
# year 0; its pattern "$" does not match before a trailing newline (Python's re does); it takes a tuple for an
# array and compares huge integers as floats.
@pytest.mark.parametrize("date", ["2026-12-31T23:59:60Z", "2026-06-30T22:59:60-01:00", "0000-01-01T00:00:00Z",
                                  "2026-11-26T18:46:57Z\n", "2026-11-26t18:46:57z", "２０２６-11-26T18:46:57Z"])
def test_dates_are_judged_by_jsonschemas_own_format_checker(date: str) -> None:
    doc = copy.deepcopy(GOLDEN)
    doc["metadata"]["calibration_date"] = date
    _agree(doc)


@pytest.mark.parametrize(("where", "value"), [
    (("key", "power_mode"), "7W\n"), (("key", "hardware_id"), "test_cpu\n"), (("key", "freq_mhz"), 2**64 + 1),
    (("key", "freq_mhz"), 10**30), (("key", "freq_mhz"), 2450.0), (("key", "freq_mhz"), True),
    (("theoretical_peak_gflops",), -1e-320), (("schema_version",), 2.0), (("warnings",), []),
])
def test_known_differences_keep_jsonschemas_verdict(where: tuple[str, ...], value: Any) -> None:
    doc = copy.deepcopy(GOLDEN)
    target = doc
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    _agree(doc)


def test_python_objects_that_are_not_json_go_to_jsonschema() -> None:
    doc = copy.deepcopy(GOLDEN)
    doc["gemm"] = tuple(doc["gemm"])  # jsonschema-rs would take the tuple for an array
    assert not is_json_data(doc) and non_json_path(doc) == "$.gemm"
    assert schema_errors(doc) == [f"{p}: {m}" for p, m in reference_problems(doc)]
    assert any(e.startswith("$.gemm: ") for e in schema_errors(doc))


def test_without_the_compiled_validator_the_verdicts_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = copy.deepcopy(GOLDEN)
    bad["metadata"]["calibration_date"] = "2026-12-31T23:59:60Z"
    del bad["gemm"]
    with_compiled = [schema_errors(GOLDEN), schema_errors(bad)]
    monkeypatch.setattr(schema, "HAVE_COMPILED", False)
    compiled_validator.cache_clear()
    try:
        assert compiled_validator("calibration") is None
        assert [schema_errors(GOLDEN), schema_errors(bad)] == with_compiled
    finally:
        compiled_validator.cache_clear()


def test_the_only_format_the_schemas_use_is_covered_here() -> None:
    """A new ``format`` in a schema needs its own cases above (the two libraries' checkers differ)."""
    used = {m for f in schema_files() for m in re.findall(r'"format":\s*"([^"]+)"', f.read_text())}
    assert used == {"date-time"}


# ---- altered real documents -------------------------------------------------------------------------------
EDGE_STRINGS = ["", "7W", "7W\n", "MAXN_SUPER", "fp32", "fp8_e5m2", "int8", "bogus", "cpu", "gpu", "cuda", "numpy",
                "pytorch", "l1", "l0", "test_cpu", "Test_CPU", "a" * 130, "0" * 64, "0" * 64 + "\n",
                "2026-11-26T18:46:57+00:00", "2026-12-31T23:59:60Z", "0000-01-01T00:00:00Z", "2026-11-26", "∞"]
EDGE_NUMBERS = [0, -1, 1, 2, 1.0, 0.5, 1.5, -0.0, 1e308, -1e308, 2**63, 2**64 + 1, 10**30, -(10**30), 5e-324]
SCALARS = st.one_of(st.sampled_from(EDGE_STRINGS), st.sampled_from(EDGE_NUMBERS), st.booleans(), st.none(),
                    st.text(max_size=8), st.integers(), st.floats(allow_nan=False, allow_infinity=False))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.sampled_from(EDGE_STRINGS), inner, max_size=3)),
                    max_leaves=6)


def _paths(doc: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [where]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += _paths(v, (*where, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += _paths(v, (*where, i))
    return found


PATHS = {"golden": _paths(GOLDEN), "gpu": _paths(GPU)}


def _alter(doc: Any, path: tuple[Any, ...], op: str, value: Any, name: str) -> None:
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif op == "add" and isinstance(parent[last], dict):
        parent[last][name] = value
    elif op == "rename" and isinstance(parent, dict):
        parent[name] = parent.pop(last)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(sorted(PATHS)), data=st.data(), changes=st.integers(min_value=1, max_value=3))
def test_altered_documents_never_pass_the_compiled_validator_alone(which: str, data: st.DataObject,
                                                                   changes: int) -> None:
    original = GOLDEN if which == "golden" else GPU
    doc = copy.deepcopy(original)
    for _ in range(changes):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths))
        op = data.draw(st.sampled_from(["replace", "replace", "delete", "add", "rename"]))
        _alter(doc, path, op, data.draw(JSON), data.draw(st.sampled_from(EDGE_STRINGS)))
    if compiled_validator("calibration").is_valid(doc):
        assert reference_problems(doc) == [], "compiled validator accepted what jsonschema refuses"
