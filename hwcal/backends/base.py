"""The one interface every framework implements; benchmarks are written once against it.

A backend knows how to make operands of a precision on its device, launch the kernel, wait for the
device, convert blocks to fp64 for verification, and say honestly what it cannot run.
"""

from __future__ import annotations

import contextlib
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hwcal.backends.nn import NnKernels
from hwcal.backends.support import Support
from hwcal.machine.caches import CacheInfo, detect_cpu_caches
from hwcal.precisions import PRECISIONS


@dataclass
class GemmOperands:
    """Operands and output buffer of one C (M x N) = A (M x K) @ B (K x N) on the backend's device.

    Square by default (``m`` and ``k`` unset: M = K = N). ``layout`` says how A and B lie in memory, as
    BLAS names it: "NN" both row-major, "NT" B column-major, "TN" A column-major.
    """

    precision: str
    n: int
    a: Any
    b: Any
    out: Any = None
    # Extra kernel arguments (fp8 scales) and what the operands were drawn from.
    extra: dict[str, Any] = field(default_factory=dict)
    operand_range: float | None = None
    m: int | None = None
    k: int | None = None
    layout: str = "NN"

    @property
    def rows(self) -> int:
        return self.m or self.n

    @property
    def inner(self) -> int:
        return self.k or self.n

    @property
    def flops(self) -> int:
        """2*M*N*K: one multiply and one add per inner-product term."""
        return 2 * self.rows * self.n * self.inner


