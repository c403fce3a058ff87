"""The pytest plugin: option declarations, hooks and fixtures only.

State lives in one CalibrationSession in ``config.stash``; measuring is in ``hwcal.measure``, building
and filing in ``hwcal.plugin.filing``. pytest-benchmark is used only through what it publishes (the
``benchmark`` fixture, ``pedantic``, ``extra_info``, ``stats``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout

from hwcal.errors import HwcalError
from hwcal.measure.session import CalibrationSession
from hwcal.measure.stream import size_label, stream_cases
from hwcal.plugin.clocks import benchmark_window, stop_sampling
from hwcal.plugin.filing import Filed, check_before_run, file_calibration
from hwcal.plugin.options import add_options, resolve_options
from hwcal.plugin.preflight import preflight_session
from hwcal.plugin.summary import summary_lines
from hwcal.registry.writer import check_registry_writable

SESSION_KEY = pytest.StashKey[CalibrationSession]()
DEVICE_LOCK_KEY = pytest.StashKey[FileLock]()
DEVICE_WAIT_S = 3600.0
OUTCOME_KEY = pytest.StashKey[dict[str, Any]]()
GEMM_FIXTURE = "gemm_case"
STREAM_FIXTURE = "stream_case"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    try:
        opts = resolve_options(config.getoption, config.getini, Path(str(config.rootpath)))
        cal = CalibrationSession(opts)
        if opts.framework != "numpy" or opts.device != "cpu":
            cal.backend  # noqa: B018 -- fail now, in one line, if torch or the device is missing
    except HwcalError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = cal
    config.stash[OUTCOME_KEY] = {}
    _check_timer(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if STREAM_FIXTURE in metafunc.fixturenames:
        cal = metafunc.config.stash[SESSION_KEY]
        try:
            stream = stream_cases(cal.backend, cal.options.quick)
        except HwcalError as exc:
            raise pytest.UsageError(str(exc)) from None
        # Size-major, ascending, STREAM's kernel order: the four kernels of a size share its arrays.
        metafunc.parametrize(STREAM_FIXTURE, [pytest.param((k, b), id=f"{k}-{size_label(b)}") for k, b in stream])
    if GEMM_FIXTURE not in metafunc.fixturenames:
        return
    cal = metafunc.config.stash[SESSION_KEY]
    try:
        precisions, sizes = cal.backend.precisions(), cal.sizes()
    except HwcalError as exc:
        raise pytest.UsageError(str(exc)) from None
    # Precision-major, sizes ascending: early termination needs the smaller sizes to run first.
    cases = [pytest.param((p, n), id=f"{p}-{n}") for p in precisions for n in sizes]
    metafunc.parametrize(GEMM_FIXTURE, cases)


@pytest.fixture(scope="session")
def hwcal_session(request: pytest.FixtureRequest) -> CalibrationSession:
    """The calibration session the benchmarks report into."""
    return request.config.stash[SESSION_KEY]


def _selection(config: pytest.Config, items: list[pytest.Item]) -> dict[str, Any]:
    """What this run selected, and whether it is partial (then it must not silently replace a whole one)."""
    opts = config.stash[SESSION_KEY].options
    selection: dict[str, Any] = {
        "args": [str(a) for a in config.args],
        "keyword": config.getoption("keyword", "") or None,
        "markexpr": config.getoption("markexpr", "") or None,
        "tests_collected": len(items),
        "gemm_cases_collected": sum(1 for i in items if GEMM_FIXTURE in getattr(i, "fixturenames", ())),
        "stream_cases_collected": sum(1 for i in items if STREAM_FIXTURE in getattr(i, "fixturenames", ())),
    }
    why = [w for w, on in (("-k", selection["keyword"]), ("-m", selection["markexpr"]), ("--sizes", opts.sizes),
                           ("no GEMM cases", not selection["gemm_cases_collected"]),
                           ("no STREAM cases", not selection["stream_cases_collected"])) if on]
    selection["partial"] = bool(why)
    if why:
        selection["partial_why"] = ", ".join(why)
    return selection


def _check_timer(config: pytest.Config) -> None:
    """Rounds are wall-clock time: a CPU-time timer would divide multithreaded BLAS figures by the thread
    count and time only the host side of GPU work."""
    timer = str(config.getoption("benchmark_timer", "time.perf_counter"))
    if timer != "time.perf_counter":
        raise pytest.UsageError(f"--benchmark-timer {timer}: hwcal times rounds on the wall clock; "
                                "use the default time.perf_counter")


def pytest_collection_finish(session: pytest.Session) -> None:
    # After -k/-m deselection: session.items is what will run.
    config = session.config
    items = session.items
    outcome = config.stash[OUTCOME_KEY]
    outcome["selection"] = _selection(config, items)
    cal = config.stash[SESSION_KEY]
    timed = not config.getoption("benchmark_disable", False)
    selected = outcome["selection"]["gemm_cases_collected"] or outcome["selection"]["stream_cases_collected"]
    if selected and timed and not cal.options.dry_run:
        try:
            check_registry_writable(cal.options.registry)
        except HwcalError as exc:
            raise pytest.UsageError(f"{exc}; nothing was run") from None
    if selected and timed and not config.getoption("collectonly", False):
        # Once per calibration run (not for plain `pytest tests/`): key detection, clock sampler, checks.
        report = preflight_session(cal)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for line in report.summary_lines():
            if reporter is not None:
                reporter.write_line(line)
        if report.stops_run:
            raise pytest.UsageError(report.failure_message())
        try:
            check_before_run(cal, outcome["selection"])
        except HwcalError as exc:
            raise pytest.UsageError(f"{exc}; nothing was run") from None
        _hold_device(config, cal)


def _hold_device(config: pytest.Config, cal: CalibrationSession) -> None:
    """Two calibrations measuring one device at once would both file wrong numbers: the second waits."""
    token = "".join(ch for ch in cal.options.device if ch.isalnum())
    lock = FileLock(str(Path(tempfile.gettempdir()) / f"hwcal-device-{token}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"hwcal: another calibration is measuring {cal.options.device}; waiting for it "
                                f"to finish ({lock.lock_file})")
            reporter.flush()
        try:
            lock.acquire(timeout=DEVICE_WAIT_S)
        except Timeout:
            raise pytest.UsageError(f"another calibration held {cal.options.device} for over {DEVICE_WAIT_S:g} s "
                                    f"({lock.lock_file}); nothing was run") from None
    config.stash[DEVICE_LOCK_KEY] = lock


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Sample the clock while each GEMM benchmark runs, so its result can be flagged as throttled."""
    cal = item.config.stash.get(SESSION_KEY, None)
    if cal is None or GEMM_FIXTURE not in getattr(item, "fixturenames", ()):
        return (yield)
    with benchmark_window(cal, getattr(getattr(item, "callspec", None), "id", item.name)):
        return (yield)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    cal = config.stash.get(SESSION_KEY, None)
    if cal is None or not (cal.ran_gemm or cal.ran_memory):
        return
    outcome = config.stash[OUTCOME_KEY]
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        outcome["message"] = "hwcal: run interrupted: no calibration filed, the registry is unchanged"
        return
    if exitstatus != pytest.ExitCode.OK:
        outcome["message"] = "hwcal: tests failed: no calibration filed, the registry is unchanged"
        return
    if not cal.records and not getattr(cal.memory, "records", None):
        outcome["message"] = ("hwcal: nothing timed (benchmarks disabled or all skipped): "
                              "results verified, no calibration filed")
        return
    try:
        filed = file_calibration(cal, ["pytest", *config.invocation_params.args], outcome.get("selection", {}))
    except HwcalError as exc:
        outcome["error"] = f"hwcal: error: {exc}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    outcome["filed"] = filed


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    outcome = config.stash.get(OUTCOME_KEY, {})
    filed: Filed | None = outcome.get("filed")
    if filed is None:
        return
    terminalreporter.section("hwcal calibration")
    for line in summary_lines(filed.doc):
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    cal = config.stash.get(SESSION_KEY, None)
    if cal is not None:
        stop_sampling(cal)
    lock = config.stash.get(DEVICE_LOCK_KEY, None)
    if lock is not None:
        lock.release()
    # The last line of the run names the file, after pytest's own summary.
    outcome = config.stash.get(OUTCOME_KEY, {})
    filed: Filed | None = outcome.get("filed")
    if filed is not None:
        if filed.written:
            line = f"hwcal: calibration written to {_relative(filed.path)}"
            if filed.history:
                line += f" (previous kept as {_relative(filed.history)})"
        else:
            line = f"hwcal: dry run: valid calibration, would be written to {_relative(filed.path)}"
    else:
        line = outcome.get("error") or outcome.get("message")
    if line:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)
