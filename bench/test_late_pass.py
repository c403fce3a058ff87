"""The late pass: once every other case has run, the launch floors, then on a CPU the cases in a core's own
caches and those whose data lives in the host's shared cache and DRAM, are timed in a second window and the
faster is filed (see hwcal.measure.late_pass)."""

from __future__ import annotations

import pytest

from hwcal.measure.late_pass import run_late_pass
from hwcal.measure.session import CalibrationSession


def test_late_pass(hwcal_session: CalibrationSession) -> None:
    log = run_late_pass(hwcal_session)
    if log is None:
        pytest.skip("no late pass: --quick, or no case of this run to time again (no floor; on a CPU none in the "
                    "host's shared cache and DRAM)")
