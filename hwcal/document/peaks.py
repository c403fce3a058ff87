"""Theoretical peaks: derived from the hardware when no datasheet spec gives them, and scaled to
the clock measured under load before efficiency is computed.

CPU: cores x FLOPs per cycle per core for the detected vector ISA x clock; GPU: SMs x per-SM rate
for the compute capability x clock. These are marked as derived in spec.json; a datasheet value
(dense, at a stated clock) always wins over them.
"""

from __future__ import annotations

from typing import Any

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


# GPU FLOPs (OPs for integers) per cycle per SM, dense, by compute capability. CUDA-core rates for
# fp64/fp32; tensor-core rates (fp16/bf16 with fp32 accumulate) for the rest. From NVIDIA's
# architecture whitepapers: V100 (7.0), T4 (7.5), A100 (8.0), GA10x (8.6), Orin (8.7), Ada (8.9),
# H100 (9.0). GeForce parts halve fp16-with-fp32-accumulate on 8.6/8.9; the rate here is the full one,
# so a GeForce card shows about half the efficiency rather than an efficiency above 1.
_GPU_PER_SM_CYCLE: dict[tuple[int, int], dict[str, int]] = {
    (7, 0): {"fp64": 64, "fp32": 128, "fp16": 1024},
    (7, 5): {"fp64": 4, "fp32": 128, "fp16": 1024, "int8": 2048},
    (8, 0): {"fp64": 128, "fp32": 128, "tf32": 1024, "fp16": 2048, "bf16": 2048, "int8": 4096},
    (8, 6): {"fp64": 4, "fp32": 256, "tf32": 512, "fp16": 1024, "bf16": 1024, "int8": 2048},
    (8, 7): {"fp64": 4, "fp32": 256, "tf32": 1024, "fp16": 2048, "bf16": 2048, "int8": 4096},
    (8, 9): {"fp64": 4, "fp32": 256, "tf32": 512, "fp16": 1024, "bf16": 1024, "fp8": 2048, "fp8_e5m2": 2048,
             "int8": 2048},
    (9, 0): {"fp64": 256, "fp32": 256, "tf32": 2048, "fp16": 4096, "bf16": 4096, "fp8": 8192, "fp8_e5m2": 8192,
             "int8": 8192},
}


def derive_gpu_peaks(compute_capability: str, sm_count: int, clock_mhz: float) -> tuple[dict[str, float], str]:
    """GFLOPS per precision = SMs x per-SM rate for the compute capability x GHz; {} for an unknown one."""
    try:
        major, minor = (int(x) for x in compute_capability.split(".")[:2])
    except ValueError:
        return {}, f"compute capability {compute_capability!r} not understood"
    rates = _GPU_PER_SM_CYCLE.get((major, minor))
    if not rates or sm_count <= 0 or clock_mhz <= 0:
        return {}, f"no per-SM rates known for compute capability {major}.{minor}"
    peaks = {p: round(sm_count * r * clock_mhz / 1000.0, 3) for p, r in rates.items()}
    return peaks, f"{sm_count} SMs x per-SM FLOPs/cycle for compute capability {major}.{minor} x {clock_mhz:g} MHz"


def peaks_at_clock(spec: dict[str, Any], clock_mhz: float | None,
                   clock_by_precision: dict[str, float] | None = None) -> dict[str, Any]:
    """A copy of ``spec`` whose peaks are scaled from the clock each is stated at to the clock measured
    (``clock_by_precision[p]``, else ``clock_mhz``).

    Peaks without a stated clock are kept as they are; without a clock nothing is scaled. The copy
    states the new clocks, so a later warning names the clock the peak really assumed.
    """
    out = dict(spec)
    peaks = {p: float(v) for p, v in (spec.get("theoretical_peaks") or {}).items() if v}
    per = spec.get("peaks_reference_clocks_mhz") or {}
    common = spec.get("peaks_reference_clock_mhz")
    if not peaks or not (per or common):
        return out
    scaled, clocks = {}, {}
    for p, v in peaks.items():
        ref, now = per.get(p) or common, (clock_by_precision or {}).get(p) or clock_mhz
        if ref and now and now > 0:
            scaled[p], clocks[p] = v * now / float(ref), round(now, 1)
        else:
            scaled[p] = v
            if ref:
                clocks[p] = float(ref)
    out["theoretical_peaks"] = scaled
    if clocks:
        out["peaks_reference_clocks_mhz"] = clocks
    if clock_mhz and clock_mhz > 0:
        out["peaks_reference_clock_mhz"] = round(clock_mhz, 1)
    return out


def with_derived_gpu_peaks(spec: dict[str, Any], gpu: dict[str, Any] | None, clock_mhz: float) -> dict[str, Any]:
    """A new GPU spec without datasheet peaks gets derived ones (SMs x per-SM rate x clock), marked so."""
    if spec.get("device_type") != "gpu" or spec.get("theoretical_peaks") or not gpu:
        return spec
    peaks, note = derive_gpu_peaks(str(gpu.get("compute_capability") or ""), int(gpu.get("sm_count") or 0), clock_mhz)
    if not peaks:
        return spec
    return {**spec, "theoretical_peaks": peaks, "peaks_source": "derived", "peaks_note": note,
            "peaks_reference_clock_mhz": float(clock_mhz)}
