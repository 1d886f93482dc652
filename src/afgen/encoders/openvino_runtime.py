"""The image backbone on OpenVINO, for CPUs: the same exported ONNX graph as ONNX Runtime
(onnx_runtime.export), read by OpenVINO and compiled for this CPU, in bf16 where the CPU
has it (AMX / AVX-512 bf16: measured 66 img/s for ResNet50 against 53 for torch bf16 on such
a CPU) and fp32 elsewhere (21 img/s here against 22 for ONNX Runtime and 12 for eager torch).
"""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import torch

from afgen.errors import AfgenError

OPENVINO = "openvino"


def available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def supports_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackbone:
    """A compiled OpenVINO model for normalised float32 NCHW batches, with as many threads as
    torch has when it is built (the engines set them for the backbone before building it)."""

    def __init__(self, graph: bytes, precision: str = "fp32") -> None:
        self.graph, self.precision = graph, precision
        self.compiled = self._compile()

    def _compile(self):
        try:
            import openvino as ov
        except ImportError:
            raise AfgenError('--runtime openvino needs OpenVINO: pip install "afgen[openvino]" (or openvino)') from None
        model = ov.convert_model(io.BytesIO(self.graph))
        config = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                  "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        return ov.Core().compile_model(model, "CPU", config)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(x)[0], np.float32)

    def __getstate__(self) -> dict:  # a compiled model does not pickle; the graph does
        return {"graph": self.graph, "precision": self.precision}

    def __setstate__(self, state: dict) -> None:
        self.graph, self.precision = state["graph"], state["precision"]
        self.compiled = self._compile()
