"""Cache sizes of the host CPU (or a GPU's L2), for STREAM's sizing rule and for naming cache levels.

STREAM requires its arrays to be at least 4x the sum of the last-level caches; a sweep that stops
inside the LLC reports cache bandwidth as if it were DRAM (the original system filed an in-L3 figure,
8 MB arrays, as the machine's bandwidth). So the caches are detected, from sysfs first (one
instance per distinct ``shared_cpu_list``), then ``lscpu``, and only assumed when neither answers,
which the calibration then says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hwcal.machine.sources import LOCAL, Sources

# Used only when neither sysfs nor lscpu answers: larger than the LLC of any single-socket part we
# calibrate, so an unknown machine still gets arrays beyond its caches (and a note that it was assumed).
ASSUMED_LLC_BYTES = 256 * 2**20


@dataclass(frozen=True)
class CacheLevel:
    """One data (or unified) cache level: size of one instance and how many instances the device has."""

    level: int
    size_bytes: int
    instances: int = 1

    @property
    def name(self) -> str:
        return f"l{self.level}"

    @property
    def total_bytes(self) -> int:
        return self.size_bytes * self.instances

    def capacity_bytes(self, threads: int) -> int:
        """Bytes this level holds for ``threads`` threads splitting the arrays evenly: private caches
        add up over the cores in use, a shared one counts once per instance."""
        return self.size_bytes * max(1, min(max(1, threads), self.instances))


@dataclass(frozen=True)
class CacheInfo:
    """The data-cache hierarchy, innermost first, and where it was read."""

    levels: tuple[CacheLevel, ...] = ()
    source: str = "unknown"
    assumed: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def last_level(self) -> CacheLevel | None:
        return max(self.levels, key=lambda c: c.level) if self.levels else None

    @property
    def llc_total_bytes(self) -> int:
        """Sum of the last-level caches over the whole device: the figure STREAM's 4x rule is about."""
        last = self.last_level
        return last.total_bytes if last else 0

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "levels": [{"level": c.name, "size_bytes": c.size_bytes, "instances": c.instances}
                       for c in self.levels],
            "llc_total_bytes": self.llc_total_bytes,
            "source": self.source,
            "assumed": self.assumed,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def parse_size(text: str) -> int | None:
    """sysfs / lscpu cache sizes: ``32K``, ``32768K``, ``1M``, ``1 MiB``, ``524288`` (bytes)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?\s*", text.strip(), re.I)
    if not m:
        return None
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def _from_sysfs(src: Sources) -> CacheInfo | None:
    # level -> {shared_cpu_list: size}: each distinct sharing set is one physical instance.
    found: dict[int, dict[str, int]] = {}
    base = "/sys/devices/system/cpu"
    for cpu in src.list_dir(base):
        if not re.fullmatch(r"cpu[0-9]+", cpu):
            continue
        for index in src.list_dir(f"{base}/{cpu}/cache"):
            if not index.startswith("index"):
                continue
            d = f"{base}/{cpu}/cache/{index}"
            kind = (src.read_first_line(f"{d}/type") or "").lower()
            if kind not in ("data", "unified"):
                continue  # instruction caches hold no STREAM data
            level_txt = src.read_first_line(f"{d}/level") or ""
            size = parse_size(src.read_first_line(f"{d}/size") or "")
            if not level_txt.isdigit() or not size:
                continue
            shared = src.read_first_line(f"{d}/shared_cpu_list") or cpu
            found.setdefault(int(level_txt), {})[shared] = size
    if not found:
        return None
    levels = tuple(CacheLevel(lv, max(sets.values()), len(sets)) for lv, sets in sorted(found.items()))
    return CacheInfo(levels, "sysfs /sys/devices/system/cpu/cpu*/cache (size, shared_cpu_list)")


def _from_lscpu(src: Sources) -> CacheInfo | None:
    text = src.run("lscpu", "-C", "--bytes")
    if not text:
        return None
    lines = text.strip().splitlines()
    header = lines[0].split()
    needed = ("NAME", "ONE-SIZE", "ALL-SIZE", "TYPE", "LEVEL")
    if not all(h in header for h in needed):
        return None
    col = {h: header.index(h) for h in needed}
    levels: dict[int, CacheLevel] = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) < len(header) or parts[col["TYPE"]].lower() not in ("data", "unified"):
            continue
        one, total = parse_size(parts[col["ONE-SIZE"]]), parse_size(parts[col["ALL-SIZE"]])
        if not parts[col["LEVEL"]].isdigit() or not one or not total:
            continue
        level = int(parts[col["LEVEL"]])
        levels[level] = CacheLevel(level, one, max(1, round(total / one)))
    if not levels:
        return None
    return CacheInfo(tuple(levels[lv] for lv in sorted(levels)), "lscpu -C --bytes")


def detect_cpu_caches(src: Sources = LOCAL) -> CacheInfo:
    """The host's data caches; never raises. Assumes a 256 MiB LLC (and says so) when nothing answers."""
    for probe in (_from_sysfs, _from_lscpu):
        info = probe(src)
        if info is not None:
            return info
    return CacheInfo((CacheLevel(3, ASSUMED_LLC_BYTES, 1),), "assumed (no sysfs cache entries, no lscpu)",
                     assumed=True, notes=("cache sizes could not be read; a 256 MiB last-level cache was assumed "
                                          "so that the largest arrays are still far beyond any real one",))


def gpu_caches(l2_bytes: int, source: str) -> CacheInfo:
    """A GPU's device-wide L2 as the last level (per-SM L1s are not what STREAM's sizing rule is about)."""
    if l2_bytes > 0:
        return CacheInfo((CacheLevel(2, l2_bytes, 1),), source)
    return CacheInfo((CacheLevel(2, ASSUMED_LLC_BYTES, 1),), f"assumed ({source} gave no L2 size)", assumed=True)


@dataclass(frozen=True)
class HugePages:
    """Transparent huge pages as the kernel offers them: ``mode`` always / madvise / never (None: no THP),
    ``defrag`` (madvise there means a fault in an madvised region may compact memory first: slow), the
    page size. A latency chase on huge pages counts no TLB walks; on 4 KiB pages it counts them."""

    mode: str | None
    defrag: str | None
    page_bytes: int
    source: str

    @property
    def available(self) -> bool:
        return self.mode in ("always", "madvise")

    def as_dict(self) -> dict[str, object]:
        return {"thp_mode": self.mode, "thp_defrag": self.defrag, "huge_page_bytes": self.page_bytes,
                "source": self.source}


def _bracketed(text: str | None) -> str | None:
    """``always [madvise] never`` -> ``madvise``."""
    m = re.search(r"\[(\w[\w+]*)\]", text or "")
    return m.group(1) if m else None


def detect_huge_pages(src: Sources = LOCAL) -> HugePages:
    """The THP mode and huge page size; never raises (mode None where the kernel has no THP)."""
    base = "/sys/kernel/mm/transparent_hugepage"
    mode = _bracketed(src.read_first_line(f"{base}/enabled"))
    defrag = _bracketed(src.read_first_line(f"{base}/defrag"))
    size = src.read_number(f"{base}/hpage_pmd_size")
    if not size:
        m = re.search(r"Hugepagesize:\s*(\d+)\s*kB", src.read("/proc/meminfo") or "")
        size = int(m.group(1)) * 1024 if m else 2 * 2**20
    source = f"{base}/enabled" if mode else "no transparent_hugepage in sysfs"
    return HugePages(mode, defrag, int(size), source)
