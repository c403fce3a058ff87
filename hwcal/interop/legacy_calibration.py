"""Convert one CPU or GPU calibration of the original system to hwcal's format, keeping what it measured.

The original tool wrote ``<type>/<id>/calibration.json`` (one per hardware) and later
``calibrations/{mode}_{freq}MHz_{framework}[_{UTC stamp}].json``, with a ``spec.json`` beside them. Its files
carry known faults; this module keeps the measurements, corrects what can be corrected from the file
itself, and records every correction and fault under ``metadata.imported``:

- peaks per precision were the best of *any* operation (a dot product or GEMV could be a "GEMM peak");
  here a peak comes only from GEMM results, from the fastest round like every hwcal peak;
- the key's power mode was the cpufreq governor on Jetson CPUs; here it is the mode the file recorded
  (``legacy_power``), and the key's frequency is the mode's ceiling, not an idle clock sample;
- ``nvpmodel_mode`` was parsed from the mode *name* ("MODE_15W" -> 15); here it is checked against the
  board's table, else flagged;
- dates carry no time zone; here the zone is taken from the file name's UTC stamp where there is one,
  else recorded as unknown;
- multi-core STREAM became a kernel named "multicore" and CPU bandwidth was filed under GPU keys; here
  it fills ``memory.multicore`` of the CPU's key (``legacy_memory``);
- a precision could be listed as both supported and unsupported; the GEMM results decide;
- a theoretical peak of 0 meant "unknown"; here an unknown peak is absent;
- efficiencies above 1.0 (a wrong theoretical peak) are flagged in the warnings, never hidden.

The original GEMM results were not verified against a reference and have no median or IQR, so they
cannot be ``gemm[]`` entries of format 1 (``verified`` must be true); they are kept, with every timing
the file had, under ``metadata.imported.gemm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hwcal.interop import legacy_memory as mem
from hwcal.interop.legacy_common import LegacyDate, LegacyFormatError, negative_values, pos, rounded
from hwcal.interop.legacy_gemm import legacy_gemm, precision_matrix
from hwcal.interop.legacy_source import Source, base_document, imported_record, source_of
from hwcal.naming import CalibrationKey
from hwcal.registry.reader import parse_date


class NothingMeasured(LegacyFormatError):
    """A file without a measurement (an empty or failed run): accounted for as a skip, with the reason."""


@dataclass
class Converted:
    """A legacy calibration as a format-1 document, with its key and what was found on the way."""

    key: CalibrationKey
    doc: dict[str, Any]
    corrections: list[str]
    faults: list[str]
    date: LegacyDate | None = None
    archived: bool = False

    @property
    def calibration_date(self) -> datetime:
        return parse_date(self.doc["metadata"]["calibration_date"])

    @property
    def zone_known(self) -> bool:
        return self.date is None or self.date.zone_known

    @property
    def partial(self) -> bool:
        selection = self.doc["metadata"].get("selection") or {}
        return bool(selection.get("partial"))


def other_operations(legacy: dict[str, Any]) -> list[dict[str, Any]]:
    """BLAS-1/2 results (dot, axpy, gemv): kept as measured, never used as GEMM peaks."""
    out = []
    for _, prof in mem.profiles(legacy):
        kind = str(prof.get("operation_type", ""))
        if not kind.startswith(("blas1_", "blas2_")):
            continue
        params = prof.get("extra_params") or {}
        for p, r in (prof.get("precision_results") or {}).items():
            if isinstance(r, dict) and r.get("supported") and pos(r.get("measured_gops")):
                out.append({"operation": kind, "n": r.get("test_size") or params.get("size"), "precision": p,
                            "gops_mean": r["measured_gops"], "rounds": r.get("num_trials"), "time_s": mem.time_s(r)})
    return out


def triad_bandwidth(src: Source, stream: list[dict[str, Any]]) -> float | None:
    """The STREAM triad of the largest array (beyond every cache), as this format defines it."""
    triads = [s for s in stream if s["kernel"] == "triad" and pos(s.get("gbps_mean"))]
    largest = max(triads, key=lambda s: s.get("size_mb") or 0) if triads else None
    measured = rounded(largest["gbps_mean"], 4) if largest else None
    legacy_bw = pos(src.legacy.get("measured_bandwidth_gbps"))
    if measured is None and legacy_bw is not None and not mem.profiles_of(src.legacy, "stream_multicore") \
            and not mem.profiles_of(src.legacy, "stream_concurrent"):
        src.corrections.append("measured_bandwidth_gbps kept from the original summary (no triad results found)")
        return rounded(legacy_bw, 4)
    if largest is not None and measured is not None and legacy_bw is not None \
            and abs(legacy_bw - measured) > 1e-3 * legacy_bw:
        src.corrections.append(f"measured_bandwidth_gbps: the original {legacy_bw:.4g} GB/s was the best of any STREAM "
                               "kernel and size (cache-resident included); this format's is the triad of the largest "
                               f"array ({largest.get('size_mb')} MB): {measured:g} GB/s")
    return measured


# ---- assembling the documents ------------------------------------------------------------------

_NOTHING = ("no measurement in it (no timed GEMM, STREAM or BLAS result with a positive figure, no multi-core "
            "STREAM)")


def _why_nothing(legacy: dict[str, Any]) -> str:
    if not mem.profiles(legacy):
        return f"{_NOTHING}: an empty run (no operation profiles); not imported"
    return f"{_NOTHING}; not imported"


def _own_memory(src: Source) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(``memory`` of this document, the concurrent-STREAM record): a CPU file's all-core STREAM fills
    ``memory.multicore``; a GPU file's CPU figures never do (they go to the host CPU's key)."""
    concurrent = [mem.concurrent(p) for p in mem.profiles_of(src.legacy, "stream_concurrent")]
    record = concurrent[-1] if concurrent else None
    if src.device_type == "gpu":
        if mem.profiles_of(src.legacy, "stream_multicore") or (record and record["isolated_gbps"].get("cpu")):
            src.corrections.append("the multi-core STREAM figures are the host CPU's (numpy, all cores): filed under "
                                   "the host CPU's key, never as this GPU's bandwidth")
        return None, record
    allcore = _allcore(src, record)
    return ({"sustained_gbps": None, "multicore": allcore.section} if allcore else None), record


