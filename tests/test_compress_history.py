"""Compressed history (hwcal.registry.compress, ``hwcal-upgrade --compress-history``): lossless, read by every
reader as before, safe to interrupt and to run again, and a packed file that would unpack too far is refused."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from hwcal import Registry
from hwcal.registry.compress import compress_file, compress_history
from hwcal.registry.fsio import MAX_FILE_BYTES, UnsafePathError, read_registry_bytes
from hwcal.registry.reader import BadRegistryFile, read_calibration, read_json
from hwcal.registry.validate import validate_registry
from hwcal.registry.writer import lock_for
from hwcal.site.data import json_copy, page_path
from tests.fixtures_registry import file_calibration, later, registry, registry_template, run_tool

__all__ = ["registry", "registry_template"]  # fixtures, imported for pytest


def _with_history(registry: Path) -> tuple[Path, list[Path]]:
    """Two later runs of one key: the first two calibrations of it go to history, unpacked."""
    for day in (1, 2):
        file_calibration(registry, "test_cpu", "15W", 2000, "numpy", date=later(day))
    folder = registry / "cpu" / "test_cpu" / "calibrations" / "history"
    for packed in folder.glob("*.json.gz"):  # the writer packs what it supersedes: unpacked, as an older one left them
        packed.with_name(packed.name.removesuffix(".gz")).write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    return folder, sorted(folder.glob("*.json"))


def _listing(registry: Path) -> list[tuple[str, str, bool]]:
    entries = Registry(registry).list_calibrations(history=True)
    return sorted((e.key.filename, e.calibration_date.isoformat(), e.superseded) for e in entries)


def test_history_is_packed_losslessly_and_every_reader_takes_it(registry: Path) -> None:
    folder, plain = _with_history(registry)
    assert len(plain) == 2
    before = {p.name: p.read_bytes() for p in plain}
    listed = _listing(registry)
    assert [c.action for c in compress_history(registry, dry_run=True)] == ["would compress"] * 2
    assert sorted(folder.iterdir()) == plain  # a dry run writes nothing
    steps = compress_history(registry)
    assert [c.action for c in steps] == ["compressed"] * 2 and all(c.after < c.before / 3 for c in steps)
    packed = sorted(folder.iterdir())
    assert [p.name for p in packed] == [name + ".gz" for name in sorted(before)]
    for p in packed:
        assert gzip.decompress(p.read_bytes()) == before[p.name[:-3]] == read_registry_bytes(p)
        assert read_calibration(p, registry).doc == json.loads(before[p.name[:-3]])
    assert _listing(registry) == listed  # the same entries, dates and history flags
    report = validate_registry(registry)
    assert report.ok and report.calibrations_checked == 7, report.errors  # 5 current, 2 packed
    assert compress_history(registry) == []  # nothing left to pack
    current = registry / "cpu" / "test_cpu" / "calibrations" / "15W_2000MHz_numpy.json"
    assert current.is_file() and not current.with_name(current.name + ".gz").exists()  # current files stay
    rel = "cpu/test_cpu/calibrations/history/" + packed[0].name
    assert page_path(rel).endswith(packed[0].name[: -len(".json.gz")] + ".html")
    assert json_copy(rel).endswith(".json")  # the site serves it unpacked


def test_an_interrupted_run_leaves_both_and_the_next_removes_the_original(registry: Path) -> None:
    _, plain = _with_history(registry)
    raw = plain[0].read_bytes()
    twin = plain[0].with_name(plain[0].name + ".gz")
    twin.write_bytes(gzip.compress(raw))  # killed after the packed file's write
    # A packed file of the other's name holding other bytes is never overwritten: that original stays
    other = plain[1].with_name(plain[1].name + ".gz")
    other.write_bytes(gzip.compress(b'{"other": 1}'))
    steps = {c.path.name: c for c in compress_history(registry)}
    assert steps[twin.name].action == "compressed" and not plain[0].exists() and read_registry_bytes(twin) == raw
    step = steps[plain[1].name]
    assert step.action == "error" and "holds other bytes" in step.message and plain[1].is_file()
    with lock_for(registry, "cpu", "test_cpu"):  # the same, one file at a time
        assert compress_file(plain[1], registry).action == "error"


def test_damaged_corrupt_and_format1_files_are_left_as_they_are(registry: Path) -> None:
    folder, plain = _with_history(registry)
    damaged = plain[0].read_text()[:100]
    plain[0].write_text(damaged)
    kept = [shutil.copy(plain[1], folder / plain[1].name.replace(".json", ".corrupt.json")),
            shutil.copy(plain[1], folder / plain[1].name.replace(".json", ".format1.json"))]
    steps = {c.path.name: c for c in compress_history(registry)}
    assert steps[plain[0].name].action == "left" and plain[0].read_text() == damaged
    assert steps[plain[1].name + ".gz"].action == "compressed"
    assert all(Path(k).is_file() for k in kept) and len(steps) == 2


def test_a_packed_file_that_unpacks_too_far_or_is_not_gzip_is_refused_in_one_line(tmp_path: Path) -> None:
    bomb = tmp_path / "x.20261101T120000000000Z.json.gz"
    bomb.write_bytes(gzip.compress(b" " * (MAX_FILE_BYTES + 1)))
    with pytest.raises(UnsafePathError, match="unpacks to over 64 MiB"):
        read_registry_bytes(bomb)
    cut = tmp_path / "y.20261101T120000000000Z.json.gz"
    cut.write_bytes(gzip.compress(b'{"a": 1}')[:-6])
    with pytest.raises(UnsafePathError, match="truncated"):
        read_registry_bytes(cut)
    plain = tmp_path / "z.20261101T120000000000Z.json.gz"
    plain.write_text('{"a": 1}')
    with pytest.raises(BadRegistryFile, match="not a readable gzip file") as err:
        read_json(plain)
    assert "\n" not in str(err.value)


def test_the_upgrade_tool_compresses_on_request(registry: Path) -> None:
    folder, plain = _with_history(registry)
    out = run_tool("upgrade_registry", "--registry", registry, "--compress-history", "--dry-run")
    assert out.returncode == 0 and "history: 2 file(s) would be compressed" in out.stdout
    assert sorted(folder.iterdir()) == plain
    out = run_tool("upgrade_registry", "--registry", registry, "--compress-history")
    assert out.returncode == 0 and "history: 2 file(s) compressed" in out.stdout, out.stdout + out.stderr
    assert all(p.name.endswith(".json.gz") for p in folder.iterdir())
    listed = run_tool("list_calibrations", "--registry", registry, "--history", "--json")
    paths = [c["path"] for c in json.loads(listed.stdout)["calibrations"]]
    assert sum(p.endswith(".json.gz") for p in paths) == 2
    assert run_tool("upgrade_registry", "--registry", registry).stdout.count("compressed") == 0  # off by default


def test_an_older_format_is_left_for_the_upgrade_and_a_packed_name_is_taken(registry: Path) -> None:
    from hwcal.naming import CalibrationKey, history_path

    folder, plain = _with_history(registry)
    doc = json.loads(plain[0].read_text())
    doc["schema_version"] = 1
    plain[0].write_text(json.dumps(doc))
    steps = {c.path.name: c for c in compress_history(registry)}
    assert steps[plain[0].name].action == "left" and "hwcal-upgrade" in steps[plain[0].name].message
    packed = plain[1].with_name(plain[1].name + ".gz")
    assert packed.is_file()
    # The writer's next history name never lands beside a packed file of the same stamp
    key = CalibrationKey("cpu", "test_cpu", "15W", 2000, "numpy")
    stamp = packed.name.split(".")[1]
    assert history_path(registry, key, stamp).name != packed.name[:-3]
    assert history_path(registry, key, stamp).parent == folder


def test_merge_names_a_packed_history_file_it_does_not_merge(registry: Path, tmp_path: Path) -> None:
    folder, _ = _with_history(registry)
    compress_history(registry)
    artifact = tmp_path / "artifact"
    shutil.copytree(registry / "cpu", artifact / "cpu")
    out = run_tool("merge_calibrations", artifact, "--registry", registry, "--dry-run")
    packed = sorted(folder.iterdir())
    assert len(packed) == 2 and all(p.name.endswith(".json.gz") for p in packed)
    assert out.stdout.count("in a history/ folder; not merged") + out.stderr.count("in a history/ folder") >= 2, \
        out.stdout + out.stderr


def test_a_packed_history_file_is_drawn(registry: Path, tmp_path: Path) -> None:
    """The site's charts of a superseded calibration read the packed file (hwcal-site --figures all)."""
    pytest.importorskip("matplotlib")
    from hwcal.site.figures import CHARTS, _render_one

    for day in (1, 2):
        file_calibration(registry, "test_cpu", "15W", 2000, "numpy", date=later(day))
    packed = next((registry / "cpu" / "test_cpu" / "calibrations" / "history").glob("*.json.gz"))
    _, error = _render_one((str(packed), "cpu/test_cpu/old", str(tmp_path / "site")))
    assert error is None and len(list((tmp_path / "site").rglob("*.svg"))) == len(CHARTS)
