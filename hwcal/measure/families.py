"""The operation families a calibration measures, in one table: the pytest fixture each benchmark test
takes, how its cases are planned and named, and which operations a case measures (the partial-run rule
and ``metadata.selection`` name them). The plugin parametrises every family from here; a new kind of
measurement is one more entry (and its body and record type)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwcal.measure.blas import blas_cases, case_id
from hwcal.measure.compute_ceiling import CASES as CEILING_CASES
from hwcal.measure.energy import energy_cases
from hwcal.measure.floors import floor_cases
from hwcal.measure.gemm import gemm_cases
from hwcal.measure.memory_system import memory_system_cases
from hwcal.measure.nn_grid import family_cases
from hwcal.measure.session import CalibrationSession
from hwcal.measure.shapes import shape_cases
from hwcal.measure.stream import size_label, stream_cases


@dataclass(frozen=True)
class Family:
    """One kind of measurement: its fixture, its cases (parameter, test id) in run order, its operations."""

    name: str
    fixture: str
    cases: Callable[[CalibrationSession], list[tuple[Any, str]]]
    operations: tuple[str, ...]
    operation_of: Callable[[Any], str] | None = None  # which of ``operations`` one case measures

    def operation(self, param: Any) -> str:
        return self.operation_of(param) if self.operation_of is not None else self.operations[0]


FAMILIES: tuple[Family, ...] = (
    Family("gemm", "gemm_case", lambda s: [((p, n), f"{p}-{n}") for p, n in gemm_cases(s)], ("gemm",)),
    # Size-major, ascending, STREAM's kernel order: the four kernels of a size share its arrays.
    Family("stream", "stream_case",
           lambda s: [((k, b), f"{k}-{size_label(b)}") for k, b in stream_cases(s.backend, s.options.quick)],
           ("stream",)),
    # Operation-major, the DRAM size first in each series.
    Family("blas", "blas_case", lambda s: [(c, case_id(*c)) for c in blas_cases(s.backend, s.options.quick)],
           ("dot", "axpy", "scal", "gemv"), operation_of=lambda c: str(c[0])),
    Family("gemm_shapes", "shape_case", lambda s: [((p, sh), f"{p}-{sh.label}") for p, sh in shape_cases(s)],
           ("gemm_shapes",)),
    Family("launch_floors", "floor_case", lambda s: [(c, "-".join(c)) for c in floor_cases(s.backend)],
           ("launch_floors",)),
    Family("max_achievable", "max_achievable_case", lambda s: [(p, p) for p in s.backend.precisions()],
           ("max_achievable",)),
    Family("compute_ceiling", "compute_ceiling_case", lambda s: [(c, c) for c in CEILING_CASES],
           ("compute_ceiling",)),
    # Cache tiers, DRAM, latency and all-core STREAM (a GPU: its L2 beside HBM), after the STREAM sweep.
    Family("memory_system", "memory_system_case",
           lambda s: [(c, c) for c in memory_system_cases(s.backend.device_type)], ("memory_system",)),
    # Layers of public edge models (hwcal.measure.nn_grid); one "unsupported" case where the framework has none.
    Family("conv", "conv_case", lambda s: family_cases(s, "conv"), ("conv2d",)),
    Family("conv_bn_relu", "conv_bn_relu_case", lambda s: family_cases(s, "conv_bn_relu"), ("conv_bn_relu",)),
    Family("sdpa", "sdpa_case", lambda s: family_cases(s, "sdpa"), ("sdpa",)),
    Family("fused", "fused_op_case", lambda s: family_cases(s, "fused"), ("fused_ops",)),
    # Run last (the plugin orders it so): at the shapes and sizes the families above found.
    Family("energy", "energy_case", energy_cases, ("energy",)),
)
# Operations a complete calibration measures; a run that collects none of one says so (partial).
OPERATIONS: tuple[str, ...] = tuple(op for family in FAMILIES for op in family.operations)


def family_of(fixturenames: Any) -> Family | None:
    """The family a collected test belongs to (by the fixture it takes), None for a test that is no benchmark."""
    return next((f for f in FAMILIES if f.fixture in fixturenames), None)