def _allcore(src: Source, record: dict[str, Any] | None) -> mem.AllCore | None:
    found = [a for a in (mem.multicore(p) for p in mem.profiles_of(src.legacy, "stream_multicore")) if a]
    if len(found) > 1:
        src.faults.append(f"{len(found)} stream_multicore results; the one with the most cores is kept, the others "
                          "are in metadata.imported.legacy_multicore")
    allcore = max(found, key=lambda a: a.section["threads"] or 0) if found else None
    if allcore is None and record is not None:
        allcore = mem.concurrent_cpu(record, None)
    if allcore is not None:
        src.faults.extend(allcore.faults)
        src.warnings.extend(allcore.warnings)
    return allcore


def _partial_why(gemm: list[Any], stream: list[Any], others: list[Any], memory: dict[str, Any] | None,
                 gpu_bw_from_concurrent: bool) -> str | None:
    if gemm or others or stream:
        return None
    if memory:
        return "the original run measured only the all-core STREAM"
    if gpu_bw_from_concurrent:
        return "the original run measured only the concurrent multi-engine STREAM"
    return None


def _finish(src: Source, doc: dict[str, Any], imported: dict[str, Any], partial_why: str | None,
            archived: str | None) -> Converted:
    """Mark a partial or archived run, attach the import record, and say first where the document came from."""
    if partial_why:
        doc["metadata"]["selection"] = {"partial": True, "partial_why": partial_why}
        src.warnings.append(f"partial: {partial_why}; it does not replace a complete calibration of its key")
    if archived:
        imported["archived"] = archived
        src.warnings.append(f"archived by the original registry ({archived}): filed as history, never current")
    doc["metadata"]["imported"] = imported
    gemm = "its GEMM results were not verified against an fp64 reference; per-size results and " \
        if imported.get("gemm") else ""
    src.warnings.insert(0, f"imported from the original registry ({src.rel}): {gemm}every correction and the "
                           "original figures are in metadata.imported")
    return Converted(src.key, doc, src.corrections, src.faults, src.date, archived=bool(archived))


def _archived_reason(src: Source) -> str:
    tag = src.name.tag if src.name is not None else None
    return f"set aside in calibrations/archive/{f', tagged {tag!r}' if tag else ''}"


