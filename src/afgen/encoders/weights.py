"""Weights for every learned component (backbones, RAFT, audio encoders), loaded one way.

`resolve_weights(spec, ...)` is the one rule: `none` (seeded random), `default` (the library's
pretrained weights; backbones also accept their historical word `imagenet`) or a PATH.
`seeded(factory)` builds a network with random weights drawn from RANDOM_SEED (`none`: the
same network everywhere, for tests and offline runs); `load_state_dict(path)` reads a local
state dict (weights_only) and names it by its digest; `load_into` loads one strictly, with an
error naming the file when it does not fit; `one_torch_thread` gives a producer-side network
its one CPU (and the same bytes whatever threads its process has).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from afgen.errors import AfgenError

#: Random weights (`none`) are drawn from this seed.
RANDOM_SEED = 0
#: The weights identity recorded for them.
RANDOM_ID = f"random:seed={RANDOM_SEED}"

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
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad or unsafe files
        raise AfgenError(f"not a loadable state dict ({exc})", path) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise AfgenError("expected a state dict (a mapping of tensor names to tensors)", path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, f"file:{path.name}:sha256={digest}"


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
