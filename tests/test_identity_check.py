"""Identity that checks itself: /proc/cpuinfo, platform.machine() and the id register (MIDR, CPUID) must agree.

The case that went wrong (issue 23): an arm64 root file system under QEMU user emulation on an x86 host reads
the host's /proc/cpuinfo and was filed as ``amd_epyc_zen4`` with AVX-512 flags and Zen 4 peaks. Now the
preflight stops it in one line, or with --force it is filed under ``generic_aarch64``, flagged; an emulator
(QEMU's 'max' CPU answers MIDR implementer 0 part 'Q') is named, and its speeds are said to mean nothing.
The recorded Jetsons (Orin Nano 7W, AGX Orin MAXN) pass, with their keys and Cortex-A78AE peaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hwcal.machine import Sources, cpu_identity_conflict, detect_cpu_key, detect_emulator, detect_gpu_key
from hwcal.machine.cpu import collect_cpu
from hwcal.machine.identity import LiveIds, judge, live_ids, midr_fields, verify_identity
from hwcal.machine.uarch import detect_microarchitecture, peak_flops_per_cycle
from hwcal.plugin.checks import FAILED, PASSED, SKIPPED, PreflightContext
from hwcal.plugin.preflight import run_preflight
from tests.test_machine import MACHINES, machine, machine_copy

EPYC_CPUINFO = (MACHINES / "vm_epyc_zen4" / "root" / "proc" / "cpuinfo").read_text()
ORIN_CPUINFO = (MACHINES / "jetson_orin_nano_7w" / "root" / "proc" / "cpuinfo").read_text()
ORIN_MIDR = 0x410FD421
QEMU_MAX_MIDR = 0x000F0510


def qemu_user_on_epyc() -> Sources:
    """An aarch64 process reading an x86 host's /proc (QEMU user mode, /proc bind-mounted into the chroot)."""
    return Sources(root=MACHINES / "vm_epyc_zen4" / "root", commands={}, system="Linux", machine="aarch64")


# ---- the decision, from what was read ---------------------------------------------------------------------
def test_midr_fields() -> None:
    assert midr_fields(ORIN_MIDR) == ("0x41", "0xd42") and midr_fields(QEMU_MAX_MIDR) == ("0x00", "0x051")


def test_host_cpuinfo_under_user_emulation_is_a_conflict_and_an_emulator() -> None:
    v = judge(EPYC_CPUINFO, "aarch64", [], LiveIds("aarch64", midr=QEMU_MAX_MIDR))
    assert v.conflict and "x86_64 CPU (AuthenticAMD family 25 model 17)" in v.conflict and "aarch64 code" in v.conflict
    assert v.emulator and "QEMU's 'max' CPU" in v.emulator
    assert v.problem and v.problem.startswith("CPU identity conflict:") and "\n" not in v.problem
    assert "generic_aarch64" in v.advice and "--force" in v.advice


def test_faked_orin_under_qemu_is_emulated_not_a_conflict() -> None:
    """The rehearsal: Orin's cpuinfo and midr_el1 files agree; the register is QEMU's: an emulator, explained."""
    v = judge(ORIN_CPUINFO, "aarch64", [ORIN_MIDR] * 4, LiveIds("aarch64", midr=QEMU_MAX_MIDR))
    assert v.conflict is None
    assert v.emulator and "0x000f0510" in v.emulator
    assert v.problem and "speeds measured under emulation mean nothing" in v.problem
    assert v.notes and "implementer 0x00 part 0x051" in v.notes[0]  # the mismatch is kept, explained


def test_a_real_orin_passes() -> None:
    v = judge(ORIN_CPUINFO, "aarch64", [ORIN_MIDR] * 4, LiveIds("aarch64", midr=ORIN_MIDR))
    assert (v.conflict, v.emulator, v.problem) == (None, None, None)
    assert v.register == "MIDR_EL1 0x410fd421 (implementer 0x41 part 0xd42)"


def test_a_register_that_disagrees_with_no_emulator_in_sight_is_a_conflict() -> None:
    """QEMU_CPU=cortex-a76 against Orin's files, nothing else to say it is emulated: the files are not this CPU's."""
    v = judge(ORIN_CPUINFO, "aarch64", [], LiveIds("aarch64", midr=0x414FD0B1))
    assert v.conflict and "part 0xd0b" in v.conflict and v.emulator is None


