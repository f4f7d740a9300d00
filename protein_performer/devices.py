"""The one place a user's ``device=`` value becomes a torch device (evaluation, analysis,
embedding, scoring, generation)."""

from __future__ import annotations

import torch

from protein_performer.errors import InputError


class DeviceError(InputError):
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
            raise DeviceError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device={device!s} but CUDA is not available; use device=cpu or auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device={device!s} but only {torch.cuda.device_count()} CUDA "
                "device(s) are visible; use cuda:0 .. or auto"
            )
    return dev


PRECISIONS = (
    "auto",
    "32-true",
    "32",
    "bf16-mixed",
    "bf16-true",
    "16-mixed",
    "16-true",
    "64-true",
    "64",
    "transformer-engine",
)


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX-512-BF16 or AMX); read at run time,
    since the machines a project runs on differ."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str:
    """``auto`` -> ``bf16-mixed`` where the hardware computes bf16 natively (a CUDA GPU with
    bf16, a CPU with AVX-512-BF16/AMX), else ``32-true``; any other Lightning value as given.

    Under bf16-mixed the FAVOR+ features, state and normaliser stay float32 (attention/favor/)
    and the loss is computed in float32 (training/module.py)."""
    value = str(precision)
    if value not in PRECISIONS:
        raise ValueError(f"trainer.precision must be one of {list(PRECISIONS)}, got {value!r}")
    if value != "auto":
        return value
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if gpu:
        return (
            "bf16-mixed"
            if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            else "16-mixed"
        )
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
