"""The energy family on a real CUDA GPU with its NVML counter (skipped without one): idle after a rest, the
bf16 GEMM and the STREAM copy, each window >= 1 s and >= 10 counter updates, under load above idle, within
the family's time budget. The figures themselves are checked against tools/energy_referee.py on the GPU."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_energy_windows_on_the_gpu(tmp_path: Path) -> None:
    import hwcal.measure.energy as energy
    from hwcal.document.energy import energy_section
    from hwcal.measure.energy_records import MIN_UPDATES
    from hwcal.measure.gemm import run_gemm
    from hwcal.measure.session import CalibrationOptions, CalibrationSession
    from tests.fakes import FakeBenchmark

    opts = CalibrationOptions(None, "pytorch", "cuda:0", None, None, tmp_path, True, [4096], 1.0, 1.0, False, False)
    session = CalibrationSession(opts)
    run_gemm(FakeBenchmark(), session, "bf16", 4096)
    state = energy.EnergyState(session)
    state.open()
    if state.meter is None:
        pytest.skip(f"no energy meter on this GPU: {state.run.unavailable}")
    try:
        for case in (("idle", ""), ("stream", "copy"), ("gemm", "bf16")):
            with contextlib.suppress(pytest.skip.Exception):
                energy.run_energy(state, case, timed=True)
    finally:
        state.close()
    run = state.run
    assert [c.case for c in run.cases] == ["idle", "stream", "gemm"], run.skipped
    idle, copy, gemm = run.cases
    for case in run.cases:
        assert case.updates >= MIN_UPDATES and case.seconds >= 1.0
    assert copy.watts > idle.watts and gemm.watts > idle.watts
    assert run.spent_s <= energy.BUDGET_S
    section, warnings = energy_section(run)
    assert section is not None and section["status"] == "measured" and not warnings
    assert section["pj_per_flop_by_precision"]["bf16"] > 0 and section["pj_per_byte_dram"] > 0
