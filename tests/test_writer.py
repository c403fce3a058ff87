"""The registry writer: atomic, locked, keeps history, refuses invalid documents, never loses a file."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import hwcal
from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.naming import CalibrationKey, calibration_path, history_dir, spec_path
from hwcal.registry.fsio import read_registry_bytes
from hwcal.registry.writer import atomic_write_text, dumps, lock_for, write_calibration

DocFactory = Callable[..., dict[str, Any]]
SPEC = {"schema_version": 1, "id": "test_cpu", "model": "Test CPU 9000", "device_type": "cpu",
        "theoretical_peaks": {"fp32": 400.0}, "peaks_source": "derived"}


def _temp_files(registry: Path) -> list[Path]:
    return [p for p in registry.rglob("*") if p.name.endswith(".tmp")]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(read_registry_bytes(path))  # a history file is packed (.json.gz)


def test_writes_the_document_and_the_spec(tmp_path: Path, key: CalibrationKey, valid_doc: dict[str, Any]) -> None:
    registry = tmp_path / "registry"
    path, kept = write_calibration(registry, key, valid_doc, SPEC)
    assert path == calibration_path(registry, key)
    assert path == registry / "cpu/test_cpu/calibrations/7W_2450MHz_numpy.json"
    assert kept is None
    assert _load(path) == valid_doc
    assert path.read_text() == dumps(valid_doc)
    assert _load(spec_path(registry, "cpu", "test_cpu")) == SPEC
    assert _temp_files(registry) == []
    assert not history_dir(registry, key).exists()


def test_an_existing_spec_is_not_overwritten(tmp_path: Path, key: CalibrationKey, valid_doc: dict[str, Any]) -> None:
    registry = tmp_path / "registry"
    existing = spec_path(registry, "cpu", "test_cpu")
    existing.parent.mkdir(parents=True)
    existing.write_text(json.dumps({**SPEC, "model": "Datasheet CPU"}))
    write_calibration(registry, key, valid_doc, SPEC)
    assert _load(existing)["model"] == "Datasheet CPU"


def test_failed_replace_keeps_the_old_file(tmp_path: Path, key: CalibrationKey, doc_factory: DocFactory,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "registry"
    old = doc_factory()
    path, _ = write_calibration(registry, key, old)
    old_text = path.read_text()

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    new = doc_factory(started_at=datetime(2026, 12, 1, tzinfo=timezone.utc))
    with pytest.raises(HwcalError, match="No space left on device; nothing written"):
        write_calibration(registry, key, new)
    assert path.read_text() == old_text
    assert _temp_files(registry) == []


def test_failed_replace_leaves_no_history_copy(tmp_path: Path, key: CalibrationKey, doc_factory: DocFactory,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """'nothing written' must hold for history too: a copy of a file that was never superseded would make
    the next successful write keep the same calibration twice."""
    registry = tmp_path / "registry"
    write_calibration(registry, key, doc_factory())

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(HwcalError):
        write_calibration(registry, key, doc_factory(started_at=datetime(2026, 12, 1, tzinfo=timezone.utc)))
    hist = history_dir(registry, key)
    assert not hist.exists() or list(hist.iterdir()) == []


def test_failed_first_write_leaves_no_file(tmp_path: Path, key: CalibrationKey, valid_doc: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "registry"

    def fail_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail_fsync)
    with pytest.raises(HwcalError, match="Input/output error"):
        write_calibration(registry, key, valid_doc)
    assert not calibration_path(registry, key).exists()
    assert _temp_files(registry) == []


def test_atomic_write_text_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while writing: the target keeps its old content and no temp file is left."""
    target = tmp_path / "sub" / "file.json"
    atomic_write_text(target, "old\n")

    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_rewriting_a_key_keeps_the_previous_in_history(tmp_path: Path, key: CalibrationKey,
                                                       doc_factory: DocFactory) -> None:
    registry = tmp_path / "registry"
    first = doc_factory(started_at=datetime(2026, 11, 26, 18, 46, 57, 123456, tzinfo=timezone.utc))
    second = doc_factory(started_at=datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc))
    path, kept = write_calibration(registry, key, first)
    assert kept is None
    path2, kept = write_calibration(registry, key, second)
    assert path2 == path
    assert kept == history_dir(registry, key) / "7W_2450MHz_numpy.20261126T184657123456Z.json.gz"  # packed
    assert kept.parent == registry / "cpu/test_cpu/calibrations/history"
    assert _load(kept) == first
    assert gzip.decompress(kept.read_bytes()) == dumps(first).encode()  # the very bytes it replaced
    assert _load(path) == second
    assert sorted(p.name for p in path.parent.glob("*.json")) == [path.name]  # history is not a calibration


def test_an_older_format_goes_to_history_unpacked_for_the_upgrade(tmp_path: Path, key: CalibrationKey,
                                                                   doc_factory: DocFactory) -> None:
    """hwcal-upgrade rewrites files of an older format, and packs only the current one: those stay as they are."""
    registry = tmp_path / "registry"
    old = doc_factory(started_at=datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc))
    path, _ = write_calibration(registry, key, old)
    raw = path.read_text().replace('"schema_version": 2', '"schema_version": 1', 1)
    path.write_text(raw)
    _, kept = write_calibration(registry, key, doc_factory(started_at=datetime(2026, 11, 27, tzinfo=timezone.utc)))
    assert kept is not None and kept.name.endswith("Z.json") and kept.read_text() == raw


