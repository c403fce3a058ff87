"""GPU-only checks (skipped without CUDA): TF32 really is off for fp32 and on for tf32, and a
benchmark timed without device synchronisation is caught, not filed."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_fp32_and_tf32_errors_are_at_their_precisions_level() -> None:
    from hwcal.backends.torch_backend import TorchBackend
    from hwcal.measure.verify import verify_gemm

    backend = TorchBackend("cuda:0")
    errors = {}
    for precision in ("fp32", "tf32"):
        with backend.precision_mode(precision):
            ops = backend.make_operands(precision, 4096, seed=7)
            c = backend.gemm(ops)
            backend.synchronize()
            check = verify_gemm(backend, ops, c, seed=7)
        assert check.ok, check.describe()
        errors[precision] = check.max_error
    # fp32 rounds at 2^-24; tf32 rounds the operands to a 10-bit mantissa (2^-11): a tf32 result
    # would fail fp32's tolerance, so an fp32 GEMM that silently used TF32 cannot be filed.
    from hwcal.precisions import PRECISIONS

    assert errors["fp32"] < 1e-5
    assert errors["tf32"] > PRECISIONS["fp32"].tolerance(4096)
    assert errors["tf32"] > 20 * errors["fp32"]


def test_precision_mode_restores_previous_setting() -> None:
    from hwcal.backends.torch_backend import TorchBackend

    backend = TorchBackend("cuda:0")
    torch.set_float32_matmul_precision("medium")
    with backend.precision_mode("tf32") as modes:
        assert modes["float32_matmul_precision"] == "high"
    with backend.precision_mode("fp32") as modes:
        assert modes["float32_matmul_precision"] == "highest"
    assert torch.get_float32_matmul_precision() == "medium"
    torch.set_float32_matmul_precision("highest")


def test_unsynchronised_gpu_timing_fails_the_run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwcal.errors import HwcalError
    from hwcal.measure.gemm import run_gemm
    from hwcal.measure.session import CalibrationSession
    from hwcal.plugin.options import CalibrationOptions
    from tests.fakes import FakeBenchmark

    opts = CalibrationOptions(None, "pytorch", "cuda:0", None, None, tmp_path, True, [8192], 1.0, 10.0,
                              False, False)
    cal = CalibrationSession(opts)
    monkeypatch.setattr(type(cal.backend), "synchronize", lambda self: None)
    with pytest.raises(HwcalError, match="not synchronised"):
        run_gemm(FakeBenchmark(), cal, "bf16", 8192)
    torch.cuda.synchronize()
    assert cal.results.gemm == []


NEIGHBOUR = """
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); c = torch.empty_like(a)
print("ready", flush=True)
t0 = time.time()
while time.time() - t0 < float(sys.argv[1]):
    for _ in range(20): torch.mm(a, a, out=c)
    torch.cuda.synchronize()
"""


def _calibrate(tmp_path: Any, *extra: str, state: Any = None) -> Any:
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    if state is not None:
        env["HWCAL_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(repo / "bench"), "-p", "hwcal.plugin.hooks", "-p", "no:randomly", "-q",
         "--framework", "pytorch", "--device", "cuda", "--quick", "--registry", str(tmp_path / "reg"),
         "--allow-partial", *extra], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False)


def _neighbour(seconds: float, delay_s: float = 0.0, after_lock_in: Any = None) -> Any:
    """A process running bf16 GEMMs on the GPU; with ``after_lock_in``, it starts ``delay_s`` after a
    calibration took its device lock there (past the preflight: a cold machine's start took over 8 s)."""
    import subprocess
    import sys

    wait = ""
    if after_lock_in is not None:
        wait = (f"import glob, time\nend = time.time() + 300\n"
                f"while not glob.glob({str(after_lock_in)!r} + '/device-*.lock') and time.time() < end:\n"
                f"    time.sleep(0.1)\n")
    code = wait + f"import time; time.sleep({delay_s})\n" + NEIGHBOUR
    proc = subprocess.Popen([sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE, text=True)
    if not delay_s and after_lock_in is None:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: Any) -> None:
    """Kill the neighbour and reap it: until then the driver keeps its context and NVML still lists it."""
    import time

    proc.kill()
    proc.wait(timeout=30)
    time.sleep(2.0)


def _alone_on_the_gpu() -> None:
    """NVML lists this process's own CUDA context as another process on the GPU: the calibration these tests
    start would refuse at its preflight before any neighbour (the H200's and an H100's "1 failed" in the full
    GPU files), and the preflight test would pass for the wrong process."""
    if torch.cuda.is_initialized():
        pytest.skip("this pytest process holds a CUDA context, another process to the calibration it starts: run "
                    "it in a process of its own, pytest tests/test_gpu.py -k neighbour (as .ci/gpu_session.sh does)")


def test_a_neighbour_on_the_gpu_stops_the_preflight(tmp_path: Any) -> None:
    _alone_on_the_gpu()
    proc = _neighbour(60)
    try:
        out = _calibrate(tmp_path, "-k", "fp32 and gemm")
    finally:
        _stop(proc)
    assert out.returncode != 0 and "gpu_other_processes: other compute processes on this GPU" in out.stderr + out.stdout


def test_a_neighbour_that_starts_mid_run_is_caught(tmp_path: Any) -> None:
    import json

    _alone_on_the_gpu()
    state = tmp_path / "state"
    state.mkdir()
    proc = _neighbour(90, delay_s=1.0, after_lock_in=state)
    try:
        out = _calibrate(tmp_path, "-k", "bf16", state=state)
    finally:
        _stop(proc)
    assert out.returncode == 0, out.stdout[-3000:]
    (path,) = (tmp_path / "reg").glob("gpu/*/calibrations/*.json")
    interference = json.loads(path.read_text())["metadata"]["interference"]
    gpu_cases = [c for c in interference["cases"] if any("GPU" in r for r in c["reasons"])]
    assert gpu_cases, interference
