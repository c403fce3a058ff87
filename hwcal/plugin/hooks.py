"""The pytest plugin: option declarations, hooks and fixtures only.

State lives in one CalibrationSession in ``config.stash``; measuring is in ``hwcal.measure``, building
and filing in ``hwcal.plugin.filing``. pytest-benchmark is used only through what it publishes (the
``benchmark`` fixture, ``pedantic``, ``extra_info``, ``stats``).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hwcal.errors import HwcalError
from hwcal.machine import collect_host
from hwcal.measure.budgets import make_schedule
from hwcal.measure.energy import close_run_meter
from hwcal.measure.families import OPERATIONS, family_of
from hwcal.measure.late_pass import LATE_PASS_TEST
from hwcal.measure.schedule import BUDGETED
from hwcal.measure.session import CalibrationSession
from hwcal.plugin.clocks import benchmark_window, stop_sampling
from hwcal.plugin.filing import Filed, check_before_run, file_calibration
from hwcal.plugin.options import add_options, resolve_options
from hwcal.plugin.preflight import preflight_session
from hwcal.plugin.summary import summary_lines
from hwcal.registry.locks import HostLock, device_lock
from hwcal.registry.writer import check_registry_writable

SESSION_KEY = pytest.StashKey[CalibrationSession]()
DEVICE_LOCK_KEY = pytest.StashKey[HostLock]()
DEVICE_WAIT_S = 3600.0
OUTCOME_KEY = pytest.StashKey[dict[str, Any]]()
GEMM_FIXTURE = "gemm_case"  # the clock is sampled per GEMM test (throttled flags)
SHAPE_FIXTURE = "shape_case"


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
    """Every operation family's cases (``hwcal.measure.families``), planned for this session's device."""
    family = family_of(metafunc.fixturenames)
    if family is None:
        return
    cal = metafunc.config.stash[SESSION_KEY]
    try:
        cases = family.cases(cal)
    except HwcalError as exc:
        raise pytest.UsageError(str(exc)) from None
    metafunc.parametrize(family.fixture, [pytest.param(param, id=case_id) for param, case_id in cases])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Energy runs last, whatever the file order: its windows use the shapes and sizes the others found. The
    late pass comes just before it: it times again what the others measured (``hwcal.measure.late_pass``).
    Before both, the time-budgeted families run after every other: the run's schedule shares out what the
    others left of its target (``hwcal.measure.schedule``)."""
    items.sort(key=_run_rank)


def _run_rank(item: pytest.Item) -> int:
    if _item_operation(item) == "energy":
        return 3
    if getattr(item, "originalname", "") == LATE_PASS_TEST:
        return 2
    family = family_of(getattr(item, "fixturenames", ()))
    return 1 if family is not None and family.name in BUDGETED else 0


def _planned_families(items: list[pytest.Item]) -> set[str]:
    """The families (and the late pass) a collected test of will run."""
    names = {f.name for f in (family_of(getattr(i, "fixturenames", ())) for i in items) if f is not None}
    if any(getattr(i, "originalname", "") == LATE_PASS_TEST for i in items):
        names.add("late_pass")
    return names


def _item_operation(item: pytest.Item) -> str | None:
    """Which of OPERATIONS a collected test measures (None for a test that is no benchmark)."""
    family = family_of(getattr(item, "fixturenames", ()))
    if family is None:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    return family.operation(params[family.fixture]) if family.fixture in params else family.operations[0]


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
        "gemm_cases_collected": sum(1 for i in items if _item_operation(i) == "gemm"),
        "stream_cases_collected": sum(1 for i in items if _item_operation(i) == "stream"),
    }
    collected = {_item_operation(i) for i in items}
    selection["operations_not_run"] = [op for op in OPERATIONS if op not in collected]
    why = [w for w, on in (("-k", selection["keyword"]), ("-m", selection["markexpr"]), ("--sizes", opts.sizes),
                           ("--shapes", opts.shapes),
                           ("no GEMM cases", not selection["gemm_cases_collected"]),
                           ("no STREAM cases", not selection["stream_cases_collected"])) if on]
    missing = [op for op in selection["operations_not_run"] if op not in ("gemm", "stream")]
    if missing:
        why.append(f"no {', '.join(missing)} cases")
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
    selected = len(outcome["selection"]["operations_not_run"]) < len(OPERATIONS)
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
        cal.schedule = make_schedule(cal, _planned_families(items))
        _hold_device(config, cal)
        _drop_idle_hypothesis(config)


def _drop_idle_hypothesis(config: pytest.Config) -> None:
    """hypothesis's pytest plugin (installed with the test extra) imports hypothesis in its terminal summary even
    where no test used it: 0.9 s of a calibration's wall on the AMX Xeon guest. A calibration run has none."""
    if "hypothesis" in sys.modules:
        return
    plugin = config.pluginmanager.get_plugin("hypothesispytest")
    if plugin is not None:
        config.pluginmanager.unregister(plugin)


