"""Dense (never 2:4-sparse) datasheet peaks for GPUs hwcal has calibrated, in GFLOPS / GOPS.

NVIDIA states Hopper tensor-core figures at 1830 MHz and FP64/FP32 figures at 1980 MHz (H100 SXM5
whitepaper); the clocks are kept per precision so efficiency can be scaled to the measured clock.
Matched by substring of the device name, most specific first.
"""

from __future__ import annotations

from typing import Any

_HOPPER_SXM_PEAKS = {
    "fp64": 66_900.0,  # FP64 tensor core (DMMA), used by cuBLAS DGEMM
    "fp32": 66_900.0,  # FFMA, no tensor cores
    "tf32": 494_700.0,
    "fp16": 989_400.0,
    "bf16": 989_400.0,
    "fp8": 1_978_900.0,
    "fp8_e5m2": 1_978_900.0,
    "int8": 1_978_900.0,
}
_HOPPER_SXM_CLOCKS = {p: (1980.0 if p in ("fp64", "fp32") else 1830.0) for p in _HOPPER_SXM_PEAKS}

DATASHEETS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("H200", {
        "vendor": "NVIDIA", "architecture": "Hopper", "compute_units": 132, "memory_gb": 141.0,
        "peak_bandwidth_gbps": 4800.0, "theoretical_peaks": _HOPPER_SXM_PEAKS,
        "peaks_reference_clocks_mhz": _HOPPER_SXM_CLOCKS, "peaks_reference_clock_mhz": 1830.0,
        "boost_clock_mhz": 1980.0,
        "peaks_note": "NVIDIA H200 SXM datasheet, dense figures (same GH100 compute as H100 SXM5); "
                      "tensor-core peaks at 1830 MHz, FP64/FP32 at 1980 MHz",
    }),
    ("H100 80GB HBM3", {
        "vendor": "NVIDIA", "architecture": "Hopper", "compute_units": 132, "memory_gb": 80.0,
        "peak_bandwidth_gbps": 3350.0, "theoretical_peaks": _HOPPER_SXM_PEAKS,
        "peaks_reference_clocks_mhz": _HOPPER_SXM_CLOCKS, "peaks_reference_clock_mhz": 1830.0,
        "boost_clock_mhz": 1980.0,
        "peaks_note": "NVIDIA H100 SXM5 datasheet/whitepaper, dense figures; tensor-core peaks at 1830 MHz, "
                      "FP64/FP32 at 1980 MHz",
    }),
)


def datasheet_for(device_name: str) -> dict[str, Any] | None:
    for needle, sheet in DATASHEETS:
        if needle.lower() in device_name.lower():
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in sheet.items()}
    return None
