"""Batches for training and scoring: clips as tensors, padded to the longest (what fills a
missing audio is learning/fills.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from afgen.config import TrainConfig
from afgen.contracts.packed import PackedFeatures
from afgen.errors import AfgenError
from afgen.learning.models.frame_generator import frame_targets, pool_frames, pooled_dim


class FrameAudio:
    """A packed store seen through its per-frame audio (per-frame generation): `audio(i)` is the
    sequence aligned with v_C [t-1, bands] or, `pooled`, what the classifier reads of it: its mean
    and maximum over time [2 * bands]. Everything else is the packed store's."""

    def __init__(self, packed: PackedFeatures, pooled: bool) -> None:
        if packed.frame_bands is None:
            raise AfgenError("this store has no per-frame audio (audio_frames) to train per-frame generation on")
        self.packed, self.pooled = packed, pooled
        self.sequence = not pooled
        self.audio_dim = pooled_dim(packed.frame_bands) if pooled else packed.frame_bands

    def __getattr__(self, name: str):
        return getattr(self.packed, name)

    def audio(self, i: int) -> np.ndarray | None:
        frames = self.packed.audio_frames(i)
        if frames is None:
            return None
        seq = frame_targets(frames)
        if not self.pooled:
            return seq
        return pool_frames(torch.tensor(seq)[None], torch.tensor([len(seq)]))[0].numpy()  # a copy: seq views the memory map


class ClipSet(Dataset):
    """(v_C, label, real audio or zeros, has real audio, generated audio or zeros) per clip.

    `generated` maps clip index -> a generated audio feature (raw space): what a classifier
    sees where a clip's audio is missing or dropped and its stage fills with generated audio.
    Sets up to `cache_mb` of v_C are held in memory (training reads each clip every epoch);
    larger ones are read from the memory-mapped store per item.
    """

    def __init__(self, packed: PackedFeatures, indices: list[int], label_index: dict[str, int],
                 generated: dict[int, np.ndarray] | None = None, cache_mb: float = TrainConfig.cache_mb) -> None:
        self.packed, self.indices, self.label_index = packed, indices, label_index
        self.generated = generated or {}
        self.audio_dim = packed.audio_dim
        rows = sum(int(packed.rgb_offsets[i + 1] - packed.rgb_offsets[i]) for i in indices)
        self._cache = None
        if rows * packed.visual_dim * 4 <= cache_mb * 2**20:
            self._cache = [self._item(k) for k in range(len(indices))]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        return self._cache[k] if self._cache is not None else self._item(k)

    def _item(self, k: int):
        i = self.indices[k]
        audio = self.packed.audio(i)
        has = audio is not None
        v_c = self.packed.v_c(i)
        zeros = np.zeros((len(v_c), self.audio_dim) if getattr(self.packed, "sequence", False) else self.audio_dim,
                         np.float32)
        generated = self.generated.get(i, np.zeros(self.audio_dim, np.float32))
        # a tensor never aliases the read-only memory map (the audio rows are views of it): copies
        return (torch.from_numpy(v_c if v_c.flags.writeable else v_c.copy()), self.label_index[self.packed.labels[i]],
                torch.tensor(audio if has else zeros), has, torch.tensor(np.asarray(generated, np.float32)))


def collate(batch):
    """Pad v_C to the longest clip; returns (v_c, lengths, labels, audio, has_audio, generated)."""
    seqs, labels, audio, has, gen = zip(*batch)
    lengths = torch.tensor([len(s) for s in seqs])
    padded = torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True)
    audio = (torch.nn.utils.rnn.pad_sequence(list(audio), batch_first=True) if audio[0].dim() == 2
             else torch.stack(audio))  # per-frame audio is padded like v_C
    return padded, lengths, torch.tensor(labels), audio, torch.tensor(has), torch.stack(gen)
