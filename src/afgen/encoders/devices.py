"""The device that runs the backbone, and what runs on it.

`--device` (auto, cpu, cuda, cuda:N) is resolved and checked against this machine in one place
(resolve_device), `--precision auto` is resolved for the device and runtime that will run the
backbone (resolve_precision), and a store's runtime and precision, chosen on the machine that
made it, are mapped to what this device runs (for_device): ONNX Runtime and OpenVINO are CPU
runtimes, so on a GPU the same network runs with torch; bf16 where the device has no native
bf16 runs fp32 (emulated bf16 is many times slower, and fp32 is what bf16 approximates).
"""

from __future__ import annotations

import torch

from afgen.config import device_type
from afgen.encoders.runtimes.onnx import ONNXRUNTIME
from afgen.encoders.runtimes.onnx import available as ort_available
from afgen.encoders.runtimes.openvino import OPENVINO, supports_bf16
from afgen.encoders.runtimes.openvino import available as ov_available
from afgen.errors import AfgenError

CPU = torch.device("cpu")


def resolve_device(device: str | torch.device) -> torch.device:
    """auto -> cuda where a GPU is visible, else cpu; `cuda` and `cuda:N` are checked here (a GPU
    visible at all, N below the number of GPUs), so every form fails with the same clear message."""
    if isinstance(device, torch.device):
        device = str(device)
    kind = device_type(device)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return CPU
    if kind != "cuda":
        raise AfgenError(f"unknown device {device!r}; --device takes auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise AfgenError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu (or auto)")
    dev = torch.device(device)
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise AfgenError(f"--device {device}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                         f"(cuda:0 to cuda:{count - 1}); pass one of those, or cuda")
    return dev


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 runs natively here (a GPU with bf16, or a CPU with AVX-512 bf16 / AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device, runtime: str = "torch") -> str:
    """fp32 or bf16; `auto` follows what `runtime` runs on `device`: ONNX Runtime runs fp32 only,
    OpenVINO bf16 where its CPU plugin has it, torch (and `auto`) bf16 where the device has it
    natively. (On a CPU, extract.py measures instead: runtime_choice.py.)"""
    if precision not in ("auto", "fp32", "bf16"):
        raise AfgenError(f"unknown precision {precision!r}; use fp32, bf16 or auto")
    if precision != "auto":
        return precision
    if runtime == ONNXRUNTIME:
        return "fp32"
    if runtime == OPENVINO:
        return "bf16" if device.type == "cpu" and ov_available() and supports_bf16() else "fp32"
    return "bf16" if bf16_supported(device) else "fp32"


def for_device(runtime: str, precision: str, device: torch.device) -> tuple[str, str, str | None]:
    """A runtime and precision chosen on another machine (a store's: fp32 or bf16, torch, onnxruntime
    or openvino) as `device` runs them, and a one-line notice when that differs: a CPU runtime runs
    as torch on a GPU (or on a CPU without it installed); bf16 runs as fp32 where it is not native."""
    new_runtime, new_precision = runtime, precision
    if runtime in (ONNXRUNTIME, OPENVINO):
        installed = ort_available() if runtime == ONNXRUNTIME else ov_available()
        if device.type != "cpu" or not installed:
            new_runtime = "torch"
    if precision == "bf16":
        native = (supports_bf16() if new_runtime == OPENVINO else bf16_supported(device))
        if not native:
            new_precision = "fp32"
    if (new_runtime, new_precision) == (runtime, precision):
        return runtime, precision, None
    why = []
    if new_runtime != runtime:
        why.append(f"{runtime} is a CPU runtime" if device.type != "cpu" else f"{runtime} is not installed here")
    if new_precision != precision:
        why.append(f"{device.type} has no native bf16")
    return new_runtime, new_precision, (
        f"the store's backbone ran {runtime} {precision}; on {device} it runs {new_runtime} {new_precision} "
        f"({'; '.join(why)}; the same network and weights: the features differ by rounding only)")