def test_sysfs_midr_that_cpuinfo_does_not_list_is_a_conflict() -> None:
    v = judge(ORIN_CPUINFO, "aarch64", [0x413FD0C1], None)
    assert v.conflict and "implementer 0x41 part 0xd0c" in v.conflict


def test_arm_midr_files_beside_an_x86_cpuinfo_is_a_conflict() -> None:
    assert judge(EPYC_CPUINFO, None, [ORIN_MIDR], None).conflict


BINFMT = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
MAPS = "5500000000-5500001000 r-xp 00000000 00:00 0 /usr/bin/qemu-aarch64"


@pytest.mark.parametrize(("binfmt", "maps"), [(BINFMT, None), (None, MAPS)])
def test_binfmt_or_maps_name_the_emulator(binfmt: str | None, maps: str | None) -> None:
    v = judge(ORIN_CPUINFO, "aarch64", [], None, binfmt, maps)
    assert v.emulator and v.conflict is None


def test_disabled_binfmt_entry_is_not_an_emulator() -> None:
    assert judge(ORIN_CPUINFO, "aarch64", [], None, "disabled\n", None).emulator is None


def test_x86_cpuid_agreeing_passes_tcg_is_an_emulator_and_a_mismatch_conflicts() -> None:
    agree = LiveIds("x86_64", cpuid=("AuthenticAMD", 25, 17), hypervisor="KVMKVMKVM")
    assert judge(EPYC_CPUINFO, "x86_64", [], agree).problem is None  # KVM runs native code: not an emulator
    tcg = LiveIds("x86_64", cpuid=("AuthenticAMD", 25, 17), hypervisor="TCGTCGTCGTCG")
    assert "QEMU TCG" in (judge(EPYC_CPUINFO, "x86_64", [], tcg).emulator or "")
    other = LiveIds("x86_64", cpuid=("GenuineIntel", 6, 106))
    assert "GenuineIntel family 6 model 106" in (judge(EPYC_CPUINFO, "x86_64", [], other).conflict or "")


def test_unknown_facts_decide_nothing() -> None:
    assert judge(None, None, [], None).problem is None
    assert judge("processor : 0\nisa : rv64imafdc\n", "riscv64", [], None).problem is None


def test_this_machine_reads_its_own_id_register() -> None:
    live = live_ids()
    if live.arch is None:
        pytest.skip("no id-register probe off x86-64 / aarch64 Linux")
    assert (live.midr is not None) if live.arch == "aarch64" else (live.cpuid is not None)
    assert verify_identity().register


# ---- through the machine layer: what gets filed -----------------------------------------------------------
def test_conflict_files_a_generic_identity_not_the_hosts() -> None:
    src = qemu_user_on_epyc()
    assert cpu_identity_conflict(src) and detect_emulator(src)
    uarch = detect_microarchitecture(src)
    assert uarch.name is None and uarch.source.startswith("generic: CPU identity conflict")
    assert peak_flops_per_cycle(uarch)[0] == {}  # no Zen 4 peaks for an emulated aarch64 process
    cpu = collect_cpu(src)
    assert cpu["model"] == "generic aarch64 CPU (identity unverified)" and cpu["architecture"] == "aarch64"
    assert "avx512f" not in cpu["isa_flags"] and "vendor" not in cpu and "microarchitecture" not in cpu
    assert "identity_conflict" in cpu and "mean nothing" in str(cpu["emulator"])
    key = detect_cpu_key(src)
    assert key.hardware_id == "generic_aarch64" and key.identity_problem and "--force" in key.identity_advice


def test_conflict_stops_the_preflight_in_one_line_or_is_flagged_with_force() -> None:
    src = qemu_user_on_epyc()
    ctx = PreflightContext(device_type="cpu", key=detect_cpu_key(src), src=src, frequency_override=2000)
    report = run_preflight(ctx, force=False)
    check = next(c for c in report.checks if c.name == "cpu_identity")
    assert check.status == FAILED and check.message.startswith("CPU identity conflict") and report.stops_run
    assert "generic_aarch64" in check.advice
    forced = run_preflight(ctx, force=True)
    assert not forced.stops_run
    assert any("CPU identity conflict" in w and "--force was given" in w for w in forced.warnings_for_document())


@pytest.mark.parametrize(("name", "hardware_id", "mode", "mode_id", "freq_mhz"),
                         [("jetson_orin_nano_7w", "jetson_orin_nano_cpu", "7W", 1, 960),
                          ("jetson_agx_orin_maxn", "jetson_agx_orin_cpu", "MAXN", 0, 2202)])
