"""RAFT optical flow (torchvision.models.optical_flow) on the backbone's device, in batches.

`--flow raft` / `raft_small`: the producers send RGB frames only; the process that runs the
backbone computes the flow of consecutive frame pairs with RAFT and encodes it with the same
`hsv` / `xy` encoders as the OpenCV algorithms, so v_F keeps its meaning. RAFT needs frames
of at least 128 px whose sides divide by 8: smaller frames are resized up for the flow and
the flow is resized back (vectors scaled), so the flow images match the RGB frames. On CPU it
is slow (README: seconds per clip); on a GPU it is the accurate choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from afgen.config import FlowConfig
from afgen.encoders.flows import is_learned, make_encoder
from afgen.encoders.registry import FLOWS
from afgen.encoders.weights import resolve_weights, torchvision_id
from afgen.errors import AfgenError

MIN_SIDE = 128


@dataclass
class RaftFlow:
    """A RAFT model ready for inference; `images(frames)` gives the encoded flow images."""

    model: torch.nn.Module
    name: str
    weights_id: str
    device: torch.device
    iters: int
    batch_size: int
    encode: Callable[[np.ndarray], np.ndarray]

    def identity(self) -> dict:
        return {"model": self.name, "weights": self.weights_id, "iters": self.iters}

    @torch.inference_mode()
    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow [N, H, W, 2] float32 (pixels) from uint8 frames first[i] to second[i], [N, H, W, 3]."""
        n, h, w = first.shape[:3]
        th, tw = (max(MIN_SIDE, 8 * math.ceil(side / 8)) for side in (h, w))
        out = np.empty((n, h, w, 2), np.float32)
        for start in range(0, n, self.batch_size):
            a, b = (self._input(x[start:start + self.batch_size], (th, tw)) for x in (first, second))
            f = self.model(a, b, num_flow_updates=self.iters)[-1]  # [B, 2, th, tw]
            if (th, tw) != (h, w):
                f = F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)
                f = f * torch.tensor([w / tw, h / th], device=f.device).view(1, 2, 1, 1)
            out[start:start + len(f)] = f.permute(0, 2, 3, 1).float().cpu().numpy()
        return out

    def images(self, frames: np.ndarray) -> np.ndarray:
        """Encoded flow images [t-1, H, W, 3] for consecutive RGB frames [t, H, W, 3]."""
        if len(frames) < 2:
            return np.zeros((0,) + frames.shape[1:], np.uint8)
        flows = self.flow(frames[:-1], frames[1:])
        return np.stack([self.encode(f) for f in flows])

    def _input(self, images: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float()
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x / 127.5 - 1.0  # RAFT's input range [-1, 1]


def build_raft(cfg: FlowConfig, device: torch.device, weights: str = "default", batch_size: int = 8) -> RaftFlow:
    """RAFT (large) or RAFT-small with torchvision's weights (`default`), random (`none`) or a
    state dict PATH."""
    from torchvision.models import optical_flow as of

    if not is_learned(cfg):
        raise AfgenError(f"{cfg.algorithm!r} is not a learned flow; use {', '.join(e.name for e in FLOWS if e.learned)}")
    factory, enum = ((of.raft_large, of.Raft_Large_Weights) if cfg.algorithm == "raft"
                     else (of.raft_small, of.Raft_Small_Weights))
    def pretrained() -> tuple[torch.nn.Module, str]:
        try:
            return factory(weights=enum.DEFAULT, progress=False), torchvision_id(enum.DEFAULT)
        except Exception as exc:  # noqa: BLE001 - download and cache errors come in many types
            raise AfgenError(
                f"cannot load RAFT weights {enum.DEFAULT} for --flow {cfg.algorithm}: not in torch's cache and the "
                f"download failed ({type(exc).__name__}). Offline, pass `--flow-weights PATH` (a state dict) or "
                "`--flow-weights none` (random: for tests only, it recovers no motion).") from exc

    model, weights_id = resolve_weights(weights, random=lambda: factory(weights=None), default=pretrained,
                                        what=cfg.algorithm)
    model = model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return RaftFlow(model, cfg.algorithm, weights_id, device, cfg.raft_iters, batch_size, make_encoder(cfg))
