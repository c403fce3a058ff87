"""The sustained DRAM figure: every triad round at every size >= 4x LLC pooled, rounds added until the 95%
interval is within +-3% (or the budget ends), the interval filed and shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.document.memory import memory_section
from hwcal.machine.caches import CacheInfo, CacheLevel
from hwcal.measure.records import KERNELS
from hwcal.measure.session import CalibrationOptions, CalibrationSession
from hwcal.measure.stream import DramEstimate, StreamState, _t975, run_stream
from hwcal.plugin.summary import _memory_lines
from tests.fakes import FakeBenchmark

KiB = 2**10


def test_t_quantiles() -> None:
    assert _t975(1) == 12.706 and _t975(9) == 2.262 and _t975(30) == 2.042
    assert abs(_t975(60) - 2.000) < 0.002 and abs(_t975(120) - 1.980) < 0.002


def test_pooled_interval_counts_the_spread_between_sizes() -> None:
    same = DramEstimate([(10, 20.0, 1.0), (10, 20.0, 1.0)])
    assert same.rounds == 20 and same.gbps == 20.0
    half = _t975(19) * (20 * 1.0 / 19) ** 0.5 / 20**0.5
    assert same.hi - same.gbps == pytest.approx(half)
    apart = DramEstimate([(10, 18.0, 1.0), (10, 22.0, 1.0)])
    assert apart.gbps == 20.0 and apart.relative_half_width > same.relative_half_width
    assert same.converged is (same.relative_half_width <= 0.03)


def _session(tmp_path: Path) -> CalibrationSession:
    return CalibrationSession(CalibrationOptions(None, "numpy", "cpu", None, None, tmp_path, True, None, 1.0, 1.0,
                                                 False, False))


def test_dram_sized_triad_takes_rounds_until_the_interval_is_narrow(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = CacheInfo((CacheLevel(1, 4 * KiB, 1), CacheLevel(2, 16 * KiB, 1)), "test")  # DRAM-sized: >= 64 KiB
    monkeypatch.setattr(NumpyBackend, "stream_caches", lambda self: tiny)
    cal = _session(tmp_path)
    state = StreamState(cal.backend)
    for size in (KiB, 64 * KiB, 128 * KiB):
        for kernel in KERNELS:
            run_stream(FakeBenchmark(), cal, state, kernel, size)
    sweep = cal.results.memory
    triads = {r.array_bytes: r.rounds for r in sweep.records if r.kernel == "triad"}  # type: ignore[union-attr]
    copies = {r.array_bytes: r.rounds for r in sweep.records if r.kernel == "copy"}  # type: ignore[union-attr]
    assert triads[KiB] == copies[KiB]  # in-cache sizes: the planned rounds only
    section, warnings = memory_section(sweep, {}, {}, None)
    lo, hi = section["sustained_ci95_gbps"]
    assert lo <= section["sustained_gbps"] <= hi
    assert section["sustained_rounds"] == triads[64 * KiB] + triads[128 * KiB]
    assert "pooled over every array size >= 4x" in section["sustained_method"]
    converged = (hi - lo) / 2 <= 0.03 * section["sustained_gbps"] * 1.001
    assert converged or any("wider than the +-3%" in w for w in warnings)
    line = _memory_lines({"memory": section})[0]
    assert "95% CI [" in line and f"{section['sustained_rounds']} rounds" in line
