"""Memory bandwidth by working set: what a memory-bound call moves its bytes at, and where that figure comes
from. Pure, no I/O.

One function answers for every reader (``Bandwidth.gbps``): the memory system's per-tier figures when the
calibration has them (``memory.levels.<l1|l2|l3|dram>`` with ``read_gbps``, ``write_gbps``, ``triad_gbps``
for one core and ``allcore_triad_gbps`` for all of them, each level's ``working_set_bytes``), else what older
files hold: the STREAM sweep itself (GB/s of the kernel of the same traffic pattern, by bytes), else the
per-level summary (``memory.levels.<l>.gbps``), else the sustained figure.

A call's own measured curve (``BandwidthCurve``: the BLAS sizes of one operation and precision, or one
STREAM kernel) is better evidence than any tier figure inside the sizes it measured; it is built from its
points with the call's floor taken out (on a CPU a call's overhead and its streaming run one after the
other, so time = floor + bytes / bandwidth; on a GPU launches queue behind running kernels and overlap
them, so time = max(floor, bytes / bandwidth)). A call that took hardly longer than the floor says nothing
about its bandwidth (H200: a 16 MB dot at 21 us, the floor 22 us): it takes the bandwidth of the nearest
call its bytes did bound. Between its sizes what is interpolated is the call's bandwidth over the tier's
(``tier``: the memory system's GB/s by working set), so a cache step between two measured sizes falls where
the memory system's own figures put it, not halfway in log bytes.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hwcal.model.curves import CACHE_HOLDS, Point, Tiers

# Which per-tier field of the memory system serves a traffic pattern (one core; all cores: allcore_triad_gbps).
# "update" is an in-place call (scal's x = a x, axpy's y += a x): no write-allocate, so it streams faster than
# triad at DRAM (this VM's Zen 4 guest: 49 against 24 GB/s of read); a tier without the in-place figure (a file
# from before it was measured) answers with its triad.
PATTERN_FIELD = {"read": "read_gbps", "write": "write_gbps", "triad": "triad_gbps", "update": "update_gbps"}
FALLBACK_FIELD = "triad_gbps"
ALLCORE_FIELD = "allcore_triad_gbps"
LEVEL_ORDER = ("l1", "l2", "l3", "dram")
STREAM_OF_PATTERN = {"read": "add", "write": "copy", "triad": "triad", "update": "triad"}  # the sweep's kernel of
# the same traffic (the sweep has no in-place kernel: its triad, as before the memory system measured one)
FLOOR_SHARE_MAX = 0.9  # the floor is at most 90 % of a measured call (a call is never pure overhead)
BOUND = 1.5


FLATTER = 0.1  # the call's own last step must fall this much less than the tier's to count as having left it


@dataclass(frozen=True)
class BandwidthCurve:
    """GB/s of one call's work by working set, from measured (bytes, seconds) with the floor taken out;
    log-log interpolation between them, held beyond the ends (``seconds`` says which)."""

    points: tuple[Point, ...]
    floor_s: float
    additive: bool  # CPU: time = floor + bytes / GB/s; GPU: time = max(floor, bytes / GB/s)
    log_bytes: tuple[float, ...]
    log_gbps: tuple[float, ...]  # of the work's GB/s over the tier's (``tier``), or of the GB/s itself
    tier: Callable[[float], float] | None = None  # the memory system's GB/s by working set: where the steps lie

    @classmethod
    def of(cls, points: Sequence[Point], floor_s: float, additive: bool,
           tier: Callable[[float], float] | None = None) -> BandwidthCurve:
        ordered = sorted((p for p in points if p.bytes > 0 and p.seconds > 0), key=lambda p: p.bytes)
        if not ordered:
            raise ValueError("a bandwidth curve needs at least one measured point")
        # One call on fewer bytes never needs longer than the same call on more: a smaller size timed slower
        # than a larger one is the host's jitter in the launch (an H100 host's 4 MiB bf16 dot at 53.6 us
        # between 25.7 us at 1 MiB and 25.6 us at 16 MiB), and takes the larger one's time.
        times = [p.seconds for p in ordered]
        for i in range(len(times) - 2, -1, -1):
            times[i] = min(times[i], times[i + 1])
        if floor_s <= 0 or not additive:
            # The small calls far below the curve's best GB/s say what one costs (larger ones are slow for DRAM
            # instead): the floor where none is filed, and on a GPU the floor if higher than the filed one, which
            # is an fp32 call on 16 elements (an H100's bf16 torch.mv took 10.0 us on 1 MiB and 10.1 on 4 MiB
            # where the fp32 16x16 one took 7.7: its 13 us on 16 MiB read as 1.3 TB/s of work, not as the floor).
            # A flagged call (timed while something else ran: on a GPU host, mostly a slow episode of the launch
            # path) raises no filed floor: an H100 run whose 8 and 16 MiB STREAM cases were all flagged read an
            # element-wise floor of 8.1 us from them where its filed add floor was 5.96 us, and predicted the
            # held-out element-wise calls of another process 30-45 % slow.
            best = max(range(len(ordered)), key=lambda i: ordered[i].bytes / times[i])
            peak_gbps = ordered[best].bytes / times[best]
            slow = [t for p, t in zip(ordered, times, strict=True)
                    if p.bytes < ordered[best].bytes and p.bytes / t < 0.5 * peak_gbps
                    and not (p.flagged and floor_s > 0)]
            floor_s = max(floor_s, min(slow) if slow else 0.0)
        # A floor larger than the fastest call is not one: that call would have no time left for its bytes.
        # On a CPU at most 90 % of it (time = floor + work: a call is never pure overhead); on a GPU the fastest
        # call may be all floor (time = max(floor, work)).
        floor_s = min(floor_s, (FLOOR_SHARE_MAX if additive else 1.0) * min(times))
        # A call within BOUND of the floor says only that its bytes took no longer than it: its bandwidth is
        # taken from the nearest call that the bytes do bound (sizes in between were floor-bound anyway).
        informative = [i for i, t in enumerate(times) if t > BOUND * floor_s] or [len(ordered) - 1]
        log_gbps = []
        for i in range(len(ordered)):
            j = min(informative, key=lambda j: (abs(j - i), -j))
            q = ordered[j]
            work = times[j] - floor_s if additive else times[j]
            log_gbps.append(math.log(q.bytes / work / 1e9 / (tier(q.bytes) if tier else 1.0)))
        return cls(tuple(ordered), floor_s, additive, tuple(math.log(p.bytes) for p in ordered), tuple(log_gbps),
                   tier)

    def gbps(self, nbytes: float) -> tuple[float, str, list[Point]]:
        """(GB/s, basis, the points used): measured at a point, interpolated between two, extrapolated
        (the end's figure held) outside."""
        x = math.log(nbytes)
        xs = self.log_bytes
        scale = self.tier(nbytes) if self.tier else 1.0
        i = bisect_left(xs, x)
        if i < len(xs) and abs(xs[i] - x) < 1e-9:
            return math.exp(self.log_gbps[i]) * scale, "measured", [self.points[i]]
        if i == 0 or i == len(xs):
            j = 0 if i == 0 else len(xs) - 1
            if j and self.tier and self._left_the_tier():
                return self._raw_gbps(j), "extrapolated", [self.points[j]]
            return math.exp(self.log_gbps[j]) * scale, "extrapolated", [self.points[j]]
        lam = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
        value = self.log_gbps[i - 1] + lam * (self.log_gbps[i] - self.log_gbps[i - 1])
        return math.exp(value) * scale, "interpolated", list(self.points[i - 1:i + 1])

    def _raw_gbps(self, i: int) -> float:
        """The i-th point's own GB/s (its work's, the floor taken out)."""
        return math.exp(self.log_gbps[i]) * (self.tier(self.points[i].bytes) if self.tier else 1.0)

    def _left_the_tier(self) -> bool:
        """Whether the call's own last two points fell less than the tier between them did: it reached its
        slowest tier before the memory system's sweep did (torch.mv on the Zen 4 guest read 22.7 and 23.1 GB/s
        at 67 and 134 MB, where the 2-thread STREAM triad, three arrays sharing the 32 MB L3, fell from 97 to
        64 GB/s and on to 40 at 261 MB): beyond its largest size its GB/s is held, not scaled down further by
        a step it has already taken (that put a Llama 3.2 1B decode layer's projections at 14.4 GB/s, +52 %)."""
        if len(self.points) < 2 or self.tier is None:
            return False
        own = self._raw_gbps(-1) / self._raw_gbps(-2)
        tier = self.tier(self.points[-1].bytes) / self.tier(self.points[-2].bytes)
        # The tier itself must have fallen there: a curve ending inside a flat cache tier whose last point rose
        # by noise has left nothing (held, a 2 MB dot's in-cache rate would reach DRAM sizes).
        return tier < 1 / (1 + FLATTER) and own > tier * (1 + FLATTER)

    def seconds(self, nbytes: float) -> tuple[float, str, list[Point]]:
        gbps, basis, used = self.gbps(nbytes)
        work = nbytes / (gbps * 1e9)
        return (self.floor_s + work if self.additive else max(self.floor_s, work)), basis, used

    @property
    def best_gbps(self) -> float:
        return max(p.bytes / p.seconds for p in self.points) / 1e9

    @property
    def range_bytes(self) -> tuple[float, float]:
        return self.points[0].bytes, self.points[-1].bytes


@dataclass(frozen=True)
class Level:
    """One tier of the memory system: what it holds, the working set its figures were measured at, and its
    figures (GB/s by field)."""

    name: str
    capacity_bytes: float
    figures: dict[str, float]
    working_set_bytes: float | None = None


def _positive(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return float(value) if ok else None  # type: ignore[arg-type]


def memory_levels(memory: dict[str, Any]) -> list[Level]:
    """The tiers with the memory system's per-pattern figures (issue 24's fields), innermost first; empty
    when the file has none. A cache tier holds what it was measured with, else its capacity from the file."""
    levels = memory.get("levels") if isinstance(memory.get("levels"), dict) else {}
    caches = {c.get("level"): c for c in ((memory.get("caches") or {}).get("levels") or []) if isinstance(c, dict)}
    out: list[Level] = []
    for name in LEVEL_ORDER:
        entry = levels.get(name) if isinstance(levels, dict) else None
        if not isinstance(entry, dict):
            continue
        figures = {f: v for f in (*PATTERN_FIELD.values(), ALLCORE_FIELD) if (v := _positive(entry.get(f)))}
        if not figures:
            continue
        capacity = math.inf
        if name != "dram":
            cache = caches.get(name) or {}
            size = _positive(cache.get("size_bytes"))
            capacity = (_positive(entry.get("capacity_bytes")) or (size * int(cache.get("instances") or 1) if size
                                                                     else None)
                        or 2.0 * (_positive(entry.get("working_set_bytes")) or 0.0) or math.inf)
        out.append(Level(name, capacity, figures, _positive(entry.get("working_set_bytes"))))
    return out


class Bandwidth:
    """Bandwidth by working set, traffic pattern and threads, from the best source a calibration has."""

    def __init__(self, memory: dict[str, Any], stream: Sequence[Point], tiers: Tiers | None,
                 tier_names: tuple[str, ...], stream_floor_s: float, additive: bool) -> None:
        self.levels = memory_levels(memory)
        threads = memory.get("threads")
        self.stream_threads = threads if isinstance(threads, int) and threads > 0 else 1
        self.tiers, self.tier_names = tiers, tier_names
        kernels: dict[str, list[Point]] = {}
        for p in stream:
            kernels.setdefault(p.family, []).append(p)
        self.stream = {k: BandwidthCurve.of(pts, stream_floor_s, additive) for k, pts in kernels.items()}
        self._best_by_level: dict[str, float] | None = None

    def level_name(self, working_set: float) -> str:
        for level in self.levels:
            if working_set <= level.capacity_bytes * CACHE_HOLDS:  # a streamed set stays resident up to half
                return level.name
        if self.levels:
            return self.levels[-1].name
        if self.tiers is not None:
            return self.tiers.level(working_set, self.tier_names)
        return "dram"

    def reference(self, working_set: float, pattern: str, threads: int) -> tuple[float, str] | None:
        """The ceiling a memory-bound call's efficiency is against, as the document sets its BLAS and STREAM
        figures (``hwcal.document.memory_system.blas_ceiling``): the best of read, write and triad of the tier
        the working set lives in, as measured there (a log-log value between two tiers read 1.04 for numpy's scal
        of 8 MB on the Zen 3 guest), on one core (and its in-place update for an in-place call); on more threads
        the all-core triad, the one all-core figure ``memory.levels`` files (the document's roof there is the
        best all-core kernel, so an all-core dot may read above 1 here); else the best STREAM bandwidth measured
        in the working set's tier.
        Against the pattern's own figure alone, numpy's add of 786 KB on the Zen 3 guest read 1.4x its triad."""
        if self.levels:  # the tier holding the working set, its figures as measured (no log-log between tiers)
            name = self.level_name(working_set)
            tier = next(lv for lv in self.levels if lv.name == name)
            kinds = ("read", "write", "triad", "update") if pattern == "update" else ("read", "write", "triad")
            fields = [ALLCORE_FIELD] if threads > 1 else [PATTERN_FIELD[k] for k in kinds]
            found = [(tier.figures[f], f) for f in fields if f in tier.figures]
            if not found:
                return self._from_levels(working_set, fields[0])
            gbps, field = max(found)
            return gbps, f"the best of the tier's kernels: memory.levels.{name}.{field}"
        if self._best_by_level is None:  # once: every STREAM point's tier
            self._best_by_level = {}
            for curve in self.stream.values():
                for p in curve.points:
                    name = self.level_name(p.bytes)
                    self._best_by_level[name] = max(self._best_by_level.get(name, 0.0), p.bytes / p.seconds / 1e9)
        level = self.level_name(working_set)
        best = self._best_by_level.get(level)
        return (best, f"the best STREAM bandwidth measured in {level}") if best else None

    def _from_levels(self, working_set: float, want: str) -> tuple[float, str]:
        """The tiers' figure at a working set: log-log between the working sets the tiers were measured at
        (a cache step is gradual, and a VM's sysfs capacities place it wrongly: this machine's "480 MB" L3
        reads 28 GB/s at 16 MB), the nearest tier's figure held beyond them; by capacity without them."""
        anchors = sorted((lv.working_set_bytes, lv) for lv in self.levels if lv.working_set_bytes)

        def field_of(level: Level) -> str:  # the wanted figure, else the tier's triad (a file without it)
            for field in (want, FALLBACK_FIELD):
                if field in level.figures:
                    return field
            return next(iter(level.figures))

        if len(anchors) < 2:
            level = next((lv for lv in self.levels if working_set <= lv.capacity_bytes * CACHE_HOLDS), self.levels[-1])
            field = field_of(level)
            return level.figures[field], f"memory.levels.{level.name}.{field}"

        def figure(level: Level) -> float:
            return level.figures[field_of(level)]
        lo = next(((ws, lv) for ws, lv in reversed(anchors) if ws <= working_set), anchors[0])
        hi = next(((ws, lv) for ws, lv in anchors if ws >= working_set), anchors[-1])
        if lo[1] is hi[1] or lo[0] == hi[0]:
            return figure(lo[1]), f"memory.levels.{lo[1].name}.{field_of(lo[1])}"
        lam = math.log(working_set / lo[0]) / math.log(hi[0] / lo[0])
        value = math.exp(math.log(figure(lo[1])) + lam * (math.log(figure(hi[1])) - math.log(figure(lo[1]))))
        fields = "/".join(dict.fromkeys((field_of(lo[1]), field_of(hi[1]))))
        return value, f"memory.levels {lo[1].name}..{hi[1].name} {fields} (log-log between their working sets)"

    def gbps(self, working_set: float, pattern: str = "triad", threads: int = 1) -> tuple[float, str] | None:
        """(GB/s, where it comes from) for a call streaming ``working_set`` bytes in ``pattern`` (read, write,
        triad, update) on ``threads`` threads; None when the calibration holds no memory figure at all.

        The framework's own STREAM sweep where it ran on the call's threads (the framework's calls, as the call
        is one), else the memory system's tiers (compiled kernels, one core or all: on this VM numba's "L3"
        read 22 GB/s at 16 MB where numpy's in-place multiply moved 118 GB/s at 25 MB), else the sweep. From the
        tiers an in-place call takes their update (their triad where they lack it); beside the framework's sweep
        it takes the sweep's triad, whose dense sizes place the cache steps its curve is shaped by."""
        kernel = STREAM_OF_PATTERN.get(pattern, "triad")
        curve = self.stream.get(kernel) or next(iter(self.stream.values()), None)
        if self.levels and (curve is None or self.stream_threads != threads):
            return self._from_levels(working_set, ALLCORE_FIELD if threads > 1 else PATTERN_FIELD.get(pattern,
                                                                                                        "triad_gbps"))
        if curve is not None:
            value, _, _ = curve.gbps(working_set)
            return value, f"the STREAM sweep's {kernel if kernel in self.stream else 'kernel'} at this working set"
        if self.tiers is not None:
            return self.tiers.gbps(working_set), f"memory.levels ({self.level_name(working_set)})"
        return None
