"""One runner's calibration job: its power modes x frameworks, in sequence, under a host lock.

For each cell: switch the power mode (where the runner can), preflight (the mode took effect and
`pytest --collect-only` accepts the options: torch and the device are there), `pytest bench/` into
a job-local registry seeded with the repository's spec.json files, validate the result, compare it
with the previous calibration of the same key in the repository's registry (``--fail-below`` gate),
and put it in ``WORK/artifact/`` (registry layout, ready for tools/merge_calibrations.py) or, when
it regressed, in ``WORK/regressed/``. The power mode the board was in is restored at the end.

Exit 0 when every cell passed; 1 when one failed or regressed (the Markdown summary, also appended
to $GITHUB_STEP_SUMMARY, says which and shows the comparison table); 2 for bad usage.

    python fleet/calibrate.py --runner orin-nano-01 --work "$RUNNER_TEMP/hwcal"
    python fleet/calibrate.py --fleet my.toml --runner sim-a --work /tmp/a --quick --pytest-arg=-k --pytest-arg=fp32
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, Tool, say, tell
from hwcal.cli.fleet import DEFAULT_FLEET, Cell, load_fleet
from hwcal.cli.nvpmodel import Nvpmodel
from hwcal.errors import HwcalError

REPO = Path(__file__).resolve().parents[2]  # the checkout the fleet driver runs in
LOCK_WAIT_S = 6 * 3600.0  # a scheduled run may wait behind a long manual one; never run beside it
TAIL_LINES = 15
WORK_MARKER = ".hwcal-fleet-work"


@dataclass
class CellResult:
    power_mode: str
    framework: str
    status: str  # passed | regressed | failed
    reason: str
    calibration: str | None = None  # path relative to the registry root
    baseline: str | None = None
    comparison: str = ""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run one fleet runner's calibrations in sequence: "
                                     "power mode, preflight, pytest bench/, validate, compare, collect.")
    parser.add_argument("--runner", metavar="NAME", required=True, help="runner name in the fleet file")
    parser.add_argument("--work", metavar="DIR", type=Path, required=True,
                        help="job-local folder for registries, logs, artifact/ and regressed/ (emptied first)")
    parser.add_argument("--fleet", metavar="PATH", type=Path, default=DEFAULT_FLEET,
                        help=f"fleet file. Default: {DEFAULT_FLEET}")
    parser.add_argument("--power-modes", metavar="MODES", default="all", help="filter, as matrix.py. Default: all")
    parser.add_argument("--frameworks", metavar="NAMES", default="all", help="filter, as matrix.py. Default: all")
    parser.add_argument("--baseline-registry", metavar="PATH", type=Path, default=REPO / "registry",
                        help=f"registry holding the previous calibrations and the specs. Default: {REPO / 'registry'}")
    parser.add_argument("--fail-below", metavar="RATIO", type=float, default=None,
                        help="regression gate for compare_calibrations.py. Default: the fleet file's fail_below")
    parser.add_argument("--quick", action="store_true", help="pass --quick to the calibrator. Default: off")
    parser.add_argument("--pytest-arg", metavar="ARG", action="append", default=[],
                        help="one more argument for pytest bench/ (repeat it). Default: none")
    parser.add_argument("--preflight-only", action="store_true",
                        help="check power modes, the sudo rule and the calibrator's options, then stop. Default: off")
    parser.add_argument("--summary", metavar="FILE", type=Path, default=None,
                        help="append the Markdown summary here too. Default: $GITHUB_STEP_SUMMARY when set")
    return parser


def _tail(text: str, n: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _run(argv: list[str], log: Path | None = None, echo: bool = False) -> tuple[int, str]:
    """Run a command from the checkout; with ``echo`` its output streams to the job log as it comes."""
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    lines = []
    for line in proc.stdout or ():
        lines.append(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
    rc = proc.wait()
    text = "".join(lines)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(text, encoding="utf-8")
    return rc, text


def seed_registry(baseline: Path, target: Path) -> None:
    """Copy every spec.json of the baseline so the calibration's efficiencies use the curated peaks."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for spec in sorted(baseline.glob("*/*/spec.json")) if baseline.is_dir() else []:
        dest = target / spec.relative_to(baseline)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(spec, dest)


