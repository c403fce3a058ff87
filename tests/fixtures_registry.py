"""Registries for the registry, tool and migration tests: valid documents built by the builder (fast,
no benchmark), the real seed files of the original registry copied into a temp folder, and a helper
that runs a tool as a subprocess the way a user does."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hwcal.backends import Support
from hwcal.document.builder import build_calibration
from hwcal.document.schema import SPEC_FORMAT_VERSION
from hwcal.measure.records import GemmRecord
from hwcal.naming import CalibrationKey, check_power_mode
from hwcal.registry.writer import atomic_write_text, dumps, write_calibration
from tests.conftest import make_input
from tests.fakes import dram_sweep

REPO = Path(__file__).resolve().parent.parent
# Real files of the original system, copied unmodified from shared/seed-registry: tests need nothing beside the repo.
SEED = Path(__file__).resolve().parent / "data" / "seed-registry"
BASE_DATE = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)


def gemm_record(precision: str, n: int, gflops_best: float, cv: float = 0.02, rounds: int = 50) -> GemmRecord:
    """A verified GEMM record whose times agree with its GFLOPS and its coefficient of variation."""
    flops = 2 * n**3
    t_min = flops / (gflops_best * 1e9)
    t_mean = t_min * (1 + cv)
    is_int = precision.startswith("int")
    return GemmRecord(
        precision=precision, n=n, flops_per_round=flops, launches_per_round=1, rounds=rounds, warmup_rounds=1,
        time_s={"min": t_min, "max": t_min * 1.3, "mean": t_mean, "median": t_mean, "stddev": t_mean * cv,
                "iqr": t_mean * cv},
        gflops_best=gflops_best, gflops_median=flops / t_mean / 1e9, cv=cv,
        max_error=0.0 if is_int else 1e-7, tolerance=0.0 if is_int else 9.5e-7,
        verify_method="Freivalds x2 + sampled blocks vs fp64", kernel="BLAS test kernel",
        operand_range=1.0 if is_int else None)


def make_spec(hardware_id: str = "test_cpu", device_type: str = "cpu") -> dict[str, Any]:
    return {"schema_version": SPEC_FORMAT_VERSION, "id": hardware_id, "model": f"Test {hardware_id}",
            "device_type": device_type, "theoretical_peaks": {"fp64": 200.0, "fp32": 400.0},
            "peaks_source": "derived", "peak_bandwidth_gbps": 50.0}


def make_calibration(hardware_id: str = "test_cpu", power_mode: str = "7W", freq_mhz: int = 2000,
                     framework: str = "numpy", *, date: datetime = BASE_DATE, device_type: str = "cpu",
                     peaks: dict[str, float] | None = None, cv: float = 0.02, rounds: int = 50,
                     bandwidth_gbps: float | None = 40.0) -> tuple[CalibrationKey, dict[str, Any]]:
    """A valid calibration of the given key, built by hwcal's own builder."""
    peaks = peaks if peaks is not None else {"fp64": 50.0, "fp32": 100.0}
    key = CalibrationKey(device_type, hardware_id, check_power_mode(power_mode), freq_mhz, framework)
    inp = make_input(
        [gemm_record(p, 256, v, cv, rounds) for p, v in peaks.items()], key=key, hardware_name=f"Test {hardware_id}",
        power_mode=power_mode, started_at=date, framework_facts={"framework_version": "1.0", "numpy_version": "1.0"},
        supports={p: Support(True) for p in peaks}, precisions=list(peaks), spec=make_spec(hardware_id, device_type),
        memory=dram_sweep(bandwidth_gbps) if bandwidth_gbps is not None else None)
    return key, build_calibration(inp)


def file_calibration(registry: Path, *args: Any, **kwargs: Any) -> Path:
    """Build and file a calibration (and the hardware's spec) through the real writer."""
    key, doc = make_calibration(*args, **kwargs)
    path, _ = write_calibration(registry, key, doc, make_spec(key.hardware_id, key.device_type))
    return path


def write_json(path: Path, doc: Any) -> Path:
    atomic_write_text(path, dumps(doc) if isinstance(doc, dict) else json.dumps(doc))
    return path


def copy_seed(dest: Path) -> Path:
    """The real original-registry files, copied writable (the shared copy is read-only)."""
    shutil.copytree(SEED, dest)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    Path(dest).chmod(Path(dest).stat().st_mode | stat.S_IWUSR)
    return dest


def run_tool(name: str, *args: str | Path, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run tools/<name>.py as a user would, with HWCAL_REGISTRY unset unless given."""
    environ = {k: v for k, v in os.environ.items() if k != "HWCAL_REGISTRY"}
    environ.update(env or {})
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, env=environ, cwd=cwd or REPO, timeout=60)


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once; each test gets a copy (building and validating documents costs more than copying)."""
    root = tmp_path_factory.mktemp("template") / "registry"
    file_calibration(root, "test_cpu", "15W", 2000, "numpy", date=BASE_DATE)
    file_calibration(root, "test_cpu", "7W", 1000, "numpy", date=BASE_DATE, peaks={"fp64": 20.0, "fp32": 40.0})
    file_calibration(root, "test_cpu", "MAXN_SUPER", 3000, "numpy", date=BASE_DATE)
    file_calibration(root, "test_cpu", "15W", 2000, "pytorch", date=BASE_DATE)
    file_calibration(root, "test_gpu", "300W", 1980, "pytorch", device_type="gpu",
                     peaks={"fp32": 50000.0, "fp16": 500000.0})
    return root


@pytest.fixture
def registry(registry_template: Path, tmp_path: Path) -> Path:
    """A small valid registry: one CPU in 7W, 15W and MAXN_SUPER (numpy), 15W pytorch, and one GPU."""
    return Path(shutil.copytree(registry_template, tmp_path / "registry"))


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed registry imported once into a temp registry (the tests only read it)."""
    from hwcal.interop.migrate import execute, plan_migration

    root = tmp_path_factory.mktemp("migrated") / "registry"
    actions = execute(plan_migration(copy_seed(tmp_path_factory.mktemp("seed") / "seed"), root), root)
    assert not [a for a in actions if a.action == "error"]
    return root


def later(days: float) -> datetime:
    return BASE_DATE + timedelta(days=days)
