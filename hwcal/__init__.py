"""hwcal: measured GEMM throughput and memory bandwidth per precision, filed in a validated registry."""

from __future__ import annotations

from typing import Any

__all__ = ["HwcalError", "Registry", "__version__"]

from hwcal.errors import HwcalError
from hwcal.version import __version__


def __getattr__(name: str) -> Any:
    # The registry API is imported lazily so the pytest plugin does not pay for it.
    if name == "Registry":
        from hwcal.registry.api import Registry

        return Registry
    raise AttributeError(name)