def _hold_device(config: pytest.Config, cal: CalibrationSession) -> None:
    """Two calibrations measuring one device at once would both file wrong numbers: the second waits.

    The lock is host-wide (``hwcal.registry.locks``: ``$HWCAL_STATE_DIR`` or /var/tmp/hwcal), whatever
    each user's $TMPDIR. The run is dated when it holds the device: that is when its measurements start."""
    try:
        lock = device_lock(cal.options.device)
        if not lock.acquire(timeout=0):
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"hwcal: another calibration is measuring {cal.options.device} "
                                    f"(held by {lock.holder()}); waiting for it to finish ({lock.path})")
                reporter.flush()
            if not lock.acquire(timeout=DEVICE_WAIT_S):
                raise HwcalError(f"another calibration ({lock.holder()}) held {cal.options.device} for over "
                                 f"{DEVICE_WAIT_S:g} s ({lock.path}); nothing was run")
    except HwcalError as exc:
        raise pytest.UsageError(str(exc)) from None
    cal.started_at = datetime.now(timezone.utc)
    config.stash[DEVICE_LOCK_KEY] = lock


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The GEMM shapes' shared weights (up to 1 GiB) go when the first case of another family starts: the memory
    families after them size their arrays by the memory free."""
    cal = item.config.stash.get(SESSION_KEY, None)
    if cal is not None and cal.shape_weights is not None and SHAPE_FIXTURE not in getattr(item, "fixturenames", ()):
        cal.shape_weights = None


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
    if cal is not None:
        close_run_meter(cal)  # the energy tests close it; a run that selected the search alone leaves it open
    if cal is None or not cal.families_run:
        return
    outcome = config.stash[OUTCOME_KEY]
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        outcome["message"] = "hwcal: run interrupted: no calibration filed, the registry is unchanged"
        return
    if exitstatus != pytest.ExitCode.OK:
        outcome["message"] = "hwcal: tests failed: no calibration filed, the registry is unchanged"
        return
    if not cal.results.timed_anything():
        outcome["message"] = ("hwcal: nothing timed (benchmarks disabled or all skipped): "
                              "results verified, no calibration filed")
        return
    if cal.watch is not None:
        cal.watch.finish()
    try:
        filed = file_calibration(cal, ["pytest", *config.invocation_params.args], outcome.get("selection", {}))
    except HwcalError as exc:
        outcome["error"] = f"hwcal: error: {exc}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    except KeyboardInterrupt:
        # The writer holds Ctrl-C during each write step, so the registry is whole: one line, no traceback.
        outcome["message"] = "hwcal: interrupted while filing: the registry holds no half-written file"
        session.exitstatus = pytest.ExitCode.INTERRUPTED
        return
    outcome["filed"] = filed


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _filed_line(outcome: dict[str, Any]) -> str | None:
    """Where the calibration went (or why none was filed): the line a run ends with."""
    filed: Filed | None = outcome.get("filed")
    if filed is None:
        return outcome.get("error") or outcome.get("message")
    if not filed.written and filed.held_back:
        return (f"hwcal: dry run: valid calibration, would be kept in history, not made current over "
                f"{_relative(filed.path)}: {filed.held_back} (--file-disturbed would make it current)")
    if not filed.written:
        return f"hwcal: dry run: valid calibration, would be written to {_relative(filed.path)}"
    if filed.held_back:
        return (f"hwcal: calibration kept in history as {_relative(filed.path)}, not made current: "
                f"{filed.held_back}; re-run on a quiet machine, or pass --file-disturbed to make it current")
    line = f"hwcal: calibration written to {_relative(filed.path)}"
    if filed.history:
        line += f" (previous kept as {_relative(filed.history)})"
    return line


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The last block of the report, after pytest-benchmark's table, ending with the filed path."""
    outcome = config.stash.get(OUTCOME_KEY, {})
    filed: Filed | None = outcome.get("filed")
    if filed is None:
        return
    terminalreporter.section("hwcal calibration")
    for line in summary_lines(filed.doc):
        terminalreporter.write_line(line)
    terminalreporter.write_line(_filed_line(outcome) or "")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """The device being calibrated, so ``--benchmark-compare`` warns when runs come from different chips."""
    cal = config.stash.get(SESSION_KEY, None)
    if cal is None:
        return
    # Only facts read the same way whenever pytest-benchmark asks (its compare check runs before the
    # plugin's key detection): the device, the framework, the CPU's and the accelerator's identity.
    info: dict[str, Any] = {"device": cal.options.device, "framework": cal.options.framework}
    backend = cal.backend
    if backend.device_name:
        info["gpu_name"] = backend.device_name
    if backend.device_type == "gpu":
        gpu = backend.facts().get("gpu")
        if isinstance(gpu, dict):  # identity only: clocks and temperature differ between any two runs
            info.update({f"gpu_{k}": gpu[k] for k in ("name", "compute_capability", "sm_count", "driver_version",
                                                      "uuid", "pci_bus_id") if gpu.get(k) is not None})
    cpu = collect_host().get("cpu")
    if isinstance(cpu, dict):
        for field in ("model", "vendor", "microarchitecture", "cpu_family", "cpu_model", "cpu_part"):
            if cpu.get(field) is not None:
                info[field if field.startswith("cpu_") else f"cpu_{field}"] = cpu[field]
    machine_info["hwcal"] = info


def pytest_unconfigure(config: pytest.Config) -> None:
    cal = config.stash.get(SESSION_KEY, None)
    if cal is not None:
        stop_sampling(cal)
    lock = config.stash.get(DEVICE_LOCK_KEY, None)
    if lock is not None:
        lock.release()
    # The last line of the run names the file, after pytest's own summary.
    line = _filed_line(config.stash.get(OUTCOME_KEY, {}))
    if line:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)
