"""ActionMAE-style joint reconstruction (Woo et al., AAAI 2023): in training the audio token is
dropped at random (modality dropout) and a decoder reconstructs the audio feature from the
visual tokens, trained jointly with the classifier (CE + λ·MSE on the dropped clips that have
real audio); at test, the reconstruction fills a missing audio. Written only against the
public API.
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


@register_model("reconstructing_fusion")
class ReconstructingFusion(nn.Module):
    """A 2-layer transformer over [audio-or-mask token, v_C steps]; a 1-layer decoder reads the
    audio slot back as a reconstructed audio feature; the classifier reads the pooled video
    tokens with the real audio, or with the reconstruction where the audio is missing."""

    def __init__(self, input_dim: int, num_classes: int, audio_dim: int, width: int = 64, layers: int = 2,
                 heads: int = 4, dropout: float = 0.1, max_steps: int = 512) -> None:
        super().__init__()
        self.visual_norm, self.audio_norm = Standardizer(input_dim), Standardizer(audio_dim)
        self.visual, self.audio = nn.Linear(input_dim, width), nn.Linear(audio_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.position = nn.Parameter(torch.randn(max_steps + 1, width) * 0.02)

        def layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)

        self.encoder = nn.TransformerEncoder(layer(), layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerEncoder(layer(), 1, enable_nested_tensor=False)
        self.reconstruct = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, audio_dim))
        self.head = nn.Sequential(nn.LayerNorm(2 * width), nn.Dropout(dropout), nn.Linear(2 * width, num_classes))

    def both(self, v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor,
             missing: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits [B, C] and the reconstructed audio feature (standardised) [B, A]."""
        b, t = v_c.shape[:2]
        steps = torch.arange(t, device=v_c.device)
        video = self.visual(self.visual_norm(v_c)) + self.position[1 + steps.clamp_max(len(self.position) - 2)]
        z = self.audio_norm(audio)
        missing = torch.zeros(b, dtype=torch.bool, device=v_c.device) if missing is None else missing.to(v_c.device)
        slot = torch.where(missing[:, None], self.mask_token.expand(b, -1), self.audio(z)) + self.position[0]
        padding = steps[None, :] >= lengths.to(v_c.device)[:, None]
        mask = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=v_c.device), padding], dim=1)
        encoded = self.encoder(torch.cat([slot[:, None], video], dim=1), src_key_padding_mask=mask)
        rebuilt = self.reconstruct(self.decoder(encoded, src_key_padding_mask=mask)[:, 0])
        valid = (~padding)[..., None]
        pooled = (encoded[:, 1:] * valid).sum(1) / valid.sum(1).clamp_min(1)
        heard = self.audio(torch.where(missing[:, None], rebuilt, z))
        return self.head(torch.cat([pooled, heard], dim=1)), rebuilt

    def forward(self, v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor,
                missing: torch.Tensor | None = None) -> torch.Tensor:
        return self.both(v_c, lengths, audio, missing)[0]


class ReconstructionModule(ClassifierModule):
    """CE + λ·MSE: the reconstruction of the dropped audio of clips that have a real track."""

    def _forward(self, v_c, lengths, audio, missing):
        logits, self._rebuilt = self.model.both(v_c, lengths, audio, missing)
        return logits

    def _extra_loss(self, v_c, lengths, real, has, missing, phase):
        dropped = has & missing
        if not dropped.any():
            return 0.0
        target = self.model.audio_norm(real[dropped])
        return self.cfg.lambda_reg * ((self._rebuilt[dropped] - target) ** 2).mean()


def train(ctx: StageContext) -> Trained:
    ctx.seed()
    model = ctx.standardized(ReconstructingFusion(ctx.visual_dim, ctx.num_classes, ctx.audio_dim))
    return ctx.fit(ReconstructionModule(model, ctx.cfg, ctx.class_weights(), OWN, dropout=ctx.cfg.modality_dropout))


register_stage(Stage("reconstruction", "ActionMAE-style: transformer over the video steps and an audio token (2 layers, "
                     "4 heads, width 64); the audio is dropped at random in training and a decoder reconstructs it "
                     "from the visual tokens (CE + λ·MSE); the reconstruction fills a missing audio at test", train))
register_method(Method("av_reconstructed", "ActionMAE-style joint reconstruction of the missing audio",
                       "reconstruction", OWN))
