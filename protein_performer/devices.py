"""The one place a user's ``device=`` value becomes a torch device (evaluation, analysis,
embedding, scoring, generation)."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A ``device=`` value that is malformed or names hardware this machine lacks."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU; ``cpu``, ``cuda``,
    ``cuda:N`` as given, after checking that the device exists."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise DeviceError(
                f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device={device!s} but CUDA is not available; use device=cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device={device!s} but only {torch.cuda.device_count()} CUDA "
                              "device(s) are visible; use cuda:0 .. or auto")
    return dev
