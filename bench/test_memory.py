"""Memory bandwidth by STREAM's rules: copy, scale, add and triad per array size, one body for every
framework and device (see hwcal.measure.stream)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hwcal.measure.session import CalibrationSession
from hwcal.measure.stream import StreamState, run_stream


@pytest.fixture(scope="module")
def stream_state(hwcal_session: CalibrationSession) -> Iterator[StreamState]:
    """The arrays of the size being measured, shared by its four kernels and freed after the sweep."""
    state = StreamState(hwcal_session.backend)
    yield state
    state.release()


def test_stream(benchmark: Any, hwcal_session: CalibrationSession, stream_state: StreamState,
                stream_case: tuple[str, int]) -> None:
    kernel, array_bytes = stream_case
    run_stream(benchmark, hwcal_session, stream_state, kernel, array_bytes)
