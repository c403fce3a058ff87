#!/usr/bin/env python3
"""An independent referee for the memory system: a small C program, built here with the system compiler and
OpenMP, that runs STREAM's triad with all threads and with one (best of 10, arrays of the size given), an
in-place update (a = q a) with one thread over the three arrays' bytes, and a
random pointer chase (Sattolo's single-cycle permutation, one cache line a hop, ``p = *p``) at working
sets given per tier. It imports nothing from hwcal and shares none of its code or toolchain (hwcal's kernels
are numba/LLVM with pinned Python threads; this is gcc/clang with OpenMP), so agreement means something.

Given a calibration, it measures at that file's working sets and prints hwcal's figure over the referee's:
all-core STREAM aggregate (goal 0.9-1.1), latency per tier (goal within +-25 %), and one-core triad.

    python tools/memory_referee.py registry/cpu/HW/calibrations/FILE.json
    python tools/memory_referee.py --array-mib 512 --chase-kib 16,256,16384,1048576
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SOURCE = r"""
#define _GNU_SOURCE
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

/* STREAM triad a = b + s c over n doubles per array, best of ntimes after one untimed pass (GB/s, 3 arrays). */
static double triad(size_t n, int threads, int ntimes) {
    double *a = aligned_alloc(64, n * 8), *b = aligned_alloc(64, n * 8), *c = aligned_alloc(64, n * 8);
    if (!a || !b || !c) { fprintf(stderr, "out of memory\n"); exit(2); }
    omp_set_num_threads(threads);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) { a[i] = 1.0; b[i] = 2.0; c[i] = 0.5; }
    double best = 1e30, s = 3.0;
    for (int k = 0; k <= ntimes; k++) {
        double t = now();
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        t = now() - t;
        if (k > 0 && t < best) best = t;
    }
    if (a[n / 2] != 2.0 + 3.0 * 0.5) { fprintf(stderr, "triad check failed\n"); exit(3); }
    free(a); free(b); free(c);
    return 3.0 * 8.0 * n / best / 1e9;
}

/* In-place update a = q a over n doubles (q = 2, then 1/2: exact), best of ntimes after one untimed pass
   (GB/s, each byte read and written back: 2 x 8 n). */
