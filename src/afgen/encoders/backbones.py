"""Image backbones (torchvision or timm) and batched feature extraction.

Any torchvision classification model by name (BACKBONES in registry.py); its last linear layer
is removed, so ResNet50 gives its penultimate 2048-d output. Weights come from torchvision's
weights API (`default`, or its historical word `imagenet`), a local state dict (loaded with
weights_only=True), or a seeded random init (`none`, for tests and offline demos).
`efficientnet_lite0` (efficientnet_lite0.py) has ImageNet weights from an installed package,
so it works offline. `timm:NAME` is any timm model, built without its classifier (num_classes=0) and fed with its
own preprocessing (input size, mean/std, interpolation); `default` there means timm's
pretrained weights (its cache, or a download). Every path goes through resolve_weights.
"""

from __future__ import annotations

import logging
import urllib.error
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from afgen.config import ExtractConfig
from afgen.encoders.devices import bf16_supported, resolve_device, resolve_precision  # noqa: F401 - re-exported
from afgen.encoders.registry import BACKBONES, TIMM_PREFIX
from afgen.encoders.runtimes import graph_cache
from afgen.encoders.runtimes.onnx import ONNXRUNTIME, OnnxBackbone, export
from afgen.encoders.runtimes.openvino import OPENVINO, OpenVinoBackbone
from afgen.encoders.runtimes.resolve import resolve_runtime
from afgen.encoders.weights import RANDOM_SEED, load_state_dict, resolve_weights, timm_id, torchvision_id
from afgen.errors import AfgenError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Random weights are drawn from this seed, so `--weights none` is the same network everywhere.
RANDOM_WEIGHTS_SEED = RANDOM_SEED


@dataclass
class Backbone:
    """A feature network ready for inference, with what is needed to reproduce it."""

    #: The torch model; None for a backbone built from a cached graph (it runs `exported` only).
    model: nn.Module | None
    name: str
    dim: int
    weights_id: str
    device: torch.device
    precision: str  # fp32 | bf16
    batch_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: (height, width) the model wants; images of another size are resized on the device.
    input_size: tuple[int, int] | None = None
    interpolation: str = "bilinear"
    #: torch (eager), onnxruntime (CPU, fp32) or openvino (CPU, fp32 or bf16): for the last two,
    #: `exported` runs the exported ONNX graph.
    runtime: str = "torch"
    exported: OnnxBackbone | OpenVinoBackbone | None = None
    #: On a GPU: a page-locked host batch, reused, so copies to the device are asynchronous DMA.
    pinned: torch.Tensor | None = None

    @property
    def own_preprocess(self) -> bool:
        """Its preprocessing is its own (not torchvision's ImageNet mean/std), so the identity
        records it: its BACKBONES entry decides, as it does for the graph cache."""
        return BACKBONES.get(self.name).own_preprocess

    def identity(self) -> dict:
        ident = {"backbone": self.name, "dim": self.dim, "weights": self.weights_id, "precision": self.precision}
        if self.runtime != "torch":  # stores made with torch keep the settings they always had
            ident["runtime"] = self.runtime
        if self.own_preprocess:  # its own preprocessing decides the bytes too
            ident["preprocess"] = {"mean": list(self.mean), "std": list(self.std),
                                   "input_size": list(self.input_size or ()), "interpolation": self.interpolation}
        return ident

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features [N, dim] float32 for uint8 RGB images [N, H, W, 3], in fixed-size batches."""
        return extract_features(self, images)


def _strip_head(model: nn.Module) -> int:
    """Replace the model's last linear layer with Identity; return its input dimension."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise AfgenError("the backbone has no final linear layer to remove")
    name, linear = last
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return linear.in_features


def _imagenet_model(name: str) -> tuple[nn.Module, str]:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise AfgenError(
            f"cannot load ImageNet weights {weights} for {name}: not in the cache ({cache}) "
            f"and the download failed ({exc}). Offline, pass a local state dict with "
            "`--weights PATH`, or random weights with `--weights none`.") from exc
    return model, torchvision_id(weights)


def _fit_without(heads: tuple[str, ...], what: str) -> Callable[[nn.Module, Path], tuple[nn.Module, str]]:
    """Load a state dict into a model whose head will be removed: the head's keys are ignored
    on both sides, every other key must fit."""
    def fit(model: nn.Module, path: Path) -> tuple[nn.Module, str]:
        state, weights_id = load_state_dict(path)
        state = {k: v for k, v in state.items() if not any(k.startswith(h + ".") for h in heads)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not any(k.startswith(h + ".") for h in heads)]
        if missing or unexpected:
            raise AfgenError(f"state dict does not fit {what}: {len(missing)} missing keys "
                             f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})", path)
        return model, weights_id
    return fit


