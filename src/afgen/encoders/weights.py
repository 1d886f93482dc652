"""Weights for every learned component (backbones, RAFT, audio encoders), loaded one way.

`resolve_weights(spec, ...)` is the one rule: `none` (seeded random), `default` (the library's
pretrained weights; backbones also accept their historical word `imagenet`) or a PATH.
`seeded(factory)` builds a network with random weights drawn from RANDOM_SEED (`none`: the
same network everywhere, for tests and offline runs); `load_state_dict(path)` reads a local
state dict (weights_only) and names it by its digest; `load_into` loads one strictly, with an
error naming the file when it does not fit; `one_torch_thread` gives a producer-side network
its one CPU (and the same bytes whatever threads its process has).

The identity a store records of each learned component's weights is written and read here
only: `random_id` / `torchvision_id` / `package_id` / `hf_id` / `file_id` / `folder_id` write
it, `spec_for` turns it back into the spec (none / default / PATH) that rebuilds it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from afgen.errors import AfgenError
from afgen.provenance import installed_version

#: Random weights (`none`) are drawn from this seed.
RANDOM_SEED = 0
#: The kinds of weights identity a store records (the part before the first colon).
RANDOM, FILE, FOLDER = "random", "file", "folder"
#: The kinds that name a library's pretrained weights (rebuilt by `default`).
TORCHVISION, PACKAGE, HF, TIMM, TORCHVGGISH = "torchvision", "package", "hf", "timm", "torchvggish"
PRETRAINED = (TORCHVISION, PACKAGE, HF, TIMM, TORCHVGGISH)
#: The weights identity recorded for random weights.
RANDOM_ID = f"{RANDOM}:seed={RANDOM_SEED}"

#: The word for "the library's pretrained weights", and the words that mean the same.
DEFAULT = "default"
DEFAULT_ALIASES = ("default", "imagenet")
NONE = "none"

M = TypeVar("M", bound=nn.Module)


def is_default(spec: str) -> bool:
    return spec in DEFAULT_ALIASES


def resolve_weights(spec: str, random: Callable[[], M], default: Callable[[], tuple[M, str]],
                    fit: Callable[[M, Path], tuple[M, str]] | None = None, what: str = "the model") -> tuple[M, str]:
    """(model, weights identity) for a weights spec: `none` -> random() seeded from RANDOM_SEED;
    `default`/`imagenet` -> default(); anything else is a PATH: fit(random(), PATH), by default a
    strict load of the state dict there. Every learned encoder comes through here."""
    if spec == NONE:
        return seeded(random), RANDOM_ID
    if is_default(spec):
        return default()
    model = seeded(random)
    if fit is not None:
        return fit(model, Path(spec))
    return model, load_into(model, spec, what)


def seeded(factory: Callable[[], M]) -> M:
    """factory() with the global RNG seeded from RANDOM_SEED and restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return factory()


def load_state_dict(path: Path) -> tuple[dict, str]:
    """(state dict, identity "file:NAME:sha256=...") of a file saved with torch.save."""
    if not path.is_file():
        raise AfgenError("weights file not found; give a state dict saved with torch.save, "
                         "`default` (the library's pretrained weights) or `none` (random)", path)
    identity = file_id(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad or unsafe files
        raise AfgenError(f"not a loadable state dict ({exc})", path) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise AfgenError("expected a state dict (a mapping of tensor names to tensors)", path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, identity


def load_into(model: nn.Module, path: str | Path, what: str) -> str:
    """Load the state dict at `path` into `model` (strictly); return its identity."""
    state, identity = load_state_dict(Path(path))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise AfgenError(f"state dict does not fit {what}: {str(exc).splitlines()[0]}", path) from None
    return identity


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block; restore the count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# -- the weights identity a store records, both ways ------------------------------------------

def file_digest(path: Path) -> str:
    """The short sha256 of a weights file, as identities record it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def file_id(path: Path) -> str:
    """`file:NAME:sha256=DIGEST`: a local weights file, by its name and content (not its folder)."""
    return f"{FILE}:{path.name}:sha256={file_digest(path)}"


def folder_digest(folder: Path) -> str:
    """A short digest of a saved model folder's weight files (which weights, not where)."""
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def folder_id(folder: Path) -> str:
    """`folder:NAME:DIGEST`: a model folder written by save_pretrained."""
    return f"{FOLDER}:{folder.name}:{folder_digest(folder)}"


def torchvision_id(weights: object) -> str:
    """`torchvision:ENUM`: torchvision's pretrained weights (e.g. ResNet50_Weights.IMAGENET1K_V2)."""
    return f"{TORCHVISION}:{weights}"


def package_id(package: str, file_identity: str) -> str:
    """`package:PKG==VERSION:NAME:sha256=DIGEST`: a weights file shipped in an installed package."""
    return f"{PACKAGE}:{package}=={installed_version(package)}:{file_identity.removeprefix(FILE + ':')}"


def hf_id(name: str) -> str:
    """`hf:NAME`: a Hugging Face hub model by its name."""
    return f"{HF}:{name}"


def timm_id(arch: str, tag: str) -> str:
    """`timm:ARCH:TAG`: timm's pretrained weights for ARCH (TAG: their hub id or tag)."""
    return f"{TIMM}:{arch}:{tag}"


def torchvggish_id(name: str) -> str:
    """`torchvggish:NAME`: the torchvggish package's pretrained VGGish weights."""
    return f"{TORCHVGGISH}:{name}"


def spec_for(identity: str | None, given: str | None, field: str, config: str | Path, fix: str) -> str:
    """The weights spec (none / default / PATH) that rebuilds the weights `identity` names.
    A local file or folder is only recorded by name and digest, so `given` (the spec given at
    extraction: config.json's extract.*_weights_arg) must still be there with the same content;
    otherwise, and for an identity afgen does not write, an AfgenError naming `config` (the
    store's config.json), `field` and `fix`. No identity (logmel: no weights) -> default."""
    if not identity:
        return DEFAULT
    kind = identity.split(":", 1)[0]
    if kind == RANDOM and identity == RANDOM_ID:
        return NONE
    if kind in PRETRAINED and len(identity) > len(kind) + 1:
        return DEFAULT
    if not re.fullmatch(rf"({FILE}:.+:sha256=|{FOLDER}:.+:)[0-9a-f]{{16}}", identity):
        kinds = ", ".join(f"{k}:" for k in (RANDOM, *PRETRAINED, FILE, FOLDER))
        raise AfgenError(f"{field} is {identity!r}, not a weights identity this afgen writes ({kinds}); "
                         "re-extract the store with this afgen", config)
    path = Path(given) if given else None
    if path is None or not path.exists():
        where = f"no longer at {given}" if given else "whose path it does not record (extract.*_weights_arg)"
        raise AfgenError(f"{field} is local weights ({identity}) {where}; {fix}", config)
    found = file_id(path) if kind == FILE and path.is_file() else folder_id(path) if path.is_dir() else ""
    if found != identity:
        raise AfgenError(f"{field} is local weights ({identity}), but {given} is now {found or 'not the same kind'}; "
                         f"{fix}", config)
    return str(given)
