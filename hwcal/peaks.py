"""Theoretical peaks derived from the hardware when no datasheet spec gives them.

CPU: cores x FLOPs per cycle per core for the detected vector ISA x clock. These are marked as
derived in spec.json; a datasheet value (dense, at a stated clock) always wins over them.
"""

from __future__ import annotations

# FLOPs per cycle per core: two FMA pipes x lanes x 2 (multiply + add).
_X86_AVX512 = {"fp64": 32, "fp32": 64}
_X86_AVX2_FMA = {"fp64": 16, "fp32": 32}
_X86_AVX = {"fp64": 8, "fp32": 16}
# Cortex-A78-class: two 128-bit NEON FMA pipes; fp16 arithmetic with asimdhp.
_ARM_NEON = {"fp64": 8, "fp32": 16}
_ARM_NEON_FP16 = {"fp64": 8, "fp32": 16, "fp16": 32}


def cpu_flops_per_cycle(isa_flags: list[str]) -> tuple[dict[str, int], str]:
    """Per-core FLOPs per cycle by precision, and the ISA it was derived for."""
    flags = set(isa_flags)
    if "avx512f" in flags:
        table, isa = dict(_X86_AVX512), "AVX-512"
        if "avx512_fp16" in flags:
            table["fp16"] = 128
        return table, isa
    if "avx2" in flags and "fma" in flags:
        return dict(_X86_AVX2_FMA), "AVX2+FMA"
    if "avx" in flags:
        return dict(_X86_AVX), "AVX"
    if "asimd" in flags:
        if "asimdhp" in flags or "fphp" in flags:
            return dict(_ARM_NEON_FP16), "NEON+FP16"
        return dict(_ARM_NEON), "NEON"
    return {}, "unknown"


def derive_cpu_peaks(cores: int, isa_flags: list[str], clock_mhz: float) -> tuple[dict[str, float], str]:
    """GFLOPS per precision = cores x FLOPs/cycle x GHz; precisions without a native rule are left out."""
    per_cycle, isa = cpu_flops_per_cycle(isa_flags)
    if cores <= 0 or clock_mhz <= 0:
        return {}, isa
    return {p: round(cores * f * clock_mhz / 1000.0, 3) for p, f in per_cycle.items()}, isa
