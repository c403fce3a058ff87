"""The memory system on a calibration's page: how its two pictures were measured, and the tiers as a table
(per tier: bandwidth on one core and on all, latency in ns and cycles, huge pages, the size sysfs reports
beside the edge the measured curve shows) with all-core STREAM and its scaling."""

from __future__ import annotations

from typing import Any

from hwcal.document.memory_system import levels_view
from hwcal.site.html import esc, facts, num, table


def memory_methods(memory: dict[str, Any]) -> dict[str, str]:
    """Method text of the ``hierarchy`` and ``latency`` pictures."""
    system = memory.get("memory_system") or {}
    cores = system.get("cores") or {}
    pools = system.get("pools") or {}
    huge = system.get("huge_pages") or {}
    clock = system.get("clock") or {}
    notes = "; ".join(system.get("notes") or []) or None
    hierarchy = facts([
        ("kernels", system.get("kernels")),
        ("cores", f"{len(cores.get('worker_cpus') or [])} workers on CPUs {cores.get('worker_cpus')}, one per "
                  "physical core, pinned, released together by a barrier" if cores else None),
        ("figure", "best round of all bytes over the common wall time (first start to last end); DRAM: each round "
                   "one window of a pool of 4x the last-level caches" if system else None),
        ("DRAM pool", f"{num(pools.get('dram_pool_bytes'))} bytes on 4 KiB pages, rule met: "
                      f"{pools.get('dram_rule_met')}" if pools else None),
        ("notes", notes)])
    latency = facts([
        ("chase", "dependent loads (p = *p), one cache line a hop, over a keyed random cyclic order of all lines; "
                  "best of the rounds" if system else None),
        ("huge pages", f"THP {huge.get('thp_mode')}, defrag {huge.get('thp_defrag')}; huge-page pool "
                       f"{num(pools.get('huge_pool_bytes'))} bytes" if huge else None),
        ("cycles", f"at {num(clock.get('median_mhz'))} MHz ({clock.get('source')})" if clock.get("median_mhz")
         else None)])
    return {"hierarchy": hierarchy, "latency": latency}


def memory_tables(memory: dict[str, Any]) -> str:
    """The tier table and all-core STREAM; empty where the calibration has neither."""
    levels = levels_view(memory)
    system = memory.get("memory_system") or {}
    sysfs = {t.get("tier"): t for t in system.get("tiers") or []}
    rows = []
    for name, lv in levels.items():
        tier = sysfs.get(name) or {}
        edge = (tier.get("measured_edge_bytes") or {})
        rows.append([esc(name), num(lv.get("read_gbps")), num(lv.get("write_gbps")), num(lv.get("triad_gbps")),
                     num(lv.get("update_gbps")), num(lv.get("allcore_triad_gbps")), num(lv.get("latency_ns")),
                     num(lv.get("latency_cycles")),
                     esc("huge" if lv.get("huge_pages") is True else "4 KiB" if lv.get("huge_pages") is False else ""),
                     num(lv.get("working_set_bytes")), num(tier.get("sysfs_bytes")),
                     num(edge.get("latency") or edge.get("read_bandwidth"))])
    out = table("Memory tiers (GB/s, ns, cycles; one core unless all cores)",
                ["tier", "read", "write", "triad", "update in place", "triad, all cores", "latency ns", "cycles",
                 "pages", "working set", "sysfs size", "measured edge"], rows,
                numeric=(1, 2, 3, 4, 5, 6, 7, 9, 10, 11)) if rows else ""
    multi = memory.get("multicore") or {}
    if multi.get("aggregate_gbps") is not None:
        scaling = ", ".join(f"{p['threads']}: {num(p['gbps'])}" for p in multi.get("scaling") or [])
        out += facts([("all-core STREAM", f"{num(multi['aggregate_gbps'])} GB/s on {multi.get('threads')} cores"),
                      ("per worker", ", ".join(num(g) for g in multi.get("per_thread_gbps") or [])),
                      ("scaling (workers: GB/s)", scaling),
                      ("scaling efficiency", num(multi.get("scaling_efficiency"))),
                      ("method", multi.get("method"))])
    return out
