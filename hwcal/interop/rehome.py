"""Move one hardware folder to the id its own files support (``amd_epyc`` -> ``amd_epyc_zen3``).

A VM names a Zen 3 and a Zen 4 alike ("AMD EPYC"); hwcal now joins the microarchitecture to such ids.
Files filed before that rule live under the bare id. This moves them, current and history, to the id
their own metadata supports, and refuses where it cannot tell:

- the microarchitecture is read from what the files recorded: ``metadata.host.cpu.microarchitecture``
  or CPUID family/model where recorded; else the brand and ISA flags (an EPYC without AVX-512 is a Zen
  1, 2 or 3), narrowed by the measured fp64 GEMM (above what Zen 1's 128-bit datapaths can issue at the
  fastest Zen 1 EPYC boost clock: not a Zen 1). Several candidates left: the target must be given
  (``--to``) and be one of them, and the documents record that the operator chose it.
- every document gets ``key.hardware_id``/``metadata.hardware_id`` rewritten, and the move recorded
  (``metadata.rehomed_from`` where the calibration schema declares it, and a line in ``warnings``);
  spec.json gets the new id, the identity facts and ``rehomed_from``.
- writes go through the writer (validated, atomic, locked); history stays history under the same
  names. Only when every new file reads back equal is the old folder emptied and removed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwcal.document.schema import schema_errors
from hwcal.errors import HwcalError
from hwcal.machine.uarch import x86_microarchitecture
from hwcal.naming import (
    CalibrationKey,
    check_hardware_id,
    hardware_dir,
    history_stamp,
    parse_calibration_filename,
    spec_path,
)
from hwcal.registry.fsio import GZ_SUFFIX
from hwcal.registry.reader import BadRegistryFile, parse_date, read_json
from hwcal.registry.writer import dumps, history_target, write_calibration, write_history, write_spec

TOOL = "tools/rehome_hardware.py"
# Zen 1 (family 17h models 00-2F): two 128-bit FMA pipes, 8 fp64 FLOPs/cycle/core (AMD SOG pub. 55723);
# the fastest Zen 1 EPYC (7371) boosts to 3.8 GHz. A measured fp64 GEMM above cores x 8 x 3.8 GHz
# cannot have run on a Zen 1.
ZEN1_FP64_PER_CYCLE = 8
ZEN1_MAX_BOOST_MHZ = 3800.0


@dataclass
class Inference:
    """What the files' own metadata says about the microarchitecture."""

    candidates: list[str]
    evidence: list[str]
    decided_by: str  # "recorded microarchitecture", "CPUID family/model", "brand, ISA flags and fp64 GEMM"
    isa_flags: list[str] = field(default_factory=list)  # as the files recorded them (metadata.host.cpu)


@dataclass
class RehomePlan:
    device_type: str
    old_id: str
    new_id: str
    inference: Inference
    chosen_by: str
    moves: list[tuple[Path, Path, str]] = field(default_factory=list)  # (old, new, "current"|"history"|"spec")


def _cpu_facts(doc: dict[str, Any]) -> dict[str, Any]:
    cpu = ((doc.get("metadata") or {}).get("host") or {}).get("cpu") or {}
    return cpu if isinstance(cpu, dict) else {}


