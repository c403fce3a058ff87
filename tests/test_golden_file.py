"""A fixed run, filed: the document a session's results become must not change by accident.

``tests/data/golden/cpu_run.json`` holds every result of one real quick numpy run on a 2-core VM
(records of every kind, clock windows, the preflight and the FMA ceiling), recorded once. The test
feeds them through the plugin's filing path on a recorded machine, with the host facts fixed, and
compares the calibration and spec files byte for byte with ``cpu_calibration.json`` and
``cpu_spec.json``, apart from the run's wall time. A deliberate change of the format regenerates them:
``HWCAL_REGENERATE_GOLDEN=1 pytest tests/test_golden_file.py``.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from test_machine import machine

from hwcal.backends.base import Support
from hwcal.backends.numpy_backend import NumpyBackend
from hwcal.machine import collect_host, detect_cpu_key
from hwcal.machine.caches import CacheInfo, CacheLevel
from hwcal.machine.fma_probe import CeilingResult
from hwcal.machine.sampler import ClockMonitor, MachineState, Window
from hwcal.measure.layouts import LayoutChoice
from hwcal.measure.records import BlasRecord, GemmRecord, LaunchFloor, MemorySweep, ShapeRecord, StreamRecord
from hwcal.measure.session import CalibrationOptions, CalibrationSession
from hwcal.plugin.filing import detect_identity, file_calibration

GOLDEN = Path(__file__).parent / "data" / "golden"
DATE = datetime(2026, 12, 4, 12, 0, 0, tzinfo=timezone.utc)
VOLATILE = ("wall_time_s",)  # metadata fields a fixed run cannot fix
HOST_EXTRA = {"total_memory_gb": 23.4, "os": "Linux 6.1.0", "python_version": "3.11.7",
              "python_implementation": "cpython"}
BLAS = [{"user_api": "blas", "internal_api": "openblas", "prefix": "libscipy_openblas", "version": "0.3.28",
         "threading_layer": "pthreads", "architecture": "SkylakeX", "num_threads": 2}]


class FixedNumpyBackend(NumpyBackend):
    """numpy as it ran, with its version fixed (the file names it)."""

    def facts(self) -> dict[str, object]:
        return {"framework_version": "2.1.3", "numpy_version": "2.1.3"}


def _caches(d: dict[str, Any]) -> CacheInfo:
    return CacheInfo(tuple(CacheLevel(**c) for c in d["levels"]), d["source"], d["assumed"], tuple(d["notes"]))


def _session(run: dict[str, Any], registry: Path) -> CalibrationSession:
    opts = CalibrationOptions(power_mode="7W", framework="numpy", device="cpu", frequency_mhz=2450,
                              hardware_id=None, registry=registry, quick=True, sizes=None, min_gflops=1.0,
                              max_call_s=0.3, dry_run=False, force=False)
    cal = CalibrationSession(opts, started_at=DATE)
    cal._backend = FixedNumpyBackend()
    src = machine("vm_epyc_zen4")
    monitor = ClockMonitor(None, 2450.0, 0.1)
    for w in run["windows"]:
        monitor.windows.append(Window(w["test"], w["samples"], set(w["reasons"]), w["results"]))
    by_test = {w.test: w for w in monitor.windows}
    cal.machine_state = MachineState(detect_cpu_key(src), None, monitor, "CPU effective clock: add chain", 0.01, src)
    cal.machine_state.case_windows = {(p, n): by_test[t] for (p, n), t in run["case_windows"]}
    res = cal.results
    res.gemm = [GemmRecord(**r) for r in run["records"]]
    res.blas = [BlasRecord(**r) for r in run["blas_records"]]
    res.shapes = [ShapeRecord(**r) for r in run["shape_records"]]
    res.floors = {k: LaunchFloor(**v) for k, v in run["launch_floors"].items()}
    mem = dict(run["memory"])
    res.memory = MemorySweep(**{**mem, "caches": _caches(mem["caches"]),
                                "records": [StreamRecord(**r) for r in mem["records"]]})
    res.layouts = {p: LayoutChoice(**v) for p, v in run["layouts"].items()}
    res.supports = {p: Support(**v) for p, v in run["supports"].items()}
    res.skips = run["skips"]
    res.warnings = run["warnings"]
    ceiling = run["extra_metadata"]["compute_ceiling"]
    res.compute_ceiling = CeilingResult(ceiling["gflops"], ceiling["by_width"], ceiling["method"],
                                        ceiling["duration_s"], ceiling["unavailable"], ceiling["threads"],
                                        verified=True, notes=ceiling.get("notes", []))
    cal.preflight = run["extra_metadata"]["preflight"]
    cal.families_run = set(run["ran_operations"]) | {"gemm", "stream"}
    cal.identity = detect_identity(cal)
    cal.identity = replace(cal.identity, host={**collect_host(src), **HOST_EXTRA}, blas=BLAS)
    return cal


def _filed(tmp_path: Path) -> tuple[dict[str, Any], str, str]:
    run = json.loads((GOLDEN / "cpu_run.json").read_text())
    cal = _session(run, tmp_path / "registry")
    selection = {"args": ["bench/"], "keyword": None, "markexpr": None, "tests_collected": 106,
                 "gemm_cases_collected": 21, "stream_cases_collected": 36, "operations_not_run": [],
                 "partial": False}
    filed = file_calibration(cal, ["pytest", "bench/", "--quick"], selection)
    spec = filed.path.parent.parent / "spec.json"
    return filed.doc, filed.path.read_text(), spec.read_text()


def _masked(text: str) -> str:
    doc = json.loads(text)
    for name in VOLATILE:
        doc["metadata"].pop(name, None)
    return json.dumps(doc, indent=2) + "\n"


def test_a_fixed_run_files_the_same_bytes(tmp_path: Path) -> None:
    _, calibration, spec = _filed(tmp_path)
    if os.environ.get("HWCAL_REGENERATE_GOLDEN"):
        (GOLDEN / "cpu_calibration.json").write_text(_masked(calibration))
        (GOLDEN / "cpu_spec.json").write_text(spec)
    assert _masked(calibration) == (GOLDEN / "cpu_calibration.json").read_text()
    assert spec == (GOLDEN / "cpu_spec.json").read_text()


def test_only_the_wall_time_is_masked(tmp_path: Path) -> None:
    doc, calibration, _ = _filed(tmp_path)
    assert json.loads(calibration) == doc and isinstance(doc["metadata"]["wall_time_s"], float)
    assert doc["metadata"]["calibration_date"] == DATE.isoformat()
