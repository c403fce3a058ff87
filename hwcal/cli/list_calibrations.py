"""List the calibrations in a registry: what was measured, where, when; files that cannot be used
are named in a warning and skipped."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from hwcal.cli.common import (
    add_json_option,
    add_registry_option,
    fmt_num,
    make_parser,
    open_registry,
    print_json,
    table,
    warn_skipped,
)
from hwcal.cli.entry import EXIT_OK, Tool, say, tell
from hwcal.document.format2 import efficiency_cell, precision_detail
from hwcal.precisions import rate_unit
from hwcal.registry.api import Registry, UnknownHardwareError
from hwcal.registry.errata import entry_errata
from hwcal.registry.filters import natural_key, normalise_filter
from hwcal.registry.reader import CalibrationEntry

EXAMPLES = """
  python tools/list_calibrations.py                         # every calibration, one line each
  python tools/list_calibrations.py -H jetson_orin_nano_gpu -p MAXN_SUPER -f torch --detail
  python tools/list_calibrations.py --summary               # counts by hardware, framework, power mode
  python tools/list_calibrations.py --history --json | jq '.calibrations[].path'
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "List the calibrations in an hwcal registry, power modes in natural order "
                               "(7W, 15W, 25W, MAXN).", EXAMPLES)
    parser.add_argument("-H", "--hardware", metavar="ID",
                        help="only this hardware id (or those whose id or model contains ID). Default: all")
    parser.add_argument("-f", "--framework", metavar="{numpy,pytorch}",
                        help="only this framework (torch is an alias of pytorch). Default: all")
    parser.add_argument("-p", "--power-mode", metavar="MODE",
                        help="only this power mode, compared as the file name token (MAXN_SUPER finds "
                             "MAXNSUPER; case ignored). Default: all")
    parser.add_argument("--freq-mhz", metavar="MHZ", help="only this key frequency. Default: all")
    parser.add_argument("-d", "--detail", action="store_true",
                        help="per calibration: date, peak per precision, bandwidth, power mode, clock. Default: off")
    parser.add_argument("-s", "--summary", action="store_true",
                        help="counts by hardware, framework and power mode. Default: off")
    parser.add_argument("--history", action="store_true",
                        help="include superseded calibrations from calibrations/history/. Default: off")
    add_json_option(parser)
    add_registry_option(parser)
    return parser


def _hardware_ids(reg: Registry, wanted: str | None) -> list[str | None]:
    """An exact id, else every id or model containing it; unknown: an error listing the known ids."""
    if wanted is None:
        return [None]
    ids = reg.hardware_ids()
    if wanted in ids:
        return [wanted]
    found = sorted({h.hardware_id for h in reg.search(wanted)})
    if not found:
        known = ", ".join(ids) if ids else "none (the registry is empty)"
        raise UnknownHardwareError(f"unknown hardware {wanted!r} in registry {reg.root}; known: {known}")
    return list(found)


def _date(entry: CalibrationEntry, seconds: bool = False) -> str:
    return entry.calibration_date.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _note(entry: CalibrationEntry) -> str:
    notes = []
    if entry.superseded:
        notes.append("superseded")
    if entry.imported:
        notes.append("imported")
    if entry.warning_count:
        notes.append(f"{entry.warning_count} warning(s)")
    return ", ".join(notes)


def _rows(entries: list[CalibrationEntry]) -> list[str]:
    rows = [("hardware", "type", "power mode", "freq MHz", "framework", "calibrated (UTC)", "fp32 GFLOPS",
             "bandwidth GB/s", "note")]
    for e in entries:
        rows.append((e.key.hardware_id, e.key.device_type, e.power_mode_name, str(e.key.freq_mhz), e.key.framework,
                     _date(e), fmt_num(e.peaks.get("fp32")), fmt_num(e.measured_bandwidth_gbps),
                     _note(e)))
    return table(rows, right=(3, 6, 7))


def _clock_text(meta: dict[str, Any]) -> str:
    text = f"{meta.get('freq_mhz')} MHz ceiling ({meta.get('freq_source', 'source unknown')})"
    clock = meta.get("clock")
    if isinstance(clock, dict):
        extra = [f"{k} {v}" for k, v in clock.items() if isinstance(v, (int, float, str)) and k != "source"]
        if extra:
            text += "; " + ", ".join(extra[:4])
    return text


def _governor(meta: dict[str, Any]) -> str | None:
    clock = meta.get("clock")
    if isinstance(clock, dict) and isinstance(clock.get("cpu"), dict) and clock["cpu"].get("governor"):
        return str(clock["cpu"]["governor"])
    if "governor" in str(meta.get("power_mode_source", "")):
        return str(meta.get("power_mode"))
    return None