def test_history_names_never_collide(tmp_path: Path, key: CalibrationKey, valid_doc: dict[str, Any]) -> None:
    registry = tmp_path / "registry"
    kept = [write_calibration(registry, key, valid_doc)[1] for _ in range(4)]
    assert kept[0] is None
    assert len({p for p in kept[1:] if p is not None}) == 3
    assert len(list(history_dir(registry, key).iterdir())) == 3


@pytest.mark.parametrize("content", ["{not json", "", '{"metadata": {"calibration_date": "garbage"}}', "[1, 2]"])
def test_a_corrupt_existing_file_is_kept_as_corrupt(tmp_path: Path, key: CalibrationKey, valid_doc: dict[str, Any],
                                                    content: str) -> None:
    registry = tmp_path / "registry"
    path = calibration_path(registry, key)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    _, kept = write_calibration(registry, key, valid_doc)
    assert kept is not None
    assert kept.parent == history_dir(registry, key)
    assert kept.name.startswith("7W_2450MHz_numpy.") and kept.name.endswith(".corrupt.json")
    assert kept.read_text() == content  # kept byte for byte
    assert _load(path) == valid_doc


def test_an_invalid_document_raises_and_writes_nothing(tmp_path: Path, key: CalibrationKey,
                                                       valid_doc: dict[str, Any]) -> None:
    registry = tmp_path / "registry"
    del valid_doc["metadata"]["calibration_date"]
    valid_doc["gemm"][0]["n"] = "big"
    with pytest.raises(HwcalError) as info:
        write_calibration(registry, key, valid_doc, SPEC)
    message = str(info.value)
    assert "nothing written" in message
    assert "$.metadata: 'calibration_date' is a required property" in message
    assert "$.gemm[0].n: 'big' is not of type 'integer'" in message
    assert not registry.exists()


def test_an_invalid_spec_raises_and_writes_nothing(tmp_path: Path, key: CalibrationKey,
                                                   valid_doc: dict[str, Any]) -> None:
    registry = tmp_path / "registry"
    with pytest.raises(HwcalError, match=r"spec\.json \$: 'peaks_source' is a required property"):
        write_calibration(registry, key, valid_doc, {k: v for k, v in SPEC.items() if k != "peaks_source"})
    assert not registry.exists()


def test_an_invalid_document_leaves_the_existing_file_alone(tmp_path: Path, key: CalibrationKey,
                                                            valid_doc: dict[str, Any]) -> None:
    registry = tmp_path / "registry"
    path, _ = write_calibration(registry, key, valid_doc)
    before = path.read_text()
    with pytest.raises(HwcalError):
        write_calibration(registry, key, {**valid_doc, "extra": 1})
    assert path.read_text() == before
    assert not history_dir(registry, key).exists()


def test_a_registry_that_is_a_file_is_refused(tmp_path: Path, key: CalibrationKey, valid_doc: dict[str, Any]) -> None:
    registry = tmp_path / "registry"
    registry.write_text("not a folder\n")
    with pytest.raises(HwcalError, match=r"cannot write to registry .*nothing written"):
        write_calibration(registry, key, valid_doc)
    assert registry.read_text() == "not a folder\n"


_CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from hwcal.naming import CalibrationKey
    from hwcal.registry.writer import write_calibration
    registry, doc_file = Path(sys.argv[1]), Path(sys.argv[2])
    doc = json.loads(doc_file.read_text())
    print("ready", flush=True)
    path, kept = write_calibration(registry, CalibrationKey(**doc["key"]), doc)
    print(json.dumps({"path": str(path), "kept": str(kept) if kept else None}), flush=True)
""")


def test_two_processes_writing_one_key_are_serialised(tmp_path: Path, key: CalibrationKey,
                                                      doc_factory: DocFactory) -> None:
    registry = tmp_path / "registry"
    start = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    docs = [doc_factory(started_at=start + timedelta(minutes=i)) for i in range(2)]
    doc_files = []
    for i, doc in enumerate(docs):
        doc_files.append(tmp_path / f"doc{i}.json")
        doc_files[-1].write_text(json.dumps(doc))
    env = {**os.environ, "PYTHONPATH": str(Path(hwcal.__file__).resolve().parent.parent)}
    lock = lock_for(registry, key.device_type, key.hardware_id)
    with lock:  # both writers start while another run holds the lock
        children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(registry), str(f)], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in doc_files]
        try:
            for child in children:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "ready"
            time.sleep(0.3)  # give them the chance to write, which the lock must prevent
            assert not calibration_path(registry, key).exists()
        except BaseException:
            for child in children:
                child.kill()
            raise
    results = [child.communicate(timeout=120) for child in children]
    for child, (_, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    path = calibration_path(registry, key)
    final = _load(path)  # valid JSON, never interleaved
    assert schema_errors(final) == []
    # Whichever wrote first, the newer calibration_date is current and the other is in history.
    newest = max(docs, key=lambda d: d["metadata"]["calibration_date"])
    assert final == newest
    history = list(history_dir(registry, key).iterdir())
    assert len(history) == 1
    assert [_load(history[0]), final] in (docs, docs[::-1])  # the other one is kept, nothing lost
    assert sum(r["kept"] is not None for r in reports) <= 1
    assert _temp_files(registry) == []
