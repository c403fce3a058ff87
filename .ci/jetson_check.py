"""Helpers of .ci/jetson_rehearsal.sh (standard library only, so the host runs them without the project).

    requirements PYPROJECT          the project's dependencies, plus what the rehearsed tests import
    nvpmodel MACHINE_JSON           a /bin/sh nvpmodel that prints the recorded `nvpmodel -q`
    calibration FILE ID MODE MHZ    check a calibration filed under emulation, and print what it holds
    conflict FILE                   check a calibration filed with --force despite an identity conflict
    lanes                           (inside the arm64 root) build, verify and list every FMA kernel this CPU runs

Exit 1 with one line per problem when a check fails.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import tomllib

# tests/ imports hypothesis (the `test` extra); the rehearsed machine/plugin tests need nothing else of it.
TEST_REQUIREMENTS = ["hypothesis>=6.80"]


def requirements(pyproject: str) -> None:
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    print("\n".join([*project["dependencies"], *TEST_REQUIREMENTS]))


def nvpmodel(machine_json: str) -> None:
    out = json.loads(Path(machine_json).read_text())["commands"]["nvpmodel -q"]
    print(f"#!/bin/sh\n# recorded `nvpmodel -q` of {Path(machine_json).parent.name} (rehearsal)\n"
          f"printf '%s' {shlex.quote(out)}")


def _load(path: str) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict):
        sys.exit(f"{path}: not a calibration")
    return doc


def _fail_if(problems: list[str]) -> None:
    if problems:
        print("\n".join(f"jetson rehearsal: FAIL: {p}" for p in problems), file=sys.stderr)
        sys.exit(1)


def calibration(path: str, hardware_id: str, mode: str, mhz: str) -> None:
    doc = _load(path)
    meta = doc["metadata"]
    cpu = meta["host"]["cpu"]
    ceiling = meta.get("compute_ceiling") or {}
    peaks = doc["precision_matrix"].get("peak_gflops_by_precision", {})
    problems = [f"{k} {got!r}, expected {want!r}" for k, got, want in (
        ("hardware_id", meta["hardware_id"], hardware_id), ("power_mode", meta["power_mode"], mode),
        ("freq_mhz", str(meta["freq_mhz"]), mhz), ("architecture", cpu.get("architecture"), "aarch64"),
        ("microarchitecture", cpu.get("microarchitecture"), "cortex_a78ae")) if got != want]
    method = str(ceiling.get("method"))
    if ceiling.get("unavailable") or "FMLA" not in method or "vfmadd" in method:
        problems.append(f"compute ceiling not the A64 FMLA kernels: {ceiling.get('unavailable') or method}")
    if not any("emulator" in n for n in ceiling.get("notes", [])):
        problems.append("the compute ceiling does not say it ran under an emulator")
    if "mean nothing" not in str(cpu.get("emulator")):
        problems.append("metadata.host.cpu does not name the emulator")
    if not any("emulation mean nothing" in w for w in doc.get("warnings", [])):
        problems.append("no warning says speeds under emulation mean nothing")
    _fail_if(problems)
    spec = json.loads((Path(path).parents[1] / "spec.json").read_text())
    print(f"  identity: {meta['hardware_name']} -> {meta['hardware_id']}; {cpu.get('microarchitecture')} "
          f"(MIDR implementer {cpu.get('cpu_implementer')} part {cpu.get('cpu_part')}), {cpu.get('logical_cores')} "
          f"cores, flags {' '.join(cpu.get('isa_flags', []))}")
    print(f"  key: {meta['power_mode']} ({meta['power_mode_source']}), {meta['freq_mhz']} MHz ({meta['freq_source']})"
          f" -> {Path(path).name}")
    print(f"  derived peaks (GFLOPS, spec.json): {json.dumps(spec.get('theoretical_peaks'))}: {spec.get('peaks_note')}")
    print(f"  best GEMM (emulated: means nothing): {json.dumps(peaks)}")
    print(f"  compute ceiling (emulated: means nothing): {json.dumps(ceiling.get('gflops'))} by form "
          f"{json.dumps(ceiling.get('by_width'))}; {ceiling.get('threads')} threads")
    print(f"  method: {ceiling.get('method')}")
    print(f"  emulator: {cpu.get('emulator')}")


def conflict(path: str) -> None:
    doc = _load(path)
    meta = doc["metadata"]
    cpu = meta["host"]["cpu"]
    problems = []
    if meta["hardware_id"] != "generic_aarch64":
        problems.append(f"filed under {meta['hardware_id']}, expected generic_aarch64")
    if "avx512f" in cpu.get("isa_flags", []) or cpu.get("microarchitecture"):
        problems.append(f"the host's x86 identity leaked into the file: {cpu}")
    if not any("CPU identity conflict" in w for w in doc.get("warnings", [])):
        problems.append("no warning names the identity conflict")
    _fail_if(problems)
    print(f"  --force: filed under {meta['hardware_id']} as {cpu.get('model')!r}; "
          f"conflict: {cpu.get('identity_conflict')}")


def lanes() -> None:
    """Every FMA kernel of this CPU, built and verified lane by lane (inside the arm64 root, under QEMU)."""
    from hwcal.machine import fma_probe
    from hwcal.machine.identity import live_flags, live_ids

    flags, sve_bits = live_flags(), (live_ids().sve_bytes or 0) * 8
    ok = True
    for form in fma_probe.FORMS:
        if form.arch != "aarch64":
            continue
        for precision, extra in form.precisions.items():
            if not all(f in flags for f in (*form.needs, *extra)):
                print(f"  {form.key:>4} {precision}: not run (this CPU lacks {'+'.join((*form.needs, *extra))})")
                continue
            kernel, why = fma_probe._make_kernel(form, precision, sve_bits if form.key == "sve" else None)
            ok &= kernel is not None
            print(f"  {kernel.key if kernel else form.key:>7} {precision}: " + (
                f"{kernel.chains} chains x {kernel.lanes} lanes, every lane = init + n*x*y exactly" if kernel else why))
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    commands = {"requirements": requirements, "nvpmodel": nvpmodel, "calibration": calibration,
                "conflict": conflict, "lanes": lanes}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