def collect(registry: Path, calibration: Path, dest_root: Path) -> None:
    """Copy a calibration and its hardware's spec.json into ``dest_root`` in registry layout."""
    rel = calibration.relative_to(registry)
    hw_rel = rel.parent.parent
    spec = hw_rel / "spec.json"
    for src, dst in ((calibration, dest_root / rel), (registry / spec, dest_root / spec)):
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def pytest_command(cell: Cell, args: argparse.Namespace, registry: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "bench/", *cell.pytest_args(), "--registry", str(registry),
            "-p", "no:randomly", "-p", "no:cacheprovider", *(["--quick"] if args.quick else []), *args.pytest_arg]


def preflight(cells: list[Cell], args: argparse.Namespace, nv: Nvpmodel | None) -> list[str]:
    """Problems found before any power mode is touched: mode ids, the sudo rule, and whether pytest accepts
    each framework's options (torch importable, the device there); empty when all is well."""
    problems: list[str] = []
    if nv is not None:
        for mode in dict.fromkeys(c.power_mode for c in cells):
            try:
                mode_id = nv.check_switch(mode, cells[0].runner.nvpmodel_ids)
                print(f"preflight: power mode {mode} is nvpmodel id {mode_id}; sudo allows switching to it",
                      flush=True)
            except HwcalError as exc:
                problems.append(f"power mode {mode}: {exc}")
    checked: set[tuple[str, str]] = set()
    for cell in cells:
        if (cell.framework, cell.runner.device_for(cell.framework)) in checked:
            continue
        checked.add((cell.framework, cell.runner.device_for(cell.framework)))
        rc, out = _run([*pytest_command(cell, args, args.work / "preflight-registry"), "--collect-only", "-q"])
        if rc != 0:
            problems.append(f"{cell.framework} on {cell.runner.device_for(cell.framework)}: pytest --collect-only "
                            f"exited {rc}: {_tail(out, 3)}")
        else:
            print(f"preflight: {cell.framework} on {cell.runner.device_for(cell.framework)}: "
                  f"{_tail(out, 1).strip()}", flush=True)
    return problems


def run_cell(cell: Cell, args: argparse.Namespace, fail_below: float, nv: Nvpmodel | None) -> CellResult:
    result = CellResult(cell.power_mode, cell.framework, "failed", "")
    print(f"\n=== {cell.label} ===", flush=True)
    if nv is not None:
        try:
            before = nv.switch(cell.power_mode, cell.runner.nvpmodel_ids)
            print(f"power mode: {before} -> {cell.power_mode}", flush=True)
        except HwcalError as exc:
            result.reason = f"power mode: {exc}"
            return result
    registry = args.work / "cells" / cell.slug / "registry"
    seed_registry(args.baseline_registry, registry)
    pytest_argv = pytest_command(cell, args, registry)
    print("$ " + " ".join(pytest_argv[1:]), flush=True)
    rc, out = _run(pytest_argv, log=args.work / "logs" / f"{cell.slug}.log", echo=True)
    filed = sorted(registry.glob("*/*/calibrations/*.json"))
    if rc != 0 or len(filed) != 1:
        result.reason = (f"pytest exited {rc}" if rc else f"{len(filed)} calibration files filed, expected 1") \
            + f": {_tail(out, 3)}"
        return result
    calibration = filed[0]
    result.calibration = str(calibration.relative_to(registry))
    rc, out = _run([sys.executable, "tools/validate_registry.py", "--registry", str(registry)])
    if rc != 0:
        result.reason = f"not valid: {_tail(out, 5)}"
        return result
    baseline = args.baseline_registry / calibration.relative_to(registry)
    if not baseline.exists():
        result.status, result.reason = "passed", "first calibration of this key"
        collect(registry, calibration, args.work / "artifact")
        return result
    result.baseline = str(baseline)
    rc, out = _run([sys.executable, "tools/compare_calibrations.py", str(baseline), str(calibration),
                    "--fail-below", f"{fail_below:g}", "--registry", str(args.baseline_registry)])
    result.comparison = out.rstrip()
    print(result.comparison, flush=True)
    if rc == 0:
        result.status, result.reason = "passed", f"no regression below {fail_below:g}x"
        collect(registry, calibration, args.work / "artifact")
    elif rc == 1:
        listed = out.split("regression(s) below", 1)[-1].splitlines()[1:]
        regressions = [ln.strip() for ln in listed if ln.startswith("  ")]
        result.status = "regressed"
        result.reason = f"below {fail_below:g}x of the previous calibration: " + "; ".join(regressions[:4])
        collect(registry, calibration, args.work / "regressed")
    else:
        result.reason = f"compare_calibrations.py exited {rc}: {_tail(out, 3)}"
    return result


