"""What the site keeps of each calibration between builds: its index row and its compare core.

The compare core is the part of a document that ``compare_calibrations.compare`` reads (peaks, precision
detail, the cv and rounds of the GEMM results, the bandwidth and its noise), so history pages and the
compare view apply the compare rule without reading 5,000 whole documents again.
"""

from __future__ import annotations

import posixpath
from typing import Any, TypedDict

from hwcal.document.format2 import precision_detail
from hwcal.precisions import CANONICAL_ORDER, canonical_sorted
from hwcal.report.compare import bandwidth_noise, peak_noise
from hwcal.site.energy import energy_summary

PRECISIONS = list(CANONICAL_ORDER)


class IndexRow(TypedDict):
    """One calibration in the index (short keys: 5,000 of them travel to the browser in data/index.js)."""

    page: str  # the calibration's page, site-relative
    json: str  # its JSON copy
    rel: str  # the registry file, registry-relative
    key: str  # the history page of its key
    dt: str  # device type
    hw: str  # hardware id
    model: str
    mode: str  # power mode as named (MAXN_SUPER)
    token: str  # power mode as filed (MAXNSUPER)
    freq: int  # key frequency, MHz
    fw: str  # framework
    date: str  # calibration_date, ISO 8601
    clock: float | None  # clock the peaks were measured at, MHz
    peaks: dict[str, float]  # GFLOPS (GOPS for integers) per precision
    bw: float | None  # sustained DRAM bandwidth, GB/s
    sup: bool  # superseded (in history)
    warn: int  # number of warnings
    energy: dict[str, Any] | None  # what the energy page shows (hwcal.site.energy), None without an energy section


def page_path(rel: str) -> str:
    """Site page of a registry file: ``gpu/h100/calibrations/history/X.json`` -> ``cal/gpu/h100/history/X.html``."""
    parts = rel.split("/")
    name = parts[-1].removesuffix(".gz")  # a compressed history file: the same page
    stem = name[: -len(".json")] if name.endswith(".json") else name
    tail = [p for p in parts[2:-1] if p != "calibrations"]
    return posixpath.join("cal", parts[0], parts[1], *tail, stem + ".html")


def key_page(device_type: str, hardware_id: str, filename: str) -> str:
    return posixpath.join("key", device_type, hardware_id, filename[: -len(".json")] + ".html")


def json_copy(rel: str) -> str:
    """Where the site keeps a registry file's JSON (a compressed history file's, unpacked)."""
    return "json/" + rel.removesuffix(".gz")


def measured_clock(meta: dict[str, Any]) -> float | None:
    """The clock the peaks were measured at (median under load), MHz."""
    clock: dict[str, Any] = meta["clock"] if isinstance(meta.get("clock"), dict) else {}
    for value in (clock.get("peaks_clock_mhz"), (clock.get("under_load") or {}).get("median_mhz"),
                  (meta.get("gpu_clock") or {}).get("sm_clock_mhz"),
                  (meta.get("cpu_clock") or {}).get("current_freq_mhz")):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def compare_core(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields ``compare()`` reads; ``compare(core(a), core(b)) == compare(a, b)`` (a test checks it)."""
    detail = precision_detail(doc)
    meta = doc.get("metadata") or {}
    imported = meta.get("imported")
    core_meta: dict[str, Any] = {}
    if isinstance(imported, dict):
        core_meta["imported"] = {k: imported[k] for k in ("gemm", "stream") if k in imported}
    memory = doc.get("memory")
    return {
        "precision_matrix": {"peak_gflops_by_precision": dict(doc["precision_matrix"]["peak_gflops_by_precision"])},
        "precision_detail": {
            "status": {p: {"status": s.get("status")} for p, s in (detail.get("status") or {}).items()
                       if isinstance(s, dict)},
            "peak_size_by_precision": dict(detail.get("peak_size_by_precision") or {}),
            "efficiency_by_precision": dict(detail.get("efficiency_by_precision") or {}),
        },
        "gemm": [{k: g[k] for k in ("precision", "n", "cv", "rounds", "gflops_best") if k in g}
                 for g in doc.get("gemm") or [] if isinstance(g, dict) and "cv" in g],
        "metadata": core_meta,
        "memory": ({k: memory[k] for k in ("sustained_cv", "cv", "rounds") if k in memory}
                   if isinstance(memory, dict) else None),
        "measured_bandwidth_gbps": doc.get("measured_bandwidth_gbps"),
        "bandwidth_efficiency": doc.get("bandwidth_efficiency"),
    }


def compare_inputs(core: dict[str, Any]) -> dict[str, Any]:
    """Per precision what the compare view needs (peak, efficiency, relative standard error, status);
    the browser applies compare's rule to two of these (site_assets/compare.js)."""
    peaks = core["precision_matrix"]["peak_gflops_by_precision"]
    detail = core["precision_detail"]
    names = canonical_sorted(set(peaks) | set(detail["status"]))
    return {
        "p": {p: [peaks.get(p), detail["efficiency_by_precision"].get(p), peak_noise(core, p),
                  detail["status"].get(p, {}).get("status")] for p in names},
        "bw": [core.get("measured_bandwidth_gbps"), core.get("bandwidth_efficiency"), bandwidth_noise(core)],
    }


def row_of(doc: dict[str, Any], rel: str, superseded: bool, power_mode_name: str) -> IndexRow:
    """One line of the index."""
    key, meta = doc["key"], doc.get("metadata") or {}
    peaks = doc["precision_matrix"]["peak_gflops_by_precision"]
    filename = f"{key['power_mode']}_{key['freq_mhz']}MHz_{key['framework']}.json"
    return {
        "page": page_path(rel), "json": json_copy(rel), "rel": rel,
        "key": key_page(key["device_type"], key["hardware_id"], filename),
        "dt": key["device_type"], "hw": key["hardware_id"], "model": str(meta.get("hardware_name") or ""),
        "mode": power_mode_name, "token": key["power_mode"], "freq": key["freq_mhz"], "fw": key["framework"],
        "date": meta["calibration_date"], "clock": measured_clock(meta),
        "peaks": {p: v for p, v in peaks.items() if isinstance(v, (int, float))},
        "bw": doc.get("measured_bandwidth_gbps"), "sup": superseded, "warn": len(doc.get("warnings") or []),
        "energy": energy_summary(doc, power_mode_name, page_path(rel)),
    }
