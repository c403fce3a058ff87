"""tools/merge_calibrations.py as users and the calibrate workflow run it: a subprocess on folders
shaped like downloaded artifacts. Documents come from the builder (tests/conftest.py), not from a
benchmark, so the whole file runs in a few seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hwcal.cli.merge_calibrations import main
from hwcal.document.spec import build_cpu_spec
from hwcal.naming import CalibrationKey, calibration_path, history_dir, spec_path
from hwcal.registry.fsio import read_registry_bytes
from hwcal.registry.layout import history_files
from hwcal.registry.writer import dumps, write_calibration
from tests.conftest import make_key, make_valid_doc

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "merge_calibrations.py"
DATE = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def merge(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)


def merge_here(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """The same tool in this process (no interpreter start-up), for the cases that need no isolation."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def spec_for(hardware_id: str) -> dict[str, Any]:
    return build_cpu_spec(hardware_id, {"cpu": {"model": "Test CPU 9000", "physical_cores": 2}}, 2450.0, DATE)


def cal(hardware_id: str = "board_a", power_mode: str = "7W", hours: float = 0.0) -> tuple[CalibrationKey, dict]:
    key = make_key(power_mode=power_mode, hardware_id=hardware_id)
    return key, make_valid_doc(key=key, power_mode=power_mode, started_at=DATE + timedelta(hours=hours))


