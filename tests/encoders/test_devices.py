"""The device resolver (cuda, cuda:N and their checks in one place), --precision auto per runtime,
and a store's runtime and precision as another device runs them: all on a CPU, with a faked
torch.cuda where a GPU is needed."""

from __future__ import annotations

import pytest
import torch
from conftest import fake_gpus

import afgen.encoders.devices as devices
from afgen.config import ExtractConfig
from afgen.encoders.backbones import build_backbone
from afgen.encoders.devices import for_device, resolve_device, resolve_precision
from afgen.errors import AfgenError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_every_cuda_form_without_a_gpu_gets_the_friendly_error(monkeypatch, device):
    fake_gpus(monkeypatch, 0)
    with pytest.raises(AfgenError, match=f"--device {device} was asked for but no CUDA GPU is visible"):
        resolve_device(device)
    with pytest.raises(AfgenError, match="no CUDA GPU is visible"):  # before any model is built
        build_backbone("resnet18", "none", device, "fp32", 4, runtime="torch")
    assert resolve_device("auto") == CPU


def test_a_cuda_ordinal_beyond_the_gpu_count_is_a_clear_error(monkeypatch):
    fake_gpus(monkeypatch, 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == CUDA and resolve_device("auto") == CUDA
    with pytest.raises(AfgenError, match=r"--device cuda:2: this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    with pytest.raises(AfgenError, match="cuda:N"):
        ExtractConfig(device="cuda:one")


def test_the_batch_for_cuda_n_is_the_gpus():
    cfg = ExtractConfig()
    for gpu in ("cuda", "cuda:0", "cuda:7", torch.device("cuda", 1)):
        assert cfg.batch_for(gpu) == ExtractConfig.cuda_batch_size
    assert cfg.batch_for("cpu") == cfg.batch_for(CPU) == ExtractConfig.cpu_batch_size
    assert ExtractConfig(batch_size=5).batch_for("cuda:0") == 5


def test_a_cpu_runtime_of_a_store_runs_as_torch_on_a_gpu_with_a_notice(monkeypatch):
    fake_gpus(monkeypatch, 1, bf16=True)
    runtime, precision, notice = for_device("onnxruntime", "fp32", CUDA)
    assert (runtime, precision) == ("torch", "fp32") and "onnxruntime is a CPU runtime" in notice
    assert for_device("openvino", "bf16", CUDA)[:2] == ("torch", "bf16")  # the GPU has bf16
    assert for_device("torch", "bf16", CUDA) == ("torch", "bf16", None)
    fake_gpus(monkeypatch, 1, bf16=False)
    assert for_device("openvino", "bf16", CUDA)[:2] == ("torch", "fp32")


def test_a_gpu_stores_bf16_runs_as_fp32_on_a_cpu_without_native_bf16(monkeypatch):
    """Issue 31, finding 6: predicting on such a CPU no longer emulates bf16 (many times slower)."""
    monkeypatch.setattr(devices, "bf16_supported", lambda device: False)
    runtime, precision, notice = for_device("torch", "bf16", CPU)
    assert (runtime, precision) == ("torch", "fp32") and "cpu has no native bf16" in notice
    monkeypatch.setattr(devices, "bf16_supported", lambda device: True)
    assert for_device("torch", "bf16", CPU) == ("torch", "bf16", None)
    assert for_device("torch", "fp32", CPU) == ("torch", "fp32", None)


def test_precision_auto_resolves_per_runtime(monkeypatch):
    """Issue 29, point 4: on a bf16 CPU `auto` is bf16 for torch but fp32 for ONNX Runtime."""
    monkeypatch.setattr(devices, "bf16_supported", lambda device: True)
    assert resolve_precision("auto", CPU, "torch") == resolve_precision("auto", CPU, "auto") == "bf16"
    assert resolve_precision("auto", CPU, "onnxruntime") == "fp32"
    assert resolve_precision("bf16", CPU, "onnxruntime") == "bf16"  # explicit: resolve_runtime refuses it
    monkeypatch.setattr(devices, "ov_available", lambda: False)
    assert resolve_precision("auto", CPU, "openvino") == "fp32"
    with pytest.raises(AfgenError, match="unknown precision"):
        resolve_precision("fp16", CPU)
