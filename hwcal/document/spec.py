"""spec.json for hardware seen the first time: identity facts, and peaks from a datasheet (GPUs hwcal
knows) or derived from the core count, FLOPs per cycle of the microarchitecture and clock (CPUs).

The identity facts (microarchitecture, CPUID family/model/stepping or Arm implementer/part, ISA
flags) are what a later run is compared with before it may file into the folder: a VM's "AMD EPYC"
can be a Zen 3 today and a Zen 4 tomorrow, and one must never become the other's history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hwcal.document.datasheets import datasheet_for
from hwcal.document.peaks import derive_cpu_peaks
from hwcal.document.schema import SPEC_FORMAT_VERSION

# collect_cpu's identity keys, as spec.json's ``identity`` keeps them.
IDENTITY_KEYS = ("vendor", "cpu_family", "cpu_model", "cpu_stepping", "cpu_implementer", "cpu_part", "cpu_variant",
                 "cpu_revision", "microarchitecture", "microarchitecture_source", "isa_flags")


def cpu_identity(cpu: dict[str, Any]) -> dict[str, Any]:
    """The identity facts of ``collect_cpu``'s dict (metadata.host.cpu), the keys it has."""
    return {k: cpu[k] for k in IDENTITY_KEYS if cpu.get(k) not in (None, "", [])}


def _describe(facts: dict[str, Any]) -> str:
    uarch = facts.get("microarchitecture") or "unknown microarchitecture"
    ids = [f"{k.removeprefix('cpu_')} {facts[k]}" for k in ("cpu_family", "cpu_model", "cpu_implementer", "cpu_part")
           if facts.get(k) is not None]
    return f"{uarch} ({', '.join(ids)})" if ids else str(uarch)


def identity_conflict(spec: dict[str, Any], cpu: dict[str, Any]) -> str | None:
    """Why the CPU described by ``cpu`` (collect_cpu's facts) is not the chip ``spec`` describes, or None.

    Compared, where both sides know them: the microarchitecture, then the CPUID family/model or the Arm
    implementer/part, then the vendor. Facts only one side has decide nothing (an old spec without
    identity facts accepts any run, as before)."""
    if spec.get("device_type") != "cpu":
        return None
    known = {**(spec.get("identity") or {})}
    if spec.get("microarchitecture"):
        known["microarchitecture"] = spec["microarchitecture"]
    here = cpu_identity(cpu)
    for group in (("microarchitecture",), ("cpu_family", "cpu_model"), ("cpu_implementer", "cpu_part"), ("vendor",)):
        theirs = tuple(known.get(k) for k in group)
        ours = tuple(here.get(k) for k in group)
        if None in theirs or None in ours:
            continue
        if tuple(str(v).lower() for v in theirs) != tuple(str(v).lower() for v in ours):
            return (f"spec.json of {spec.get('device_type')}/{spec.get('id')} describes a {_describe(known)}, "
                    f"but this machine is a {_describe(here)}")
    return None


def build_cpu_spec(hardware_id: str, host: dict[str, Any], clock_mhz: float, created: datetime) -> dict[str, Any]:
    """spec.json for a CPU seen for the first time: identity facts and derived (not datasheet) peaks,
    cores x FLOPs/cycle/core of the microarchitecture (uarch table) x clock, with their basis."""
    cpu = host.get("cpu", {})
    cores = int(cpu.get("physical_cores") or cpu.get("logical_cores") or 0)
    derived = derive_cpu_peaks(cores, cpu, clock_mhz)
    spec: dict[str, Any] = {
        "schema_version": SPEC_FORMAT_VERSION,
        "id": hardware_id,
        "model": str(cpu.get("model") or hardware_id),
        "device_type": "cpu",
        "theoretical_peaks": derived.gflops,
        "peaks_source": "derived",
        "peaks_note": derived.note,
        "peaks_basis": derived.as_basis(),
        "platform": str(cpu.get("architecture") or ""),
        "created": created.isoformat(),
    }
    if cpu.get("microarchitecture"):
        spec["microarchitecture"] = str(cpu["microarchitecture"])
    identity = cpu_identity(cpu)
    if identity:
        spec["identity"] = identity
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
