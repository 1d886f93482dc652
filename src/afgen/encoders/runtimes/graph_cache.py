"""Exported backbone graphs kept on disk, so a run on ONNX Runtime or OpenVINO starts fast.

A CPU run on either runtime needs the ONNX graph only: with it cached, `build_backbone`
neither imports torchvision, nor builds the torch model, nor exports it again (together ~3 s
for ResNet50 on 2 cores, paid by every run and every shard). A graph is keyed by the backbone
name, its weights argument (for a state-dict PATH: the resolved path, its size and its
modification time) and the torch, torchvision and onnx versions, and stored as
CACHE/graphs/<key digest>.onnx with a .json beside it (dimension and weights identity), both
written atomically. A backbone whose BACKBONES entry says `own_preprocess` (timm, efficientnet_lite0)
keeps its preprocessing (mean, std, input size, interpolation) in that .json, and a timm one's key
holds timm's version (EfficientNet-Lite0 rebuilt and exported took ~4.5 s of every run's start).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from afgen.config import cache_dir
from afgen.contracts.store import atomic_write_bytes
from afgen.encoders.registry import TIMM_PREFIX
from afgen.errors import WriteError
from afgen.provenance import installed_version

log = logging.getLogger(__name__)

GRAPHS = "graphs"


def graph_key(name: str, weights: str) -> str | None:
    """The cache key of a backbone's exported graph, or None when it is not cacheable (weights at
    a path that does not exist)."""
    spec: dict = {"backbone": name, "weights": "default" if weights == "imagenet" else weights}
    if weights not in ("none", "default", "imagenet"):
        path = Path(weights)
        if not path.is_file():
            return None
        stat = path.stat()
        spec["weights"] = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    libraries = ("torch", "torchvision", "onnx") + (("timm",) if name.startswith(TIMM_PREFIX) else ())
    spec["versions"] = {p: installed_version(p) for p in libraries}
    return json.dumps(spec, sort_keys=True)


def _paths(key: str) -> tuple[Path, Path]:
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    folder = cache_dir() / GRAPHS
    return folder / f"{digest}.onnx", folder / f"{digest}.json"


def load(key: str | None) -> tuple[bytes, dict] | None:
    """(graph bytes, {"dim", "weights_id", "path"} and, for a backbone with its own, "preprocess")
    when cached under `key`, else None."""
    if key is None:
        return None
    graph_path, meta_path = _paths(key)
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        graph = graph_path.read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha1(graph).hexdigest() != meta.get("sha1"):  # a torn or altered file: export again
        log.warning("ignoring a damaged cached graph %s; it will be exported again", graph_path)
        return None
    return graph, meta | {"path": str(graph_path)}


def save(key: str | None, graph: bytes, dim: int, weights_id: str, preprocess: dict | None = None) -> str | None:
    """Keep `graph` (and the backbone's own `preprocess`, if it has one) for the next process and
    return its path; a cache that cannot be written only costs time (None)."""
    if key is None:
        return None
    graph_path, meta_path = _paths(key)
    meta = {"key": key, "dim": dim, "weights_id": weights_id, "sha1": hashlib.sha1(graph).hexdigest()}
    if preprocess is not None:
        meta["preprocess"] = preprocess
    try:
        atomic_write_bytes(graph_path, graph)
        atomic_write_bytes(meta_path, json.dumps(meta).encode())
    except WriteError as exc:
        log.warning("cannot cache the exported graph (%s)", exc)
        return None
    return str(graph_path)
