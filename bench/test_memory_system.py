"""The memory system: bandwidth inside every cache tier and at DRAM on one core and on all cores, the
latency of a dependent load per tier, all-core STREAM with its scaling curve (a GPU: its L2-resident
tier beside HBM); see hwcal.measure.memory_system."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hwcal.measure.memory_system import MemorySystemState, run_memory_system
from hwcal.measure.session import CalibrationSession


@pytest.fixture(scope="module")
def memory_system_state(hwcal_session: CalibrationSession) -> Iterator[MemorySystemState]:
    """The DRAM pool, compiled kernels and budget the cases share; the pools are freed after the last case."""
    state = MemorySystemState(hwcal_session)
    yield state
    state.close()


def test_memory_system(benchmark: Any, hwcal_session: CalibrationSession, memory_system_state: MemorySystemState,
                       memory_system_case: str) -> None:
    run_memory_system(benchmark, hwcal_session, memory_system_state, memory_system_case)
