"""Calibration settings: parse functions (argparse-style errors naming the bad value) and one resolver.

A setting comes from the command line, else an environment variable, else an ini key, else its
default; an error says where the bad value came from.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hwcal.errors import HwcalError
from hwcal.measure.session import CalibrationOptions
from hwcal.measure.shapes import parse_shape_list
from hwcal.naming import check_device, check_hardware_id, check_power_mode, normalise_framework

T = TypeVar("T")


def _wrap(fn: Callable[[str], T]) -> Callable[[str], T]:
    """Turn HwcalError/ValueError into ArgumentTypeError so argparse prints one line naming the value."""

    def parse(value: str) -> T:
        try:
            return fn(value)
        except (HwcalError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = fn.__name__
    return parse


@_wrap
def parse_power_mode(value: str) -> str:
    check_power_mode(value)
    return value


@_wrap
def parse_framework(value: str) -> str:
    return normalise_framework(value)


@_wrap
def parse_hardware_id(value: str) -> str:
    return check_hardware_id(value)


@_wrap
def parse_device(value: str) -> str:
    return check_device(value)


# No CPU or GPU clocks near 10 GHz; a larger figure is a typo (Hz, kHz) that would file a nonsense key and peaks.
MAX_FREQUENCY_MHZ = 10_000


@_wrap
def parse_frequency_mhz(value: str) -> int:
    try:
        mhz = float(value)
    except ValueError:
        raise ValueError(f"frequency {value!r} is not a number of MHz") from None
    if not mhz > 0 or mhz != mhz or mhz == float("inf") or round(mhz) < 1:
        raise ValueError(f"frequency {value!r} MHz must be positive")
    if mhz > MAX_FREQUENCY_MHZ:
        raise ValueError(f"frequency {value!r} MHz is above {MAX_FREQUENCY_MHZ:,} MHz, beyond any CPU or GPU "
                         "clock; give the clock ceiling in MHz (e.g. 1980)")
    return round(mhz)


@_wrap
def parse_registry(value: str) -> Path:
    if not value.strip():
        raise ValueError("registry path is empty (it would mean the current folder); give a folder")
    return Path(value)


@_wrap
def parse_sizes(value: str) -> list[int]:
    sizes: list[int] = []
    for part in value.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise ValueError(f"size {part!r} in {value!r} is not a positive whole number")
        sizes.append(int(part))
    if not sizes:
        raise ValueError(f"sizes {value!r} name no size; give e.g. 256,1024,4096")
    return sorted(set(sizes))


@_wrap
def parse_shapes(value: str) -> list[tuple[int, int, int, int]]:
    """``MxNxK[,..]`` (``bBxMxNxK`` for a batch) into (B, M, N, K) tuples."""
    return parse_shape_list(value)


@_wrap
def parse_nonneg_float(value: str) -> float:
    v = float(value)
    if not v >= 0 or v == float("inf"):
        raise ValueError(f"{value!r} must be a number >= 0")
    return v


@_wrap
def parse_positive_float(value: str) -> float:
    v = float(value)
    if not v > 0 or v == float("inf"):
        raise ValueError(f"{value!r} must be a number > 0")
    return v


FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


@_wrap
def parse_flag(value: str) -> bool:
    """An on/off setting from the environment or an ini file: 1/true/yes/on or 0/false/no/off."""
    word = value.strip().lower()
    if word not in FLAG_WORDS:
        raise ValueError(f"{value!r} is not on or off; give 1, true, yes, on, 0, false, no or off")
    return FLAG_WORDS[word]


CPU_MAX_CALL_S, GPU_MAX_CALL_S = 0.3, 0.1  # --max-call-seconds when not given


@dataclass(frozen=True)
class OptionSpec:
    flag: str
    dest: str
    metavar: str | None
    parse: Callable[[str], Any] | None
    default: Any
    help: str
    env: str | None = None
    is_flag: bool = False


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("--power-mode", "hwcal_power_mode", "MODE", parse_power_mode, None,
               "power mode the device is in (7W, 15W, MAXN ...); detected when not given", "HWCAL_POWER_MODE"),
    OptionSpec("--framework", "hwcal_framework", "{numpy,pytorch}", parse_framework, "numpy",
               "framework whose kernels are calibrated (torch is an alias of pytorch)", "HWCAL_FRAMEWORK"),
    OptionSpec("--device", "hwcal_device", "DEV", parse_device, "cpu",
               "device to calibrate: cpu, cuda or cuda:N", "HWCAL_DEVICE"),
    OptionSpec("--frequency-mhz", "hwcal_frequency_mhz", "MHZ", parse_frequency_mhz, None,
               "clock ceiling for the registry key; detected when not given", "HWCAL_FREQUENCY_MHZ"),
    OptionSpec("--hardware-id", "hwcal_hardware_id", "ID", parse_hardware_id, None,
               "registry id of the hardware ([a-z0-9_]); detected when not given", "HWCAL_HARDWARE_ID"),
    OptionSpec("--registry", "hwcal_registry", "PATH", parse_registry, None,
               "registry folder to file the calibration in (ini hwcal_registry)", "HWCAL_REGISTRY"),
    OptionSpec("--quick", "hwcal_quick", None, None, False, "short sweep (3 sizes, fewer rounds)", None, True),
    OptionSpec("--full", "hwcal_full", None, parse_flag, False,
               "every layer, layout and float precision of the convolution, attention and fused-op grids (and "
               "batch 1 on a GPU), with 5x their time budgets", "HWCAL_FULL", True),
    OptionSpec("--kernel-names", "hwcal_kernel_names", None, parse_flag, False,
               "name the CUDA kernels each convolution and attention case ran (cuDNN's algorithm) through the CUDA "
               "profiler, whose first start costs ~5 s; on with --full", "HWCAL_KERNEL_NAMES", True),
    OptionSpec("--sizes", "hwcal_sizes", "N,N,...", parse_sizes, None,
               "square GEMM sizes to sweep; the backend's sweep when not given", "HWCAL_SIZES"),
    OptionSpec("--shapes", "hwcal_shapes", "MxNxK[,..]", parse_shapes, None,
               "GEMM shapes (M x N x K; bBxMxNxK for a batch) replacing the shape families' list; the "
               "backend's families when not given", "HWCAL_SHAPES"),
    OptionSpec("--min-gflops", "hwcal_min_gflops", "GFLOPS", parse_nonneg_float, 1.0,
               "after a size >= 256 (or a call of 1 ms or more), a precision below this skips its larger sizes",
               "HWCAL_MIN_GFLOPS"),
    OptionSpec("--max-call-seconds", "hwcal_max_call_s", "S", parse_positive_float, None,
               "skip a size whose single GEMM is predicted to take longer than this (0.3 s on a CPU, 0.1 s on a "
               "GPU, where such a call is already at the peak: an H200's fp32 16384^3 took 0.16 s a call, 1.5 s "
               "a case)", "HWCAL_MAX_CALL_SECONDS"),
    OptionSpec("--memory-seconds", "hwcal_memory_s", "S", parse_positive_float, None,
               "time budget of the memory system (cache tiers, latency, all-core STREAM); a CPU whose DRAM pool "
               "(4x the last-level caches) takes longer to fault in needs more; 8 s (--quick 5 s, a GPU 10 s) when "
               "not given", "HWCAL_MEMORY_SECONDS"),
    OptionSpec("--target-seconds", "hwcal_target_s", "S", parse_nonneg_float, None,
               "wall-clock target of the run from its process's start: the budgeted families (BLAS, GEMM shapes, "
               "STREAM, memory system, late pass) share what is left of it when each starts, never below half "
               "their own budgets; 0 for none. 44 s on a CPU, 118 s on a GPU when not given; none with --quick "
               "or --full", "HWCAL_TARGET_SECONDS"),
    OptionSpec("--dry-run", "hwcal_dry_run", None, None, False,
               "build and validate the calibration, print where it would go, write nothing", None, True),
    OptionSpec("--force", "hwcal_force", None, None, False,
               "run even when a preflight check fails (recorded in the calibration)", None, True),
    OptionSpec("--allow-partial", "hwcal_allow_partial", None, None, False,
               "let a partial run (-k, -m, --sizes, one benchmark file) replace a complete calibration of the "
               "same key (the previous one is kept in history)", None, True),
    OptionSpec("--file-disturbed", "hwcal_file_disturbed", None, None, False,
               "let a disturbed run (over 10%% of its cases measured while something else ran, flagged) replace "
               "a clearly quieter calibration of the same key; without it such a run goes to history", None, True),
)


def add_options(parser: Any) -> None:
    group = parser.getgroup("hwcal", "hwcal calibration")
    for spec in OPTIONS:
        parser.addini(spec.dest, help=f"default for {spec.flag}", default=None)
        default_txt = "off" if spec.is_flag else spec.default
        help_txt = f"{spec.help}. Env {spec.env}. Default: {default_txt}." if spec.env else \
            f"{spec.help}. Default: {default_txt}."
        if spec.is_flag:
            group.addoption(spec.flag, action="store_true", dest=spec.dest, default=False, help=help_txt)
        else:
            group.addoption(spec.flag, dest=spec.dest, metavar=spec.metavar, type=spec.parse, default=None,
                            help=help_txt)


def resolve(spec: OptionSpec, cli_value: Any, ini_value: Any = None,
            environ: Mapping[str, str] | None = None) -> Any:
    """Command line, then environment, then ini, then default; a bad value names its source."""
    if cli_value is not None and not (spec.is_flag and cli_value is False):
        return cli_value
    environ = os.environ if environ is None else environ
    for source, raw in ((f"environment variable {spec.env}", environ.get(spec.env) if spec.env else None),
                        (f"ini key {spec.dest}", ini_value)):
        if raw in (None, ""):
            continue
        if spec.is_flag and spec.parse is None:
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        try:
            return spec.parse(str(raw)) if spec.parse else raw
        except argparse.ArgumentTypeError as exc:
            raise HwcalError(f"{source}: {exc}") from None
    return spec.default


def resolve_options(getoption: Callable[[str], Any], getini: Callable[[str], Any], rootdir: Path) -> CalibrationOptions:
    values = {spec.dest: resolve(spec, getoption(spec.dest), getini(spec.dest)) for spec in OPTIONS}
    registry = values["hwcal_registry"]
    registry = Path(registry) if registry else rootdir / "registry"
    if values["hwcal_quick"] and values["hwcal_full"]:
        raise HwcalError("--quick and --full contradict each other (a short sweep, or every layer); give one")
    if values["hwcal_framework"] == "numpy" and values["hwcal_device"] != "cpu":
        raise HwcalError(f"--framework numpy runs on the CPU only, not --device {values['hwcal_device']}; "
                         "use --framework pytorch for GPUs")
    return CalibrationOptions(
        power_mode=values["hwcal_power_mode"],
        framework=values["hwcal_framework"],
        device=values["hwcal_device"],
        frequency_mhz=values["hwcal_frequency_mhz"],
        hardware_id=values["hwcal_hardware_id"],
        registry=registry,
        quick=values["hwcal_quick"],
        sizes=values["hwcal_sizes"],
        min_gflops=values["hwcal_min_gflops"],
        max_call_s=values["hwcal_max_call_s"] or (CPU_MAX_CALL_S if values["hwcal_device"] == "cpu"
                                                  else GPU_MAX_CALL_S),
        dry_run=values["hwcal_dry_run"],
        force=values["hwcal_force"],
        allow_partial=values["hwcal_allow_partial"],
        file_disturbed=values["hwcal_file_disturbed"],
        shapes=values["hwcal_shapes"],
        full=values["hwcal_full"],
        kernel_names=values["hwcal_kernel_names"] or values["hwcal_full"],
        memory_s=values["hwcal_memory_s"],
        target_s=values["hwcal_target_s"],
    )
