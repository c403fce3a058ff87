"""The measured FMA ceiling: the machine code (x86-64 and A64, from one kernel description) encodes as objdump
reads it, verifies lane by lane, runs on every core, and every unavailable path says why instead of crashing.
No speed is asserted: only that the numbers are finite and positive. On an aarch64 machine (or under QEMU
user emulation, .ci/jetson_rehearsal.sh) the NEON and SVE kernels run; on x86-64 the AVX2/AVX-512 ones."""

from __future__ import annotations

import math
import platform
from dataclasses import replace
from pathlib import Path

import pytest

from hwcal.machine import fma_probe
from hwcal.machine.cpuclock import native_arch
from hwcal.machine.fma_probe import FORMS, measure_compute_ceiling
from hwcal.machine.identity import live_flags, live_ids
from hwcal.machine.isa import (
    A64,
    A64_READ_MIDR,
    A64_SVE_BYTES,
    ADDS_PER_ITERATION,
    X86,
    X86_CPUID,
    add_chain_kernel,
    fma_kernel,
)
from hwcal.machine.sources import Sources

ARCH = native_arch()
needs_probe = pytest.mark.skipif(ARCH is None, reason="the FMA probe is x86-64 / aarch64 Linux machine code")
NATIVE_FORMS = [f for f in FORMS if f.arch == ARCH]
# flags of the other ISA: they name no form this CPU has
FOREIGN_FLAGS = {"asimd", "asimdhp", "sve"} if ARCH == "x86_64" else {"avx2", "fma", "avx512f"}


def words(code: bytes) -> list[str]:
    return [code[i:i + 4][::-1].hex() for i in range(0, len(code), 4)]


def test_x86_encoding_is_stable() -> None:
    """Golden bytes checked against objdump: vfmadd231pd ymm0, ymm14, ymm15 and the zmm/ps forms."""
    assert X86(256).fma("fp64", 0) == bytes.fromhex("c4c28db8c7")
    assert X86(256).fma("fp32", 11) == bytes.fromhex("c4420db8df")
    assert X86(512).fma("fp64", 0) == bytes.fromhex("62d28d48b8c7")
    assert X86(512).fma("fp32", 1) == bytes.fromhex("62d20d48b8cf")
    code = fma_kernel(X86(256), "fp64")
    assert code.endswith(bytes.fromhex("c5f877c3")) and code.count(bytes.fromhex("b8")) >= 12
    assert X86_CPUID.hex() == "5389f831c90fa28906895e04894e0889560c5bc3"  # push rbx ... cpuid ... ret


def test_a64_encoding_is_stable() -> None:
    """Golden words checked against aarch64-linux-gnu-objdump (binutils 2.40)."""
    neon, sve = A64(), A64(sve=True)
    assert words(neon.fma("fp64", 0)) == ["4e7dcf80"]   # fmla v0.2d, v28.2d, v29.2d
    assert words(neon.fma("fp32", 27)) == ["4e3dcf9b"]  # fmla v27.4s, v28.4s, v29.4s
    assert words(neon.fma("fp16", 0)) == ["4e5d0f80"]   # fmla v0.8h, v28.8h, v29.8h
    assert words(sve.fma("fp32", 0)) == ["65bd0380"]    # fmla z0.s, p0/m, z28.s, z29.s
    assert words(sve.fma("fp64", 1)) == ["65fd0381"]    # fmla z1.d, p0/m, z28.d, z29.d
    assert words(sve.fma("fp16", 2)) == ["657d0382"]    # fmla z2.h, p0/m, z28.h, z29.h
    assert words(neon.load(1, 1)) == ["3dc00421"]       # ldr q1, [x1, #16]
    assert words(neon.store(0, 0)) == ["3d800020"]      # str q0, [x1]
    assert words(sve.load(29, 21)) == ["8582543d"]      # ldr z29, [x1, #21, mul vl]
    assert words(sve.store(1, 1)) == ["e5804421"]       # str z1, [x1, #1, mul vl]
    assert words(sve.prologue("fp32")) == ["2518e3e0"]  # ptrue p0.b
    assert words(A64_READ_MIDR) == ["d5380000", "d65f03c0"]  # mrs x0, midr_el1 ; ret
    assert words(A64_SVE_BYTES) == ["0420e3e0", "d65f03c0"]  # cntb x0 ; ret