def infer_microarchitecture(docs: dict[Path, dict[str, Any]]) -> Inference:
    """Candidates for the microarchitecture of the CPU that wrote ``docs``, with the evidence."""
    cpus = {p: _cpu_facts(d) for p, d in docs.items()}
    if not cpus or not any(cpus.values()):
        raise HwcalError("the calibrations record no metadata.host.cpu: cannot tell which chip wrote them")
    recorded = {str(c["microarchitecture"]) for c in cpus.values() if c.get("microarchitecture")}
    if len(recorded) > 1:
        raise HwcalError(f"the calibrations record different microarchitectures ({', '.join(sorted(recorded))}): "
                         "the folder mixes chips; move them one by one")
    if recorded:
        name = recorded.pop()
        return Inference([name], [f"metadata.host.cpu.microarchitecture = {name}"], "recorded microarchitecture")
    ids = {(str(c.get("vendor") or ""), c.get("cpu_family"), c.get("cpu_model")) for c in cpus.values()
           if c.get("cpu_family") is not None and c.get("cpu_model") is not None}
    if ids:
        names = {x86_microarchitecture(v, f, m) for v, f, m in ids}
        if len(names) == 1 and None not in names:
            name = str(names.pop())
            return Inference([name], [f"CPUID {v} family {f} model {m}" for v, f, m in sorted(ids, key=str)],
                             "CPUID family/model")
        raise HwcalError(f"recorded CPUID ids {sorted(ids, key=str)} name no single known microarchitecture")
    vendors = {str(c.get("vendor") or "") for c in cpus.values()}
    models = {str(c.get("model") or "") for c in cpus.values()}
    flag_sets = {tuple(c.get("isa_flags") or ()) for c in cpus.values()}
    if len(vendors) != 1 or len(models) != 1 or len(flag_sets) != 1:
        raise HwcalError(f"the calibrations disagree on the CPU (vendors {sorted(vendors)}, models {sorted(models)}, "
                         f"{len(flag_sets)} different ISA flag sets): the folder mixes chips")
    vendor, model, flags = vendors.pop(), models.pop(), set(flag_sets.pop())
    evidence = [f"metadata.host.cpu: vendor {vendor}, model {model!r}, isa_flags {sorted(flags)}"]
    if vendor != "AuthenticAMD" or "EPYC" not in model.upper():
        raise HwcalError(f"{vendor or 'no vendor'} {model!r} without recorded CPUID family/model: no rule infers "
                         "its microarchitecture from the brand and flags (only AMD EPYC has one)")
    if not flags:
        raise HwcalError("no ISA flags recorded: cannot tell which Zen generation wrote the calibrations")
    if "avx512f" in flags:
        candidates = ["zen4", "zen5"]
        evidence.append("AVX-512 present: an EPYC from Zen 4 on")
    else:
        candidates = ["zen", "zen2", "zen3"]
        evidence.append("AVX2+FMA without AVX-512: an EPYC before Zen 4 (Zen, Zen 2, Zen 3)")
        fp64 = [(p, float(d["precision_matrix"]["peak_gflops_by_precision"]["fp64"])) for p, d in docs.items()
                if isinstance((d.get("precision_matrix") or {}).get("peak_gflops_by_precision"), dict)
                and "fp64" in d["precision_matrix"]["peak_gflops_by_precision"]]
        cores = max((int(c.get("physical_cores") or c.get("logical_cores") or 0) for c in cpus.values()), default=0)
        if fp64 and cores:
            bound = cores * ZEN1_FP64_PER_CYCLE * ZEN1_MAX_BOOST_MHZ / 1000.0
            best_path, best = max(fp64, key=lambda t: t[1])
            if best > bound:
                candidates.remove("zen")
                evidence.append(f"fp64 GEMM measured {best:g} GFLOPS ({best_path.name}) > {bound:g}, the most a "
                                f"{cores}-core Zen 1 issues ({ZEN1_FP64_PER_CYCLE} FLOPs/cycle x "
                                f"{ZEN1_MAX_BOOST_MHZ:g} MHz): 256-bit FMA datapaths, not a Zen 1")
    return Inference(candidates, evidence, "brand, ISA flags and fp64 GEMM")


def _key_of(path: Path, device_type: str, hardware_id: str) -> CalibrationKey:
    """The key a current (``7W_306MHz_numpy.json``) or history (``<stem>.<stamp>.json``) file is filed under."""
    power_mode, freq, framework = parse_calibration_filename(f"{path.name.split('.')[0]}.json")
    return CalibrationKey(device_type, hardware_id, power_mode, freq, framework)


def _strip_suffix(hardware_id: str) -> str:
    for name in ("zen", "zen2", "zen3", "zen4", "zen5"):
        if hardware_id.endswith(f"_{name}"):
            return hardware_id.removesuffix(f"_{name}")
    return hardware_id


def _folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    cal = folder / "calibrations"
    current = sorted(p for p in cal.glob("*.json") if p.is_file()) if cal.is_dir() else []
    # Every file there, named as the writer names them or not: one rehome cannot place fails it, loudly, rather
    # than being left behind in a folder that then survives
    folder_h = cal / "history"
    history = sorted(p for p in folder_h.iterdir() if p.is_file() and p.name.endswith((".json", GZ_SUFFIX))) \
        if folder_h.is_dir() else []
    return current, history


def _source_folder(registry: Path, source: str) -> tuple[str, str, Path]:
    device_type, _, old_id = source.strip("/").partition("/")
    if not old_id or "/" in old_id:
        raise HwcalError(f"{source!r}: give the folder as DEVICE_TYPE/HARDWARE_ID (e.g. cpu/amd_epyc)")
    folder = hardware_dir(registry, device_type, old_id)
    if not folder.is_dir():
        raise HwcalError(f"{folder} is not a hardware folder of the registry")
    return device_type, old_id, folder


