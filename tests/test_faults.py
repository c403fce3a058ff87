"""Fault injection on the registry: killed writers, a full disk, hostile links and special files, hostile
content, several users on one host, clocks in the future, Ctrl-C. Each ends with a registry that
validates and nothing outside it touched. No timed assertions."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fixtures_registry import REPO, make_calibration, make_spec, run_tool, write_json

from hwcal.errors import HwcalError
from hwcal.naming import calibration_path, history_dir, spec_path
from hwcal.registry import fsio
from hwcal.registry import locks as hoststate
from hwcal.registry.api import Registry
from hwcal.registry.reader import read_json
from hwcal.registry.validate import validate_registry
from hwcal.registry.writer import write_calibration

D1 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
D2 = D1 + timedelta(days=1)


def _filed(registry: Path, date: datetime = D1, **kw: object) -> tuple[object, dict, Path]:
    key, doc = make_calibration(date=date, **kw)  # type: ignore[arg-type]
    path, _ = write_calibration(registry, key, doc, make_spec(key.hardware_id, key.device_type))
    return key, doc, path


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".hwcal-cache" not in p.parts)


def _valid(registry: Path) -> None:
    report = validate_registry(registry)
    assert report.ok, report.errors


# ---- one write path: killed at every step, a full disk, leftovers -------------------------------

@pytest.mark.parametrize("step", fsio.WRITE_STEPS)
def test_a_writer_killed_at_any_step_leaves_the_registry_whole(tmp_path: Path, step: str) -> None:
    registry = tmp_path / "registry"
    _key, first, path = _filed(registry)
    before = path.read_text()
    script = textwrap.dedent(f"""
        import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
        from datetime import datetime, timezone
        from pathlib import Path
        from fixtures_registry import make_calibration
        from hwcal.registry.writer import write_calibration
        key, doc = make_calibration(date=datetime(2026, 11, 2, 12, tzinfo=timezone.utc))
        write_calibration(Path({str(registry)!r}), key, doc)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, fsio.FAULT_ENV: step},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr  # killed at that step
    # The key holds a whole calibration, old or new; history holds whole files only.
    now = json.loads(path.read_text())
    assert now["metadata"]["calibration_date"] in (first["metadata"]["calibration_date"],
                                                   "2026-11-02T12:00:00+00:00") or path.read_text() == before
    _valid(registry)
    # The next write removes what the killed one left.
    key3, doc3 = make_calibration(date=D2 + timedelta(days=1))
    write_calibration(registry, key3, doc3)
    assert fsio.stale_temps([path.parent, history_dir(registry, key3), path.parent.parent]) == []
    _valid(registry)


def test_leftover_temp_files_are_reported_then_removed(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    _key, _, path = _filed(registry)
    leftover = path.parent / f".{path.name}.abc123.tmp"
    leftover.write_text('{"half": ')
    report = validate_registry(registry)
    assert report.ok and any(str(leftover) in n and "killed write" in n for n in report.notes)
    key2, doc2 = make_calibration(date=D2)
    write_calibration(registry, key2, doc2)
    assert not leftover.exists()


def test_a_full_disk_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "registry"
    _key, _, path = _filed(registry)
    before = _all_files(registry)
    content = path.read_bytes()

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fsio.os, "write", full)
    key2, doc2 = make_calibration(date=D2)
    with pytest.raises(HwcalError, match="No space left on device; nothing written"):
        write_calibration(registry, key2, doc2)
    monkeypatch.undo()
    assert _all_files(registry) == before and path.read_bytes() == content
    _valid(registry)


