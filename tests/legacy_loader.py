"""The original system's calibration loader, encoded from ``SEED-FORMAT.md`` (its contract) as tests use it.

"Strict" classes are built with ``cls(**data)``: an unknown key or a missing required key raises
TypeError. "Filtered" classes drop unknown keys first, but still require the required ones. On top of
what the original does, required fields are type-checked loosely (a required number must be an int or
float, not None or a bool; a required string a str ...), and the enumerated fields (device_type,
framework, a check's status) must hold one of their values: a file that only loads because Python does
not check annotations would still break the models that use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

Number = (int, float)


def _is(value: object, kind: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and kind is not bool:
        return False
    return isinstance(value, kind)


def _check(obj: object, kinds: dict[str, type | tuple[type, ...]],
           optional: dict[str, type | tuple[type, ...]] | None = None) -> None:
    for name, kind in kinds.items():
        value = getattr(obj, name)
        if not _is(value, kind):
            raise TypeError(f"{type(obj).__name__}.{name}: {value!r} is not {kind}")
    for name, kind in (optional or {}).items():
        value = getattr(obj, name)
        if value is not None and not _is(value, kind):
            raise TypeError(f"{type(obj).__name__}.{name}: {value!r} is not {kind} or None")


def _filtered(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


# ---- metadata (filtered) ----------------------------------------------------------------------------

@dataclass
class CPUClockInfo:
    current_freq_mhz: float
    query_method: str
    min_freq_mhz: float | None = None
    max_freq_mhz: float | None = None
    base_freq_mhz: float | None = None
    per_core_freq_mhz: list[float] = field(default_factory=list)
    governor: str | None = None
    driver: str | None = None
    turbo_enabled: bool | None = None

    def __post_init__(self) -> None:
        _check(self, {"current_freq_mhz": Number, "query_method": str},
               {"min_freq_mhz": Number, "max_freq_mhz": Number, "base_freq_mhz": Number, "per_core_freq_mhz": list,
                "governor": str, "driver": str, "turbo_enabled": bool})


@dataclass
class GPUClockInfo:
    sm_clock_mhz: int
    query_method: str
    mem_clock_mhz: int | None = None
    max_sm_clock_mhz: int | None = None
    max_mem_clock_mhz: int | None = None
    power_draw_watts: float | None = None
    power_limit_watts: float | None = None
    temperature_c: float | None = None
    nvpmodel_mode: int | None = None
    power_mode_name: str | None = None

    def __post_init__(self) -> None:
        _check(self, {"sm_clock_mhz": int, "query_method": str},
               {"mem_clock_mhz": Number, "max_sm_clock_mhz": Number, "max_mem_clock_mhz": Number,
                "power_draw_watts": Number, "power_limit_watts": Number, "temperature_c": Number,
                "nvpmodel_mode": int, "power_mode_name": str})


@dataclass
class PreflightCheck:
    STATUSES: ClassVar[tuple[str, ...]] = ("passed", "warning", "failed", "skipped")
    name: str
    status: str
    message: str
    current_value: str | None = None
    expected_value: str | None = None

    def __post_init__(self) -> None:
        _check(self, {"name": str, "status": str, "message": str}, {"current_value": str, "expected_value": str})
        if self.status not in self.STATUSES:
            raise ValueError(f"PreflightCheck.status {self.status!r} is not one of {self.STATUSES}")


@dataclass
class PreflightReport:
    """Strict (SEED-FORMAT.md names no filtering for it; only its checks are filtered)."""

    timestamp: str
    passed: bool
    forced: bool = False
    checks: list[PreflightCheck] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check(self, {"timestamp": str, "passed": bool, "forced": bool, "checks": list})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreflightReport:
        data = dict(data)
        data["checks"] = [_filtered(PreflightCheck, c) for c in data.get("checks") or []]
        return cls(**data)


@dataclass
class CalibrationMetadata:
    DEVICE_TYPES: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    FRAMEWORKS: ClassVar[tuple[str, ...]] = ("numpy", "pytorch")
    hardware_name: str
    calibration_date: str
    calibration_tool_version: str
    cpu_model: str
    cpu_count: int
    total_memory_gb: float
    python_version: str
    pytorch_version: str | None = None
    numpy_version: str | None = None
    num_warmup_runs: int = 0
    num_measurement_runs: int = 0
    device_type: str = "cpu"
    platform_architecture: str = ""
    framework: str = "numpy"
    gpu_clock: GPUClockInfo | None = None
    cpu_clock: CPUClockInfo | None = None
    preflight: PreflightReport | None = None

    def __post_init__(self) -> None:
        _check(self, {"hardware_name": str, "calibration_date": str, "calibration_tool_version": str,
                      "cpu_model": str, "cpu_count": int, "total_memory_gb": Number, "python_version": str,
                      "num_warmup_runs": int, "num_measurement_runs": int, "device_type": str,
                      "platform_architecture": str, "framework": str},
               {"pytorch_version": str, "numpy_version": str})
        if self.device_type not in self.DEVICE_TYPES:
            raise ValueError(f"metadata.device_type {self.device_type!r} is not one of {self.DEVICE_TYPES}")
        if self.framework not in self.FRAMEWORKS:
            raise ValueError(f"metadata.framework {self.framework!r} is not one of {self.FRAMEWORKS}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationMetadata:
        data = dict(data)
        for name, kind in (("gpu_clock", GPUClockInfo), ("cpu_clock", CPUClockInfo)):
            if data.get(name) is not None:
                data[name] = _filtered(kind, data[name])
        if data.get("preflight") is not None:
            data["preflight"] = PreflightReport.from_dict(data["preflight"])
        return _filtered(cls, data)


# ---- precision matrix and operation profiles (strict) -------------------------------------------

@dataclass
class PrecisionCapabilityMatrix:
    hardware_name: str
    supported_precisions: list[str] = field(default_factory=list)
    unsupported_precisions: list[str] = field(default_factory=list)
    peak_gflops_by_precision: dict[str, float] = field(default_factory=dict)
    speedup_vs_fp32: dict[str, float] = field(default_factory=dict)
    theoretical_peaks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self, {"hardware_name": str, "supported_precisions": list, "unsupported_precisions": list,
                      "peak_gflops_by_precision": dict, "speedup_vs_fp32": dict, "theoretical_peaks": dict})
        for name in ("peak_gflops_by_precision", "speedup_vs_fp32", "theoretical_peaks"):
            for p, v in getattr(self, name).items():
                if not _is(v, Number):
                    raise TypeError(f"precision_matrix.{name}.{p}: {v!r} is not a number")


@dataclass
class PrecisionTestResult:
    precision: str
    supported: bool
    failure_reason: str | None = None
    measured_gops: float | None = None
    efficiency: float | None = None
    mean_latency_ms: float | None = None
    std_latency_ms: float | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    speedup_vs_fp32: float | None = None
    test_size: int = 0
    num_trials: int = 0
    arithmetic_intensity: float | None = None
    achieved_bandwidth_gbps: float | None = None

    def __post_init__(self) -> None:
        _check(self, {"precision": str, "supported": bool, "test_size": int, "num_trials": int},
               {"failure_reason": str, **{k: Number for k in (
                   "measured_gops", "efficiency", "mean_latency_ms", "std_latency_ms", "min_latency_ms",
                   "max_latency_ms", "speedup_vs_fp32", "arithmetic_intensity", "achieved_bandwidth_gbps")}})


@dataclass
class OperationCalibration:
    operation_type: str
    measured_gflops: float
    efficiency: float
    achieved_bandwidth_gbps: float
    memory_bound: bool
    compute_bound: bool
    arithmetic_intensity: float
    batch_size: int
    input_shape: list[int]
    output_shape: list[int]
    mean_latency_ms: float
    std_latency_ms: float
    min_latency_ms: float
    max_latency_ms: float
    num_trials: int
    extra_params: dict[str, Any] = field(default_factory=dict)
    precision_results: dict[str, PrecisionTestResult] = field(default_factory=dict)

    # The original enum (OperationType in its calibration/schema.py, branes-ai/graphs), whole: SEED-FORMAT.md
    # names its first members "and more".
    OPERATION_TYPES: ClassVar[tuple[str, ...]] = (
        "blas1_dot", "blas1_axpy", "blas1_scal", "blas2_gemv", "blas2_ger", "blas3_gemm", "stream_copy",
        "stream_scale", "stream_add", "stream_triad", "matmul", "conv2d", "linear", "conv1d", "depthwise_conv",
        "transpose_conv", "relu", "gelu", "sigmoid", "add", "mul", "softmax", "layernorm", "batchnorm", "maxpool",
        "avgpool", "adaptive_pool", "attention", "flash_attention", "embedding", "unknown")

    def __post_init__(self) -> None:
        _check(self, {"operation_type": str, "measured_gflops": Number, "efficiency": Number,
                      "achieved_bandwidth_gbps": Number, "memory_bound": bool, "compute_bound": bool,
                      "arithmetic_intensity": Number, "batch_size": int, "input_shape": list, "output_shape": list,
                      "mean_latency_ms": Number, "std_latency_ms": Number, "min_latency_ms": Number,
                      "max_latency_ms": Number, "num_trials": int, "extra_params": dict, "precision_results": dict})
        if self.operation_type not in self.OPERATION_TYPES:
            raise ValueError(f"operation_type {self.operation_type!r} is not one the original enum names")
        for shape in (self.input_shape, self.output_shape):
            if not all(_is(s, int) for s in shape):
                raise TypeError(f"shape {shape!r} is not a list of int")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperationCalibration:
        data = dict(data)
        data["precision_results"] = {p: PrecisionTestResult(**r) for p, r in (data.get("precision_results")
                                                                               or {}).items()}
        return cls(**data)


# ---- the calibration ------------------------------------------------------------------------------

@dataclass
class HardwareCalibration:
    metadata: CalibrationMetadata
    theoretical_peak_gflops: float
    theoretical_bandwidth_gbps: float
    best_measured_gflops: float = 0.0
    avg_measured_gflops: float = 0.0
    worst_measured_gflops: float = 0.0
    measured_bandwidth_gbps: float = 0.0
    bandwidth_efficiency: float = 0.0
    best_efficiency: float = 0.0
    avg_efficiency: float = 0.0
    worst_efficiency: float = 0.0
    operation_profiles: dict[str, OperationCalibration] = field(default_factory=dict)
    fusion_profiles: dict[str, Any] = field(default_factory=dict)
    precision_matrix: PrecisionCapabilityMatrix | None = None

    def __post_init__(self) -> None:
        _check(self, {name: Number for name in (
            "theoretical_peak_gflops", "theoretical_bandwidth_gbps", "best_measured_gflops", "avg_measured_gflops",
            "worst_measured_gflops", "measured_bandwidth_gbps", "bandwidth_efficiency", "best_efficiency",
            "avg_efficiency", "worst_efficiency")})
        _check(self, {"operation_profiles": dict, "fusion_profiles": dict})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareCalibration:
        """Other top-level keys are ignored; ``metadata`` and the two peaks are required (KeyError)."""
        pm = data.get("precision_matrix")
        return cls(
            metadata=CalibrationMetadata.from_dict(data["metadata"]),
            theoretical_peak_gflops=data["theoretical_peak_gflops"],
            theoretical_bandwidth_gbps=data["theoretical_bandwidth_gbps"],
            **{k: data[k] for k in (
                "best_measured_gflops", "avg_measured_gflops", "worst_measured_gflops", "measured_bandwidth_gbps",
                "bandwidth_efficiency", "best_efficiency", "avg_efficiency", "worst_efficiency", "fusion_profiles")
               if k in data},
            operation_profiles={k: OperationCalibration.from_dict(v)
                                for k, v in (data.get("operation_profiles") or {}).items()},
            precision_matrix=PrecisionCapabilityMatrix(**pm) if pm is not None else None,
        )

    def get_operation(self, operation_type: str, **params: Any) -> OperationCalibration | None:
        """The first profile of the type whose extra_params match every given param, else the first of the
        type, else None."""
        first = None
        for prof in self.operation_profiles.values():
            if prof.operation_type != operation_type:
                continue
            if all(prof.extra_params.get(k) == v for k, v in params.items()):
                return prof
            if first is None:
                first = prof
        return first

    def get_efficiency(self, operation_type: str, **params: Any) -> float:
        prof = self.get_operation(operation_type, **params)
        return prof.efficiency if prof is not None else self.avg_efficiency
