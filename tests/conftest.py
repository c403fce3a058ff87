"""Shared fixtures for hwcal's own tests: hand-made GEMM records, build inputs and valid documents.

The builder is a pure function, so its tests (and the schema and writer tests that need a valid
document) build their input by hand here instead of running a benchmark.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwcal.backends import Support
from hwcal.document.builder import BuildInput, RunRecord, build_calibration
from hwcal.document.clocks import ClockOutcome, clock_summary
from hwcal.machine import KeyFacts
from hwcal.measure.records import GemmRecord
from hwcal.measure.session import CalibrationOptions, Results, RunIdentity
from hwcal.naming import CalibrationKey

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """The tests' calibration runs take their device lock in a private state folder: they never wait on
    (or block) a real calibration of this host, and no test waits on a real lock. Tests of the host-wide
    lock itself point HWCAL_STATE_DIR where they need it."""
    if "HWCAL_STATE_DIR" not in os.environ:
        os.environ["HWCAL_STATE_DIR"] = _OWN_STATE_DIR[0] = tempfile.mkdtemp(prefix="hwcal-test-state-")


_OWN_STATE_DIR = [""]  # the state folder this session made, removed at its end (a session per run: 150 a day)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_STATE_DIR[0] and os.environ.get("HWCAL_STATE_DIR") == _OWN_STATE_DIR[0]:
        shutil.rmtree(_OWN_STATE_DIR[0], ignore_errors=True)
        del os.environ["HWCAL_STATE_DIR"]
        _OWN_STATE_DIR[0] = ""


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


RESULT_FIELDS = {f.name for f in dataclasses.fields(Results)}
IDENTITY_DEFAULTS: dict[str, Any] = {"hardware_name": "Test CPU 9000", "power_mode": "7W",
                                     "power_mode_source": "--power-mode", "freq_source": "--frequency-mhz"}


def make_input(records: list[GemmRecord] | None = None, *, key: CalibrationKey | None = None,
               spec: dict[str, Any] | None = None, precisions: list[str] | None = None,
               clock: ClockOutcome | None = None, started_at: datetime = CAL_DATE,
               selection: dict[str, Any] | None = None, wall_time_s: float = 12.345,
               preflight: dict[str, Any] | None = None, framework_facts: dict[str, object] | None = None,
               host: dict[str, Any] | None = None, device: str = "cpu", **fields: Any) -> BuildInput:
    """A BuildInput for a CPU with derived fp64/fp32 peaks: ``records`` and any ``Results`` field (supports,
    skips, warnings, memory, blas, shapes, floors, layouts, max_achievable, compute_ceiling), the identity's
    facts (hardware_name, power_mode and its source, freq_source), and the run's."""
    if records is None:
        records = [make_record("fp64", 256, 50.0), make_record("fp32", 256, 100.0),
                   make_record("fp32", 512, 120.0)]
    key = key or make_key()
    results = Results(gemm=records, **{k: fields.pop(k) for k in list(fields) if k in RESULT_FIELDS})
    names = {**IDENTITY_DEFAULTS, **fields}
    facts = KeyFacts(hardware_id=key.hardware_id, hardware_name=names.pop("hardware_name"),
                     power_mode=names.pop("power_mode"), power_mode_source=names.pop("power_mode_source"),
                     freq_mhz=key.freq_mhz, freq_source=names.pop("freq_source"))
    if names:
        raise TypeError(f"make_input: unknown fields {sorted(names)}")
    identity = RunIdentity(
        key=key, facts=facts, detected_hardware_id=key.hardware_id,
        host=host if host is not None else {"cpu": {"model": "Test CPU 9000", "physical_cores": 2}}, gpu=None,
        blas=[], framework_facts=framework_facts or {"framework_version": np.__version__,
                                                     "numpy_version": np.__version__},
        device=device, precisions=list(precisions if precisions is not None else NUMPY_PRECISIONS), spec=None)
    options = CalibrationOptions(power_mode=facts.power_mode, framework=key.framework, device=device,
                                 frequency_mhz=key.freq_mhz, hardware_id=None, registry=Path("registry"), quick=False,
                                 sizes=None, min_gflops=1.0, max_call_s=0.3, dry_run=False, force=False)
    run = RunRecord(started_at=started_at, options=options, command_line=["pytest", "bench/"],
                    selection=selection or {}, wall_time_s=wall_time_s, preflight=preflight,
                    clock=clock or clock_summary(None, records, facts))
    spec = spec if spec is not None else {"theoretical_peaks": {"fp64": 200.0, "fp32": 400.0},
                                          "peaks_reference_clock_mhz": 2450.0}
    return BuildInput(results, identity, run, spec)


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
