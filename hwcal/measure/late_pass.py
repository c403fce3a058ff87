"""A later look at the cases a VM's host neighbours can slow: those whose data lives in the last-level cache
and DRAM, and those the cores' own pace sets.

On a shared host, neighbours come and go in the L3 and on the memory bus, and each episode lasts tens of
seconds. On the development VM, the same ``torch.add`` of 6.3 M fp32 elements took 508, 1,262 and 1,066 us
in three passes a minute apart. One window of rounds files whichever state it hit, and the element-wise
predictions built on it were 2x slow against a referee whose best pass found the host quiet. None of the
watch's looks (``hwcal.measure.watch``) sees such an episode: the cores stay free.

The cores' own pace moves too, faster: on the Zen 4 guest (2026-12-06) ``np.multiply`` on 2,048 fp32
elements took 0.77 us or 1.1-1.6 us, flipping within milliseconds to tenths of a second and slow 47-85 % of
the time, while the watch's FMA look kept one core's rate (0.9-1.0 of its best); an ``np.add`` of 512
elements took 0.38 or 0.69 us, of 1 M (12 MB, in the L3) 223 or 404 us, by whether a 16-element add just
before and after it ran at its best. A calibration whose STREAM and BLAS sweeps ran in the slow state filed its
in-cache element-wise figures 1.3-2.4x slow where another run of the same code an hour earlier did not, and
the referee's small element-wise ops were predicted 40-67 % slow. So the in-core cases (below the shared
tiers) get a second window too, first: they are the cheapest. First of all the launch floors, both timings:
every small call's prediction stands on them, and in such an episode (2026-12-07: every tiny call 1.6-1.9x
slow together for most of a minute and a half) a numpy run filed its scal, axpy, gemv and gemm floors
1.6-1.8x a quiet run's, and its predictions of small element-wise ops and small-M GEMMs ran 30-50 % high.

The memory-bound GEMM shapes move as much (small M, the weights in the shared tiers): numpy fp32's M = 1-16
calls with 21-69 MB of weights ran 1.3-2.0x apart in two runs of the same code an hour apart, where M >= 32
stayed within 1.2x, and a held-out referee's 3B and 7B projections at M <= 16 were predicted 20-57 % fast from
the quicker run. They get a second window last, in a second of their own.

A GPU's memory is its own, but its launch path is the host's: on a GPU the late pass times the launch floors
alone, in a second window of their own (``LATE_BUDGET_S``).

Once the other cases have run, the CPU cases are timed again, the floors and the in-core ones first, then those of the
shared tiers, the most asked precision's first, then the GEMM shapes, within ``LATE_BUDGET_S``; in each tier
the cases the watch flagged come first. Each is one more window of the same bound call on fresh operands,
checked as the first pass checked it. The faster window is filed, as STREAM files the best of its rounds: a
neighbour can slow a call, never speed it up. Both times go into ``metadata.interference.late_pass``, and a
warning tells when the windows were far apart. A flagged case whose faster late window the watch's looks found
undisturbed is re-measured after all: its flag is cleared (``late_pass`` in its log entry). A torch run here
flagged 14 STREAM cases on one slow fork-join look (1.63x its best), and their late windows ran 0.76-1.15x the
first: the flags, not the figures, were what the look's episode left wrong.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from hwcal.machine.interference import Snapshot
from hwcal.measure import late_windows
from hwcal.measure.blas import blas_cases, case_id, size_for
from hwcal.measure.case import flagged_cases
from hwcal.measure.records import LaunchFloor, ShapeRecord
from hwcal.measure.session import CalibrationSession
from hwcal.measure.stream import size_label
from hwcal.measure.watch import Watch
from hwcal.precisions import PRECISIONS

# A GPU's memory is its own, but its launch path is the host's: its late pass times the launch floors only. On the
# H100 host (2026-12-08) a tiny call's launch moved between 6.3 and 9-13 us for minutes at a time; one run filed
# every floor in the slow phase (all flagged), and its fp16 predictions of floor-bound ops ran 30-70 % high against
# a referee pass in the quick one, where a file calibrated in the quick phase scored 4.5 / 17.5 %.
LATE_BUDGET_S = {"cpu": 4.0, "gpu": 1.5}
IN_CORE_S = 1.0  # of it, at most this on the in-core cases (they come first) ...
BEFORE_SHAPES_S = 3.0  # ... up to this with the shared tiers' BLAS and STREAM cases, the rest on the GEMM shapes
SHAPE_M_MAX = 16  # GEMM shapes up to this M (their weights' streaming sets their pace), of the most asked precision
LATE_PASS_TEST = "test_late_pass"  # bench/test_late_pass.py: the plugin orders it after the other cases
APART = 0.25  # windows further apart than this are worth a warning
TOP_FACTOR = 8  # up to 8x the last-level cache: beyond, one call outlasts a neighbour's episode less often


@dataclasses.dataclass
class LateCase:
    """One record to time again: ``kind`` "blas", "stream", "shape" or "floor", and where it sits in its list
    (a floor: ``key``, its operation and timing)."""

    kind: str
    index: int
    label: str
    bytes: int
    first_s: float  # the first pass's best, per call
    case_id: str = ""  # the end of its pytest id (``[copy-32KiB]``): how the watch's log names it
    flagged: bool = False  # the watch flagged its first window: a faster second the looks find quiet clears it
    split: bool | None = None  # whether the BLAS's thread pool splits its calls (the looks that judge it)
    key: tuple[str, str] = ("", "")  # a floor's (operation, timing)


def shared_band(session: CalibrationSession) -> tuple[int, int] | None:
    """Bytes per call above the caches a core has to itself and up to ``TOP_FACTOR`` x the last-level cache:
    the data a neighbour on the host can take from this run. None without a cache hierarchy to place it in."""
    caches = session.backend.stream_caches()
    levels = sorted(caches.levels, key=lambda c: c.level)
    if len(levels) < 2 or not caches.llc_total_bytes:
        return None
    private = levels[-2].size_bytes * levels[-2].instances
    return private, TOP_FACTOR * caches.llc_total_bytes


def late_cases(session: CalibrationSession) -> list[LateCase]:
    """The records in the order they are worth a second window: the in-core ones (the most asked precision's
    BLAS cases, the STREAM sweep, the other precisions'), then the same groups in the shared tiers; within each
    tier those the watch flagged first (their first window is known to be suspect), then smallest first, as the
    largest cost the most."""
    flagged = flagged_cases(session)
    if session.backend.device_type != "cpu":
        return _floor_cases(session, flagged)
    band = shared_band(session)
    if band is None:
        return []
    lo, hi = band
    results = session.results
    backend = session.backend
    precisions = backend.blas_precisions()
    blas_ids = _blas_case_ids(session)
    blas = [_case(flagged, "blas", i, f"{r.operation} {r.precision} {r.bytes:,} B", r.bytes, r.time_s["min"],
                  blas_ids.get((r.operation, r.precision, r.n, r.m or 1), ""),
                  backend.pool_splits(r.operation, r.precision))
            for i, r in enumerate(results.blas) if r.bytes <= hi]
    sweep = results.memory.records if results.memory is not None else []
    stream = [_case(flagged, "stream", i, f"STREAM {r.kernel} {r.bytes_per_pass:,} B", r.bytes_per_pass,
                    r.time_s["min"] / r.passes_per_round, f"[{r.kernel}-{size_label(r.array_bytes)}]", None)
              for i, r in enumerate(sweep) if r.bytes_per_pass <= hi]

    def rank(c: LateCase) -> int:
        precision = results.blas[c.index].precision
        return precisions.index(precision) if precision in precisions else len(precisions)

    def ordered(cases: list[LateCase]) -> list[LateCase]:
        first = sorted((c for c in cases if c.kind == "blas" and rank(c) == 0), key=lambda c: c.bytes)
        swept = sorted((c for c in cases if c.kind == "stream"), key=lambda c: c.bytes)
        rest = sorted((c for c in cases if c.kind == "blas" and rank(c) != 0), key=lambda c: (rank(c), c.bytes))
        grouped = first + swept + rest
        return [c for c in grouped if c.flagged] + [c for c in grouped if not c.flagged]

    every = blas + stream
    floors = _floor_cases(session, flagged)
    return (floors + ordered([c for c in every if c.bytes <= lo]) + ordered([c for c in every if c.bytes > lo])
            + _shape_cases(session, hi, flagged))


def _floor_cases(session: CalibrationSession, flagged: set[str]) -> list[LateCase]:
    """The launch floors, back to back then isolated, those the watch flagged first."""
    results = session.results
    cases = []
    for timing, floors in (("back_to_back", results.floors), ("isolated", results.isolated_floors)):
        for op, rec in floors.items():
            case = _case(flagged, "floor", 0, f"floor {op} {timing}", 0, rec.seconds_min, f"[{op}-{timing}]", None)
            cases.append(dataclasses.replace(case, key=(op, timing)))
    return [c for c in cases if c.flagged] + [c for c in cases if not c.flagged]


def _case(flagged: set[str], kind: str, index: int, label: str, nbytes: int, first_s: float, case_id: str,
          split: bool | None) -> LateCase:
    """A LateCase, flagged where the watch's log flagged the case of that id."""
    hit = bool(case_id) and any(name.endswith(case_id) for name in flagged)
    return LateCase(kind, index, label, nbytes, first_s, case_id, hit, split)


def _blas_case_ids(session: CalibrationSession) -> dict[tuple[str, str, int, int], str]:
    """(operation, precision, n, m) -> the end of the pytest id of the BLAS case that measured it: the cases
    name their planned working set, the records the n (and m) it became (``hwcal.measure.blas.size_for``)."""
    ids: dict[tuple[str, str, int, int], str] = {}
    for operation, precision, working in blas_cases(session.backend, session.options.quick):
        n, m = size_for(operation, working, PRECISIONS[precision].bits // 8)
        ids.setdefault((operation, precision, n, m), f"[{case_id(operation, precision, working)}]")
    return ids


def _shape_cases(session: CalibrationSession, hi: int, flagged: set[str]) -> list[LateCase]:
    """The GEMM shapes of the most asked precision worth a second window: those the watch flagged (the pace
    looks see episodes that outlast a wait: a numpy run's thread-pool look found 0 of 6 cases quick on a try
    at once), then those at M <= ``SHAPE_M_MAX`` up to the band's top: in the band streaming the weights sets
    their pace, and that moves with the neighbours as BLAS's does (numpy fp32 on the Zen 4 guest, two runs of
    the same code an hour apart: M = 1-16 with 21-69 MB of weights 1.3-2.0x apart, M >= 32 within 1.2x); below
    it the cores' own pace does (a torch run filed its 16 x 4x4x64 batches 1.9-2.1x slow, unflagged, and the
    referee's attention at 4 and 16 tokens 40-92 % slow). Smallest first within each."""
    precisions = session.backend.blas_precisions()
    first: list[LateCase] = []
    banded: list[LateCase] = []
    for i, r in enumerate(session.results.shapes):
        if not precisions or r.precision != precisions[0]:
            continue
        nbytes = late_windows.operand_bytes_of(r)
        case = _case(flagged, "shape", i, f"GEMM {r.precision} {r.family} {late_windows.shape_of(r).label}", nbytes,
                     r.time_s["min"], shape_case_id(r), session.backend.pool_splits("gemm", r.precision, r.m, r.n, r.k))
        if case.flagged:
            first.append(case)
        elif r.m <= SHAPE_M_MAX and nbytes <= hi:
            banded.append(case)
    return sorted(first, key=lambda c: c.bytes) + sorted(banded, key=lambda c: c.bytes)


def shape_case_id(rec: ShapeRecord) -> str:
    """The end of the pytest id of the case that measured ``rec`` (``[fp32-b16x256x256x64]``, as
    ``hwcal.measure.families`` names it)."""
    return f"[{rec.precision}-{late_windows.shape_of(rec).label}]"


def _clear_flag(watch: Watch, snap: Snapshot, case: LateCase, call_s: float) -> None:
    """A flagged case whose late window is the one filed, and which the watch's looks found undisturbed, was
    re-measured after all: its entry in the interference log says so (``late_pass``; one more try and its
    evidence)."""
    evidence = watch.monitor.evidence(snap, watch.monitor.snapshot(case.split), case.bytes, call_s, case.split)
    if evidence.disturbed:
        return
    for entry in watch.flagged():
        if entry["case"].endswith(case.case_id):
            entry.update(action="re-measured", late_pass=True, re_measured=entry["re_measured"] + 1,
                         evidence=[*entry["evidence"], evidence.as_dict()])
            entry.pop("not_tried_again", None)


def _spread(case: dict[str, Any]) -> float:
    """The slower window's time over the faster's."""
    return max(case["first_s"], case["late_s"]) / min(case["first_s"], case["late_s"])


def _again(session: CalibrationSession, case: LateCase, left: float) -> tuple[Any, float | None]:
    """The case's second window (a new record, or None when it would not fit ``left``) and its best per call;
    a flagged case's looks are taken around it, and a faster window they find quiet clears its flag."""
    watch = session.watch if case.flagged else None
    snap = watch.monitor.snapshot(case.split) if watch is not None else None
    again, late_s = _window(session, case, left)
    if watch is not None and snap is not None and late_s is not None and late_s < case.first_s:
        _clear_flag(watch, snap, case, late_s)
    return again, late_s


def _floors(session: CalibrationSession, timing: str) -> dict[str, LaunchFloor]:
    return session.results.floors if timing == "back_to_back" else session.results.isolated_floors


def _window(session: CalibrationSession, case: LateCase, left: float) -> tuple[Any, float | None]:
    if case.kind == "floor":
        op, timing = case.key
        floor = late_windows.floor_again(session, _floors(session, timing)[op], left)
        return floor, floor.seconds_min if floor is not None else None
    if case.kind == "blas":
        blas = late_windows.blas_again(session, session.results.blas[case.index], left)
        return blas, blas.time_s["min"] if blas is not None else None
    if case.kind == "shape":
        shape = late_windows.shape_again(session, session.results.shapes[case.index], left)
        return shape, shape.time_s["min"] if shape is not None else None
    sweep = session.results.memory
    assert sweep is not None
    stream = late_windows.stream_again(session, sweep.records[case.index], left)
    return stream, stream.time_s["min"] / stream.passes_per_round if stream is not None else None


def _file(session: CalibrationSession, case: LateCase, again: Any) -> None:
    """The second window's record in place of the first's."""
    if case.kind == "floor":
        op, timing = case.key
        _floors(session, timing)[op] = again
    elif case.kind == "blas":
        session.results.blas[case.index] = again
    elif case.kind == "shape":
        session.results.shapes[case.index] = again
    else:
        assert session.results.memory is not None
        session.results.memory.records[case.index] = again


def run_late_pass(session: CalibrationSession) -> dict[str, Any] | None:
    """Time the launch floors and the CPU cases up to the shared tiers again (and the flagged GEMM shapes of the
    most asked precision, whatever their size), on a GPU the launch floors alone, file the faster window of each,
    and log both in the interference log (``late_pass``); None where there is no late pass (--quick, nothing to
    time again)."""
    backend = session.backend
    nominal = LATE_BUDGET_S.get(backend.device_type)
    cases = late_cases(session) if nominal and not session.options.quick else []
    if nominal is None or not cases:
        return None
    budget = session.family_budget("late_pass", nominal)
    scale = budget / nominal  # the run's schedule may have cut it: its windows shrink alike
    band = shared_band(session) if backend.device_type == "cpu" else None  # a GPU's: its floors alone
    started = time.perf_counter()
    log: dict[str, Any] = {"budget_s": budget, "band_bytes": list(band) if band else None, "cases": [],
                           "left_out": 0}
    for case in cases:
        spent = time.perf_counter() - started
        left = budget - spent
        if case.kind != "shape" and band is not None:
            left = min(left, scale * (IN_CORE_S if case.bytes <= band[0] else BEFORE_SHAPES_S) - spent)
        again, late_s = _again(session, case, left)
        if again is None or late_s is None:
            log["left_out"] += 1
            continue
        filed = "late" if late_s < case.first_s else "first"
        if filed == "late":
            _file(session, case, again)
        log["cases"].append({"case": case.label, "first_s": case.first_s, "late_s": late_s, "filed": filed})
    log["spent_s"] = round(time.perf_counter() - started, 3)
    apart = [c for c in log["cases"] if _spread(c) > 1 + APART]
    if apart:
        worst = max(apart, key=_spread)
        session.warn(f"late pass: {len(apart)} of {len(log['cases'])} cases ran more than {APART:.0%} apart in two "
                     f"windows (at most {_spread(worst):.2f}x: {worst['case']}); the faster is filed. Most likely "
                     "neighbours on this host took its cores' time, its L3 or its memory bandwidth in one of them: "
                     "its element-wise figures move as much from minute to minute")
    if session.watch is not None:
        session.watch.log.late_pass = log
    return log
