"""CPU peaks from the microarchitecture (cores x FLOPs/cycle/core x clock) with their basis; an unknown
microarchitecture falls back to the ISA-flag rule, marked, never a crash."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from test_machine import machine

from hwcal.document.peaks import derive_cpu_peaks, with_ceiling_efficiency
from hwcal.document.schema import schema_errors
from hwcal.document.spec import build_cpu_spec
from hwcal.machine import Sources
from hwcal.machine.cpu import collect_cpu

DATE = datetime(2026, 12, 1, tzinfo=timezone.utc)


def test_zen4_avx512_is_16_fp64_flops_per_cycle_not_32() -> None:
    cpu = collect_cpu(machine("vm_epyc_zen4"))
    peaks = derive_cpu_peaks(2, cpu, 2600.0)
    assert peaks.flops_per_cycle_per_core == {"fp64": 16, "fp32": 32, "bf16": 64, "int8": 128}
    assert peaks.gflops == {"fp64": 83.2, "fp32": 166.4, "bf16": 332.8, "int8": 665.6}
    assert peaks.from_table and "FLOPS_PER_CYCLE_PER_CORE['zen4']" in peaks.basis


def test_spec_files_the_basis() -> None:
    spec = build_cpu_spec("amd_epyc_zen4", {"cpu": collect_cpu(machine("vm_epyc_zen4"))}, 2600.0, DATE)
    assert schema_errors(spec, "spec") == []
    assert spec["theoretical_peaks"]["fp64"] == 83.2
    basis = spec["peaks_basis"]
    assert basis["source"] == "microarchitecture table" and basis["microarchitecture"] == "zen4"
    assert basis["flops_per_cycle_per_core"]["bf16"] == 64
    assert "zen4" in spec["peaks_note"] and "AMD Software Optimization Guide" in spec["peaks_note"]


def test_arm_core_peaks_include_int8_from_dot_product() -> None:
    peaks = derive_cpu_peaks(6, collect_cpu(machine("jetson_orin_nano_7w")), 1000.0)
    assert peaks.microarchitecture == "cortex_a78ae"
    assert peaks.gflops["fp32"] == 96.0 and peaks.gflops["int8"] == 384.0


def test_cpu_archspec_does_not_know_falls_back_marked(tmp_path: Path) -> None:
    # A vendor/family no table lists (a future x86 family): the ISA rule, said so, and no crash.
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 99\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
        "stepping\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n\n")
    cpu = collect_cpu(Sources(root=tmp_path, commands={}, system="Linux"))
    assert "microarchitecture" not in cpu
    peaks = derive_cpu_peaks(4, cpu, 3000.0)
    assert not peaks.from_table and "marked" in peaks.basis and "ISA-flag rule" in peaks.basis
    assert peaks.gflops == {"fp64": 192.0, "fp32": 384.0}
    spec = build_cpu_spec("amd_epyc", {"cpu": cpu}, 3000.0, DATE)
    assert schema_errors(spec, "spec") == []
    assert spec["peaks_basis"]["source"] == "ISA-flag fallback" and "unknown" in spec["peaks_note"]


def test_no_flags_no_microarchitecture_no_peaks() -> None:
    peaks = derive_cpu_peaks(2, {}, 2000.0)
    assert peaks.gflops == {} and not peaks.from_table


def test_efficiency_against_the_measured_ceiling() -> None:
    ceiling = {"gflops": {"fp64": 60.0, "fp32": 120.0}, "method": "m", "duration_s": 1.0, "threads": 2,
               "unavailable": None}
    out, warnings = with_ceiling_efficiency(ceiling, {"fp64": 54.0, "fp32": 132.0}, {"fp64": 80.0, "fp32": 160.0})
    assert out["efficiency_by_precision"] == {"fp64": 0.9}  # fp32's 1.1 is not a share of the ceiling
    assert out["ceiling_vs_derived_by_precision"] == {"fp64": 0.75, "fp32": 0.75}
    assert len(warnings) == 1 and "fp32" in warnings[0] and "1.1x the measured FMA ceiling" in warnings[0]
    assert "no efficiency against it filed" in warnings[0]
    _, just_over = with_ceiling_efficiency(ceiling, {"fp64": 60.6, "fp32": 100.0}, {})
    assert len(just_over) == 1 and "fp64" in just_over[0]  # 1.01x: not filed either, so said
