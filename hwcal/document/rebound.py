"""Efficiencies filed earlier bounded to (0, 1] (``bound_efficiencies``, run by ``hwcal-upgrade``):
the values above their ceilings become null with a warning each, no measurement is touched, and the parts derived
from them are composed again (``hwcal.document.format2.recompose``)."""

from __future__ import annotations

import copy
from typing import Any

from hwcal.document.format2 import DERIVED_KEYS, SUMMARY_KEYS, recompose
from hwcal.document.nn import SECTIONS

_BOUNDED_FIELDS = ("efficiency", "efficiency_vs_measured_dram", "efficiency_vs_theoretical")
_LAYER_SECTIONS = tuple(SECTIONS.values())  # the layer sections (``document/nn.py``), their ``results``


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _over_one(entry: dict[str, Any], fields: tuple[str, ...]) -> dict[str, float]:
    """The ``fields`` of ``entry`` above 1, set to null; their values."""
    over = {f: v for f in fields if (v := _num(entry.get(f))) is not None and v > 1.0}
    for field in over:
        entry[field] = None
    return over


def _bound_blas(src: dict[str, Any]) -> list[str]:
    return [f"blas: {e.get('operation')} {e.get('precision')} n={e.get('n')}: {field} {value:.3g} was above its "
            "ceiling, not a share of it; not filed (hwcal-upgrade)"
            for e in src.get("blas") or [] for field, value in _over_one(e, _BOUNDED_FIELDS).items()]


def _bound_sweep(src: dict[str, Any]) -> list[str]:
    changed = []
    for entry in (src.get("memory") or {}).get("sweep") or []:
        for value in _over_one(entry, ("efficiency",)).values():
            ceiling = entry.get("efficiency_ceiling") or {}
            entry["efficiency_note"] = (f"{value:.3g}x the {ceiling.get('tier')} roof ({ceiling.get('kernel')}, "
                                        f"{ceiling.get('gbps')} GB/s): above it, not a share of it; no efficiency "
                                        "filed (hwcal-upgrade)")
            changed.append(f"memory: {entry.get('kernel')} at {entry.get('array_bytes'):,}-byte arrays: "
                           f"{entry['efficiency_note']}")
    return changed


def _bound_layers(src: dict[str, Any]) -> list[str]:
    changed = []
    for section in _LAYER_SECTIONS:
        for entry in (src.get(section) or {}).get("results") or []:
            over = _over_one(entry, ("efficiency", "efficiency_vs_peak", "efficiency_vs_bandwidth"))
            changed += [f"{section}: {entry.get('name')} {entry.get('precision')}: {field} {value:.3g} was above "
                        "its ceiling, not a share of it; not filed (hwcal-upgrade)" for field, value in over.items()]
            if "efficiency" in over:
                entry["efficiency_note"] = (f"{over['efficiency']:.3g}x its ceiling: the ceiling is wrong (or the tier "
                                            "misjudged), not the measurement; no efficiency filed (hwcal-upgrade)")
    return changed


def _bound_gemm(src: dict[str, Any]) -> list[str]:
    """GEMM efficiencies against their peaks (until 2026-12-07 filed above 1 with a warning): the square sweep's
    entries lose theirs (an ``efficiency_note`` says why), the shapes' become null, and the per-precision ones of
    ``precision_detail`` and of the measured compute ceiling are left out."""
    changed = []
    for entry in src.get("gemm") or []:
        value = _num(entry.get("efficiency"))
        if value is not None and value > 1.0:
            del entry["efficiency"]
            entry["efficiency_note"] = (f"{value:.4g}x the peak: the peak is wrong, not the measurement; no "
                                        "efficiency filed (hwcal-upgrade)")
            changed.append(f"gemm: {entry.get('precision')} n={entry.get('n')}: {entry['efficiency_note']}")
    for entry in src.get("gemm_shapes") or []:
        for value in _over_one(entry, ("efficiency",)).values():
            changed.append(f"gemm_shapes: {entry.get('precision')} {entry.get('m')}x{entry.get('n')}x{entry.get('k')}: "
                           f"efficiency {value:.4g} was above the peak, not a share of it; not filed (hwcal-upgrade)")
    for where, holder in (("precision_detail", src.get("precision_detail")),
                          ("metadata.compute_ceiling", (src.get("metadata") or {}).get("compute_ceiling"))):
        effs = holder.get("efficiency_by_precision") if isinstance(holder, dict) else None
        for p, value in list((effs or {}).items()):
            if (v := _num(value)) is not None and v > 1.0:
                del effs[p]  # type: ignore[union-attr]
                changed.append(f"{where}.efficiency_by_precision.{p}: {v:.4g} was above its ceiling, not a share "
                               "of it; not filed (hwcal-upgrade)")
    return changed


def bound_efficiencies(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A format-2 document whose efficiencies are shares of their ceilings, in (0, 1]: earlier files filed
    memory-bound figures above their tiers' roofs (up to 5.3x on the VMs, whose sysfs caches understate what
    serves a working set) and GEMMs above their peaks as efficiencies. Each such value becomes null, a warning
    says what it was (no measurement changes), and the parts derived from them (``operation_profiles``, the
    summary numbers) are composed again, as they are wherever the current rules derive them otherwise (an
    in-cache STREAM size set against the DRAM plateau read 3.8 in ``operation_profiles``). Returns the
    document (``doc`` itself when nothing changes) and what changed."""
    src = copy.deepcopy(doc)
    changed = [*_bound_blas(src), *_bound_sweep(src), *_bound_layers(src), *_bound_gemm(src)]
    if changed:
        src["warnings"] = [*(src.get("warnings") or []), *changed]
    out = recompose(src)
    derived = [k for k in (*SUMMARY_KEYS, *DERIVED_KEYS) if out.get(k) != doc.get(k)]
    if not changed and not derived:
        return doc, []
    if derived:
        changed.append(f"derived again from the sections: {', '.join(derived)}")
    return out, changed
