"""The original registry's ``efficiency_curves.json`` as hwcal validation data: model-level efficiency
measured with ground truth (subgraphs of real models timed, pooled per operation type and FLOP bin), which
the prediction tools can check their figures against. Filed in ``<type>/<id>/validation/``.

Only measured points are kept: the original also filed curves of values hard-coded in its roofline model
(source ``legacy_hardcoded``); those are not measurements and are left out, a file of nothing else is not
imported. Its folders name hardware and mode together (``cuda/jetson_orin_agx_50w/fp16``): the hardware id
is the board's unit of that type (the board's spec.json), the mode the board's nvpmodel name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.interop.jetson_modes import board_of
from hwcal.interop.legacy_calibration import NothingMeasured
from hwcal.interop.legacy_common import LegacyDate, LegacyFormatError, parse_legacy_date, pos, rounded
from hwcal.interop.legacy_spec import device_type_of, hardware_id_of
from hwcal.naming import check_power_mode, hardware_dir, hardware_id_token
from hwcal.precisions import PRECISIONS
from hwcal.version import __version__

VALIDATION_DIR = "validation"
_MODE_SUFFIX_RE = re.compile(r"^(?P<base>.+?)_(?P<mode>\d+w|maxn(?:_?super)?)$", re.I)
_BASIS = ("the original's per-subgraph efficiency: achieved FLOP/s of the subgraph over the device's peak for the "
          "precision, from timed runs of real models (ground truth), pooled by operation type and FLOP bin")


def same_chip(hardware_id: str, device_type: str, known: set[str]) -> tuple[str | None, str]:
    """(the known id that names the same device as ``hardware_id``, why): itself; the original's
    ``<board>_<type>`` unit name (jetson_orin_agx -> jetson_orin_agx_gpu); or the one id that ends the other at
    an underscore (i7_12700k / intel_12th_gen_intelr_coretm_i7_12700k). (None, "") when none or several."""
    if hardware_id in known:
        return hardware_id, ""
    unit = f"{hardware_id}_{device_type}"
    if unit in known:
        return unit, f"the original registry names a board's {device_type} <board>_{device_type}"
    found = {k for k in known if k.endswith("_" + hardware_id) or hardware_id.endswith("_" + k)}
    if len(found) == 1:
        return found.pop(), "the same chip under the original registry's other naming (one id ends the other)"
    return None, ""


@dataclass
class Curves:
    """One efficiency_curves.json as a validation document, where it goes, and what was found."""

    doc: dict[str, Any]
    date: LegacyDate
    corrections: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def target(self, registry: Path) -> Path:
        """``<type>/<id>/validation/<mode>_<precision>_efficiency_curves.json`` in ``registry``."""
        folder = hardware_dir(Path(registry), self.doc["device_type"], self.doc["hardware_id"]) / VALIDATION_DIR
        return folder / f"{check_power_mode(self.doc['power_mode'])}_{self.doc['precision']}_efficiency_curves.json"

    def rehome(self, hardware_id: str, why: str) -> None:
        """File under another hardware id (the same chip under the original's other name)."""
        self.corrections.append(f"filed under {hardware_id!r}, not {self.doc['hardware_id']!r}: {why}")
        self.doc["hardware_id"] = hardware_id


def _identity(legacy: dict[str, Any], device_type: str, hardware_folder: str | None, boards: dict[str, dict[str, str]],
              corrections: list[str], faults: list[str]) -> tuple[str, str, str]:
    """(hardware id, power mode, where the mode came from) from a folder like jetson_orin_agx_50w."""
    folder = hardware_folder or str(legacy.get("hardware_id") or "")
    m = _MODE_SUFFIX_RE.match(folder)
    if not m:
        faults.append("no power mode recorded (the folder names none, the file has no field for it); filed as "
                      "'unknown'")
        return hardware_id_of(folder, legacy.get("hardware_name"), corrections), "unknown", "none recorded"
    base, mode_text = hardware_id_token(m["base"]), m["mode"]
    board = board_of(base, legacy.get("hardware_name"))
    watts = re.match(r"\d+", mode_text)
    table = (board.mode_by_watts(int(watts.group())) if watts else board.mode(mode_text)) if board else None
    mode = table.name if table else mode_text.upper()
    source = f"original folder name {folder!r}" + (f" ({board.name} nvpmodel name)" if table and board else "")
    unit = boards.get(base, {}).get(device_type)
    if unit:
        corrections.append(f"folder {folder!r} names hardware and mode together: filed under the {device_type} of the "
                           f"board {base!r} ({unit}, from its spec.json), mode {mode!r}")
        return unit, mode, source
    return hardware_id_of(base, None, corrections), mode, source


def _point(p: dict[str, Any]) -> dict[str, Any] | None:
    flops, mean = pos(p.get("flops")), p.get("efficiency_mean")
    obs = p.get("num_observations")
    if flops is None or not isinstance(mean, (int, float)) or not isinstance(obs, int) or obs < 1:
        return None
    eff = {k: rounded(float(p[s]), 6) for k, s in (("mean", "efficiency_mean"), ("std", "efficiency_std"),
                                                     ("min", "efficiency_min"), ("max", "efficiency_max"),
                                                     ("ci95_low", "ci_lower"), ("ci95_high", "ci_upper"))
           if isinstance(p.get(s), (int, float)) and not isinstance(p.get(s), bool) and p[s] >= 0}
    return {"flops": rounded(flops, 8), "efficiency": eff, "observations": obs,
            "samples": p.get("num_samples") if isinstance(p.get("num_samples"), int) else None,
            "subgraphs": [str(s) for s in p.get("source_subgraphs") or []],
            "models": [str(s) for s in p.get("source_models") or []]}


def _curves(legacy: dict[str, Any], faults: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dropped: dict[str, int] = {}
    for op, curve in sorted(legacy["curves"].items()):
        if not isinstance(curve, dict):
            continue
        points = []
        for p in curve.get("data_points") or []:
            source = str(p.get("source", "?")) if isinstance(p, dict) else "?"
            kept = _point(p) if isinstance(p, dict) and source == "measured" else None
            if kept is None:
                dropped[source] = dropped.get(source, 0) + 1
            else:
                points.append(kept)
        if points:
            rng = [curve.get("min_flops"), curve.get("max_flops")]
            out[str(op)] = {k: v for k, v in {
                "description": curve.get("description"), "points": points, "fitted_curve": curve.get("fitted_curve"),
                "flops_range": rng if all(pos(v) for v in rng) else None,
                "models": [str(m) for m in curve.get("calibration_models") or []], "notes": curve.get("notes"),
            }.items() if v is not None}
    if dropped:
        faults.append("points left out, not measured: "
                      + ", ".join(f"{n} with source {s!r}" for s, n in dropped.items()))
    over = [f"{op} at {p['flops']:.3g} FLOPs ({p['efficiency']['mean']:.3g})" for op, c in out.items()
            for p in c["points"] if p["efficiency"]["mean"] > 1.0]
    if over:
        faults.append("efficiency above 1.0 (its peak is too low): " + ", ".join(over))
    return out


def legacy_curves_to_v1(legacy: Any, *, rel: str, type_folder: str | None, hardware_folder: str | None,
                        boards: dict[str, dict[str, str]], imported_at: datetime, source_sha256: str = "") -> Curves:
    """An original efficiency_curves.json as a validation document; NothingMeasured when no point was measured."""
    if not isinstance(legacy, dict) or not isinstance(legacy.get("curves"), dict):
        raise LegacyFormatError("not an original efficiency_curves.json (no curves object)")
    corrections: list[str] = []
    faults: list[str] = []
    device_type = device_type_of(type_folder, legacy.get("device_type"), corrections)
    precision = str(legacy.get("precision") or Path(rel).parent.name).lower()
    if precision not in PRECISIONS:
        raise LegacyFormatError(f"precision {legacy.get('precision')!r} is not one this format knows")
    hardware_id, mode, mode_source = _identity(legacy, device_type, hardware_folder, boards, corrections, faults)
    curves = _curves(legacy, faults)
    if not curves:
        raise NothingMeasured("no measured point in it (every point's source is not 'measured': values hard-coded in "
                              "the original's model, not measurements); not imported")
    if not legacy.get("calibration_date"):
        raise LegacyFormatError("calibration_date missing")
    date = parse_legacy_date(legacy["calibration_date"], "calibration_date")
    if not date.zone_known:
        corrections.append(f"calibration_date {date.original!r} has no time zone: read as UTC")
    bandwidth = legacy.get("bandwidth_curves")
    doc = {"schema_version": 1, "kind": "efficiency_curves", "device_type": device_type, "hardware_id": hardware_id,
           "hardware_name": str(legacy.get("hardware_name") or hardware_id), "power_mode": mode,
           "power_mode_source": mode_source, "precision": precision, "calibration_date": date.iso(),
           "tool_version": f"original tool: {legacy.get('calibration_tool_version') or 'unknown'}",
           "efficiency_basis": _BASIS, "curves": curves,
           "bandwidth_curves": bandwidth if isinstance(bandwidth, dict) else {},
           "notes": str(legacy.get("notes") or ""),
           "imported": {"source": rel, **({"source_sha256": source_sha256} if source_sha256 else {}),
                        "source_format": f"original registry, efficiency_curves schema {legacy.get('schema_version')}",
                        "imported_at": imported_at.astimezone(timezone.utc).isoformat(), "hwcal_version": __version__,
                        "original_hardware_id": str(legacy.get("hardware_id") or ""),
                        "original_calibration_date": date.original, "calibration_date_zone": date.zone,
                        "corrections": corrections, "faults": faults}}
    return Curves(doc, date, corrections, faults)
