"""The image backbone on ONNX Runtime, for CPUs.

On this project's CPUs ONNX Runtime runs ResNet50 1.5-1.7x faster than eager torch
(benchmarks/bench_extract.py), with features within cosine 1e-6 of it. The torch model is
exported once per process (in memory, a few seconds for ResNet50) and run with the same
fixed-size, zero-padded batches.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

ONNXRUNTIME = "onnxruntime"
#: Exported graphs by (backbone name, weights id, input size): a process builds each once.
_EXPORTED: dict[tuple, bytes] = {}


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def export(model: nn.Module, key: tuple, input_size: tuple[int, int] | None) -> bytes:
    """The model as ONNX bytes (batch dynamic; height and width too unless the model fixes them)."""
    if key in _EXPORTED:
        return _EXPORTED[key]
    h, w = input_size or (64, 64)
    axes = {0: "batch"} if input_size else {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(2, 3, h, w), buffer, input_names=["images"], output_names=["features"],
                          dynamic_axes={"images": axes, "features": {0: "batch"}}, dynamo=False)
    _EXPORTED[key] = buffer.getvalue()
    return _EXPORTED[key]


class OnnxBackbone:
    """An ONNX Runtime session for normalised float32 NCHW batches, with as many threads as
    torch has when it is built (the engines set them for the backbone before building it)."""

    def __init__(self, graph: bytes) -> None:
        self.graph = graph
        self.session = self._session()

    def _session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        self.threads = torch.get_num_threads()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # No busy-waiting between ops: the producers need the cores the backbone leaves
        # (measured: 0.326 vs 0.278 clips/s end to end with spinning on this 2-core CPU).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(self.graph, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": x})[0]

    def rebuild(self) -> None:
        """A new session, with torch's current thread count."""
        self.session = self._session()

    def __getstate__(self) -> dict:  # a session does not pickle; the graph does
        return {"graph": self.graph}

    def __setstate__(self, state: dict) -> None:
        self.graph = state["graph"]
        self.session = self._session()
