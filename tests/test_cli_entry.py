"""The one entry every command-line tool goes through (hwcal.cli.entry): the same wrapper everywhere, one
exit-code rule, warnings that reach the user once as one clean line, and text from files that cannot forge
a line of output."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hwcal.cli import entry, list_calibrations
from hwcal.cli.entry import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, Tool, UsageError, printable
from hwcal.errors import HwcalError
from tests.fixtures_registry import (
    REPO,
    file_calibration,
    make_calibration,
    registry,
    registry_template,
    run_tool,
    write_json,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

# Scripts under tools/ that are not wrappers: independent referees, a fixture generator and the host-share witness.
__all__ = ["registry", "registry_template"]  # fixtures, imported for pytest

NOT_WRAPPERS = {"bare_loop.py", "gpu_referee.py", "energy_referee.py", "memory_referee.py", "nn_referee.py",
                "model_referee.py", "make_synthetic_registry.py", "host_share_witness.py"}
WRAPPER = re.compile(r'#!/usr/bin/env python3\n"""[^\n]+"""\n\nimport sys\nfrom pathlib import Path\n\n'
                     r"sys\.path\.insert\(0, str\(Path\(__file__\)\.resolve\(\)\.parents\[1\]\)\)  "
                     r"# run from a checkout without installing\n"
                     r"from hwcal\.cli\.(?P<module>\w+) import main\n\nsys\.exit\(main\(\)\)\n\Z")


def _wrappers() -> list[Path]:
    scripts = [*(REPO / "tools").glob("*.py"), *(REPO / "fleet").glob("*.py")]
    return sorted(p for p in scripts if p.name not in NOT_WRAPPERS)


def test_every_console_script_is_a_tools_main() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert len(scripts) == 11
    for command, target in scripts.items():
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        assert attr == "main" and module.main == module.TOOL.main, command
        assert module.TOOL.command == command


@pytest.mark.parametrize("wrapper", _wrappers(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_wrapper_is_the_same_three_lines(wrapper: Path) -> None:
    match = WRAPPER.match(wrapper.read_text())
    assert match, f"{wrapper} is not the wrapper template (sys.path.insert, import main, sys.exit(main()))"
    tool = importlib.import_module(f"hwcal.cli.{match['module']}").TOOL
    assert tool.script == wrapper.name  # messages name the file the user ran


def test_the_referees_import_no_measuring_code() -> None:
    # model_referee imports only hwcal's predictions (what it referees), never its measuring code.
    for name in ("bare_loop.py", "gpu_referee.py", "nn_referee.py", "model_referee.py"):
        text = (REPO / "tools" / name).read_text()
        assert not re.search(r"^\s*(from|import) hwcal\.(measure|backends|machine|plugin)\b", text, re.M), name
    for name in ("gpu_referee.py", "energy_referee.py", "nn_referee.py"):  # independent referees: not one line of hwcal
        assert "hwcal" not in re.sub(r'""".*?"""', "", (REPO / "tools" / name).read_text(), flags=re.S), name
    # The memory referee names hwcal only in its output; it imports none of it.
    assert not re.search(r"^\s*(from|import) hwcal", (REPO / "tools" / "memory_referee.py").read_text(), re.M)


def _tool(body: object, **kwargs: object) -> Tool:
    def parser(prog: str) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=prog)
        p.add_argument("--n", type=int, default=1)
        return p

    return Tool("demo.py", parser, body, command="hwcal-demo", **kwargs)  # type: ignore[arg-type]


def test_the_exit_code_rule(capsys: pytest.CaptureFixture[str]) -> None:
    def fails(args: argparse.Namespace) -> int:
        raise HwcalError("no such thing")

    def misused(args: argparse.Namespace) -> int:
        raise UsageError("give --n or nothing")

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    def disk(args: argparse.Namespace) -> int:
        raise OSError(28, "No space left on device", "/x/y.json")

    assert _tool(lambda args: EXIT_OK).main([]) == 0
    assert _tool(fails).main([]) == EXIT_FAIL
    assert capsys.readouterr().err == "demo.py: error: no such thing\n"
    assert _tool(fails, error_code=2).main([]) == 2
    capsys.readouterr()
    for body in (misused, None):
        with pytest.raises(SystemExit) as exc:
            _tool(body).main(["--n", "x"] if body is None else [])
        assert exc.value.code == 2
        assert capsys.readouterr().err.splitlines()[0].startswith("usage: demo.py")
    assert _tool(interrupted).main([]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "demo.py: interrupted; the registry is unchanged by the step under way\n"
    assert _tool(disk).main([]) == EXIT_FAIL
    assert capsys.readouterr().err == "demo.py: error: /x/y.json: No space left on device\n"


def test_messages_name_the_command_the_user_typed(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def fails(args: argparse.Namespace) -> int:
        raise HwcalError(f"as {args.prog}")

    for argv0, prog in (("/venv/bin/hwcal-demo", "hwcal-demo"), ("tools/demo.py", "demo.py"), ("pytest", "demo.py")):
        monkeypatch.setattr(sys, "argv", [argv0])
        assert _tool(fails).main() == 1
        assert capsys.readouterr().err == f"{prog}: error: as {prog}\n"


def test_a_warning_reaches_the_user_once_as_one_clean_line(capsys: pytest.CaptureFixture[str]) -> None:
    def body(args: argparse.Namespace) -> int:
        for _ in range(3):
            warnings.warn("calibration_date is in the future", UserWarning, stacklevel=1)
        warnings.warn("forged\x1b[2K\rdemo.py: error: nothing", UserWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)  # Python's defaults hide it from users
        return EXIT_OK

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        assert _tool(body).main([]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == ["demo.py: warning: calibration_date is in the future",
                                "demo.py: warning: forged\\x1b[2K\\rdemo.py: error: nothing"]


def test_the_writers_future_date_warning_is_no_longer_hidden(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    file_calibration(registry, date=datetime.now(timezone.utc) + timedelta(days=365))
    key, doc = make_calibration(date=datetime.now(timezone.utc))
    done = run_tool("merge_calibrations", write_json(tmp_path / "art" / key.filename, doc), "--registry", registry)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "in the future" in ln]
    assert len(lines) == 1 and lines[0].startswith("merge_calibrations.py: warning: ")
    assert "UserWarning" not in done.stderr and "Warning:" not in done.stderr


def test_an_error_is_escaped_indented_and_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    def forged(args: argparse.Namespace) -> int:
        raise HwcalError("value 'x\x1b]0;pwned\x07'\nhwcal-demo: everything is fine\n" + "y" * 10_000_000)

    assert _tool(forged).main([]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "demo.py: error: value 'x\\x1b]0;pwned\\x07'"
    assert lines[1] == "  hwcal-demo: everything is fine"  # a continuation, never a line of its own
    assert len(lines) == 3 and lines[2].endswith("more characters)") and len(lines[2]) < 2 * entry.MESSAGE_MAX_CHARS


def test_printable() -> None:
    assert printable("7W") == "7W"
    assert printable("a\nb\r\x1b[31m\u2028\u202e\x85 c") == "a\\nb\\r\\x1b[31m\\u2028\\u202e\\x85 c"
    assert printable("é≤中") == "é≤中"  # printable text stays as written
    assert printable("x" * 100, 10) == "xxxxxxxxxx... (90 more characters)"


def test_a_value_in_a_file_cannot_forge_a_line_of_list(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = registry / "cpu" / "test_cpu" / "calibrations" / "7W_1000MHz_numpy.json"
    doc = json.loads(path.read_text())
    doc["warnings"] = ["real warning\ntest_gpu  gpu  300W  1980  pytorch  forged row\x1b[2K"]
    path.write_text(json.dumps(doc))
    assert list_calibrations.main(["--registry", str(registry), "-H", "test_cpu", "-p", "7W", "-d"]) == 0
    out = capsys.readouterr().out
    assert "  warning: real warning\\ntest_gpu  gpu  300W  1980  pytorch  forged row\\x1b[2K" in out.splitlines()
    assert "\x1b" not in out


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    import subprocess

    # `hwcal-list --help | head -0`: the pipe is closed before or while the tool writes; no traceback, exit 0
    proc = subprocess.Popen([sys.executable, str(REPO / "tools" / "list_calibrations.py"), "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0 and proc.stderr.read() == b""
