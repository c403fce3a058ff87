"""Microarchitecture identity from recorded and constructed /proc/cpuinfo, the FLOPs-per-cycle table,
and the generic-model rule that joins the microarchitecture to a hardware id. All through ``Sources``."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from hwcal.machine import uarch as uarch_mod
from hwcal.machine.sources import Sources
from hwcal.machine.uarch import (
    FLOPS_PER_CYCLE_PER_CORE,
    Microarch,
    detect_microarchitecture,
    hardware_id_suffix,
    is_generic_model_name,
    peak_flops_per_cycle,
)

MACHINES = Path(__file__).parent / "data" / "machines"


def recorded(name: str) -> Sources:
    return Sources(root=MACHINES / name / "root", commands={}, system="Linux")


def constructed(tmp_path: Path, cpuinfo: str) -> Sources:
    (tmp_path / "proc").mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc" / "cpuinfo").write_text(cpuinfo)
    return Sources(root=tmp_path, commands={}, system="Linux")


def x86_cpuinfo(vendor: str, family: int, model: int, stepping: int, name: str, flags: str, cpus: int = 2) -> str:
    block = (f"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {name}\n"
             f"stepping\t: {stepping}\nflags\t\t: fpu sse sse2 {flags}\n")
    return "\n".join(f"processor\t: {i}\n{block}" for i in range(cpus))


AVX512 = "avx fma avx2 f16c avx512f avx512dq avx512cd avx512bw avx512vl"


# ---- identity ------------------------------------------------------------------------------------------

def test_zen3_epyc_vm_from_family_model() -> None:
    u = detect_microarchitecture(recorded("vm_epyc_no_cpufreq"))
    assert (u.name, u.vendor, u.family, u.model) == ("zen3", "AuthenticAMD", 25, 1)
    assert u.model_name == "AMD EPYC" and "avx2" in u.flags and "fma" in u.flags
    assert "family 25 model 1" in u.source
    assert peak_flops_per_cycle(u)[0] == {"fp64": 16, "fp32": 32}


def test_zen4_epyc_vm_despite_hidden_flags() -> None:
    """The VM hides pku: archspec's flag matcher alone says x86_64_v4; family 25 model 17 is Zen 4."""
    u = detect_microarchitecture(recorded("vm_epyc_zen4"))
    assert (u.name, u.family, u.model) == ("zen4", 25, 17)
    assert {"avx512f", "avx512_bf16", "avx512_vnni"} <= set(u.flags)
    rates, basis = peak_flops_per_cycle(u)
    assert rates["fp64"] == 16 and rates["fp32"] == 32  # AVX-512 on 256-bit datapaths, not 32/64
    assert "zen4" in basis and "AMD" in basis
    assert hardware_id_suffix(u) == "zen4"


def test_zen4_archspec_sees_only_generic_flags() -> None:
    pytest.importorskip("archspec")
    u = detect_microarchitecture(recorded("vm_epyc_zen4"))
    assert u.archspec_name == "x86_64_v4"


def test_arm_board_without_model_name(tmp_path: Path) -> None:
    u = detect_microarchitecture(recorded("jetson_orin_nano_7w"))
    assert (u.name, u.implementer, u.part, u.variant, u.revision) == ("cortex_a78ae", "0x41", "0xd42", "0x0", "1")
    assert u.model_name == "ARM Cortex-A78AE" and u.model_name_built
    assert {"asimd", "asimdhp", "asimddp"} <= set(u.flags)
    assert peak_flops_per_cycle(u)[0] == {"fp64": 8, "fp32": 16, "fp16": 32, "int8": 64}
    # No model name: the microarchitecture joins the id; a device-tree name that names the board does not.
    assert hardware_id_suffix(u) == "cortex_a78ae"
    assert hardware_id_suffix(u, "NVIDIA Jetson Orin Nano Developer Kit") is None


def test_big_little_arm_picks_the_big_core(tmp_path: Path) -> None:
    """An RK3588-like board: cpu0-3 Cortex-A55, cpu4-7 Cortex-A76; the peak core type is the A76."""
    blocks = [f"processor\t: {i}\nFeatures\t: fp asimd asimdhp asimddp\nCPU implementer\t: 0x41\n"
              f"CPU variant\t: 0x{2 if i < 4 else 4:x}\nCPU part\t: {'0xd05' if i < 4 else '0xd0b'}\n"
              f"CPU revision\t: 0\n" for i in range(8)]
    u = detect_microarchitecture(constructed(tmp_path, "\n".join(blocks)))
    assert u.name == "cortex_a76" and u.part == "0xd0b" and "core types" in u.source


