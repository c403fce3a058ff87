"""Theoretical peaks: derived from the hardware when no datasheet spec gives them, and scaled to
the clock measured under load before efficiency is computed.

CPU: cores x FLOPs per cycle per core for the detected vector ISA x clock; GPU: SMs x per-SM rate
for the compute capability x clock. These are marked as derived in spec.json; a datasheet value
(dense, at a stated clock) always wins over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwcal.document.precision import share
from hwcal.machine.uarch import Microarch, peak_flops_per_cycle

# FLOPs per cycle per core: two FMA pipes x lanes x 2 (multiply + add). The ISA-flag rule: used only
# where the microarchitecture is unknown (and then marked), since flags cannot tell a Zen 4 (AVX-512 on
# 256-bit datapaths) from a Xeon Platinum (two 512-bit FMA units).
_X86_AVX512 = {"fp64": 32, "fp32": 64}
_X86_AVX2_FMA = {"fp64": 16, "fp32": 32}
_X86_AVX = {"fp64": 8, "fp32": 16}
# Cortex-A78-class: two 128-bit NEON FMA pipes; fp16 arithmetic with asimdhp.
_ARM_NEON = {"fp64": 8, "fp32": 16}
_ARM_NEON_FP16 = {"fp64": 8, "fp32": 16, "fp16": 32}


def cpu_flops_per_cycle(isa_flags: list[str]) -> tuple[dict[str, int], str]:
    """The ISA-flag rule: per-core FLOPs per cycle by precision, and the ISA it was derived for."""
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


@dataclass(frozen=True)
class CpuPeaks:
    """Derived CPU peaks (GFLOPS; GOPS for int8) and where each factor came from."""

    gflops: dict[str, float]
    flops_per_cycle_per_core: dict[str, float]
    cores: int
    clock_mhz: float
    microarchitecture: str | None
    basis: str           # the table entry and its source, or the ISA rule with "marked"
    from_table: bool     # False: unknown microarchitecture, ISA-flag fallback

    @property
    def note(self) -> str:
        rates = ", ".join(f"{p} {v:g}" for p, v in self.flops_per_cycle_per_core.items()) or "none known"
        head = (f"{self.cores} cores x FLOPs/cycle/core ({rates}) x {self.clock_mhz:g} MHz; "
                f"microarchitecture {self.microarchitecture or 'unknown'}: {self.basis}")
        return head + "; precisions without a native rate are left out"

    def as_basis(self) -> dict[str, Any]:
        """The spec's ``peaks_basis``: the factors, so a reader can redo the product."""
        return {"method": "cores x FLOPs/cycle/core x clock", "cores": self.cores, "clock_mhz": self.clock_mhz,
                "microarchitecture": self.microarchitecture,
                "flops_per_cycle_per_core": dict(self.flops_per_cycle_per_core),
                "source": "microarchitecture table" if self.from_table else "ISA-flag fallback",
                "basis": self.basis}


def microarch_from_cpu_facts(cpu: dict[str, Any]) -> Microarch:
    """A ``Microarch`` from the facts ``machine.collect_cpu`` filed (metadata.host.cpu, a spec)."""
    def num(key: str) -> int | None:
        value = cpu.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def text(key: str) -> str | None:
        value = cpu.get(key)
        return str(value) if value not in (None, "") else None

    return Microarch(text("microarchitecture"), text("vendor"), num("cpu_family"), num("cpu_model"),
                     num("cpu_stepping"), text("cpu_implementer"), text("cpu_part"),
                     flags=tuple(str(f) for f in cpu.get("isa_flags") or ()), model_name=text("model"),
                     source=text("microarchitecture_source") or "")


def derive_cpu_peaks(cores: int, cpu: dict[str, Any] | list[str], clock_mhz: float) -> CpuPeaks:
    """GFLOPS per precision = cores x FLOPs/cycle/core (uarch table, by microarchitecture) x GHz.

    ``cpu`` is ``collect_cpu``'s dict (a bare ISA-flag list is read as a CPU of unknown
    microarchitecture). An unknown microarchitecture falls back to the ISA-flag rule, said so in the
    basis. Precisions without a native rate are left out, never 0.
    """
    facts = {"isa_flags": list(cpu)} if isinstance(cpu, list) else cpu
    uarch = microarch_from_cpu_facts(facts)
    per_cycle, basis = peak_flops_per_cycle(uarch)
    from_table = not basis.startswith("unknown microarchitecture")
    if not from_table and not per_cycle:
        basis += " (no vector FMA flag: no peak)"
    peaks: dict[str, float] = {}
    if cores > 0 and clock_mhz > 0:
        peaks = {p: round(cores * f * clock_mhz / 1000.0, 3) for p, f in per_cycle.items()}
    return CpuPeaks(peaks, dict(per_cycle), cores, float(clock_mhz), uarch.name, basis, from_table)


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
    """A copy of ``spec`` whose peaks are scaled from the clock each is stated at up to the clock measured
    (``clock_by_precision[p]``, else ``clock_mhz``), never below the stated clock.

    Up, because a clock above the one a peak is stated at (a CPU's turbo) raises the roof. Never down:
    a clock held below it by a power or thermal cap is the device's own loss, which efficiency must show,
    and a sampled clock is a median of moments, not the clock every instruction ran at (an H200's fp64
    GEMM scored 1.01 against its FP64 tensor-core peak scaled down to the median NVML sample).
    Peaks without a stated clock are kept as they are; without a clock nothing is scaled. The copy
    states the clocks used, so a later warning names the clock the peak really assumed.
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
            used = max(float(now), float(ref))
            scaled[p], clocks[p] = v * used / float(ref), round(used, 1)
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


def with_ceiling_efficiency(ceiling: dict[str, Any], gemm_gflops: dict[str, float],
                            derived_gflops: dict[str, float]) -> tuple[dict[str, Any], list[str]]:
    """``metadata.compute_ceiling`` with the GEMM peaks set against it: ``efficiency_by_precision`` (best
    GEMM / measured FMA ceiling) and ``ceiling_vs_derived_by_precision`` (measured ceiling / the derived
    peak at the clock run at), and a warning where a GEMM beats the ceiling (a noisy ceiling run)."""
    out = dict(ceiling)
    measured = {p: float(v) for p, v in (ceiling.get("gflops") or {}).items() if v}
    ratios = {p: float(f"{gemm_gflops[p] / v:.4g}") for p, v in measured.items() if gemm_gflops.get(p)}
    eff = {p: e for p, e in ratios.items() if share(e) is not None}  # a share of the ceiling; above it, a warning
    if eff:
        out["efficiency_by_precision"] = eff
    vs = {p: float(f"{v / derived_gflops[p]:.4g}") for p, v in measured.items() if derived_gflops.get(p)}
    if vs:
        out["ceiling_vs_derived_by_precision"] = vs
    warnings = [f"{p}: GEMM {gemm_gflops[p]:g} GFLOPS is {e:.3g}x the measured FMA ceiling {measured[p]:g} GFLOPS; "
                "the ceiling run was disturbed (it lasts about a second) or the clock rose after it, not the GEMM; "
                "no efficiency against it filed"
                for p, e in ratios.items() if e > 1.0]
    return out, warnings
