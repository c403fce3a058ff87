"""The nominal budgets of the time-budgeted families in one table, and the run's schedule built from them
(``hwcal.measure.schedule``): which of them this run will start, in run order, and what is kept after them."""

from __future__ import annotations

import os
import time

import psutil

from hwcal.measure.blas import BLAS_BUDGET_S
from hwcal.measure.energy import BUDGET_S as ENERGY_BUDGET_S
from hwcal.measure.energy import run_meter
from hwcal.measure.late_pass import LATE_BUDGET_S
from hwcal.measure.memory_system import BUDGET_S as MEMORY_SYSTEM_BUDGET_S
from hwcal.measure.schedule import BUDGETED, TARGET_S, RunSchedule
from hwcal.measure.session import CalibrationSession
from hwcal.measure.shapes import SHAPES_BUDGET_S
from hwcal.measure.stream import MEMORY_BUDGET_S

# Kept after the last budgeted family for building, validating and filing the calibration and pytest's summary:
# 0.5-1.0 s on the AMX Xeon guest (pytest_sessionfinish), more with a GPU's clocks to read back.
FINISH_RESERVE_S = {"cpu": 1.5, "gpu": 3.0}
# Kept for the energy family where a meter is found: what it takes, not its 15 s cap. On the H100 it took 4.95 s
# once the max-achievable search's sustained windows were metered (its GEMM cases are those windows).
ENERGY_RESERVE_S = 5.0


def nominal_budgets(session: CalibrationSession, planned: set[str]) -> dict[str, float]:
    """Seconds each budgeted family in ``planned`` gets on a quiet machine, in run order."""
    device, quick = session.backend.device_type, session.options.quick
    table = {
        "blas": BLAS_BUDGET_S[device, quick],
        "gemm_shapes": SHAPES_BUDGET_S[device, quick],
        "stream": MEMORY_BUDGET_S[device, quick],
        "memory_system": session.options.memory_s or MEMORY_SYSTEM_BUDGET_S[device, quick],
        "late_pass": 0.0 if quick else LATE_BUDGET_S.get(device, 0.0),
    }
    return {name: table[name] for name in BUDGETED if name in planned and table[name] > 0}


def run_target_s(session: CalibrationSession) -> float | None:
    """The run's target: --target-seconds (0: none), else the device type's for a default run; none for --quick
    (its budgets are halved already) or --full (it asks for every layer, at 5x the NN budgets)."""
    given = session.options.target_s
    if given is not None:
        return given or None
    if session.options.quick or session.options.full:
        return None
    return TARGET_S.get(session.backend.device_type)


def process_clock() -> float:
    """Seconds since this process started (interpreter start and imports included): what the user waits. On
    Linux from /proc (both counts from boot, 10 ms steps); psutil's start time adds the boot time, which /proc
    gives in whole seconds (a run read 0.1 s longer than its stopwatch)."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            return float(uptime.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        pass
    try:
        return time.time() - psutil.Process().create_time()
    except (psutil.Error, OSError):
        return time.perf_counter()


def make_schedule(session: CalibrationSession, planned: set[str]) -> RunSchedule:
    """The run's schedule over the budgeted families in ``planned`` (family names; "energy" where the energy
    family runs: what it takes is kept in reserve where a meter is found)."""
    device = session.backend.device_type

    def reserve() -> float:
        metered = "energy" in planned and run_meter(session).meter is not None
        return FINISH_RESERVE_S.get(device, 1.5) + (min(ENERGY_RESERVE_S, ENERGY_BUDGET_S) if metered else 0.0)

    fixed = frozenset({"memory_system"}) if session.options.memory_s else frozenset()
    return RunSchedule(run_target_s(session), nominal_budgets(session, planned), process_clock, reserve, fixed)