def _read_docs(registry: Path, paths: list[Path]) -> dict[Path, dict[str, Any]]:
    docs: dict[Path, dict[str, Any]] = {}
    for path in paths:
        try:
            doc = read_json(path, registry)
        except BadRegistryFile as exc:
            raise HwcalError(f"{exc}; fix or remove it first, nothing moved") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("key"), dict):
            raise HwcalError(f"{path}: not an hwcal calibration (no key); nothing moved")
        docs[path] = doc
    return docs


def _choose_id(inference: Inference, old_id: str, to: str | None) -> tuple[str, str]:
    """(new id, what chose it): the one candidate the files fit, or the operator's --to among them."""
    allowed = {f"{_strip_suffix(old_id)}_{c}": c for c in inference.candidates}
    if to is None:
        if len(inference.candidates) != 1:
            raise HwcalError(f"the files fit {', '.join(inference.candidates)} ({'; '.join(inference.evidence)}): "
                             f"choose with --to ({' or '.join(sorted(allowed))})")
        return next(iter(allowed)), inference.decided_by
    new_id = check_hardware_id(to)
    if new_id not in allowed:
        raise HwcalError(f"--to {to}: the files' own metadata does not support it; they fit "
                         f"{', '.join(inference.candidates)} ({'; '.join(inference.evidence)}), i.e. "
                         f"{' or '.join(sorted(allowed))}")
    return new_id, (inference.decided_by if len(inference.candidates) == 1 else
                    f"--to {new_id} (the operator's choice among {', '.join(inference.candidates)}, "
                    "which the recorded facts fit alike)")


def _plan_moves(registry: Path, plan: RehomePlan, current: list[Path], history: list[Path],
                docs: dict[Path, dict[str, Any]]) -> None:
    new_folder = hardware_dir(registry, plan.device_type, plan.new_id)
    for path in current:
        plan.moves.append((path, new_folder / "calibrations" / path.name, "current"))
    for path in history:
        key = _key_of(path, plan.device_type, plan.new_id)
        try:
            stamp = history_stamp(parse_date(docs[path]["metadata"]["calibration_date"]))
        except (KeyError, TypeError, ValueError):
            raise HwcalError(f"{path}: no readable metadata.calibration_date; nothing moved") from None
        plan.moves.append((path, history_target(registry, key, stamp, docs[path]), "history"))  # as the writer files it
    clash = [str(new) for _, new, _ in plan.moves if new.exists()]
    if clash:
        raise HwcalError(f"{new_folder} already holds {', '.join(clash)}: refusing to mix two folders; nothing moved")


def _plan_spec(registry: Path, plan: RehomePlan) -> dict[str, Any] | None:
    old_spec_path = spec_path(registry, plan.device_type, plan.old_id)
    if not old_spec_path.exists():
        return None
    try:
        spec = read_json(old_spec_path, registry)
    except BadRegistryFile as exc:
        raise HwcalError(f"{exc}; fix it first, nothing moved") from None
    new_spec_path = spec_path(registry, plan.device_type, plan.new_id)
    plan.moves.append((old_spec_path, new_spec_path, "spec"))
    if new_spec_path.exists():
        raise HwcalError(f"{new_spec_path} exists: refusing to mix two folders")
    return spec


def plan_rehome(registry: Path, source: str, to: str | None) -> tuple[RehomePlan, dict[Path, dict[str, Any]],
                                                                      dict[str, Any] | None]:
    """What moves where, and why; raises HwcalError (nothing written) when the files do not support it."""
    device_type, old_id, folder = _source_folder(registry, source)
    current, history = _folder_files(folder)
    if not current and not history:
        raise HwcalError(f"{folder} holds no calibrations: nothing to rehome")
    docs = _read_docs(registry, current + history)
    inference = infer_microarchitecture(docs)
    inference.isa_flags = list(dict.fromkeys(f for d in docs.values() for f in _cpu_facts(d).get("isa_flags") or ()))
    new_id, chosen_by = _choose_id(inference, old_id, to)
    if new_id == old_id:
        raise HwcalError(f"{source} already has the id {new_id}: nothing to move")
    plan = RehomePlan(device_type, old_id, new_id, inference, chosen_by)
    _plan_moves(registry, plan, current, history, docs)
    return plan, docs, _plan_spec(registry, plan)


