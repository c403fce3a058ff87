"""spec.json for hardware seen the first time: identity facts, and peaks from a datasheet (GPUs hwcal
knows) or derived from the core count, FLOPs per cycle and clock (CPUs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hwcal.document.datasheets import datasheet_for
from hwcal.document.peaks import derive_cpu_peaks
from hwcal.document.schema import SPEC_FORMAT_VERSION


def build_cpu_spec(hardware_id: str, host: dict[str, Any], clock_mhz: float, created: datetime) -> dict[str, Any]:
    """spec.json for a CPU seen for the first time: detected facts and derived (not datasheet) peaks."""
    cpu = host.get("cpu", {})
    cores = int(cpu.get("physical_cores") or cpu.get("logical_cores") or 0)
    peaks, isa = derive_cpu_peaks(cores, list(cpu.get("isa_flags", [])), clock_mhz)
    spec: dict[str, Any] = {
        "schema_version": SPEC_FORMAT_VERSION,
        "id": hardware_id,
        "model": str(cpu.get("model") or hardware_id),
        "device_type": "cpu",
        "theoretical_peaks": peaks,
        "peaks_source": "derived",
        "peaks_note": f"{cores} cores x FLOPs/cycle for {isa} x {clock_mhz:g} MHz; precisions without a native "
                      "vector FMA rule are left out",
        "platform": str(cpu.get("architecture") or ""),
        "created": created.isoformat(),
    }
    if clock_mhz > 0:
        spec["peaks_reference_clock_mhz"] = clock_mhz
    if cpu.get("vendor"):
        spec["vendor"] = str(cpu["vendor"])
    if cores:
        spec["compute_units"] = cores
    if host.get("total_memory_gb"):
        spec["memory_gb"] = host["total_memory_gb"]
    return spec


def build_gpu_spec(hardware_id: str, gpu: dict[str, Any], created: datetime) -> dict[str, Any]:
    """spec.json for a GPU seen the first time: datasheet peaks where hwcal knows the card."""
    name = str(gpu.get("name") or hardware_id)
    spec: dict[str, Any] = {"schema_version": SPEC_FORMAT_VERSION, "id": hardware_id, "model": name,
                            "device_type": "gpu", "platform": "cuda", "created": created.isoformat()}
    sheet = datasheet_for(name)
    if sheet:
        spec.update(sheet)
        spec["peaks_source"] = "datasheet"
    else:
        spec.update({"theoretical_peaks": {}, "peaks_source": "derived",
                     "peaks_note": f"no datasheet known for {name}; peaks left out"})
    if gpu.get("sm_count"):
        spec["compute_units"] = int(gpu["sm_count"])
    if gpu.get("l2_cache_bytes"):
        spec["cache_bytes"] = {"l2": int(gpu["l2_cache_bytes"])}
    return spec
