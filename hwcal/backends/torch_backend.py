"""PyTorch on a CPU or a CUDA GPU: every precision the device and build can run, and honest
reasons for the ones they cannot.

GPU rounds are made long enough that launch and sync overhead is noise, small problems rotate
through several operand sets so L2 cannot hold them between launches, and TF32 is on only for tf32.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

import hwcal.backends.torch_gemm as torch_gemm
from hwcal.backends.base import (
    Backend,
    DeviceTimer,
    GemmOperands,
    StreamArrays,
    StreamMethod,
    Support,
    integer_operand_range,
)
from hwcal.backends.torch_nn import TorchNnKernels
from hwcal.backends.torch_ops import TorchOperations
from hwcal.errors import HwcalError
from hwcal.machine import collect_host
from hwcal.machine.caches import CacheInfo, gpu_caches
from hwcal.machine.gpu import collect_gpu
from hwcal.precisions import CANONICAL_ORDER

_FLOAT, _FP8, _INT = torch_gemm.FLOAT, torch_gemm.FP8, torch_gemm.INT


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


class CudaEventTimer(DeviceTimer):
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def time(self, fn: Any) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


class TorchBackend(TorchOperations, Backend):  # BLAS, shapes and floors: torch_ops
    framework = "pytorch"

    def __init__(self, device: str = "cpu") -> None:
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise HwcalError(f"--device {device}: torch {torch.__version__} sees no CUDA device "
                                 f"(built with CUDA {torch.version.cuda or 'none'}); use --device cpu")
            index = int(device.split(":")[1]) if ":" in device else 0
            count = torch.cuda.device_count()
            if index >= count:
                raise HwcalError(f"--device {device}: this host has {count} CUDA device(s), "
                                 f"cuda:0 .. cuda:{count - 1}")
            self.device = f"cuda:{index}"
            self.device_type = "gpu"
            self.is_async = True
            self.min_round_s = 0.02  # >= 2000x a ~10 us launch+sync: overhead well under 1%
            self.warmup_s = 0.05
            self._torch_device = torch.device(self.device)
            torch.cuda.set_device(self._torch_device)
            self.capability: tuple[int, int] | None = torch.cuda.get_device_capability(self._torch_device)
            props = torch.cuda.get_device_properties(self._torch_device)
            self.l2_bytes = int(getattr(props, "L2_cache_size", 0) or 50 * 2**20)
            self.device_name = props.name
        else:
            self.device = "cpu"
            self.device_type = "cpu"
            self._torch_device = torch.device("cpu")
            self.capability = None
            self.l2_bytes = 0
        self._warm = False
        self._nn: TorchNnKernels | None = None
        self._timers = torch_gemm.EventTimers(self._torch_device)

    # ---- what can run -------------------------------------------------------------------------
    def precisions(self) -> list[str]:
        return [p for p in CANONICAL_ORDER if p in _FLOAT or p in _FP8 or p in _INT]

    def support(self, precision: str) -> Support:
        cuda = self.device_type == "gpu"
        if precision == "tf32":
            if not cuda:
                return Support(False, "TF32 is a tensor-core mode of NVIDIA GPUs (compute capability >= 8.0); "
                                      "on a CPU torch computes it as plain fp32")
            if self.capability is not None and self.capability < (8, 0):  # not None: set for every GPU
                return Support(False, f"no TF32 before compute capability 8.0 (this device: {self._cc()})")
        if precision in _FP8:
            if _FP8[precision] is None or not hasattr(torch, "_scaled_mm"):
                return Support(False, f"torch {torch.__version__} has no {precision} dtype or _scaled_mm")
            if cuda and self.capability is not None and self.capability < (8, 9):
                return Support(False, f"no fp8 GEMM before compute capability 8.9 (this device: {self._cc()})")
        refusals = []
        for layout in self.gemm_layouts(precision):  # runnable when any layout runs (fp8 takes only NT)
            try:
                with self.precision_mode(precision):
                    self.gemm(self.make_operands(precision, 32, seed=0, layout=layout))
                    self.synchronize()
            except Exception as exc:  # the framework's own words are the reason
                refusals.append(_first_line(exc))
                continue
            return Support(True, kernel=self._kernel(precision),
                           emulation_evidence=self._cpu_isa_evidence(precision))
        return Support(False, refusals[0])

    def _cpu_isa_evidence(self, precision: str) -> str:
        """On a CPU, whether its ISA has instructions for the precision (flags from /proc/cpuinfo)."""
        if self.device_type != "cpu":
            return ""
        cpu = collect_host()["cpu"]
        flags = set(cpu.get("isa_flags", [])) if isinstance(cpu, dict) else set()
        needs = {"fp16": {"avx512_fp16", "amx_tile", "asimdhp", "fphp"},
                 "bf16": {"avx512_bf16", "amx_bf16", "bf16"},
                 "int8": {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"},
                 "fp8": set(), "fp8_e5m2": set()}.get(precision)
        if needs is None or flags & needs:
            return ""
        wanted = " / ".join(sorted(needs)) if needs else "none exists on current CPUs"
        return (f"no {precision} arithmetic in this CPU's ISA (has {' '.join(sorted(flags)) or 'no flags read'}; "
                f"native needs {wanted}): torch converts the operands in software")

    def nn_kernels(self) -> TorchNnKernels:
        """Convolution, attention and fused-op kernels on this device (``hwcal.backends.torch_nn``), made once."""
        if self._nn is None:
            self._nn = TorchNnKernels(self._torch_device, self.device_type, self._sets_needed, self._cc())
        return self._nn

    def _cc(self) -> str:
        return f"{self.capability[0]}.{self.capability[1]}" if self.capability else "cpu"

    def _kernel(self, precision: str) -> str:
        if self.device_type == "cpu":
            cap = torch.backends.cpu.get_cpu_capability()
            if precision in _INT and precision != "int8":
                return f"torch.mm {precision} (ATen generic loop, CPU {cap})"
            return {"int8": f"torch._int_mm int8 -> int32 (CPU {cap})",
                    "fp8": f"torch._scaled_mm e4m3 -> bf16 (CPU {cap})",
                    "fp8_e5m2": f"torch._scaled_mm e5m2 -> bf16 (CPU {cap})"}.get(
                precision, f"torch.mm {precision} (CPU {cap}, {torch.get_num_threads()} threads)")
        cc = self._cc()
        return {"fp64": f"cuBLAS DGEMM (sm_{cc.replace('.', '')})",
                "fp32": "cuBLAS SGEMM, TF32 off",
                "tf32": "cuBLAS SGEMM with TF32 tensor cores",
                "int8": "torch._int_mm int8 -> int32 (cuBLASLt)",
                "fp8": "torch._scaled_mm e4m3 -> bf16 (cuBLASLt)",
                "fp8_e5m2": "torch._scaled_mm e5m2 -> bf16 (cuBLASLt)"}.get(precision, f"cuBLAS {precision} GEMM")

    @contextlib.contextmanager
    def precision_mode(self, precision: str) -> Iterator[dict[str, object]]:
        before = torch.get_float32_matmul_precision()
        # "highest" keeps fp32 GEMMs in IEEE fp32; "high" lets cuBLAS use TF32 tensor cores.
        torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
        try:
            modes: dict[str, object] = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
            if self.device_type == "gpu":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    modes["cuda_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
            yield modes
        finally:
            torch.set_float32_matmul_precision(before)

    # ---- operands and kernels -----------------------------------------------------------------
    def _sets_needed(self, bytes_one_set: int) -> int:
        """Operand sets to rotate through so that one launch never finds the last one's operands in L2."""
        if self.device_type != "gpu" or bytes_one_set >= 2 * self.l2_bytes:
            return 1
        return min(64, math.ceil(2 * self.l2_bytes / max(1, bytes_one_set)))

    def gemm_layouts(self, precision: str) -> tuple[str, ...]:
        return torch_gemm.LAYOUTS

    def burst_times(self, launch: Any, out: Any, count: int) -> list[float]:
        if self.device_type != "gpu":
            return super().burst_times(launch, out, count)
        return self._timers.burst_times(launch, out, count)

    def make_operands(self, precision: str, n: int, seed: int, layout: str = "NN", m: int | None = None,
                      k: int | None = None) -> GemmOperands:
        gen = torch.Generator(device=self._torch_device).manual_seed(seed)
        rows, inner = m or n, k or n
        bound, wraps, acc_bits = 0, False, 0
        if precision in _INT:
            # _int_mm accumulates int8 in int32; torch.mm accumulates in the operand type.
            acc_bits = 32 if precision == "int8" else int(_INT[precision].itemsize * 8)
            bound, wraps = integer_operand_range(inner, acc_bits, cap=100)
        one_set = (rows * inner + inner * n) * torch_gemm.itemsize(precision)
        sets = [torch_gemm.operands(precision, rows, n, inner, layout, self._torch_device, gen, bound)
                for _ in range(self._sets_needed(one_set))]
        ops = GemmOperands(precision, n, sets[-1][0], sets[-1][1], operand_range=float(bound) if bound else None,
                           m=m, k=k, layout=layout)
        ops.extra.update({"sets": sets, "next": 0, "accumulator_wraps": wraps,
                          **torch_gemm.kernel_extra(precision, self._torch_device)})
        if acc_bits:
            ops.extra["accumulator_bits"] = acc_bits
        # A preallocated output keeps allocation (and, on CPUs, page faults) out of the timed launches.
        ops.out = torch.empty(rows, n, device=self._torch_device, dtype=torch_gemm.out_dtype(precision))
        return ops

    def gemm(self, ops: GemmOperands) -> Any:
        sets = ops.extra["sets"]
        i = ops.extra["next"]
        ops.extra["next"] = (i + 1) % len(sets)
        ops.a, ops.b = sets[i]  # verification checks the operands of the last launch
        return torch_gemm.launch(ops.precision, ops.a, ops.b, ops.out, ops.extra)

    def synchronize(self) -> None:
        if self.device_type == "gpu":
            torch.cuda.synchronize(self._torch_device)

    def warm_up(self) -> None:
        """Run the device hard for about a second once, so the first case does not see idle clocks."""
        if self._warm or self.device_type != "gpu":
            return
        self._warm = True
        x = torch.randn(4096, 4096, device=self._torch_device, dtype=torch.bfloat16)
        end = torch.cuda.Event(enable_timing=True)
        start = torch.cuda.Event(enable_timing=True)
        start.record()
        elapsed = 0.0
        while elapsed < 1.0:
            for _ in range(50):
                torch.mm(x, x)
            end.record()
            end.synchronize()
            elapsed = start.elapsed_time(end) / 1000.0

    def device_idle(self) -> bool | None:
        return torch.cuda.current_stream(self._torch_device).query() if self.device_type == "gpu" else None

    def device_timer(self) -> DeviceTimer | None:
        return CudaEventTimer(self._torch_device) if self.device_type == "gpu" else None

    def as_f64(self, x: Any) -> Any:
        return x.to(torch.float64)

    def from_host(self, values: Any) -> Any:
        return torch.as_tensor(np.asarray(values, dtype=np.float64), device=self._torch_device)

    def bytes_per_gemm(self, precision: str, n: int) -> int:
        itemsize = 1 if precision in _FP8 else (_FLOAT.get(precision) or _INT[precision]).itemsize
        out_itemsize = 2 if precision in _FP8 else (4 if precision == "int8" else itemsize)
        sets = self._sets_needed(2 * n * n * itemsize)
        return sets * 2 * n * n * itemsize + n * n * out_itemsize + 8 * n * 512 * 3

    def free_memory_bytes(self) -> int:
        if self.device_type == "gpu":
            torch.cuda.empty_cache()  # blocks cached from earlier cases are free to this one
            return int(torch.cuda.mem_get_info(self._torch_device)[0])
        return super().free_memory_bytes()

    def default_sizes(self, quick: bool) -> list[int]:
        if self.device_type == "gpu":
            return [1024, 4096, 8192] if quick else [256, 512, 1024, 2048, 4096, 8192, 16384]
        return super().default_sizes(quick)

    # ---- facts and identity -------------------------------------------------------------------
    def facts(self) -> dict[str, object]:
        settings: dict[str, object] = {"num_threads": torch.get_num_threads(),
                                       "float32_matmul_precision": torch.get_float32_matmul_precision()}
        if self.device_type == "cpu":
            settings["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        facts: dict[str, object] = {"framework_version": torch.__version__, "torch_version": torch.__version__,
                                    "numpy_version": np.__version__, "framework_settings": settings}
        if self.device_type == "gpu":
            settings["cuda_runtime_version"] = torch.version.cuda
            settings["cudnn_version"] = torch.backends.cudnn.version()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                settings["fp16_reduced_precision_reduction"] = bool(
                    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction)
            facts["gpu"] = collect_gpu(self._torch_device.index or 0)
        return facts

    # ==== STREAM memory bandwidth (hwcal.measure.stream) ===============================================
    # ATen's element-wise kernels use all of torch's threads on a CPU; torch.add(..., alpha=s) is a
    # fused triad (one pass). On a GPU each kernel is one CUDA launch, timed in synchronised rounds.
    def stream_caches(self) -> CacheInfo:
        if self.device_type != "gpu":
            return super().stream_caches()
        props = torch.cuda.get_device_properties(self._torch_device)
        l2_bytes = int(getattr(props, "L2_cache_size", 0) or 0)
        return gpu_caches(l2_bytes, "torch.cuda.get_device_properties L2_cache_size")

    def stream_threads(self) -> int:
        return torch.get_num_threads() if self.device_type != "gpu" else 1

    def stream_arrays(self, n: int, values: tuple[float, float, float]) -> StreamArrays:
        a, b, c = (torch.full((n,), v, dtype=torch.float64, device=self._torch_device) for v in values)
        return StreamArrays(n, 8, a, b, c)

    def stream_kernel(self, kernel: str, arrays: StreamArrays, scalar: float) -> None:
        self.stream_call(kernel, arrays, scalar)()

    def stream_call(self, kernel: str, arrays: StreamArrays, scalar: float) -> Any:
        a, b, c = arrays.a, arrays.b, arrays.c
        if kernel == "copy":
            return functools.partial(c.copy_, a)
        if kernel == "scale":
            return functools.partial(torch.mul, c, scalar, out=b)
        if kernel == "add":
            return functools.partial(torch.add, a, b, out=c)
        if kernel == "triad":
            return functools.partial(torch.add, b, c, alpha=scalar, out=a)
        raise ValueError(f"unknown STREAM kernel {kernel!r}")

    def stream_method(self, kernel: str) -> StreamMethod:
        where = "one CUDA kernel" if self.device_type == "gpu" else f"{torch.get_num_threads()} threads"
        return {
            "copy": StreamMethod(f"c.copy_(a): one pass, {where}", 2),
            "scale": StreamMethod(f"torch.mul(c, s, out=b): one pass, {where}", 2),
            "add": StreamMethod(f"torch.add(a, b, out=c): one pass, {where}", 3),
            "triad": StreamMethod(f"torch.add(b, c, alpha=s, out=a): fused, one pass, {where}", 3),
        }[kernel]

    def stream_extremes(self, x: Any) -> tuple[float, float]:
        lo, hi = torch.aminmax(x)
        return float(lo.item()), float(hi.item())

    def stream_release(self) -> None:
        if self.device_type == "gpu":
            torch.cuda.empty_cache()  # cached blocks count as used in mem_get_info

    # ==== The memory system (hwcal.measure.memory_system) ===============================================
    def host_array(self, array: Any) -> Any:
        return torch.from_numpy(array)  # shares the pool's memory

    @contextlib.contextmanager
    def one_thread_per_call(self) -> Iterator[None]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def intraop_threads(self) -> int | None:
        return torch.get_num_threads() if self.device_type == "cpu" else None

    def tier_round_times(self, kernel: str, working_set_bytes: int, launches: int, rounds: int
                         ) -> tuple[list[float], str] | None:
        if self.device_type != "gpu":
            return None
        from hwcal.backends.torch_tiers import graph_round_times

        return graph_round_times(self._torch_device, kernel, working_set_bytes, launches, rounds)