def legacy_calibration_to_v1(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None,
                             imported_at: datetime, source_sha256: str = "",
                             family: str = "calibration") -> Converted:
    """An original CPU or GPU calibration as a format-1 document (step 0 -> 1); raises LegacyFormatError,
    NothingMeasured for a file without a measurement."""
    src = source_of(legacy, rel, type_folder, hardware_folder)
    negative = negative_values({k: v for k, v in src.legacy.items() if k != "metadata"})
    if negative:
        src.faults.append(f"{len(negative)} negative measurement value(s) dropped (a magnitude is never negative): "
                          + ", ".join(negative))
    gemm, reasons = legacy_gemm(src)
    matrix = precision_matrix(src, gemm, reasons)
    stream, others = mem.stream_records(src.legacy), other_operations(src.legacy)
    measured_bw = triad_bandwidth(src, stream)
    memory, concurrent = _own_memory(src)
    gpu_alone = mem.concurrent_gpu_gbps(concurrent) if concurrent and src.device_type == "gpu" else None
    if measured_bw is None and gpu_alone is not None:
        measured_bw = rounded(gpu_alone, 4)
        src.corrections.append(f"measured_bandwidth_gbps {measured_bw:g} GB/s: the GPU's triad alone in the "
                               "concurrent multi-engine STREAM (256 MiB float32 arrays)")
    if not (gemm or measured_bw or others or memory):
        raise NothingMeasured(_why_nothing(src.legacy))
    theory_bw = pos(src.legacy.get("theoretical_bandwidth_gbps"))
    doc = base_document(src, matrix, theory_bw)
    doc.update(best_measured_gflops=matrix["peak_gflops_by_precision"].get("fp32"), measured_bandwidth_gbps=measured_bw,
               bandwidth_efficiency=rounded(measured_bw / theory_bw, 4) if measured_bw and theory_bw else None)
    if memory:
        doc["memory"] = memory
    imported = imported_record(src, imported_at, source_sha256, family)
    imported.update(gemm=gemm, stream=stream, other_operations=others)
    if concurrent:
        imported["concurrent_stream"] = concurrent
    partial = _partial_why(gemm, stream, others, memory, gpu_alone is not None)
    return _finish(src, doc, imported, partial, _archived_reason(src) if family == "archived_calibration" else None)


def has_host_cpu_part(legacy: Any, device_type: str) -> bool:
    """Whether a GPU file holds the host CPU's all-core STREAM (``stream_multicore``, or the cpu engine of
    ``stream_concurrent``) with a positive figure."""
    if device_type != "gpu" or not isinstance(legacy, dict):
        return False
    if any(mem.multicore(p) for p in mem.profiles_of(legacy, "stream_multicore")):
        return True
    return any(mem.concurrent_cpu(mem.concurrent(p), None) for p in mem.profiles_of(legacy, "stream_concurrent"))


def host_cpu_part(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None, cpu_id: str,
                  imported_at: datetime, source_sha256: str = "") -> Converted:
    """The host CPU's all-core STREAM of a GPU file as a partial calibration of the CPU's key (numpy, the
    CPU clock's mode and ceiling); raises NothingMeasured when the file has none."""
    src = source_of(legacy, rel, type_folder, hardware_folder, host_cpu=cpu_id)
    concurrent = [mem.concurrent(p) for p in mem.profiles_of(src.legacy, "stream_concurrent")]
    allcore = _allcore(src, concurrent[-1] if concurrent else None)
    if allcore is None:
        raise NothingMeasured("no host-CPU all-core STREAM figure in it")
    matrix: dict[str, Any] = {"supported_precisions": [], "emulated_precisions": [], "unsupported_precisions": [],
                              "status": {}, "peak_gflops_by_precision": {}, "speedup_vs_fp32": {},
                              "theoretical_peaks": {}}
    doc = base_document(src, matrix, None)
    doc["theoretical_peak_gflops"] = None
    doc["memory"] = {"sustained_gbps": None, "multicore": allcore.section}
    meta = doc["metadata"]
    meta["hardware_name"] = f"{cpu_id} (host CPU of {src.meta.get('hardware_name') or hardware_folder})"
    meta["clock"].pop("gpu", None)
    src.corrections.append(f"the host CPU's part of the GPU file {rel}: the GPU's figures are in that file's own "
                           "calibration")
    imported = imported_record(src, imported_at, source_sha256, "host_cpu_memory")
    imported.update(derived_from=rel, legacy_precision_matrix={}, legacy_summary={})
    if concurrent:
        imported["concurrent_stream"] = concurrent[-1]
    why = f"only the host CPU's all-core STREAM, run by the original tool inside a GPU calibration ({rel})"
    return _finish(src, doc, imported, why, None)
