"""The held-out model referee's timing passes: short ops are timed again later and keep their best, the first
pass's figure beside it, and a host canary per pass (tools/model_referee.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def _referee() -> ModuleType:
    spec = importlib.util.spec_from_file_location("model_referee", REPO / "tools" / "model_referee.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("model_referee", module)
    spec.loader.exec_module(module)
    return module


def test_short_ops_are_timed_in_later_passes_and_keep_their_best() -> None:
    ref = _referee()
    ops, _ = ref.plan(["gpt2"], [1], 64, "fp32", 40.0, 1e9)
    ops = [o for o in ops if o["name"] in ("residual_add", "kv_copy", "mlp_up")]
    canaries = ref.measure(ops, "numpy", "cpu", 0.0005, 3, passes=3, repass_below_s=1e-5)
    assert len(canaries) == 3 and all(0 < c < 1e-3 for c in canaries)
    # a 768-element add is well under 10 us; the 3072x768 fp32 weights (9.4 MB) take far longer to read
    assert {op["name"] for op in ops if op["first_pass_best_s"] < 1e-5} >= {"residual_add"}
    assert next(op for op in ops if op["name"] == "mlp_up")["first_pass_best_s"] > 1e-5
    for op in ops:
        short = op["first_pass_best_s"] < 1e-5
        assert len(op["passes_best_s"]) == (3 if short else 1)
        assert op["best_s"] == min(op["passes_best_s"]) <= op["first_pass_best_s"]


def test_the_report_gives_the_first_pass_beside_the_best() -> None:
    ref = _referee()
    rows = [{"held_out": True, "class": "gemv", "error": e, "first_pass_error": 2 * e, "predict_call_s": 1e-5}
            for e in (0.1, -0.2, 0.05)]
    summary = ref.summarise(rows)
    assert summary["all"]["median"] == 0.1 and summary["first_pass"]["median"] == 0.2
    text = ref.report({"calibration": "x", "rows": [], "summary": summary, "host_canary_s": [5.5e-6, 8.4e-6]},
                      detail=False)
    assert "first pass only" in text and "5.50, 8.40" in text


@pytest.mark.parametrize("argv", [["--passes", "0"], ["--repass-below-s", "-1"], ["--passes", "x"]])
def test_nonsense_passes_are_a_one_line_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _referee().main(["cal.json", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert ": error: " in err[-1] and ("--passes" in err[-1] or "--repass-below-s" in err[-1])


@pytest.mark.parametrize("tool", ["model_referee", "gpu_referee", "nn_referee", "energy_referee", "memory_referee"])
def test_the_referees_read_a_packed_history_file(tmp_path: Path, tool: str) -> None:
    """The writer packs history (``.json.gz``): a referee given such a file reads it as the plain one."""
    import gzip
    import json

    spec = importlib.util.spec_from_file_location(tool, REPO / "tools" / f"{tool}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = {"schema_version": 2, "metadata": {"calibration_date": "2026-12-07T00:00:00+00:00"}}
    plain, packed = tmp_path / "c.json", tmp_path / "c.20261207T000000Z.json.gz"
    plain.write_text(json.dumps(doc))
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert module.read_json_file(packed) == module.read_json_file(plain) == doc


def test_an_unreadable_calibration_is_a_one_line_error_before_any_timing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    referee = _referee()
    monkeypatch.setattr(referee, "measure", lambda *a, **k: pytest.fail("timed before reading the calibration"))
    bad = tmp_path / "c.20261207T000000Z.json.gz"
    bad.write_bytes(b"nonsense")
    assert referee.main([str(bad), "--models", "gpt2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("model_referee.py: error: ") and str(bad) in err and "\n" not in err