def integer_operand_range(n: int, accumulator_bits: int, cap: int = 100) -> tuple[int, bool]:
    """Operand bound R for integer GEMM, and whether the accumulator can still wrap.

    R is the largest value with n*R^2 within the accumulator, so sums cannot overflow; where even
    R = 1 cannot fit (numpy's int8 matmul accumulates in int8), R = 1 and results wrap modulo
    2**bits, which verification then checks exactly.
    """
    limit = 2 ** (accumulator_bits - 1) - 1
    r = min(cap, math.isqrt(limit // n)) if n <= limit else 0
    return (r, False) if r >= 1 else (1, True)


class Backend(ABC):
    framework: str
    device: str  # "cpu", "cuda:0"
    device_type: str  # "cpu" or "gpu": the registry folder
    device_name: str | None = None  # the accelerator's own name (GPUs), for key detection
    # Timing policy: a round lasts at least min_round_s (launch and sync overhead < 1% on GPUs);
    # warm-up long enough for clocks to rise before the first timed round.
    min_round_s: float = 0.001
    warmup_s: float = 0.0
    is_async: bool = False

    @abstractmethod
    def precisions(self) -> list[str]:
        """Precisions this backend can attempt, canonical order."""

    @abstractmethod
    def support(self, precision: str) -> Support: ...

    @abstractmethod
    def make_operands(self, precision: str, n: int, seed: int, layout: str = "NN", m: int | None = None,
                      k: int | None = None) -> GemmOperands:
        """Operands of one (square unless ``m``/``k`` say otherwise) GEMM in ``layout``; a layout the
        framework's kernel cannot take raises when ``gemm`` runs it, with the framework's own words."""

    def burst_times(self, launch: Callable[[], Any], out: Any, count: int) -> list[float]:
        """Seconds of ``count`` calls timed by the device, each after its caches were flushed and ``out``
        re-written (the max-achievable search's burst method); devices without a device timer cannot."""
        raise NotImplementedError(f"{self.framework} on {self.device} has no device timer for burst timing")

    def gemm_layouts(self, precision: str) -> tuple[str, ...]:
        """Operand layouts worth trying for a precision (the fastest is used and filed)."""
        return ("NN",)

    @abstractmethod
    def gemm(self, ops: GemmOperands) -> Any:
        """Launch C = A @ B into ``ops.out`` where possible; returns C. Does not wait for the device."""

    def synchronize(self) -> None:  # noqa: B027 -- synchronous devices need nothing
        """Block until the device has finished all launched work (no-op on synchronous CPUs)."""

    def warm_up(self) -> None:  # noqa: B027 -- CPUs need no warm-up beyond the first call
        """Bring clocks up before the first timed case (GPUs); once per session, no-op on CPUs."""

    def device_idle(self) -> bool | None:
        """Whether all launched work has finished; None where the device is synchronous (CPUs)."""
        return None

    def device_timer(self) -> DeviceTimer | None:
        """Events timed by the device itself (CUDA events); None where wall time is the truth."""
        return None

    @abstractmethod
    def as_f64(self, x: Any) -> Any:
        """An fp64 copy of an array (or a slice of one) on the backend's device."""

    @abstractmethod
    def from_host(self, values: Any) -> Any:
        """Move a host numpy array to the backend's device (fp64)."""

    def bytes_per_gemm(self, precision: str, n: int) -> int:
        """Device bytes one GEMM case needs: A, B, C and verification blocks."""
        itemsize = max(1, PRECISIONS[precision].bits // 8)
        return 3 * n * n * itemsize + 8 * n * 1024 + 8 * 8 * n

    def free_memory_bytes(self) -> int:
        """Bytes a case may allocate: the host's available memory (devices with their own memory override)."""
        import psutil

        return int(psutil.virtual_memory().available)

    @contextlib.contextmanager
    def precision_mode(self, precision: str) -> Iterator[dict[str, object]]:
        """Set framework modes a precision needs (TF32 on only for tf32), restored afterwards."""
        yield {}

    def default_sizes(self, quick: bool) -> list[int]:
        return [64, 256, 1024] if quick else [32, 64, 128, 256, 512, 1024, 2048, 4096]

    @abstractmethod
    def facts(self) -> dict[str, object]:
        """Framework versions and library details for the calibration's metadata."""

    # ==== STREAM memory bandwidth (hwcal.measure.stream) ===============================================
    # Defaults: the host CPU's caches, one thread; the kernels themselves each framework provides.
    stream_element_bytes: int = 8  # STREAM's default element type is double

    def stream_caches(self) -> CacheInfo:
        """Data caches the STREAM sweep must outgrow (host CPU caches here; a GPU backend gives its L2)."""
        return self._host_caches

    @functools.cached_property
    def _host_caches(self) -> CacheInfo:
        """The host's caches, read once per backend: sysfs does not change under a run, and a torch run read
        it per BLAS case (0.37 s)."""
        return detect_cpu_caches()

    def stream_threads(self) -> int:
        """Threads the element-wise kernels use (numpy's ufuncs run on one)."""
        return 1

    def stream_arrays(self, n: int, values: tuple[float, float, float]) -> StreamArrays:
        """STREAM's a, b, c: ``n`` fp64 elements each, filled with ``values`` (first touch happens here,
        outside any timed round)."""
        raise NotImplementedError(f"{self.framework} backend has no STREAM kernels")

    def stream_kernel(self, kernel: str, arrays: StreamArrays, scalar: float) -> None:
        """Launch one pass of copy (c=a), scale (b=s*c), add (c=a+b) or triad (a=b+s*c); does not wait."""
        raise NotImplementedError(f"{self.framework} backend has no STREAM kernels")

    def stream_call(self, kernel: str, arrays: StreamArrays, scalar: float) -> Callable[[], Any]:
        """One pass of ``kernel`` bound to its operands: what the rounds time, the framework's own call with none
        of this backend's dispatch around it (numpy's add on 2 x 8 KiB took 0.50 us through stream_kernel's
        if-chain, 0.43 us as np.add itself: small sizes were filed 15-30 % slow). Default: stream_kernel bound."""
        return functools.partial(self.stream_kernel, kernel, arrays, scalar)

    def stream_method(self, kernel: str) -> StreamMethod:
        """How the kernel is computed here, and how many array traversals that really makes."""
        raise NotImplementedError(f"{self.framework} backend has no STREAM kernels")

    def stream_extremes(self, x: Any) -> tuple[float, float]:
        """(min, max) of a whole array: STREAM's arrays hold one value each, so this validates every element."""
        raise NotImplementedError(f"{self.framework} backend has no STREAM kernels")

    def stream_release(self) -> None:  # noqa: B027 -- host memory goes back on its own
        """After STREAM arrays are dropped: hand cached device memory back, so free memory reads true."""

    # ==== The memory system (hwcal.measure.memory_system) ===============================================
    def host_array(self, array: Any) -> Any:
        """A host fp64 numpy array as this framework's array, sharing its memory (pinned all-core STREAM)."""
        return array

    @contextlib.contextmanager
    def one_thread_per_call(self) -> Iterator[None]:
        """Each call on one thread while pinned workers run (torch: one intra-op thread), restored after."""
        yield

    def intraop_threads(self) -> int | None:
        """Threads the framework spreads one element-wise call over by itself (torch); None for numpy."""
        return None

    def tier_round_times(self, kernel: str, working_set_bytes: int, launches: int, rounds: int
                         ) -> tuple[list[float], str] | None:
        """GPUs: seconds of each of ``rounds`` rounds of ``launches`` back-to-back launches of ``kernel`` (read,
        write, triad, update; the update's launches an odd count) over ``working_set_bytes``, timed on the
        device, and the method; None elsewhere."""
        return None

    # ==== BLAS1/BLAS2 (hwcal.measure.blas) ==============================================================
    # Each framework's fastest route for dot, axpy, scal and gemv; a backend without them runs none.
    def blas_precisions(self) -> list[str]:
        """Precisions the BLAS1/BLAS2 sweep tries, most asked first (none where a backend has no BLAS)."""
        return []

    def blas_operands(self, operation: str, precision: str, n: int, m: int, seed: int) -> BlasOperands:
        """Operands of one ``operation`` call (``m`` is gemv's rows), first touched here, outside any round."""
        raise NotImplementedError(f"{self.framework} backend has no BLAS1/BLAS2 kernels")

    def blas_call(self, ops: BlasOperands, alpha: float | None = None) -> Any:
        """Launch one call; axpy/scal take the next scalar of ``ops.alphas`` unless ``alpha`` is given.
        Does not wait for the device."""
        raise NotImplementedError(f"{self.framework} backend has no BLAS1/BLAS2 kernels")

    def blas_bound(self, ops: BlasOperands) -> Callable[[], Any]:
        """One call of ``ops`` bound to its operands, as the rounds time it: the framework's call itself where it
        has one (``stream_call`` says why), axpy/scal taking the next scalar of ``ops.alphas`` each call.
        Default: blas_call bound."""
        return functools.partial(self.blas_call, ops)

    def blas_kernel(self, operation: str, precision: str) -> str:
        """The call made and the library or loop behind it."""
        return ""

    def blas_threads(self, operation: str) -> int | None:
        """Host threads the operation's kernel may use (None on a GPU)."""
        return 1

    def blas_support(self, operation: str, precision: str) -> Support:
        """Whether the operation runs in this precision here: a tiny call, the framework's own words if not."""
        if precision not in self.blas_precisions():
            return Support(False, f"{self.framework} has no {precision} {operation} route calibrated")
        try:
            ops = self.blas_operands(operation, precision, 8, 8, seed=0)
            self.blas_call(ops)
            self.synchronize()
        except Exception as exc:  # the framework's own words are the reason
            text = (str(exc).strip().splitlines() or [""])[0]
            return Support(False, f"{type(exc).__name__}: {text}"[:300])
        return Support(True, kernel=self.blas_kernel(operation, precision))

    # ==== GEMM beyond square (hwcal.measure.shapes) =====================================================
    def shape_precisions(self) -> list[str]:
        """Precisions the shape families run in: the ones with a fast GEMM kernel here."""
        return []

    def make_shape_operands(self, precision: str, m: int, n: int, k: int, batch: int, seed: int,
                            rotate: bool = True, b: Any = None) -> ShapeOperands:
        """Operands of one shaped GEMM; ``rotate``: several sets used in turn (a GPU's L2 flushed), else the same
        set every call (warm); ``b``: a B of this precision and shape to use (one set, not rotated)."""
        raise NotImplementedError(f"{self.framework} backend has no shaped GEMM")

    def gemm_shape(self, ops: ShapeOperands) -> Any:
        """Launch C = A @ B (batched where ``ops.batch`` > 1) into ``ops.out``; returns C. Does not wait."""
        raise NotImplementedError(f"{self.framework} backend has no shaped GEMM")

    def shape_call(self, ops: ShapeOperands) -> Callable[[], Any]:
        """One ``gemm_shape`` launch bound to ``ops``, as the rounds time it: the framework's call itself where
        no operand sets rotate (``stream_call`` says why). Default: gemm_shape bound."""
        return functools.partial(self.gemm_shape, ops)

    def shape_kernel(self, precision: str, batch: int) -> str:
        return ""

    def shape_layout(self, batch: int) -> str:
        """How the operands lie in memory (part of the measurement)."""
        return ""

    # ==== launch and dispatch floors (hwcal.measure.floors) =============================================
    def floor_calls(self) -> dict[str, FloorCall]:
        """Per operation, its smallest call (1 element, 1x1): what a model adds per kernel launched."""
        return {}

    def fork_join_call(self) -> FloorCall | None:
        """A CPU call the framework splits over all its threads yet short enough that their joining paces it
        (the interference watch's fork-join look); None where calls run on one thread or on a GPU."""
        return None

    def pool_splits(self, operation: str, precision: str, m: int = 1, n: int = 1, k: int = 1) -> bool:
        """Whether the BLAS's thread pool splits this operation's calls (``gemm`` of one M x K @ K x N matrix, or
        a BLAS operation) in this precision: the cases the thread-pool look judges."""
        return False

    def pool_call(self) -> FloorCall | None:
        """A CPU call the BLAS splits over its thread pool, whose pace follows the slowest pool thread's core (the
        watch's thread-pool look, for frameworks whose own calls run on one thread); None where there is none."""
        return None

    # ==== convolution, attention and fused ops (hwcal.backends.nn) =========================================
    def nn_kernels(self) -> NnKernels:
        """The framework's convolution, attention and fused-op kernels; this default has none (the reason)."""
        return NnKernels(self.framework, f"{self.framework} has no convolution, attention or fused-op kernels")


class DeviceTimer(ABC):
    """Times a callable with the device's own clock (e.g. CUDA events), in seconds."""

    @abstractmethod
    def time(self, fn: Any) -> float: ...


# ==== STREAM memory bandwidth (hwcal.measure.stream) ===================================================
@dataclass
class StreamArrays:
    """STREAM's three arrays on the backend's device, ``n`` elements of ``element_bytes`` each."""

    n: int
    element_bytes: int
    a: Any
    b: Any
    c: Any


@dataclass(frozen=True)
class StreamMethod:
    """How one STREAM kernel runs: the calls made, and the array traversals they really make (numpy's
    two-pass triad makes 5 where STREAM counts 3; the figure filed is STREAM's count all the same)."""

    description: str
    arrays_moved: int


# ==== BLAS1/BLAS2, GEMM shapes and launch floors (hwcal.measure.blas, .shapes, .floors) =================
BLAS_OPERATIONS = ("dot", "axpy", "scal", "gemv")
# axpy and scal run in place, so repeated launches alternate their scalar to keep values bounded:
# axpy +-0.5 (y oscillates around its start), scal 2 and 0.5 (exact in every binary float format).
AXPY_ALPHAS = (0.5, -0.5)
# The launch floors' vectors: small enough that the work is nothing, large enough for the general path (numpy
# takes a scalar path on a 1-element array).
FLOOR_ELEMENTS = 16
# A large CPU operand of a shaped GEMM repeats one random block of this many values (a prime: the block lines up
# with no row length): drawing every normal cost more than timing the case.
SHAPE_BLOCK = 65537
SCAL_ALPHAS = (2.0, 0.5)


@dataclass
class BlasOperands:
    """Operands of one BLAS1/BLAS2 call on the backend's device.

    dot: ``x . y`` into ``result``; axpy: ``y += alpha x``; scal: ``x *= alpha``; gemv: ``y = A x``
    with A ``m`` x ``n`` row-major.
    """

    operation: str
    precision: str
    n: int
    m: int = 1
    x: Any = None
    y: Any = None
    a: Any = None
    result: Any = None
    alphas: Iterator[float] | None = None  # axpy/scal: the scalar of each launch, cycling
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ShapeOperands:
    """Operands of one C = A @ B of any shape: A (batch,) m x k, B (batch,) k x n, row-major; ``batch``
    is 1 for a plain GEMM. Small operands rotate through ``extra["sets"]`` on GPUs (L2 flushed)."""

    precision: str
    m: int
    n: int
    k: int
    batch: int
    a: Any
    b: Any
    out: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """2*B*M*N*K: one multiply and one add per inner-product term."""
        return 2 * self.batch * self.m * self.n * self.k


@dataclass(frozen=True)
class FloorCall:
    """The smallest call of one operation: a zero-argument launcher and what it does."""

    launch: Callable[[], Any]
    description: str
    precision: str
