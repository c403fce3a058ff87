"""Shared fixtures for hwcal's own tests: hand-made GEMM records, build inputs and valid documents.

The builder is a pure function, so its tests (and the schema and writer tests that need a valid
document) build their input by hand here instead of running a benchmark.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

from hwcal.backends import Support
from hwcal.document.builder import BuildInput, build_calibration
from hwcal.measure.records import GemmRecord
from hwcal.naming import CalibrationKey

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """The tests' calibration runs take their device lock in a private state folder: they never wait on
    (or block) a real calibration of this host, and no test waits on a real lock. Tests of the host-wide
    lock itself point HWCAL_STATE_DIR where they need it."""
    if "HWCAL_STATE_DIR" not in os.environ:
        os.environ["HWCAL_STATE_DIR"] = tempfile.mkdtemp(prefix="hwcal-test-state-")


def _emulator() -> str | None:
    from hwcal.machine import detect_emulator

    return detect_emulator()


EMULATOR = _emulator()
# Under an emulator a calibration of this machine stops in preflight unless --force (hwcal.machine.identity:
# its speeds mean nothing); the tests that calibrate this machine end to end skip there, and
# .ci/jetson_rehearsal.sh calibrates under QEMU with --force instead.
calibrates_this_machine = pytest.mark.skipif(
    EMULATOR is not None, reason=f"under an emulator ({EMULATOR}) a calibration of this machine stops in preflight "
                                 "unless --force; .ci/jetson_rehearsal.sh calibrates with --force")

CAL_DATE = datetime(2026, 11, 26, 18, 46, 57, 123456, tzinfo=timezone.utc)
NUMPY_PRECISIONS = ["fp64", "fp32", "fp16", "int64", "int32", "int16", "int8"]


def make_record(precision: str = "fp32", n: int = 256, gflops_best: float = 100.0, *,
                kernel: str = "BLAS test kernel", launches: int = 1) -> GemmRecord:
    """A plausible verified GEMM record whose times agree with its GFLOPS."""
    flops = 2 * n**3 * launches
    t_min = flops / (gflops_best * 1e9)
    t_median = t_min * 1.05
    is_int = precision.startswith("int")
    return GemmRecord(
        precision=precision,
        n=n,
        flops_per_round=flops,
        launches_per_round=launches,
        rounds=20,
        warmup_rounds=1,
        time_s={"min": t_min, "max": t_min * 1.3, "mean": t_min * 1.06, "median": t_median,
                "stddev": t_min * 0.02, "iqr": t_min * 0.03},
        gflops_best=gflops_best,
        gflops_median=flops / t_median / 1e9,
        cv=0.02,
        max_error=0.0 if is_int else 1e-7,
        tolerance=0.0 if is_int else 9.5e-7,
        verify_method="Freivalds x2 + sampled blocks vs fp64",
        kernel=kernel,
        operand_range=1.0 if is_int else None,
        accumulator_wraps=False,
    )


def make_key(power_mode: str = "7W", freq_mhz: int = 2450, hardware_id: str = "test_cpu") -> CalibrationKey:
    return CalibrationKey("cpu", hardware_id, power_mode, freq_mhz, "numpy")


def make_input(records: list[GemmRecord] | None = None, **overrides: Any) -> BuildInput:
    """A BuildInput for a CPU with derived fp64/fp32 peaks; every field can be overridden."""
    if records is None:
        records = [make_record("fp64", 256, 50.0), make_record("fp32", 256, 100.0),
                   make_record("fp32", 512, 120.0)]
    fields: dict[str, Any] = {
        "key": make_key(),
        "hardware_name": "Test CPU 9000",
        "device": "cpu",
        "power_mode": "7W",
        "power_mode_source": "--power-mode",
        "freq_source": "--frequency-mhz",
        "calibration_date": CAL_DATE,
        "tool_version": "0.1.0",
        "framework_facts": {"framework_version": np.__version__, "numpy_version": np.__version__},
        "records": records,
        "supports": {},
        "precisions": list(NUMPY_PRECISIONS),
        "spec": {"theoretical_peaks": {"fp64": 200.0, "fp32": 400.0}, "peaks_reference_clock_mhz": 2450.0},
        "host": {"cpu": {"model": "Test CPU 9000", "physical_cores": 2}},
        "command_line": ["pytest", "bench/"],
        "wall_time_s": 12.345,
    }
    fields.update(overrides)
    return BuildInput(**fields)


@pytest.fixture
def record_factory() -> Callable[..., GemmRecord]:
    return make_record


@pytest.fixture
def input_factory() -> Callable[..., BuildInput]:
    return make_input


@pytest.fixture
def key() -> CalibrationKey:
    return make_key()


def make_valid_doc(**overrides: Any) -> dict[str, Any]:
    """A calibration document built by the builder from hand-made records (fp64, fp32, emulated fp16, int8)."""
    records = [make_record("fp64", 256, 50.0), make_record("fp32", 256, 100.0),
               make_record("fp16", 256, 0.5, kernel="numpy generic matmul loop"),
               make_record("int8", 256, 2.0, kernel="numpy generic matmul loop")]
    overrides.setdefault("supports", {"fp32": Support(True, kernel="BLAS")})
    return build_calibration(make_input(records, **overrides))


@pytest.fixture
def valid_doc() -> dict[str, Any]:
    """A fresh, valid calibration document per test (safe to mutate)."""
    return make_valid_doc()


@pytest.fixture
def doc_factory() -> Callable[..., dict[str, Any]]:
    return make_valid_doc