def build_backbone(
    name: str = ExtractConfig.backbone,
    weights: str = ExtractConfig.weights,
    device: str = ExtractConfig.device,
    precision: str = ExtractConfig.precision,
    batch_size: int = ExtractConfig.cpu_batch_size,
    runtime: str = ExtractConfig.runtime,
) -> Backbone:
    """The backbone `name` (see BACKBONES in encoders/registry.py) without its head, in eval mode,
    channels_last; run by torch, ONNX Runtime or OpenVINO (`runtime`, see runtimes/resolve.py). For
    the last two a graph exported before is read from the cache (runtimes/graph_cache.py) and no torch
    model is built."""
    entry = BACKBONES.get(name)
    precision = resolve_precision(precision, resolve_device(device), runtime)  # auto: what this runtime runs
    cached = _from_graph_cache(name, weights, device, precision, batch_size, runtime)
    return cached or _with_runtime(entry.load()(name, weights, device, precision, batch_size), runtime, weights)


def _from_graph_cache(name: str, weights: str, device: str, precision: str, batch_size: int,
                      runtime: str) -> Backbone | None:
    """The backbone on ONNX Runtime or OpenVINO from a cached graph, or None (not cached, or torch)."""
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev, runtime)
    resolved = resolve_runtime(runtime, dev, prec)
    hit = graph_cache.load(graph_cache.graph_key(name, weights)) if resolved in (ONNXRUNTIME, OPENVINO) else None
    if hit is None:
        return None
    graph, meta = hit
    own = meta.get("preprocess")
    if BACKBONES.get(name).own_preprocess and not isinstance(own, dict):
        return None  # its preprocessing is not known without the model: built and exported again
    try:
        preprocess = {} if own is None else {
            "mean": tuple(float(v) for v in own["mean"]), "std": tuple(float(v) for v in own["std"]),
            "input_size": tuple(int(v) for v in own["input_size"]) or None, "interpolation": str(own["interpolation"])}
    except (KeyError, TypeError, ValueError):
        return None
    return Backbone(model=None, name=name, dim=int(meta["dim"]), weights_id=meta["weights_id"], device=dev,
                    precision=prec, batch_size=batch_size, runtime=resolved, **preprocess,
                    exported=OpenVinoBackbone(graph, prec, meta["path"]) if resolved == OPENVINO else OnnxBackbone(graph))


def torchvision_backbone(name: str, weights: str, device: str, precision: str, batch_size: int) -> Backbone:
    """Any torchvision classification model by name, its last linear layer removed."""
    import torchvision  # here, not at the top: a run from a cached graph never imports it (~1.5 s)

    if name not in torchvision.models.list_models(torchvision.models):
        raise AfgenError(f"unknown backbone {name!r}; --backbone takes {BACKBONES.describe()}")

    def fit(model: nn.Module, path: Path) -> tuple[nn.Module, str]:
        head = tuple(n for n, m in model.named_modules() if isinstance(m, nn.Linear))[-1:]
        return _fit_without(head, name)(model, path)

    model, weights_id = resolve_weights(weights, random=lambda: torchvision.models.get_model(name, weights=None),
                                        default=lambda: _imagenet_model(name), fit=fit)
    dim = _strip_head(model)
    return _ready(Backbone(model=model, name=name, dim=dim, weights_id=weights_id, device=resolve_device(device),
                           precision=precision, batch_size=batch_size))


def _preprocess(backbone: Backbone) -> dict | None:
    """A backbone's own preprocessing as the graph cache keeps it (None: torchvision's ImageNet one)."""
    return backbone.identity().get("preprocess")


def _with_runtime(backbone: Backbone, runtime: str, weights: str) -> Backbone:
    """Resolve the runtime; for ONNX Runtime or OpenVINO, export the model (once per process and
    weights) and keep the graph in the on-disk cache for the next process."""
    backbone.runtime = resolve_runtime(runtime, backbone.device, backbone.precision)
    key = (backbone.name, backbone.weights_id, backbone.input_size)
    if backbone.runtime == OPENVINO:  # `auto` picks it only by measurement (runtime_choice.py)
        graph = export(backbone.model, key, backbone.input_size)
        path = graph_cache.save(graph_cache.graph_key(backbone.name, weights), graph, backbone.dim, backbone.weights_id,
                                _preprocess(backbone))
        backbone.exported = OpenVinoBackbone(graph, backbone.precision, path)
    elif backbone.runtime == ONNXRUNTIME:
        try:
            graph = export(backbone.model, key, backbone.input_size)
            backbone.exported = OnnxBackbone(graph)
            graph_cache.save(graph_cache.graph_key(backbone.name, weights), graph, backbone.dim, backbone.weights_id,
                             _preprocess(backbone))
        except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds for unsupported ops
            if runtime != "auto":
                raise AfgenError(f"{backbone.name} cannot be exported to ONNX ({type(exc).__name__}: {exc}); "
                                 "use --runtime torch") from exc
            log.info("%s does not export to ONNX (%s); running it with torch", backbone.name, exc)
            backbone.runtime = "torch"
    return backbone


def _ready(backbone: Backbone) -> Backbone:
    """Eval mode, frozen, on its device in channels_last, precision resolved for that device."""
    backbone.model = backbone.model.eval().to(backbone.device, memory_format=torch.channels_last)
    for p in backbone.model.parameters():
        p.requires_grad_(False)
    backbone.precision = resolve_precision(backbone.precision, backbone.device)
    return backbone


