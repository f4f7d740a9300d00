"""devices.py: device= and trainer.precision resolution (the hardware is read at run time)."""

from __future__ import annotations

import pytest
import torch

from protein_performer import devices
from protein_performer.devices import DeviceError, resolve_device, resolve_precision


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", "cpu") == expected


def test_auto_precision_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "gpu") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "auto") == "16-mixed"


def test_explicit_precision_is_kept_and_bad_values_named():
    assert resolve_precision("32-true", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    with pytest.raises(ValueError, match="trainer.precision must be one of .*got 'fp8'"):
        resolve_precision("fp8", "cpu")


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert devices.cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert devices.cpu_has_native_bf16() is True


def test_bad_precision_in_a_train_config_is_a_config_error(tmp_path):
    from protein_performer.cli.config import ConfigError, build_setup, compose_train

    cfg = compose_train(["trainer.precision=half"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="trainer.precision must be one of"):
        build_setup(cfg)


def test_cpu_device_and_missing_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")