def test_recorded_jetsons_pass_with_their_keys_and_peaks(name: str, hardware_id: str, mode: str, mode_id: int,
                                                         freq_mhz: int) -> None:
    src = machine(name)
    assert verify_identity(src).problem is None
    key = detect_cpu_key(src)
    assert (key.hardware_id, key.power_mode, key.power_mode_id, key.freq_mhz) == (hardware_id, mode, mode_id, freq_mhz)
    assert key.identity_problem is None
    uarch = detect_microarchitecture(src)
    assert (uarch.name, uarch.implementer, uarch.part) == ("cortex_a78ae", "0x41", "0xd42")
    assert peak_flops_per_cycle(uarch)[0] == {"fp64": 8, "fp32": 16, "fp16": 32, "int8": 64}
    cpu = collect_cpu(src)
    assert cpu["architecture"] == "aarch64" and "asimdhp" in cpu["isa_flags"] and "sve" not in cpu["isa_flags"]
    checks = {c.name: c for c in run_preflight(PreflightContext("cpu", key, src), force=False).checks}
    assert checks["cpu_identity"].status == PASSED and checks["jetson_power_mode"].status == PASSED
    assert checks["registry_key"].status == PASSED


def test_agx_orin_maxn_is_pinned_and_its_gpu_keyed_at_the_mode_max() -> None:
    src = machine("jetson_agx_orin_maxn")
    gpu = {"name": "Orin", "compute_capability": "8.7", "sm_count": 16, "source": "torch.cuda"}
    key = detect_gpu_key(gpu, src)
    assert (key.hardware_id, key.power_mode, key.freq_mhz) == ("jetson_agx_orin_gpu", "MAXN", 1300)
    checks = {c.name: c for c in run_preflight(PreflightContext("cpu", detect_cpu_key(src), src), False).checks}
    assert checks["jetson_clocks"].status == PASSED  # jetson_clocks pinned min = max
    gpu_checks = {c.name: c for c in run_preflight(PreflightContext("gpu", key, src, gpu=gpu), False).checks}
    assert gpu_checks["cpu_identity"].status == SKIPPED  # the GPU's identity comes from its driver


def test_jetson_trees_carry_the_ina3221_rails() -> None:
    """The rails the energy work reads (L4T: bus voltage in mV, current in mA, one label per channel)."""
    nano = MACHINES / "jetson_orin_nano_7w" / "root" / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    assert [(nano / f"in{i}_label").read_text().strip() for i in (1, 2, 3)] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    agx = MACHINES / "jetson_agx_orin_maxn" / "root" / "sys/bus/i2c/drivers/ina3221"
    labels = {p.read_text().strip() for p in agx.glob("*/hwmon/*/in*_label")}
    assert labels == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO", "NC"}
    assert all(int(p.read_text()) >= 0 for p in agx.glob("*/hwmon/*/curr*_input"))


def test_the_energy_meter_reads_the_recorded_rails() -> None:
    """The INA3221 meter (hwcal.machine.jetson_power) finds every named rail of both recorded Jetsons; the
    Orin Nano's total is its input rail VDD_IN (5032 mV x 1064 mA), the AGX's the sum (it has no input rail)."""
    from hwcal.machine.jetson_power import ina_meter

    nano, why = ina_meter(machine("jetson_orin_nano_7w"))
    assert nano is not None, why
    assert [r.name for r in nano.rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert nano.read()["total"] == pytest.approx(5.032 * 1.064)
    agx, why = ina_meter(machine("jetson_agx_orin_maxn"))
    assert agx is not None, why
    assert sorted(r.name for r in agx.rails) == ["VDDQ_VDD2_1V8AO", "VDD_CPU_CV", "VDD_GPU_SOC", "VIN_SYS_5V0"]
    watts = agx.read()
    assert watts["total"] == pytest.approx(sum(v for k, v in watts.items() if k != "total"))


def test_a_jetson_whose_midr_file_names_another_core_is_refused(tmp_path: Path) -> None:
    root = machine_copy("jetson_orin_nano_7w", tmp_path)
    (root / "sys/devices/system/cpu/cpu0/regs/identification/midr_el1").write_text("0x00000000413fd0c1\n")
    key = detect_cpu_key(machine("jetson_orin_nano_7w", root=root))
    assert key.identity_problem and "part 0xd0c" in key.identity_problem
    assert key.hardware_id == "generic_aarch64"