@pytest.mark.parametrize("encoder", [X86(256), X86(512), A64(), A64(sve=True)], ids=["ymm", "zmm", "neon", "sve"])
def test_one_kernel_description_for_every_form(encoder: X86 | A64) -> None:
    """The same steps, in the same order, whatever the ISA: loads, one FMA per chain in the loop, the
    branch back to the first FMA, stores, return."""
    chains = len(encoder.acc_regs)
    code = fma_kernel(encoder, "fp64")
    head = encoder.prologue("fp64") + b"".join(encoder.load(r, i) for i, r in enumerate(encoder.acc_regs))
    head += encoder.load(encoder.x_reg, chains) + encoder.load(encoder.y_reg, chains + 1)
    body = b"".join(encoder.fma("fp64", r) for r in encoder.acc_regs)
    assert code.startswith(head + body)
    assert code.endswith(b"".join(encoder.store(r, i) for i, r in enumerate(encoder.acc_regs)) + encoder.epilogue())
    assert code[len(head) + len(body):].startswith(encoder.loop_back(len(head), len(head) + len(body)))
    assert len(set(encoder.acc_regs) | {encoder.x_reg, encoder.y_reg}) == chains + 2


def test_a64_registers_are_caller_saved() -> None:
    """AAPCS64: v8-v15 (and so z8-z15) must be preserved by a callee; the kernel never touches them."""
    enc = A64()
    assert not {*enc.acc_regs, enc.x_reg, enc.y_reg} & set(range(8, 16))
    assert len(enc.acc_regs) == 20  # 18 needed on A64FX (9-cycle FMLA x 2 pipes), 16 on Neoverse V2


def test_a64_loop_branches_back_to_the_first_fma() -> None:
    code = fma_kernel(A64(), "fp32")
    w = words(code)
    branch = next(i for i, x in enumerate(w) if x.startswith("54") and x.endswith("1"))
    imm19 = (int(w[branch], 16) >> 5) & 0x7FFFF
    target = branch + (imm19 - (1 << 19) if imm19 >> 18 else imm19)
    assert w[branch - 1] == "f1000400" and w[target] == "4e3dcf80"  # subs x0, x0, #1 ; b.ne -> fmla v0.4s
    add = words(add_chain_kernel(A64()))
    assert add.count("8b010042") == ADDS_PER_ITERATION and add[-2:] == ["aa0203e0", "d65f03c0"]


@needs_probe
def test_ceiling_on_this_machine() -> None:
    flags = live_flags()
    result = measure_compute_ceiling(flags, budget_s=0.3)
    if not any(all(f in flags for f in form.needs) for form in NATIVE_FORMS):
        assert result.unavailable
        return
    assert result.unavailable is None, result.notes
    assert result.verified and result.threads >= 1
    assert {"fp64", "fp32"} <= set(result.gflops)
    expected = {form.key for form in NATIVE_FORMS if all(f in flags for f in form.needs)}
    if "sve" in expected:
        expected = (expected - {"sve"}) | {f"sve{(live_ids().sve_bytes or 0) * 8}"}
    assert set(result.by_width) == expected
    for per_precision in result.by_width.values():
        assert all(math.isfinite(v) and v > 0 for v in per_precision.values())
    assert result.gflops["fp64"] == max(w["fp64"] for w in result.by_width.values())
    assert "chains" in result.method and result.duration_s > 0
    # The method names what ran: FMLA on aarch64, vfmadd231 on x86-64, never the other.
    assert ("FMLA" in result.method) == (ARCH == "aarch64") and ("vfmadd231" in result.method) == (ARCH == "x86_64")
    if ARCH == "aarch64":
        assert ("fp16" in result.gflops) == ("asimdhp" in flags or "sve" in flags)


KERNELS = [(form, p) for form in FORMS for p in form.precisions]


