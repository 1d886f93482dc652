"""The image backbone on OpenVINO, for CPUs: the same exported ONNX graph as ONNX Runtime
(runtimes/onnx.export), read by OpenVINO and compiled for this CPU, in bf16 where the CPU
has it (AMX / AVX-512 bf16: measured 66 img/s for ResNet50 against 53 for torch bf16 on such
a CPU) and fp32 elsewhere (21 img/s here against 22 for ONNX Runtime and 12 for eager torch).
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import torch

from afgen.config import cache_dir
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
    torch has when it is built (the engines set them for the backbone before building it).

    With N > 1 threads it runs N streams of one thread each, a batch split between them: beside
    busy producer processes a core taken away for a moment stalls one stream, not every thread
    at the next layer's barrier (ResNet50 bf16 on 2 cores beside two producers busy 30% of the
    time: 107 img/s against 77 for one stream of two threads; alone 145-165 against 133-149).

    `path`: the same graph in afgen's cache (graph_cache.py): compiled from there with
    OpenVINO's own model cache, a later process skips both the conversion and the compilation
    (1.3 s -> 0.1 s for ResNet50 here)."""

    def __init__(self, graph: bytes, precision: str = "fp32", path: str | None = None) -> None:
        self.graph, self.precision, self.path = graph, precision, path
        self._model = None  # the graph converted from bytes (not from the cache): once, ~0.9 s for EfficientNet-Lite0
        self._by_threads: dict[int, tuple] = {}  # the last two compiled: a split tried and back costs nothing
        self.compiled, self._requests = self._compile()

    def _compile(self):
        try:
            import openvino as ov
        except ImportError:
            raise AfgenError('--runtime openvino needs OpenVINO: pip install "afgen[openvino]" (or openvino)') from None
        self.threads = torch.get_num_threads()
        if self.threads in self._by_threads:  # the most recent now
            self._by_threads[self.threads] = self._by_threads.pop(self.threads)
            return self._by_threads[self.threads]
        config = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                  "INFERENCE_NUM_THREADS": self.threads}
        # one stream per thread (see the class); one thread: the latency mode, one request
        config |= ({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.threads} if self.threads > 1
                   else {"PERFORMANCE_HINT": "LATENCY"})
        core = ov.Core()
        if self.path and Path(self.path).is_file():
            core.set_property({"CACHE_DIR": str(cache_dir() / OPENVINO)})
            compiled = core.compile_model(self.path, "CPU", config)
        else:
            if self._model is None:
                self._model = ov.convert_model(io.BytesIO(self.graph))
            compiled = core.compile_model(self._model, "CPU", config)
        requests = ov.AsyncInferQueue(compiled, self.threads) if self.threads > 1 else None
        self._by_threads = {**dict(list(self._by_threads.items())[-1:]), self.threads: (compiled, requests)}
        return compiled, requests

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._requests is None or len(x) < 2:
            return np.asarray(self.compiled(x)[0], np.float32)
        parts = np.array_split(np.ascontiguousarray(x), min(self.threads, len(x)))
        out: list = [None] * len(parts)
        self._requests.set_callback(lambda request, i: out.__setitem__(i, request.get_output_tensor(0).data.copy()))
        for i, part in enumerate(parts):
            self._requests.start_async(part, i)
        self._requests.wait_all()
        return np.concatenate(out).astype(np.float32, copy=False)

    def rebuild(self) -> None:
        """Compiled again, with torch's current thread count (or the model compiled for it just before)."""
        self.compiled, self._requests = self._compile()

    def __getstate__(self) -> dict:  # a compiled model does not pickle; the graph does
        return {"graph": self.graph, "precision": self.precision, "path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.graph, self.precision, self.path = state["graph"], state["precision"], state.get("path")
        self._model, self._by_threads = None, {}
        self.compiled, self._requests = self._compile()  # on another machine the path is absent: from the bytes