def _detail(e: CalibrationEntry) -> list[str]:
    doc, meta, matrix = e.doc, e.doc["metadata"], precision_detail(e.doc)
    head = f"{e.key.hardware_id}  {e.power_mode_name}  {e.key.freq_mhz} MHz  {e.key.framework}"
    if e.superseded:
        head += "  (superseded)"
    lines = [head, f"  file         {e.path}"]
    when = f"{_date(e, seconds=True)} UTC"
    if e.imported:
        when += f"  (imported from the original registry: {meta['imported'].get('source', '?')})"
    lines.append(f"  calibrated   {when}")
    lines.append(f"  power mode   {meta.get('power_mode')} ({meta.get('power_mode_source', 'source unknown')})")
    governor = _governor(meta)
    if governor:
        lines.append(f"  governor     {governor}")
    lines.append(f"  clock        {_clock_text(meta)}")
    bw, bw_peak, bw_eff = (doc.get("measured_bandwidth_gbps"), doc.get("theoretical_bandwidth_gbps"),
                           doc.get("bandwidth_efficiency"))
    bw_text = f"{fmt_num(bw)} GB/s measured" if bw is not None else "not measured"
    if bw_peak:
        bw_text += f", {fmt_num(bw_peak)} GB/s theoretical"
    if bw_eff is not None:
        bw_text += f" ({bw_eff:.0%})"
    lines.append(f"  bandwidth    {bw_text}")
    peaks, sizes = e.doc["precision_matrix"]["peak_gflops_by_precision"], matrix.get("peak_size_by_precision", {})
    rows = [("precision", "status", "peak", "unit", "at n", "efficiency")]
    for p, st in matrix["status"].items():
        unit = rate_unit(p)
        rows.append((p, st["status"], fmt_num(peaks.get(p)), unit if p in peaks else "",
                     str(sizes.get(p, "-")),
                     efficiency_cell(e.doc, p)))
    lines += table(rows, right=(2, 4, 5), indent="  ")
    for w in doc.get("warnings", []):
        lines.append(f"  warning: {w}")
    return lines


def _summary(entries: list[CalibrationEntry]) -> dict[str, dict[str, int]]:
    by_pm: Counter[str] = Counter(e.key.power_mode for e in entries)
    return {
        "by_hardware": dict(sorted(Counter(e.key.hardware_id for e in entries).items())),
        "by_framework": dict(sorted(Counter(e.key.framework for e in entries).items())),
        "by_power_mode": {k: by_pm[k] for k in sorted(by_pm, key=natural_key)},
    }


def body(args: argparse.Namespace) -> int:
    reg = open_registry(args.registry)
    flt = normalise_filter({k: v for k, v in (("power_mode", args.power_mode), ("framework", args.framework),
                                              ("freq_mhz", args.freq_mhz)) if v is not None})
    entries: list[CalibrationEntry] = []
    for hw in _hardware_ids(reg, args.hardware):
        entries += reg.list_calibrations(hw, flt, history=args.history)
    entries.sort(key=CalibrationEntry.sort_key)
    if args.json:
        print_json(_json_report(reg, entries, flt.describe(), args.summary, args.detail))
    elif args.summary:
        counts = _summary(entries)
        say(f"registry {reg.root}: {len(entries)} calibration(s)")
        for title, key in (("hardware", "by_hardware"), ("framework", "by_framework"),
                           ("power mode", "by_power_mode")):
            say("", *table([(title, "calibrations"), *[(k, str(v)) for k, v in counts[key].items()]], right=(1,)))
    elif not entries:
        what = "" if flt.describe() == "no filter" and args.hardware is None else " matching the filter"
        note = "" if reg.root.exists() else " (the folder does not exist yet)"
        say(f"no calibrations{what} in registry {reg.root}{note}")
    elif args.detail:
        for i, e in enumerate(entries):
            say(*([""] if i else []), *_detail(e))
    else:
        say(*_rows(entries))
    warn_skipped(reg.skipped)
    tell(*(f"warning: {item}" for item in reg.notices))
    tell(*(f"warning: {e.path}: {erratum}" for e in entries for erratum in entry_errata(reg.root, e)))
    return EXIT_OK


def _json_report(reg: Registry, entries: list[CalibrationEntry], described: str, summary: bool,
                 detail: bool) -> dict[str, Any]:
    skipped = [{"path": str(s.path), "reason": s.reason} for s in reg.skipped]
    notices = [{"path": str(s.path), "reason": s.reason} for s in reg.notices]
    if summary:
        return {"registry": str(reg.root), "total": len(entries), **_summary(entries), "skipped": skipped,
                "notices": notices}
    data: dict[str, Any] = {"registry": str(reg.root), "filter": described,
                            "calibrations": [e.summary() for e in entries], "skipped": skipped, "notices": notices}
    if detail:
        data["documents"] = {str(e.path): e.doc for e in entries}
    return data


TOOL = Tool("list_calibrations.py", build_parser, body, command="hwcal-list")
main = TOOL.main
