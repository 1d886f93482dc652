"""Transformer fusion with a learned missing-audio token, trained with modality dropout
(Woo et al., AAAI 2023; Ramazanova et al., ECCV 2024, "Missing Modality Token"): the video's
v_C steps and one audio token attend to each other in a small transformer; where the audio is
missing, a learned token takes the audio token's place. Written only against the public API.
"""

from __future__ import annotations

import torch
from torch import nn

from afgen.learning.method_api import (
    OWN,
    ClassifierModule,
    Method,
    Stage,
    StageContext,
    Standardizer,
    Trained,
    register_method,
    register_model,
    register_stage,
)


@register_model("transformer_fusion")
class TransformerFusion(nn.Module):
    """[CLS, audio token, v_C steps] through a 2-layer transformer; logits from CLS."""

    def __init__(self, input_dim: int, num_classes: int, audio_dim: int, width: int = 64, layers: int = 2,
                 heads: int = 4, dropout: float = 0.1, max_steps: int = 512) -> None:
        super().__init__()
        self.visual_norm, self.audio_norm = Standardizer(input_dim), Standardizer(audio_dim)
        self.visual, self.audio = nn.Linear(input_dim, width), nn.Linear(audio_dim, width)
        self.cls = nn.Parameter(torch.zeros(width))
        self.missing_token = nn.Parameter(torch.zeros(width))  # stands in for a missing audio token
        self.kind = nn.Parameter(torch.randn(3, width) * 0.02)  # CLS / audio / video token embeddings
        self.position = nn.Parameter(torch.randn(max_steps, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, num_classes))

    def encode(self, v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor,
               missing: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded tokens [B, 2 + T, W] and the padding mask of the video steps [B, T] (True: padding)."""
        b, t = v_c.shape[:2]
        steps = torch.arange(t, device=v_c.device)
        video = self.visual(self.visual_norm(v_c)) + self.position[steps.clamp_max(len(self.position) - 1)] + self.kind[2]
        a = self.audio(self.audio_norm(audio))
        if missing is not None:
            a = torch.where(missing.to(a.device)[:, None], self.missing_token.expand_as(a), a)
        tokens = torch.cat([(self.cls + self.kind[0]).expand(b, 1, -1), (a + self.kind[1])[:, None], video], dim=1)
        padding = steps[None, :] >= lengths.to(v_c.device)[:, None]
        mask = torch.cat([torch.zeros(b, 2, dtype=torch.bool, device=v_c.device), padding], dim=1)
        return self.encoder(tokens, src_key_padding_mask=mask), padding

    def forward(self, v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor,
                missing: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encode(v_c, lengths, audio, missing)[0][:, 0])


def train(ctx: StageContext) -> Trained:
    ctx.seed()
    model = ctx.standardized(TransformerFusion(ctx.visual_dim, ctx.num_classes, ctx.audio_dim))
    return ctx.fit(ClassifierModule(model, ctx.cfg, ctx.class_weights(), OWN, dropout=ctx.cfg.modality_dropout))


register_stage(Stage("transformer_token", "transformer fusion of the video steps and an audio token (2 layers, 4 heads, "
                     "width 64), modality dropout, learned missing-audio token (MMT)", train))
register_method(Method("av_transformer_token", "Transformer fusion, learned missing-audio token (MMT)",
                       "transformer_token", OWN))