def artifact(root: Path, key: CalibrationKey, doc: dict[str, Any], with_spec: bool = True) -> Path:
    """A runner's artifact folder in registry layout, as fleet/calibrate.py uploads it."""
    path = calibration_path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(doc))
    if with_spec:
        spec_path(root, key.device_type, key.hardware_id).write_text(dumps(spec_for(key.hardware_id)))
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A registry that knows board_a and board_b (spec.json only)."""
    reg = tmp_path / "registry"
    for hw in ("board_a", "board_b"):
        path = spec_path(reg, "cpu", hw)
        path.parent.mkdir(parents=True)
        path.write_text(dumps(spec_for(hw)))
    return reg


def held(reg: Path, key: CalibrationKey) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    current = json.loads(calibration_path(reg, key).read_text())
    hist = history_dir(reg, key)
    return current, [json.loads(read_registry_bytes(p)) for p in history_files(hist)] if hist.is_dir() else []


def test_two_runners_are_merged_and_a_rerun_changes_nothing(tmp_path: Path, registry: Path) -> None:
    key_a, doc_a = cal("board_a", "7W")
    key_b, doc_b = cal("board_b", "15W", hours=1)
    artifact(tmp_path / "hwcal-calibration-runner-a", key_a, doc_a)
    artifact(tmp_path / "hwcal-calibration-runner-b", key_b, doc_b)
    inputs = [tmp_path / "hwcal-calibration-runner-a", tmp_path / "hwcal-calibration-runner-b"]

    dry = merge(*inputs, "--registry", registry, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would file" in dry.stdout and not calibration_path(registry, key_a).exists()

    done = merge(*inputs, "--registry", registry)
    assert done.returncode == 0, done.stderr
    assert "2 filed" in done.stdout
    assert held(registry, key_a)[0] == doc_a and held(registry, key_b)[0] == doc_b

    again = merge(*inputs, "--registry", registry, "--json")
    report = json.loads(again.stdout)
    assert again.returncode == 0 and report["ok"]
    assert [a["action"] for a in report["actions"]] == ["unchanged", "unchanged"]
    assert not history_dir(registry, key_a).exists()


def test_a_newer_calibration_keeps_the_previous_in_history(tmp_path: Path, registry: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    key, old = cal(hours=0)
    write_calibration(registry, key, old)
    _, new = cal(hours=5)
    artifact(tmp_path / "art", key, new)
    rc, out, err = merge_here(capsys, tmp_path / "art", "--registry", registry)
    assert rc == 0, err
    assert "previous kept as cpu/board_a/calibrations/history/" in out
    current, history = held(registry, key)
    assert current == new and history == [old]


def test_two_runners_claiming_one_key_conflict_and_nothing_is_lost(tmp_path: Path, registry: Path) -> None:
    key, older = cal(hours=1)
    _, newer = cal(hours=2)
    _, previous = cal(hours=0)
    write_calibration(registry, key, previous)
    artifact(tmp_path / "runner-1", key, newer)
    artifact(tmp_path / "runner-2", key, older)

    done = merge(tmp_path / "runner-1", tmp_path / "runner-2", "--registry", registry)
    assert done.returncode == 1
    lines = [ln for ln in done.stderr.splitlines() if "conflict:" in ln]
    assert len(lines) == 1 and "runner-1" in lines[0] and "runner-2" in lines[0], done.stderr
    current, history = held(registry, key)
    assert current == newer  # the newer calibration_date wins, whatever the order of the inputs
    assert sorted(d["metadata"]["calibration_date"] for d in history) == \
        sorted([older["metadata"]["calibration_date"], previous["metadata"]["calibration_date"]])


def test_an_input_older_than_the_current_goes_to_history_not_over_it(tmp_path: Path, registry: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    key, current_doc = cal(hours=3)
    write_calibration(registry, key, current_doc)
    _, stale = cal(hours=1)
    artifact(tmp_path / "late", key, stale)
    rc, out, err = merge_here(capsys, tmp_path / "late", "--registry", registry, "--json")
    assert rc == 0, err
    assert json.loads(out)["actions"][0]["action"] == "history"
    current, history = held(registry, key)
    assert current == current_doc and history == [stale]


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not valid JSON"),
    ('{"hello": "world"}', "not an hwcal file"),
    ("[]", "not a JSON object"),
])
def test_an_artifact_that_is_not_a_calibration_is_refused_and_the_rest_merged(
        tmp_path: Path, registry: Path, capsys: pytest.CaptureFixture[str], content: str, reason: str) -> None:
    key, doc = cal()
    artifact(tmp_path / "art", key, doc)
    bad = tmp_path / "art" / "cpu" / "board_a" / "calibrations" / "15W_2450MHz_numpy.json"
    bad.write_text(content)
    rc, _, err = merge_here(capsys, tmp_path / "art", "--registry", registry)
    assert rc == 1
    refused = [ln for ln in err.splitlines() if "refused:" in ln]
    assert len(refused) == 1 and str(bad) in refused[0] and reason in refused[0], err
    assert held(registry, key)[0] == doc
    assert bad.read_text() == content  # left where it was


def test_a_schema_invalid_calibration_is_refused(tmp_path: Path, registry: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    key, doc = cal()
    del doc["precision_matrix"]
    path = artifact(tmp_path / "art", key, doc)
    rc, _, err = merge_here(capsys, path, "--registry", registry)
    assert rc == 1 and "not a valid calibration" in err
    assert not calibration_path(registry, key).exists()


def test_a_file_named_unlike_its_key_is_refused(tmp_path: Path, registry: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    key, doc = cal(power_mode="7W")
    flat = tmp_path / "flat" / "MAXN_2450MHz_numpy.json"  # a flat download, renamed by hand
    flat.parent.mkdir()
    flat.write_text(dumps(doc))
    rc, _, err = merge_here(capsys, flat, "--registry", registry)
    assert rc == 1 and "disagrees with its key" in err
    assert not calibration_path(registry, key).exists()


def test_unknown_hardware_is_refused_unless_allowed_with_its_spec(tmp_path: Path, registry: Path) -> None:
    key, doc = cal("board_new")
    artifact(tmp_path / "art", key, doc)
    truncated = tmp_path / "junk" / "7W_2450MHz_numpy.json"  # an upload cut short
    truncated.parent.mkdir()
    truncated.write_text(dumps(doc)[:100])
    refused = merge(tmp_path / "art", truncated, "--registry", registry)
    assert refused.returncode == 1
    assert "unknown hardware 'board_new'" in refused.stderr and "--allow-new-hardware" in refused.stderr
    assert f"refused: {truncated}: not valid JSON (truncated or corrupt?)" in refused.stderr
    assert not (registry / "cpu" / "board_new").exists()

    allowed = merge(tmp_path / "art", "--registry", registry, "--allow-new-hardware")
    assert allowed.returncode == 0, allowed.stderr
    assert held(registry, key)[0] == doc
    assert json.loads(spec_path(registry, "cpu", "board_new").read_text())["id"] == "board_new"


def test_new_hardware_without_a_spec_is_refused_even_when_allowed(tmp_path: Path, registry: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    key, doc = cal("board_new")
    path = artifact(tmp_path / "art", key, doc, with_spec=False)
    rc, _, err = merge_here(capsys, path, "--registry", registry, "--allow-new-hardware")
    assert rc == 1 and "no spec.json" in err
    assert not (registry / "cpu" / "board_new").exists()


def test_usage_errors_exit_2(tmp_path: Path, registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = merge_here(capsys, tmp_path / "nope", "--registry", registry)
    assert rc == 2 and "no such file or folder" in err
    assert merge_here(capsys, "--registry", registry)[0] == 2  # no input at all
