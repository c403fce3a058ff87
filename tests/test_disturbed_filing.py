"""A disturbed run (over a tenth of its cases flagged) does not replace a clearly quieter calibration of its
key: the writer, the plugin's closing line and the fleet's merge all keep it in history instead, and the user
can make it current. Nothing is lost either way."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hwcal.document.schema import schema_errors
from hwcal.measure.watch import InterferenceLog
from hwcal.naming import CalibrationKey, calibration_path, history_dir
from hwcal.plugin.filing import Filed
from hwcal.plugin.hooks import _filed_line
from hwcal.registry.fsio import read_registry_bytes
from hwcal.registry.succession import DISTURBED_SHARE, disturbed_share, held_back
from hwcal.registry.writer import place_calibration, write_calibration
from tests.conftest import make_valid_doc
from tests.test_merge import artifact, cal, held, merge_here, registry  # noqa: F401 -- the fixture is reused

DATE = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def _case(i: int, action: str) -> dict[str, Any]:
    return {"case": f"bench/test_blas.py::test_blas[dot-fp32-{i}KiB]",
            "reasons": ["other processes used 40% of the 2 CPUs"], "other_cpu_pct": 40.0, "steal_pct": 0.0,
            "action": action, "re_measured": 0 if action == "flagged" else 1,
            "evidence": [{"seconds": 0.2, "other_cpu_pct": 40.0, "steal_pct": 0.0, "load_1m": 2.0,
                          "cpu_freq_mhz": None}]}


def log(flagged: int, watched: int = 100, re_measured: int = 0) -> InterferenceLog:
    cases = [_case(i, "flagged") for i in range(flagged)] + [_case(1000 + i, "re-measured") for i in range(re_measured)]
    return InterferenceLog(["/proc/stat"], {"other_cpu_pct": 10.0}, 12.0, cases=cases, spent_s=3.0, watched=watched)


def doc(flagged: int | None, hours: float = 0.0, **kw: Any) -> dict[str, Any]:
    extra = {} if flagged is None else {"interference": log(flagged)}
    return make_valid_doc(started_at=DATE + timedelta(hours=hours), **extra, **kw)


def test_the_share_comes_from_the_interference_log() -> None:
    d = doc(12)
    assert schema_errors(d) == []
    assert disturbed_share(d) == (12, 100)
    assert disturbed_share(doc(None)) is None  # an unwatched run (an older file, an import) has no share


@pytest.mark.parametrize(("new", "current", "held_"), [
    (30, 2, True),     # a disturbed run over a quiet one: held back
    (30, 14, True),    # under half its share: still clearly quieter
    (30, 15, False),   # half its share or more: not clearly quieter, newest wins
    (10, 0, False),    # at the threshold, not over it
    (11, 0, True),
    (30, None, False),  # the current was never watched: nothing to compare
])
def test_the_rule(new: int, current: int | None, held_: bool) -> None:
    assert DISTURBED_SHARE == 0.10
    reason = held_back(doc(new, hours=5), doc(current))
    assert (reason is not None) == held_
    if reason:
        assert reason.startswith(f"{new} of its 100 cases ({new}%) were measured while something else ran")


def test_a_complete_run_is_not_held_back_by_a_partial_one() -> None:
    partial = doc(0, selection={"partial": True, "partial_why": "-k"})
    assert held_back(doc(40, hours=5), partial) is None
    assert held_back(doc(40, hours=5, selection={"partial": True, "partial_why": "-k"}), partial) is not None


def test_the_writer_keeps_a_disturbed_run_in_history_and_the_quiet_one_current(
        tmp_path: Path, key: CalibrationKey) -> None:
    reg = tmp_path / "reg"
    quiet, noisy = doc(1), doc(40, hours=5)
    write_calibration(reg, key, quiet)
    placed = place_calibration(reg, key, noisy, keep_quieter=True)
    assert placed.held_back and "40 of its 100 cases" in placed.held_back and placed.kept is None
    assert placed.path.parent == history_dir(reg, key)
    assert json.loads(calibration_path(reg, key).read_text()) == quiet
    assert json.loads(read_registry_bytes(placed.path)) == noisy
    # The user's word (--file-disturbed: keep_quieter off) makes it current; the quiet one goes to history.
    again = place_calibration(reg, key, doc(40, hours=6), keep_quieter=False)
    assert again.held_back is None and again.path == calibration_path(reg, key) and again.kept is not None
    assert json.loads(read_registry_bytes(again.kept)) == quiet


def test_a_disturbed_run_with_nothing_quieter_to_keep_is_filed(tmp_path: Path, key: CalibrationKey) -> None:
    reg = tmp_path / "reg"
    first = place_calibration(reg, key, doc(40), keep_quieter=True)
    assert first.held_back is None and first.path == calibration_path(reg, key)
    second = place_calibration(reg, key, doc(45, hours=1), keep_quieter=True)
    assert second.held_back is None and second.path == calibration_path(reg, key)


def test_the_closing_line_says_where_it_went_and_how_to_make_it_current(tmp_path: Path) -> None:
    filed = Filed(doc(40), tmp_path / "history" / "x.json", written=True, held_back="40 of its 100 cases (40%) ...")
    line = _filed_line({"filed": filed})
    assert line is not None and line.startswith("hwcal: calibration kept in history as ")
    assert "not made current: 40 of its 100 cases" in line and "--file-disturbed" in line


def test_a_dry_run_says_it_would_be_kept_in_history(tmp_path: Path) -> None:
    filed = Filed(doc(40), tmp_path / "current.json", written=False, held_back="40 of its 100 cases (40%) ...")
    line = _filed_line({"filed": filed})
    assert line is not None and line.startswith("hwcal: dry run: valid calibration, would be kept in history")
    assert "--file-disturbed" in line
    assert _filed_line({"filed": Filed(doc(40), tmp_path / "c.json", written=False)}) == (
        f"hwcal: dry run: valid calibration, would be written to {tmp_path / 'c.json'}")


def test_merge_keeps_a_disturbed_artifact_in_history_unless_told(
        tmp_path: Path, registry: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    key, _ = cal()
    quiet = make_valid_doc(key=key, power_mode="7W", started_at=DATE, interference=log(1))
    noisy = make_valid_doc(key=key, power_mode="7W", started_at=DATE + timedelta(hours=5), interference=log(40))
    write_calibration(registry, key, quiet)
    artifact(tmp_path / "art", key, noisy)
    rc, out, err = merge_here(capsys, tmp_path / "art", "--registry", registry)
    assert rc == 0, err
    assert "a disturbed run: 40 of its 100 cases" in out and "--file-disturbed" in out
    current, history = held(registry, key)
    assert current == quiet and history == [noisy]
    rc, out, err = merge_here(capsys, tmp_path / "art", "--registry", registry, "--file-disturbed")
    assert rc == 0, err  # already in history: the same content is not filed twice, even when allowed
    later = make_valid_doc(key=key, power_mode="7W", started_at=DATE + timedelta(hours=6), interference=log(40))
    artifact(tmp_path / "art2", key, later)
    rc, out, err = merge_here(capsys, tmp_path / "art2", "--registry", registry, "--file-disturbed")
    assert rc == 0, err
    current, history = held(registry, key)
    assert current == later and quiet in history and noisy in history


def _paced(doc_: dict[str, Any], best_us: float, method: str = "a call look: 100 np.add") -> dict[str, Any]:
    doc_["metadata"]["interference"]["call"] = {"method": method, "looks": 90, "per_call_us_best": best_us,
                                                "per_call_us_slowest": 2 * best_us}
    return doc_


def test_a_run_slow_from_start_to_end_is_held_back_by_its_pace_looks_best() -> None:
    """Its own looks judge against its own best, so a run wholly in a slow episode flags nothing (the Zen 4
    guest's tiny add ran 0.78-0.83 us at best for minutes, against 0.39-0.43 in quiet runs): against the current
    calibration's best it is seen, and kept in history."""
    quiet = _paced(doc(2), 0.424)
    slow = _paced(doc(2, hours=5), 0.78)
    reason = held_back(slow, quiet)
    assert reason is not None and "call look's best was 0.78 us a call, 1.84x the current" in reason
    assert schema_errors(slow) == []
    assert held_back(_paced(doc(2, hours=5), 0.5), quiet) is None  # within SLOW_RUN
    assert held_back(_paced(doc(2, hours=5), 0.78, "another look"), quiet) is None  # not the same look
    assert held_back(slow, doc(2)) is None  # the current ran no such look
    assert held_back(slow, _paced(doc(0, selection={"partial": True, "partial_why": "-k"}), 0.424)) is None


def test_a_slow_run_on_another_framework_version_is_not_held_back() -> None:
    """An upgrade may make the tiny call slower for good: that is no episode, and the looks are not compared."""
    quiet = _paced(doc(2), 0.424)
    slow = _paced(doc(2, hours=5), 0.78)
    slow["metadata"]["framework_version"] = "9.9.9"
    assert held_back(slow, quiet) is None