static double update(size_t n, int threads, int ntimes) {
    double *a = aligned_alloc(64, n * 8);
    if (!a) { fprintf(stderr, "out of memory\n"); exit(2); }
    omp_set_num_threads(threads);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = 1.0;
    double best = 1e30;
    for (int k = 0; k <= ntimes; k++) {
        double q = (k & 1) ? 0.5 : 2.0, t = now();
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = q * a[i];
        t = now() - t;
        if (k > 0 && t < best) best = t;
    }
    if (a[n / 2] != ((ntimes & 1) ? 1.0 : 2.0)) { fprintf(stderr, "update check failed\n"); exit(3); }
    free(a);
    return 2.0 * 8.0 * n / best / 1e9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

/* Random chase over ws bytes: Sattolo's algorithm gives one cycle through every line. ns per hop, best of 7. */
static double chase(size_t ws, int huge) {
    size_t lines = ws / 64, align = 2u << 20;
    char *raw = mmap(NULL, ws + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) { fprintf(stderr, "mmap failed\n"); exit(2); }
    char *buf = raw + ((align - (uintptr_t)raw % align) % align);  /* huge pages need 2 MiB alignment */
    madvise(buf, ws, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    size_t *perm = malloc(lines * sizeof(size_t));
    for (size_t i = 0; i < lines; i++) perm[i] = i;
    for (size_t i = lines - 1; i > 0; i--) {
        size_t j = next() % i, t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < lines; i++) *(char **)(buf + 64 * i) = buf + 64 * perm[i];
    free(perm);
    size_t hops = lines * 2 < 200000 ? 200000 : (lines * 2 > 2000000 ? 2000000 : lines * 2);
    char **p = (char **)buf;
    for (size_t i = 0; i < (lines < 100000 ? 2 * lines : 100000); i++) p = (char **)*p;
    double best = 1e30;
    for (int r = 0; r < 7; r++) {
        double t = now();
        for (size_t i = 0; i < hops; i++) p = (char **)*p;
        t = now() - t;
        if (t < best) best = t;
    }
    if (p == NULL) printf("#\n");
    munmap(raw, ws + align);
    return best / hops * 1e9;
}

int main(int argc, char **argv) {
    /* argv: array_bytes threads [chase_bytes ...] */
    size_t n = strtoull(argv[1], NULL, 10) / 8;
    int threads = atoi(argv[2]);
    printf("{\"triad_all_gbps\": %.4f, \"threads\": %d, ", triad(n, threads, 10), threads);
    printf("\"triad_one_gbps\": %.4f, ", triad(n, 1, 10));
    printf("\"update_one_gbps\": %.4f, \"chase\": [", update(3 * n, 1, 10));
    for (int i = 3; i < argc; i++) {
        size_t ws = strtoull(argv[i], NULL, 10);
        printf("%s{\"working_set_bytes\": %zu, \"huge_ns\": %.4f, \"4k_ns\": %.4f}", i > 3 ? ", " : "", ws,
               chase(ws, 1), chase(ws, 0));
    }
    printf("]}\n");
    return 0;
}
"""


def read_json_file(path: Path) -> Any:
    """A calibration file as JSON, packed (``.json.gz``, as registries keep their history) or not."""
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)


def build() -> Path:
    """The referee binary, compiled once per source and compiler into a cache folder."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise SystemExit("memory_referee: no C compiler (cc, gcc or clang) on PATH; install one (apt-get install gcc)")
    digest = hashlib.sha256((SOURCE + cc).encode()).hexdigest()[:16]
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hwcal-memory-referee"
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / f"referee-{digest}"
    if not binary.exists():
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "referee.c"
            src.write_text(SOURCE)
            out = Path(tmp) / "referee"
            cmd = [cc, "-O3", "-march=native", "-fopenmp", str(src), "-o", str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"memory_referee: {' '.join(cmd)} failed:\n{done.stderr.strip()}")
            shutil.move(str(out), binary)
    return binary


def run(array_bytes: int, threads: int, chase_bytes: list[int]) -> dict:
    binary = build()
    args = [str(binary), str(array_bytes), str(threads), *map(str, chase_bytes)]
    env = {**os.environ, "OMP_PROC_BIND": "spread", "OMP_PLACES": "cores"}
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"memory_referee: the referee failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def _calibration_plan(path: Path) -> tuple[dict, int, int, list[int]]:
    """From a calibration: its memory section, the array bytes (the multicore total / 3), threads, chase sizes."""
    doc = read_json_file(path)
    memory = doc.get("memory") or {}
    system = memory.get("memory_system") or {}
    pools = system.get("pools") or {}
    multi = memory.get("multicore") or {}
    array = (pools.get("dram_pool_bytes") or 256 * 2**20) // 3
    sizes = sorted({lv["working_set_bytes"] for lv in (memory.get("levels") or {}).values()
                    if isinstance(lv, dict) and lv.get("working_set_bytes") and lv.get("latency_ns")})
    return memory, array, multi.get("threads") or len(os.sched_getaffinity(0)), sizes


def compare(memory: dict, ref: dict) -> list[str]:
    lines = []
    multi = memory.get("multicore") or {}
    if multi.get("aggregate_gbps"):
        lines.append(f"all-core STREAM: hwcal {multi['aggregate_gbps']:.4g} / referee {ref['triad_all_gbps']:.4g} "
                     f"GB/s = {multi['aggregate_gbps'] / ref['triad_all_gbps']:.3f} (goal 0.9-1.1)")
    dram = (memory.get("levels") or {}).get("dram") or {}
    if dram.get("update_gbps") and ref.get("update_one_gbps"):
        lines.append(f"one-core in-place update (compiled, dram): hwcal {dram['update_gbps']:.4g} / referee "
                     f"{ref['update_one_gbps']:.4g} GB/s = {dram['update_gbps'] / ref['update_one_gbps']:.3f}")
    for name, hw in (("one-core triad (numpy sweep)", memory.get("sustained_gbps")),
                     ("one-core triad (compiled, dram)", dram.get("triad_gbps")),
                     ("all-core triad (compiled, dram)", dram.get("allcore_triad_gbps"))):
        if hw:
            ref_gbps = ref["triad_all_gbps"] if name.startswith("all") else ref["triad_one_gbps"]
            lines.append(f"{name}: hwcal {hw:.4g} / referee {ref_gbps:.4g} GB/s = {hw / ref_gbps:.3f}")
    by_ws = {c["working_set_bytes"]: c for c in ref["chase"]}
    for name, lv in (memory.get("levels") or {}).items():
        c = by_ws.get(lv.get("working_set_bytes")) if isinstance(lv, dict) else None
        if c and lv.get("latency_ns"):
            r = c["huge_ns"] if lv.get("huge_pages") else c["4k_ns"]
            lines.append(f"latency {name} ({lv['working_set_bytes'] / 2**10:,.0f} KiB, "
                         f"{'huge' if lv.get('huge_pages') else '4 KiB'} pages): hwcal {lv['latency_ns']:.4g} / "
                         f"referee {r:.4g} ns = {lv['latency_ns'] / r:.3f} (goal 0.75-1.25)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="examples:\n" + __doc__.split(
        "\n\n")[-1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calibration", nargs="?", type=Path, help="a calibration file to compare against")
    parser.add_argument("--array-mib", type=float, metavar="MiB", help="bytes per triad array (default: the "
                        "calibration's DRAM pool / 3, else 256 MiB)")
    parser.add_argument("--threads", type=int, metavar="N", help="threads of the all-thread triad (default: the "
                        "calibration's workers, else the CPUs this process may use)")
    parser.add_argument("--chase-kib", metavar="LIST", help="chase working sets, KiB, comma separated (default: the "
                        "calibration's tiers)")
    args = parser.parse_args(argv)
    memory: dict = {}
    array, threads, sizes = 256 * 2**20, len(os.sched_getaffinity(0)), [16 * 2**10, 256 * 2**10]
    if args.calibration is not None:
        try:
            memory, array, threads, sizes = _calibration_plan(args.calibration)
        except (OSError, ValueError) as exc:
            print(f"memory_referee: cannot read {args.calibration}: {exc}", file=sys.stderr)
            return 1
    array = int(args.array_mib * 2**20) if args.array_mib else array
    threads = args.threads or threads
    if args.chase_kib:
        sizes = [int(float(x) * 1024) for x in args.chase_kib.split(",") if x.strip()]
    ref = run(array, threads, sizes)
    print(json.dumps(ref, indent=1))
    for line in compare(memory, ref):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
