"""resolve_runtime (encoders/runtimes/resolve.py): `auto` by rule, and each runtime refused where
it cannot run, with the fix in the message."""

from __future__ import annotations

import pytest
import torch

import afgen.encoders.runtimes.onnx
from afgen.encoders.runtimes.resolve import resolve_runtime
from afgen.errors import AfgenError

pytest.importorskip("onnxruntime")
CPU = torch.device("cpu")


def test_resolution_and_errors(monkeypatch):
    assert resolve_runtime("auto", CPU, "fp32") == "onnxruntime"
    assert resolve_runtime("auto", CPU, "bf16") == "torch"
    assert resolve_runtime("auto", torch.device("cuda"), "fp32") == "torch"
    assert resolve_runtime("torch", CPU, "fp32") == "torch"
    with pytest.raises(AfgenError, match="--runtime torch"):
        resolve_runtime("onnxruntime", torch.device("cuda"), "fp32")
    with pytest.raises(AfgenError, match="--precision fp32"):
        resolve_runtime("onnxruntime", CPU, "bf16")
    with pytest.raises(AfgenError, match="unknown --runtime 'tensorrt'"):
        resolve_runtime("tensorrt", CPU, "fp32")
    monkeypatch.setattr(afgen.encoders.runtimes.onnx, "available", lambda: False)
    assert resolve_runtime("auto", CPU, "fp32") == "torch"
    with pytest.raises(AfgenError, match="pip install onnxruntime"):
        resolve_runtime("onnxruntime", CPU, "fp32")