def test_unknown_cpu_falls_back_to_isa_rule_marked(tmp_path: Path) -> None:
    src = constructed(tmp_path, x86_cpuinfo("AuthenticAMD", 0x2F, 3, 0, "AMD Future 9999", AVX512))
    u = detect_microarchitecture(src)
    assert u.name is None or u.name not in FLOPS_PER_CYCLE_PER_CORE
    rates, basis = peak_flops_per_cycle(u)
    assert rates["fp64"] == 32 and rates["fp32"] == 64
    assert basis.startswith("unknown microarchitecture") and "AVX-512 assumed full width" in basis
    assert basis.endswith("marked")


@pytest.mark.parametrize("text", ["", "garbage without colons\n\n\n", "processor : x\nmodel : banana\n",
                                  "processor\t: 0\nCPU implementer\t: 0x99\n"])
def test_bad_cpuinfo_never_raises(tmp_path: Path, text: str) -> None:
    u = detect_microarchitecture(constructed(tmp_path, text))
    assert isinstance(u, Microarch) and u.source
    peak_flops_per_cycle(u)  # no exception either


def test_missing_cpuinfo_is_unknown_with_reason(tmp_path: Path) -> None:
    u = detect_microarchitecture(Sources(root=tmp_path, commands={}, system="Linux"))
    assert u.name is None and u.source.startswith("unknown")
    assert peak_flops_per_cycle(u) == ({}, "unknown microarchitecture unknown: ISA-flag rule: no vector FMA "
                                           "flag known, marked")


def test_windows_and_macos_identity() -> None:
    win = Sources(root=Path("/nonexistent"), system="Windows", commands={
        "wmic cpu get Caption /value": "\r\r\nCaption=Intel64 Family 6 Model 151 Stepping 2\r\r\n",
        "wmic cpu get Manufacturer /value": "Manufacturer=GenuineIntel\r\n",
        "wmic cpu get Name /value": "Name=12th Gen Intel(R) Core(TM) i7-12700K\r\n"})
    u = detect_microarchitecture(win)
    assert (u.name, u.model, u.model_name) == ("alderlake", 151, "12th Gen Intel(R) Core(TM) i7-12700K")
    mac = Sources(root=Path("/nonexistent"), system="Darwin",
                  commands={"sysctl -n machdep.cpu.brand_string": "Apple M2 Pro\n"})
    u = detect_microarchitecture(mac)
    assert u.name == "m2" and peak_flops_per_cycle(u)[0]["fp64"] == 16