def summary_markdown(runner: str, results: list[CellResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "regressed", "failed")}
    icon = {"passed": "passed", "regressed": "**REGRESSED**", "failed": "**FAILED**"}
    lines = [f"## hwcal calibration on `{runner}`: " + ", ".join(f"{n} {s}" for s, n in counts.items()), "",
             "| power mode | framework | calibration | result | why |", "|---|---|---|---|---|"]
    for r in results:
        # pytest's tail ("<module>", "a | b") must show as text in GitHub's Markdown table, not as HTML or cells
        why = html.escape(r.reason, quote=False).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.power_mode} | {r.framework} | `{r.calibration or '-'}` | {icon[r.status]} | {why} |")
    for r in results:
        if r.comparison:
            opened = " open" if r.status == "regressed" else ""
            lines += ["", f"<details{opened}><summary>{r.power_mode} {r.framework}: B (this run) against A (the "
                      "registry's previous calibration of the key)</summary>", "", "```text", r.comparison, "```",
                      "", "</details>"]
    return "\n".join(lines) + "\n"


def prepare_work(work: Path) -> None:
    """Empty the job-local folder, but only one this script made: --work . must not wipe a checkout."""
    marker = work / WORK_MARKER
    if work.exists() and any(work.iterdir()):
        if not marker.exists():
            raise HwcalError(f"--work {work} is not empty and was not made by fleet/calibrate.py; give a new or "
                             "empty folder")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by fleet/calibrate.py; emptied at the start of each run\n")


def append_summary(args: argparse.Namespace, text: str) -> None:
    """Markdown for people: --summary, else the job summary of GitHub Actions when there is one."""
    summary = args.summary or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY")
                               else None)
    if summary is not None:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")


def body(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    runner = fleet.runner(args.runner)
    cells = fleet.select([runner.name], args.power_modes, args.frameworks)
    fail_below = args.fail_below if args.fail_below is not None else fleet.fail_below
    prepare_work(args.work)
    nv = Nvpmodel.from_env() if runner.power_switch == "nvpmodel" else None
    problems = preflight(cells, args, nv)
    if problems:
        append_summary(args, f"## hwcal calibration on `{runner.name}`: preflight failed, nothing calibrated\n\n"
                       + "\n".join(f"- {p}" for p in problems) + "\n")
        raise HwcalError("preflight failed, nothing calibrated:\n  " + "\n  ".join(problems))
    if args.preflight_only:
        say(f"preflight passed for {len(cells)} calibration(s) of {runner.name}")
        return EXIT_OK
    lock_dir = Path(os.environ.get("HWCAL_LOCK_DIR") or tempfile.gettempdir())
    lock = FileLock(str(lock_dir / f"hwcal-{runner.device_lock}.lock"), mode=0o666)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for {lock.lock_file}: another calibration is using this device", flush=True)
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout:
            raise HwcalError(f"{lock.lock_file} still held after {LOCK_WAIT_S:g} s; nothing calibrated") from None
    results: list[CellResult] = []
    original: tuple[str, int | None] | None = None
    try:
        original = nv.current() if nv is not None else None
        for cell in cells:
            results.append(run_cell(cell, args, fail_below, nv))
    finally:
        if nv is not None and original is not None:
            try:
                nv.restore(original)
                print(f"power mode restored to {original[0]}")
            except HwcalError as exc:
                tell(f"{args.prog}: warning: could not restore power mode {original[0]}: {exc}")
        lock.release()
    text = summary_markdown(runner.name, results)
    (args.work / "summary.md").write_text(text, encoding="utf-8")
    (args.work / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    append_summary(args, text)
    say("", *(f"{r.status:>9}  {r.power_mode} {r.framework}  {r.calibration or '-'}  {r.reason}" for r in results))
    return EXIT_OK if all(r.status == "passed" for r in results) else EXIT_FAIL


TOOL = Tool("calibrate.py", build_parser, body)
main = TOOL.main