@pytest.mark.parametrize(("form", "precision"), KERNELS, ids=[f"{f.key}-{p}" for f, p in KERNELS])
def test_kernel_verifies_lane_by_lane(form: fma_probe.Form, precision: str) -> None:
    if form.arch != ARCH:
        pytest.skip(f"{form.arch} machine code; this is {ARCH or platform.machine()}")
    need = (*form.needs, *form.precisions[precision])
    if not all(f in live_flags() for f in need):
        pytest.skip(f"this CPU lacks {'+'.join(need)}")
    width = (live_ids().sve_bytes or 0) * 8 if form.key == "sve" else None
    kernel, why = fma_probe._make_kernel(form, precision, width)
    assert kernel is not None, why
    assert kernel.verify() and kernel.lanes * kernel.dtype.itemsize * 8 == kernel.width
    buf = kernel.buffer()
    kernel.run(8, buf)
    assert (buf[:kernel.chains] == 8 * 1.5 * 0.25).all()  # every lane of every chain did 8 FMAs


@needs_probe
def test_wrong_encoding_cannot_produce_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """y loaded into x's register: valid code that computes acc += x*x, which the lane check rejects."""
    form = NATIVE_FORMS[0]
    if not all(f in live_flags() for f in form.needs):
        pytest.skip(f"this CPU lacks {'+'.join(form.needs)}")
    broken = replace(form, encoder=replace(form.encoder, y_reg=form.encoder.x_reg))
    kernel, why = fma_probe._make_kernel(broken, "fp64")
    assert kernel is None and "arithmetic check" in why
    monkeypatch.setattr(fma_probe, "FORMS", (broken,))
    result = measure_compute_ceiling(set(form.needs), budget_s=0.1)
    assert result.unavailable and not result.gflops and "arithmetic check" in result.unavailable


def test_flags_without_avx2_are_unavailable() -> None:
    """x86 flags without a vector FMA: unavailable, naming what this ISA's probe needs."""
    result = measure_compute_ceiling({"sse4_2", "avx"}, budget_s=0.1)
    assert result.unavailable and result.gflops == {} and result.by_width == {}
    needs = {"x86_64": "avx2", "aarch64": "asimd"}.get(ARCH or "", "x86-64 and aarch64 Linux only")
    assert needs in result.unavailable
    assert result.method == "no FMA kernel ran"


def test_other_isa_flags_are_unavailable() -> None:
    result = measure_compute_ceiling(FOREIGN_FLAGS, budget_s=0.1)
    assert result.unavailable and not result.gflops


def test_a_faked_machine_is_never_measured() -> None:
    fake = Sources(root=Path(__file__).parent / "data" / "machines" / "vm_epyc_zen4" / "root", commands={})
    result = measure_compute_ceiling({"avx2", "fma", "avx512f", "asimd", "sve"}, src=fake)
    assert result.unavailable and "local" in result.unavailable


@needs_probe
def test_flag_the_host_lacks_is_never_executed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flags from a faked machine claim the widest forms; the host (here: patched) has only the narrowest."""
    narrow = NATIVE_FORMS[0]
    if not all(f in live_flags() for f in narrow.needs):
        pytest.skip(f"this CPU lacks {'+'.join(narrow.needs)}")
    monkeypatch.setattr(fma_probe, "live_flags", lambda src: set(narrow.needs))
    claimed = {f for form in NATIVE_FORMS for f in (*form.needs, *sum(form.precisions.values(), ()))}
    result = measure_compute_ceiling(claimed, threads=1, budget_s=0.1)
    assert set(result.by_width) == {narrow.key}
    assert set(result.gflops) == {"fp64", "fp32"}
    assert any("skipped: this CPU lacks" in n for n in result.notes)


def test_unknown_platform_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    result = measure_compute_ceiling({"avx2", "fma", "asimd"})
    assert result.unavailable and "x86-64 and aarch64 Linux only" in result.unavailable


def test_emulated_run_says_its_figures_mean_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under an emulator the ceiling still runs (the lanes still verify) but its note says the speed is the
    emulator's."""
    if ARCH is None or not any(all(f in live_flags() for f in form.needs) for form in NATIVE_FORMS):
        pytest.skip("no FMA form runs here")
    from hwcal.machine.identity import IdentityVerdict

    monkeypatch.setattr(fma_probe, "verify_identity",
                        lambda src: IdentityVerdict("aarch64", None, emulator="QEMU's 'max' CPU"))
    result = measure_compute_ceiling(live_flags(), threads=1, budget_s=0.1)
    assert result.gflops and any("emulator" in n and "mean nothing" in n for n in result.notes)
