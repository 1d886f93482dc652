"""Which runtime runs the backbone: a --runtime checked against the device, the precision and
what is installed, for every runtime (torch, ONNX Runtime, OpenVINO), and `auto` by rule where
nothing was measured (extract measures instead: encoders/runtime_choice.py)."""

from __future__ import annotations

import torch

from afgen.config import RUNTIMES
from afgen.encoders.runtimes import onnx, openvino
from afgen.errors import AfgenError


def resolve_runtime(runtime: str, device: torch.device, precision: str) -> str:
    """auto -> onnxruntime for fp32 on a CPU where it is installed, else torch; checks the rest
    (openvino: CPU only, bf16 only where the CPU has it)."""
    if runtime not in RUNTIMES:
        raise AfgenError(f"unknown --runtime {runtime!r}; use {', '.join(RUNTIMES)}")
    if runtime == openvino.OPENVINO:
        if device.type != "cpu":
            raise AfgenError("--runtime openvino runs the backbone on the CPU; on a GPU use --runtime torch (or auto)")
        if not openvino.available():
            raise AfgenError('--runtime openvino needs OpenVINO: pip install "afgen[openvino]" (or --runtime torch)')
        if precision == "bf16" and not openvino.supports_bf16():
            raise AfgenError("this CPU has no native bf16 for OpenVINO; pass --precision fp32 (or auto)")
        return runtime
    if runtime == "auto":
        return onnx.ONNXRUNTIME if device.type == "cpu" and precision == "fp32" and onnx.available() else "torch"
    if runtime == onnx.ONNXRUNTIME:
        if device.type != "cpu":
            raise AfgenError("--runtime onnxruntime runs the backbone on the CPU; on a GPU use --runtime torch "
                             "(or auto)")
        if precision != "fp32":
            raise AfgenError("--runtime onnxruntime runs fp32; pass --precision fp32, or --runtime torch for bf16")
        if not onnx.available():
            raise AfgenError("--runtime onnxruntime needs ONNX Runtime: pip install onnxruntime (or --runtime torch)")
    return runtime
