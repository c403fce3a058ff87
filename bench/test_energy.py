"""Energy per operation: idle power after a rest, pJ/byte of STREAM copy and triad at a DRAM size and pJ/FLOP
of every precision's GEMM at its sustained shape, each from a window of >= 1 s and >= 10 sensor updates
(see hwcal.measure.energy). Where no energy sensor can be read, the calibration says why and the run goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hwcal.measure.energy import EnergyState, run_energy
from hwcal.measure.session import CalibrationSession


@pytest.fixture(scope="module")
def energy_state(hwcal_session: CalibrationSession) -> Iterator[EnergyState]:
    """The energy meter of the run (NVML, RAPL, INA3221 or tegrastats), found once and closed after."""
    state = EnergyState(hwcal_session)
    state.open()
    yield state
    state.close()


def test_energy(hwcal_session: CalibrationSession, energy_state: EnergyState, energy_case: tuple[str, str],
                request: pytest.FixtureRequest) -> None:
    run_energy(energy_state, energy_case, timed=not request.config.getoption("benchmark_disable", False))
