"""The measured FMA ceiling: the machine code verifies, runs on every core, and every unavailable path
says why instead of crashing. No speed is asserted: only that the numbers are finite and positive."""

from __future__ import annotations

import math
import platform
import sys
from pathlib import Path

import pytest

from hwcal.machine import fma_probe as fma_ceiling
from hwcal.machine.fma_probe import CHAINS, kernel_code, measure_compute_ceiling
from hwcal.machine.sources import LOCAL, Sources
from hwcal.machine.uarch import detect_microarchitecture

X86_LINUX = sys.platform == "linux" and platform.machine().lower() in ("x86_64", "amd64")
needs_x86 = pytest.mark.skipif(not X86_LINUX, reason="the FMA probe is x86-64 Linux machine code")


def local_flags() -> set[str]:
    return set(detect_microarchitecture(LOCAL).flags)


def test_encoding_is_stable() -> None:
    """Golden bytes checked against objdump: vfmadd231pd ymm0, ymm14, ymm15 and the zmm/ps forms."""
    assert fma_ceiling._fma(256, True, 0) == bytes.fromhex("c4c28db8c7")
    assert fma_ceiling._fma(256, False, 11) == bytes.fromhex("c4420db8df")
    assert fma_ceiling._fma(512, True, 0) == bytes.fromhex("62d28d48b8c7")
    assert fma_ceiling._fma(512, False, 1) == bytes.fromhex("62d20d48b8cf")
    code = kernel_code(256, True)
    assert code.endswith(bytes.fromhex("c5f877c3")) and code.count(bytes.fromhex("b8")) >= CHAINS


@needs_x86
def test_ceiling_on_this_machine() -> None:
    flags = local_flags()
    if not {"avx2", "fma"} <= flags:
        pytest.skip("this CPU has no AVX2+FMA")
    result = measure_compute_ceiling(flags, budget_s=0.3)
    assert result.unavailable is None, result.notes
    assert result.verified and result.threads >= 1
    assert set(result.gflops) == {"fp64", "fp32"}
    assert "256" in result.by_width
    assert ("512" in result.by_width) == ("avx512f" in flags)
    for per_precision in result.by_width.values():
        assert all(math.isfinite(v) and v > 0 for v in per_precision.values())
    assert result.gflops["fp64"] == max(w["fp64"] for w in result.by_width.values())
    assert "chains" in result.method and result.duration_s > 0


@needs_x86
@pytest.mark.parametrize(("width", "precision"), [(256, "fp64"), (256, "fp32"), (512, "fp64"), (512, "fp32")])
def test_kernel_arithmetic_check(width: int, precision: str) -> None:
    if not set(fma_ceiling._WIDTHS[width]) <= fma_ceiling._live_flags():
        pytest.skip(f"no {width}-bit FMA here")
    kernel, why = fma_ceiling._make_kernel(width, precision)
    assert kernel is not None, why
    assert kernel.verify()
    buf = kernel.buffer()
    kernel.run(8, buf)
    assert (buf[:CHAINS] == 8 * 1.5 * 0.25).all()  # every lane of every chain did 8 FMAs


@needs_x86
def test_wrong_encoding_cannot_produce_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """y loaded into x's register: valid code that computes acc += y*y, which the check rejects."""
    if "avx2" not in fma_ceiling._live_flags():
        pytest.skip("no AVX2 here")
    monkeypatch.setattr(fma_ceiling, "_Y_REG", fma_ceiling._X_REG)
    kernel, why = fma_ceiling._make_kernel(256, "fp64")
    assert kernel is None and "arithmetic check" in why
    result = measure_compute_ceiling({"avx2", "fma"}, budget_s=0.1)
    assert result.unavailable and not result.gflops


def test_flags_without_avx2_are_unavailable() -> None:
    result = measure_compute_ceiling({"sse4_2", "avx"}, budget_s=0.1)
    assert result.unavailable and "avx2" in result.unavailable
    assert result.gflops == {} and result.by_width == {}


def test_arm_flags_are_unavailable() -> None:
    result = measure_compute_ceiling({"asimd", "asimdhp"}, budget_s=0.1)
    assert result.unavailable


def test_a_faked_machine_is_never_measured() -> None:
    fake = Sources(root=Path(__file__).parent / "data" / "machines" / "vm_epyc_zen4" / "root", commands={})
    result = measure_compute_ceiling({"avx2", "fma", "avx512f"}, src=fake)
    assert result.unavailable and "local" in result.unavailable


@needs_x86
def test_flag_the_host_lacks_is_never_executed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flags from a faked machine claim AVX-512; the host (here: patched) has only AVX2: 512-bit is skipped."""
    if not {"avx2", "fma"} <= fma_ceiling._live_flags():
        pytest.skip("no AVX2+FMA here")
    monkeypatch.setattr(fma_ceiling, "_live_flags", lambda: {"avx2", "fma"})
    result = measure_compute_ceiling({"avx2", "fma", "avx512f"}, threads=1, budget_s=0.1)
    assert set(result.by_width) == {"256"}
    assert any("512-bit skipped" in n for n in result.notes)


def test_non_x86_platform_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fma_ceiling.platform, "machine", lambda: "aarch64")
    result = measure_compute_ceiling({"avx2", "fma"})
    assert result.unavailable and "x86-64 Linux only" in result.unavailable