def timm_backbone(name: str, weights: str, device: str, precision: str, batch_size: int) -> Backbone:
    """`timm:ARCH`: any timm model without its classifier (num_classes=0), with its own preprocessing."""
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError:
        raise AfgenError(f"backbone {name!r} needs timm: pip install \"afgen[extractors]\" (or timm)") from None
    arch = name[len(TIMM_PREFIX):]
    if arch not in timm.list_models(pretrained=False) and arch.split(".")[0] not in timm.list_models():
        raise AfgenError(f"unknown timm model {arch!r}; see timm.list_models(), e.g. timm:resnet50.a1_in1k")

    def pretrained() -> tuple[nn.Module, str]:
        try:
            model = timm.create_model(arch, pretrained=True, num_classes=0)
        except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
            raise AfgenError(
                f"cannot load timm's pretrained weights for {arch}: not in the Hugging Face / timm cache and the "
                f"download failed ({type(exc).__name__}). Offline, pass a local state dict with `--weights PATH`, "
                "or random weights with `--weights none`.") from exc
        tag = model.pretrained_cfg.get("hf_hub_id") or model.pretrained_cfg.get("tag") or "pretrained"
        return model, timm_id(arch, tag)

    def fit(model: nn.Module, path: Path) -> tuple[nn.Module, str]:
        head = model.pretrained_cfg.get("classifier")
        heads = (head,) if isinstance(head, str) else tuple(head or ())
        return _fit_without(heads, f"timm {arch}")(model, path)

    model, weights_id = resolve_weights(weights, random=lambda: timm.create_model(arch, pretrained=False, num_classes=0),
                                        default=pretrained, fit=fit)
    data = resolve_data_config({}, model=model)
    return _ready(Backbone(
        model=model, name=name, dim=int(model.num_features), weights_id=weights_id, device=resolve_device(device),
        precision=precision, batch_size=batch_size, mean=tuple(float(v) for v in data["mean"]),
        std=tuple(float(v) for v in data["std"]), input_size=tuple(int(v) for v in data["input_size"][1:]),
        interpolation=str(data.get("interpolation", "bilinear"))))


def set_threads(backbone: Backbone, threads: int) -> None:
    """Run the backbone on `threads` CPU threads from its next batch on: torch's intra-op
    threads, and an ONNX Runtime session or OpenVINO model rebuilt with them (they take their
    thread count when built; a cached OpenVINO compile makes that ~0.1 s)."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if backbone.exported is not None and getattr(backbone.exported, "threads", threads) != threads:
        backbone.exported.rebuild()


def _to_input(images: np.ndarray | torch.Tensor, device: torch.device, mean: tuple = IMAGENET_MEAN,
              std: tuple = IMAGENET_STD, size: tuple[int, int] | None = None,
              interpolation: str = "bilinear") -> torch.Tensor:
    """uint8 [N, H, W, 3] on the host -> normalised float [N, 3, h, w] on `device`, channels_last;
    the uint8 bytes cross to the device (4x fewer than floats) and are converted there."""
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    x = x.to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        mode = interpolation if interpolation in ("bilinear", "bicubic", "nearest") else "bilinear"
        x = torch.nn.functional.interpolate(x, size=size, mode=mode, antialias=mode != "nearest",
                                            align_corners=False if mode != "nearest" else None).clamp_(0, 1)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def _host(backbone: Backbone, chunk: np.ndarray) -> np.ndarray | torch.Tensor:
    """The batch as the device wants it from the host: on a GPU, copied into the pinned buffer
    (safe to reuse: each batch's features are read back before the next batch is staged)."""
    if backbone.device.type != "cuda":
        return chunk
    if backbone.pinned is None or tuple(backbone.pinned.shape) != chunk.shape:
        backbone.pinned = torch.empty(chunk.shape, dtype=torch.uint8).pin_memory()
    backbone.pinned.numpy()[...] = chunk
    return backbone.pinned


def extract_features(backbone: Backbone, images: np.ndarray) -> np.ndarray:
    """Features for any number of images, run in batches of exactly backbone.batch_size.

    The last batch is zero-padded to full size: every image then goes through the same
    kernels whatever its neighbours, so a resumed run gives the same bytes as a clean one.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise AfgenError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    n, bs = len(images), backbone.batch_size
    out = np.empty((n, backbone.dim), np.float32)
    autocast = (torch.autocast(backbone.device.type, dtype=torch.bfloat16)
                if backbone.precision == "bf16" else nullcontext())
    with torch.inference_mode(), autocast:
        for start in range(0, n, bs):
            chunk = images[start:start + bs]
            if len(chunk) < bs:
                pad = np.zeros((bs - len(chunk),) + chunk.shape[1:], np.uint8)
                chunk = np.concatenate([chunk, pad])
            x = _to_input(_host(backbone, chunk), backbone.device, backbone.mean, backbone.std,
                          backbone.input_size, backbone.interpolation)
            if backbone.exported is not None:
                feats = backbone.exported(x.contiguous().numpy())
                out[start:start + bs] = feats[: min(bs, n - start)]
            else:
                feats = backbone.model(x)
                out[start:start + bs] = feats[: min(bs, n - start)].float().cpu().numpy()
    return out