def _record(plan: RehomePlan, date: datetime) -> dict[str, Any]:
    name = plan.new_id.removeprefix(_strip_suffix(plan.old_id) + "_")
    return {"hardware_id": plan.old_id, "date": date.isoformat(), "tool": TOOL,
            "reason": f"microarchitecture {name} joins a generic model name's id; chosen by {plan.chosen_by}",
            "evidence": list(plan.inference.evidence)}


def rehomed_doc(doc: dict[str, Any], plan: RehomePlan, date: datetime) -> dict[str, Any]:
    """The calibration under its new id, with the move recorded."""
    out = copy.deepcopy(doc)
    out["key"]["hardware_id"] = plan.new_id
    meta = out.setdefault("metadata", {})
    meta["hardware_id"] = plan.new_id
    record = _record(plan, date)
    meta["rehomed_from"] = [*(meta.get("rehomed_from") or []), record]
    out["warnings"] = [*(out.get("warnings") or []),
                       f"rehomed from {plan.device_type}/{plan.old_id} to {plan.device_type}/{plan.new_id} on "
                       f"{date.date().isoformat()} by {TOOL}: {record['reason']}; evidence: "
                       f"{'; '.join(plan.inference.evidence)}"]
    return out


def rehomed_spec(spec: dict[str, Any], plan: RehomePlan, date: datetime) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    name = plan.new_id.removeprefix(_strip_suffix(plan.old_id) + "_")
    out["id"] = plan.new_id
    out.setdefault("microarchitecture", name)
    identity = out.setdefault("identity", {})
    identity.setdefault("microarchitecture", name)
    identity.setdefault("microarchitecture_source", f"{TOOL}: {plan.chosen_by}")
    identity["evidence"] = [*identity.get("evidence", []), *plan.inference.evidence]
    if out.get("vendor"):
        identity.setdefault("vendor", out["vendor"])
    if plan.inference.isa_flags:
        identity.setdefault("isa_flags", list(plan.inference.isa_flags))
    out["rehomed_from"] = [*(out.get("rehomed_from") or []), _record(plan, date)]
    return out


def execute_rehome(registry: Path, plan: RehomePlan, docs: dict[Path, dict[str, Any]],
                   spec: dict[str, Any] | None, date: datetime | None = None) -> list[tuple[Path, Path]]:
    """Write every file under the new id through the writer, check each reads back, then empty and
    remove the old folder. Returns (old, new) per file."""
    date = date or datetime.now(timezone.utc)
    new_docs = {old: rehomed_doc(docs[old], plan, date) for old, _, kind in plan.moves if kind != "spec"}
    new_spec = rehomed_spec(spec, plan, date) if spec is not None else None
    errors = [f"{old.name}: {e}" for old, d in new_docs.items() for e in schema_errors(d, "calibration")]
    errors += [f"spec.json: {e}" for e in (schema_errors(new_spec, "spec") if new_spec else [])]
    if errors:
        raise HwcalError("rehomed files would not be valid, nothing moved:\n  " + "\n  ".join(errors))
    done: list[tuple[Path, Path]] = []
    if new_spec is not None:
        write_spec(registry, new_spec)
    for old, new, kind in plan.moves:
        if kind == "spec":
            continue
        doc = new_docs[old]
        key = _key_of(old, plan.device_type, plan.new_id)
        if kind == "current":
            written, _ = write_calibration(registry, key, doc)
        else:
            written = write_history(registry, key, dumps(doc), parse_date(doc["metadata"]["calibration_date"]))
        if written != new:
            raise HwcalError(f"{old} was written as {written}, not {new}: stopped, old folder kept")
        done.append((old, written))
    for old, new, _ in plan.moves:
        if read_json(new, registry) != (new_spec if old.name == "spec.json" else new_docs.get(old)):
            raise HwcalError(f"{new} does not read back as written: stopped, old folder kept")
    for old, new, kind in plan.moves:
        old.unlink()
        if kind == "spec":
            done.append((old, new))
    _remove_empty(hardware_dir(registry, plan.device_type, plan.old_id))
    return done


def _remove_empty(folder: Path) -> None:
    """Remove the emptied hardware folder (its lock file too); anything else left in it stays."""
    for sub in (folder / "calibrations" / "history", folder / "calibrations"):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    lock = folder / ".lock"
    if lock.exists() and [p.name for p in folder.iterdir()] == [".lock"]:
        lock.unlink()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
