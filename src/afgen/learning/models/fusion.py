"""The audio-visual classifier that consumes a (real, filled or generated) audio feature.

It has its own visual encoder (mean and max pooling of standardised v_C) rather than the
generator's hidden state, so the generator and the classifier train independently and the
methods compared in evaluation differ only in the audio they are given. With
`missing_token=True` it learns an embedding that stands in for absent audio (Ramazanova et
al. 2024): wherever `missing` is set, the standardised audio input is replaced by the token.
"""

from __future__ import annotations

import torch
from torch import nn

from afgen.config import TrainConfig
from afgen.learning.method_registry import register_model
from afgen.learning.models.standardize import Standardizer


@register_model("av_classifier")
class AudioVisualClassifier(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, audio_dim: int,
                 hidden: int = TrainConfig.fusion_hidden, dropout: float = TrainConfig.dropout,
                 missing_token: bool = False) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(audio_dim)) if missing_token else None
        self.visual_norm = Standardizer(input_dim)
        self.audio_norm = Standardizer(audio_dim)
        self.visual = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * input_dim, hidden), nn.ReLU())
        self.audio = nn.Sequential(nn.Linear(audio_dim, hidden // 2), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden + hidden // 2, num_classes))

    def forward(self, v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor,
                missing: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits [B, C] from padded v_C [B, T, 2D] and raw audio features [B, A].

        `missing` [B] (bool) marks clips whose audio is absent; a model with a token uses it
        there (the audio values of those rows are then ignored), others ignore `missing`."""
        z = self.visual_norm(v_c)
        steps = torch.arange(z.shape[1], device=z.device)[None, :, None]
        valid = steps < lengths.to(z.device)[:, None, None]
        mean = (z * valid).sum(1) / lengths.to(z.device)[:, None].clamp_min(1)
        peak = z.masked_fill(~valid, float("-inf")).amax(1)
        visual = self.visual(torch.cat([mean, peak], dim=1))
        a = self.audio_norm(audio)
        if self.token is not None and missing is not None:
            a = torch.where(missing.to(a.device)[:, None], self.token.expand_as(a), a)
        return self.head(torch.cat([visual, self.audio(a)], dim=1))
