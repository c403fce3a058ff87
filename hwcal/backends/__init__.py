"""Backends: one interface (``Backend``), one factory. Optional frameworks are imported lazily."""

from __future__ import annotations

from hwcal.backends.base import Backend, DeviceTimer, GemmOperands, Support
from hwcal.errors import HwcalError
from hwcal.naming import normalise_framework

__all__ = ["Backend", "DeviceTimer", "GemmOperands", "Support", "make_backend"]


def make_backend(framework: str, device: str = "cpu") -> Backend:
    """The backend for a framework and device, or a one-line HwcalError saying how to fix it."""
    framework = normalise_framework(framework)
    if framework == "numpy":
        if device != "cpu":
            raise HwcalError(f"--framework numpy runs on the CPU only, not --device {device}; "
                             "use --framework pytorch for GPUs")
        from hwcal.backends.numpy_backend import NumpyBackend

        return NumpyBackend()
    try:
        import torch  # noqa: F401
    except ImportError:
        raise HwcalError(
            "--framework pytorch needs torch, which is not installed: "
            "pip install -e '.[torch]' (or pip install torch==2.13.0 for the CPU build)"
        ) from None
    except Exception as exc:  # installed but broken (a CUDA library that does not load, ...)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise HwcalError(f"--framework pytorch: torch is installed but fails to import: {type(exc).__name__}: "
                         f"{first}") from None
    from hwcal.backends.torch_backend import TorchBackend

    return TorchBackend(device)
