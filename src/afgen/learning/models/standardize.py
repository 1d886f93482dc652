"""Per-dimension standardisation with statistics fixed from the training split."""

from __future__ import annotations

import torch
from torch import nn


class Standardizer(nn.Module):
    """(x - mean) / std with buffers, so the statistics travel with the checkpoint."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, rows: torch.Tensor) -> Standardizer:
        self.mean.copy_(rows.mean(0))
        self.std.copy_(rows.std(0).clamp_min(1e-3) if len(rows) > 1 else torch.ones_like(self.std))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean
