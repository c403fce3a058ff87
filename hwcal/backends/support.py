"""Whether something runs on a backend, and how: shared by the GEMM, BLAS and nn interfaces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Support:
    """Whether a precision runs here; ``kernel`` says how (BLAS, tensor cores, a generic loop)."""

    runnable: bool
    reason: str = ""
    kernel: str = ""
    # Non-empty when the device has no instructions for this precision (e.g. fp16 GEMM on an AVX2
    # CPU): the framework converts in software, so a result is filed as emulated whatever its speed.
    emulation_evidence: str = ""