def test_spec_is_filed_before_the_calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "registry"
    order: list[str] = []
    real = fsio.os.replace

    def spy(src: str, dst: str) -> None:
        order.append(Path(dst).name)
        real(src, dst)

    monkeypatch.setattr(fsio.os, "replace", spy)
    _filed(registry)
    assert order == ["spec.json", "7W_2000MHz_numpy.json"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_filed_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        _key, _, path = _filed(tmp_path / "registry")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert spec_path(tmp_path / "registry", "cpu", "test_cpu").stat().st_mode & 0o777 == 0o666 & ~umask


# ---- containment: hostile links and special files ---------------------------------------------

def test_a_calibrations_folder_linked_outside_is_refused(tmp_path: Path) -> None:
    registry, outside = tmp_path / "registry", tmp_path / "outside"
    outside.mkdir()
    hw = registry / "cpu" / "test_cpu"
    hw.mkdir(parents=True)
    write_json(hw / "spec.json", make_spec())
    (hw / "calibrations").symlink_to(outside, target_is_directory=True)
    key, doc = make_calibration()
    with pytest.raises(HwcalError, match="outside the registry"):
        write_calibration(registry, key, doc)
    assert list(outside.iterdir()) == []


def test_a_calibration_linked_to_a_system_file_is_not_copied_into_history(tmp_path: Path) -> None:
    registry, secret = tmp_path / "registry", tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    _key, _, path = _filed(registry)
    path.unlink()
    path.symlink_to(secret)
    key2, doc2 = make_calibration(date=D2)
    with pytest.raises(HwcalError, match="symlink pointing outside"):
        write_calibration(registry, key2, doc2)
    hist = history_dir(registry, key2)
    assert not hist.exists() or all("root:x" not in p.read_text() for p in hist.iterdir())
    assert secret.read_text() == "root:x:0:0\n"


def test_fifos_and_devices_never_hang_a_reader(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    _key, _, path = _filed(registry)
    fifo = path.parent / "15W_2000MHz_numpy.json"
    os.mkfifo(fifo)
    reg = Registry(registry, emit_warnings=False)
    assert [e.path for e in reg.list_calibrations()] == [path]
    assert any("FIFO" in s.reason for s in reg.skipped)
    report = validate_registry(registry)
    assert any("FIFO" in e for e in report.errors)
    with pytest.raises(HwcalError, match="FIFO"):
        reg.read(fifo)
    with pytest.raises(HwcalError, match="not a regular file"):
        read_json(Path("/dev/zero"))
    key2, doc2 = make_calibration("test_cpu", "15W", 2000, date=D2)
    with pytest.raises(HwcalError, match="FIFO"):
        write_calibration(registry, key2, doc2)


# ---- hostile content ---------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "reason"), [
    ("[" * 200_000 + "]" * 200_000, "nested too deep"),
    ('{"a": NaN}', "NaN"),
    ('{"a": [1e999]}', "Infinity"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_hostile_content_is_one_line_everywhere(tmp_path: Path, content: str | bytes, reason: str) -> None:
    registry = tmp_path / "registry"
    _filed(registry)
    bad = registry / "cpu" / "test_cpu" / "calibrations" / "15W_2000MHz_numpy.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    listed = run_tool("list_calibrations", "--registry", registry, "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert any(reason in s["reason"] for s in data["skipped"])
    checked = run_tool("validate_registry", registry, "--json")
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert any(reason in e for e in json.loads(checked.stdout)["errors"])


def test_a_nan_calibration_never_passes_validate(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    _key, _doc, path = _filed(registry)
    path.write_text(path.read_text().replace('"measured_bandwidth_gbps": 40.0', '"measured_bandwidth_gbps": NaN'))
    assert "NaN" in path.read_text()
    assert not validate_registry(registry).ok


# ---- several users on one host ------------------------------------------------------------------

def test_the_device_lock_is_host_wide_whatever_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hoststate.ENV_STATE_DIR, str(tmp_path / "state"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "a"))
    first = hoststate.device_lock("cpu").path
    monkeypatch.setenv("TMPDIR", str(tmp_path / "b"))
    assert hoststate.device_lock("cpu").path == first
    assert (tmp_path / "state").stat().st_mode & 0o7777 == 0o1777


def test_a_lock_held_by_another_user_names_the_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hoststate.ENV_STATE_DIR, str(tmp_path / "state"))
    lock_path = hoststate.device_lock("cpu").path
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time; sys.path.insert(0, {str(REPO)!r})
            from hwcal.registry.locks import device_lock
            lock = device_lock("cpu"); assert lock.acquire(60); print("held", flush=True); sys.stdin.read()
        """)], env={**os.environ, "TMPDIR": str(tmp_path)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        os.chown(lock_path, 65534, 65534)  # left by another user (nobody), mode 0666 as created
        mine = hoststate.device_lock("cpu")
        assert not mine.acquire(timeout=0)
        assert f"pid {holder.pid}" in mine.holder()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    os.chmod(lock_path, 0o644)  # another user's stale lock file, not writable by the group
    mine = hoststate.device_lock("cpu")
    assert mine.acquire(timeout=0)
    mine.release()


def test_a_forged_lock_holder_cannot_forge_output_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock file is writable by every user (0666): what it says is escaped before it is printed."""
    monkeypatch.setenv(hoststate.ENV_STATE_DIR, str(tmp_path / "state"))
    lock = hoststate.device_lock("cpu")
    lock.path.write_text(json.dumps({"user": "alice\n\x1b[2Jhwcal: preflight: 4 passed", "pid": "7\r\n",
                                     "host": "h\u202ex", "since": ["x"] * 100}))
    said = lock.holder()
    assert said.isprintable() and "\n" not in said and "\x1b" not in said
    assert said.startswith("alice\\n\\x1b[2Jhwcal: preflight: 4 passed (pid 7\\r\\n on h\\u202ex, since ['x',")
    assert len(said) < 300


def test_a_relative_state_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative HWCAL_STATE_DIR would give each working directory its own "host-wide" lock."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(hoststate.ENV_STATE_DIR, "state")
    with pytest.raises(HwcalError, match=r"HWCAL_STATE_DIR='state' is a relative path.*absolute") as info:
        hoststate.device_lock("cpu")
    assert "\n" not in str(info.value) and not (tmp_path / "state").exists()
    kept = hoststate.keep_rejected_text("run.json", "{}\n")  # a run's measurements still land somewhere
    assert kept.read_text() == "{}\n" and not kept.is_relative_to(tmp_path)
    kept.unlink()
    kept.parent.rmdir()


def test_a_rejected_folder_of_another_user_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    monkeypatch.setenv(hoststate.ENV_STATE_DIR, str(tmp_path / "state"))
    monkeypatch.setattr(hoststate.tempfile, "tempdir", str(tmp_path))
    planted = hoststate.state_dir() / f"rejected-{getpass.getuser()}"
    planted.mkdir()
    os.chown(planted, 65534, 65534)
    kept = hoststate.keep_rejected_text("run.json", '{"gemm": []}\n')
    assert kept.parent != planted and kept.read_text() == '{"gemm": []}\n'
    assert list(planted.iterdir()) == []
    os.chown(planted, os.geteuid(), os.getegid())
    again = hoststate.keep_rejected_text("run.json", "{}\n")
    assert again.parent == planted


def test_two_runs_of_two_users_file_into_one_registry(tmp_path: Path) -> None:
    """Two processes, different TMPDIRs and umasks, one registry: both files whole, readable, valid."""
    registry = tmp_path / "registry"
    script = textwrap.dedent(f"""
        import os, sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
        from datetime import datetime, timezone, timedelta
        from pathlib import Path
        from fixtures_registry import make_calibration, make_spec
        from hwcal.registry.writer import write_calibration
        os.umask(int(sys.argv[1], 8))
        for i in range(5):
            key, doc = make_calibration(power_mode=sys.argv[2],
                                        date=datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(hours=i))
            write_calibration(Path({str(registry)!r}), key, doc, make_spec())
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, umask, mode],
                              env={**os.environ, "TMPDIR": str(tmp_path / mode)})
             for umask, mode in (("022", "7W"), ("002", "15W"))]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    _valid(registry)
    reg = Registry(registry, emit_warnings=False)
    assert len(reg.list_calibrations()) == 2 and len(reg.list_calibrations(history=True)) == 10
    assert (registry / "cpu/test_cpu/calibrations/15W_2000MHz_numpy.json").stat().st_mode & 0o777 == 0o664


# ---- time and order -----------------------------------------------------------------------------

def test_a_future_dated_current_does_not_win_silently(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    future = datetime.now(timezone.utc) + timedelta(days=365)
    _key, _, path = _filed(registry, date=future)
    reg = Registry(registry, emit_warnings=False)
    reg.list_calibrations()
    assert any("in the future" in n.reason for n in reg.notices)
    assert any("in the future" in n for n in validate_registry(registry).notes)
    key2, doc2 = make_calibration(date=datetime.now(timezone.utc))
    with pytest.warns(UserWarning, match="in the future"):
        target, kept = write_calibration(registry, key2, doc2)
    assert target == path and kept is not None
    assert json.loads(path.read_text())["metadata"]["calibration_date"] == doc2["metadata"]["calibration_date"]
    _valid(registry)


def test_a_run_is_dated_when_it_holds_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from hwcal.plugin import hooks

    monkeypatch.setenv(hoststate.ENV_STATE_DIR, str(tmp_path / "state"))
    cal = SimpleNamespace(options=SimpleNamespace(device="cpu"), started_at=D1)
    config = SimpleNamespace(stash={}, pluginmanager=SimpleNamespace(get_plugin=lambda name: None))
    hooks._hold_device(config, cal)  # type: ignore[arg-type]
    try:
        assert cal.started_at > D1 + timedelta(days=30)
    finally:
        config.stash[hooks.DEVICE_LOCK_KEY].release()


# ---- bounds -----------------------------------------------------------------------------------

def test_numeric_options_are_bounded() -> None:
    import argparse

    from hwcal.cli.common import registry_path
    from hwcal.plugin.options import parse_frequency_mhz, parse_registry

    assert parse_frequency_mhz("1980") == 1980
    for bad in ("1e9", "10001", "nan", "-5"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_frequency_mhz(bad)
    for parse in (parse_registry, registry_path):
        with pytest.raises(argparse.ArgumentTypeError, match="empty"):
            parse(" ")


def test_tools_refuse_an_empty_registry(tmp_path: Path) -> None:
    for tool in ("list_calibrations", "validate_registry"):
        result = run_tool(tool, "--registry", "", cwd=tmp_path)
        assert result.returncode == 2 and "empty" in result.stderr and "Traceback" not in result.stderr


def test_bare_loop_refuses_sizes_it_cannot_allocate(tmp_path: Path) -> None:
    from hwcal.document.format2 import precision_detail

    key, doc = make_calibration()
    precision_detail(doc)["peak_size_by_precision"]["fp64"] = 10**7  # where the format keeps it
    cal = tmp_path / key.filename
    cal.write_text(json.dumps(doc))
    result = run_tool("bare_loop", cal, "--seconds", "0.01", "--precisions", "fp64")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    bad = run_tool("bare_loop", tmp_path / "missing.json")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "no such file" in bad.stderr
    usage = run_tool("bare_loop", cal, "--seconds", "1e9")
    assert usage.returncode == 2


# ---- Ctrl-C -----------------------------------------------------------------------------------

def test_ctrl_c_during_a_write_leaves_no_duplicate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "registry"
    key, _, path = _filed(registry)
    real = fsio.os.fsync

    def interrupted(fd: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives in the middle of the step
        real(fd)

    monkeypatch.setattr(fsio.os, "fsync", interrupted)
    key2, doc2 = make_calibration(date=D2)
    with pytest.raises(KeyboardInterrupt):
        write_calibration(registry, key2, doc2)
    monkeypatch.undo()
    assert len(list(history_dir(registry, key).iterdir())) == 1  # the previous one, once
    assert json.loads(path.read_text())["metadata"]["calibration_date"] == doc2["metadata"]["calibration_date"]
    _valid(registry)


def test_the_error_wrapper_says_interrupted_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from hwcal.cli.entry import EXIT_INTERRUPTED, run

    def body() -> int:
        raise KeyboardInterrupt

    assert run(body, "tool.py") == EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tool.py: interrupted")


# ---- merge and migrate trust nothing -------------------------------------------------------------

def test_merge_applies_the_partial_run_rule(tmp_path: Path) -> None:
    registry, art = tmp_path / "registry", tmp_path / "artifact"
    _filed(registry)
    key, partial = make_calibration(date=D2)
    partial["metadata"]["selection"] = {"partial": True, "partial_why": "-k"}
    src = write_json(art / key.filename, partial)
    refused = run_tool("merge_calibrations", src, "--registry", registry)
    assert refused.returncode == 1 and "--allow-partial" in refused.stderr
    assert json.loads(calibration_path(registry, key).read_text())["metadata"]["calibration_date"] != \
        partial["metadata"]["calibration_date"]
    allowed = run_tool("merge_calibrations", src, "--registry", registry, "--allow-partial")
    assert allowed.returncode == 0, allowed.stderr
    _valid(registry)


def test_migrate_refuses_a_document_without_measurements(tmp_path: Path) -> None:
    from hwcal.interop.legacy_calibration import legacy_calibration_to_v1
    from hwcal.interop.legacy_common import LegacyFormatError

    legacy = {"metadata": {"framework": "numpy", "calibration_date": "2025-01-01T00:00:00",
                           "hardware_name": "Test", "device_type": "cpu", "cpu_clock": {"max_freq_mhz": 2000}},
              "operation_profiles": {}, "precision_matrix": {}}
    with pytest.raises(LegacyFormatError, match="no measurement"):
        legacy_calibration_to_v1(legacy, rel="cpu/test_cpu/calibration.json", type_folder="cpu",
                                 hardware_folder="test_cpu", imported_at=D1)


def test_migrate_records_every_dropped_negative_value() -> None:
    from hwcal.interop.legacy_common import negative_values as _negative_values

    legacy = {"operation_profiles": {"gemm": {"precision_results": {"fp32": {"mean_latency_ms": -1.0,
                                                                             "measured_gops": -3}}}},
              "measured_bandwidth_gbps": -2.5, "num_trials": -1}
    found = _negative_values(legacy)
    assert len(found) == 3 and any("measured_bandwidth_gbps" in f for f in found)