def test_intel_avx512_sku_rule(tmp_path: Path) -> None:
    silver = detect_microarchitecture(constructed(
        tmp_path / "a", x86_cpuinfo("GenuineIntel", 6, 85, 7, "Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz", AVX512)))
    platinum = detect_microarchitecture(constructed(
        tmp_path / "b", x86_cpuinfo("GenuineIntel", 6, 85, 7, "Intel(R) Xeon(R) Platinum 8280 CPU @ 2.70GHz", AVX512)))
    skx = detect_microarchitecture(constructed(
        tmp_path / "c", x86_cpuinfo("GenuineIntel", 6, 85, 4, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", AVX512)))
    assert (silver.name, platinum.name, skx.name) == ("cascadelake", "cascadelake", "skylake_avx512")
    rates, basis = peak_flops_per_cycle(silver)
    assert rates["fp64"] == 16 and "one 512-bit FMA" in basis
    assert peak_flops_per_cycle(platinum)[0]["fp64"] == 32
    assert peak_flops_per_cycle(skx)[0]["fp64"] == 32
    # A caller that knows the SKU better than the (generic) model name can say so.
    assert peak_flops_per_cycle(platinum, sku_hint="Xeon Gold 5218")[0]["fp32"] == 32


def test_sapphire_rapids_amx(tmp_path: Path) -> None:
    u = detect_microarchitecture(constructed(tmp_path, x86_cpuinfo(
        "GenuineIntel", 6, 143, 8, "Intel(R) Xeon(R) Platinum 8480+", AVX512 + " amx_tile amx_bf16 amx_int8")))
    assert u.name == "sapphirerapids" and {"amx_bf16", "amx_int8", "amx_tile"} <= set(u.flags)
    rates = peak_flops_per_cycle(u)[0]
    assert (rates["fp64"], rates["bf16"], rates["int8"]) == (32, 1024, 2048)


def test_a_masked_model_with_amx_is_an_amx_core(tmp_path: Path) -> None:
    """A KVM guest here reported family 6 model 167 (Rocket Lake, one 512-bit FMA unit) with AMX and AVX512-FP16
    flags; its FMA ceiling measured ~60 fp32 FLOPs/cycle/core: two units. The flags win over the masked model."""
    u = detect_microarchitecture(constructed(tmp_path, x86_cpuinfo(
        "GenuineIntel", 6, 167, 1, "Intel(R) Xeon(R) Processor", AVX512 + " avx512_fp16 amx_tile amx_bf16 amx_int8")))
    assert u.name == "sapphirerapids" and "hypervisor" in u.source and "model 167" in u.source
    assert peak_flops_per_cycle(u)[0]["fp32"] == 64
    rocket = detect_microarchitecture(constructed(tmp_path / "r", x86_cpuinfo(
        "GenuineIntel", 6, 167, 1, "11th Gen Intel(R) Core(TM) i9-11900K @ 3.50GHz", AVX512)))
    assert rocket.name == "icelake" and peak_flops_per_cycle(rocket)[0]["fp32"] == 32


def test_archspec_missing_falls_back_to_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "archspec.cpu", None)  # import raises ImportError
    u = detect_microarchitecture(recorded("vm_epyc_zen4"))
    assert u.name == "zen4" and u.archspec_name is None


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
                    reason="archspec's host detection reads the live /proc/cpuinfo on Linux x86-64/aarch64")
def test_flag_matcher_agrees_with_archspec_on_this_host() -> None:
    archspec_cpu = pytest.importorskip("archspec.cpu")
    u = detect_microarchitecture()
    assert u.archspec_name == archspec_cpu.host().name


# ---- the table -----------------------------------------------------------------------------------------

def test_table_sanity() -> None:
    for name, rates in FLOPS_PER_CYCLE_PER_CORE.items():
        assert {"fp64", "fp32"} <= set(rates), name
        assert rates["fp32"] == 2 * rates["fp64"], name  # every core here runs fp64 at half the fp32 lanes
        assert all(v > 0 for v in rates.values()), name
        assert set(rates) <= {"fp64", "fp32", "bf16", "fp16", "int8"}, name
        for low in ("bf16", "fp16"):
            assert rates.get(low, rates["fp32"]) >= rates["fp32"], name
    assert FLOPS_PER_CYCLE_PER_CORE["zen4"]["fp64"] == 16
    assert FLOPS_PER_CYCLE_PER_CORE["zen5"]["fp64"] == 32
    assert FLOPS_PER_CYCLE_PER_CORE["neoverse_v2"]["fp32"] == 32
    assert FLOPS_PER_CYCLE_PER_CORE["cortex_a78ae"]["fp32"] == 16


def test_table_entries_cite_a_source() -> None:
    source = Path(uarch_mod.__file__).read_text()
    table = source[source.index("FLOPS_PER_CYCLE_PER_CORE: dict"):source.index("def _table_source")]
    lines = table.splitlines()
    for name in FLOPS_PER_CYCLE_PER_CORE:
        i = next(n for n, line in enumerate(lines) if line.strip().startswith(f'"{name}":'))
        before = lines[:i]
        # the nearest comment above the entry (entries of one family share one comment)
        assert any(line.strip().startswith("#") for line in before[-6:]), name


# ---- generic model names -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["AMD EPYC", "AMD EPYC Processor", "AMD EPYC Processor (with IBPB)",
                                  "Intel Xeon Processor (Icelake)", "Intel(R) Xeon(R) CPU @ 2.20GHz",
                                  "QEMU Virtual CPU version 2.5+", "Common KVM processor",
                                  "AArch64 Processor rev 1 (aarch64)", "", None])
def test_generic_model_names(name: str | None) -> None:
    assert is_generic_model_name(name)


@pytest.mark.parametrize("name", ["AMD EPYC 9654 96-Core Processor", "AMD EPYC 7B13",
                                  "12th Gen Intel(R) Core(TM) i7-12700K", "Apple M2 Pro",
                                  "Intel(R) Xeon(R) Platinum 8480+", "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"])
def test_specific_model_names(name: str) -> None:
    assert not is_generic_model_name(name)


def test_specific_model_gets_no_suffix() -> None:
    u = detect_microarchitecture(recorded("i7_12700k_pstate"))
    assert u.name == "alderlake" and hardware_id_suffix(u) is None
    assert hardware_id_suffix(Microarch(None, model_name="AMD EPYC")) is None  # unknown uarch: nothing to add
