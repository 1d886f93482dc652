"""Per-frame generation's pieces with known answers: pooling and the loss ignore padding and
clips without audio; the frame view of a store lines its audio up with v_C."""

from __future__ import annotations

import numpy as np
import torch

from afgen.contracts.openstore import open_store
from afgen.learning.batches import ClipSet, FrameAudio, collate
from afgen.learning.models import FrameGenerator, masked_frame_mse, pool_frames


def test_pooling_reads_only_the_valid_frames():
    seq = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [100.0, 100.0]],   # third step is padding
                        [[5.0, 5.0], [-100.0, -100.0], [-100.0, -100.0]]])
    pooled = pool_frames(seq, torch.tensor([2, 1]))
    torch.testing.assert_close(pooled, torch.tensor([[2.0, -1.0, 3.0, 0.0], [5.0, 5.0, 5.0, 5.0]]))


def test_the_frame_loss_ignores_padding_and_clips_without_audio():
    target = torch.zeros(3, 4, 2)
    pred = torch.zeros(3, 4, 2)
    pred[0, :2] = 1.0      # clip 0: 2 valid frames, error 1 each
    pred[0, 2:] = 50.0     # padding: ignored
    pred[1] = 9.0          # clip 1 has no audio: ignored
    pred[2, :3] = 2.0      # clip 2: 3 valid frames, error 4 each
    mse, per_clip = masked_frame_mse(pred, target, torch.tensor([2, 4, 3]), torch.tensor([True, False, True]))
    assert abs(float(mse) - (2 * 1 + 3 * 4) / 5) < 1e-6
    torch.testing.assert_close(per_clip, torch.tensor([1.0, 0.0, 4.0]))


def test_the_frame_view_lines_audio_up_with_v_c(tiny_store):
    packed = open_store(tiny_store / "features").packed
    seq, pooled = FrameAudio(packed, pooled=False), FrameAudio(packed, pooled=True)
    with_audio = [i for i in range(len(packed)) if packed.audio(i) is not None]
    without = [i for i in range(len(packed)) if packed.audio(i) is None]
    assert with_audio and without
    i = with_audio[0]
    np.testing.assert_array_equal(seq.audio(i), packed.audio_frames(i)[1:])  # row k of v_C is frame k+1
    assert len(seq.audio(i)) == len(packed.v_c(i)) and seq.audio_dim == packed.frame_bands
    np.testing.assert_allclose(pooled.audio(i), np.concatenate([seq.audio(i).mean(0), seq.audio(i).max(0)]),
                               rtol=1e-6)
    assert seq.audio(without[0]) is None
    v_c, lengths, _, audio, has, _ = collate([ClipSet(seq, [i, without[0]], {c: 0 for c in set(packed.labels)})[k]
                                               for k in range(2)])
    assert audio.shape[:2] == v_c.shape[:2] and has.tolist() == [True, False] and not audio[1].any()


def test_the_generator_regresses_every_frame_and_pools_for_the_classifier():
    model = FrameGenerator(input_dim=6, num_classes=3, bands=4, hidden=8, layers=1).eval()
    v_c, lengths = torch.randn(2, 5, 6), torch.tensor([5, 3])
    logits, frames = model(v_c, lengths)
    assert logits.shape == (2, 3) and frames.shape == (2, 5, 4)
    _, generated = model.predict(v_c, lengths)
    torch.testing.assert_close(generated, pool_frames(model.audio_norm.inverse(frames), lengths))
    # clip 1's padded steps change nothing
    padded = v_c.clone()
    padded[1, 3:] = 1000.0
    torch.testing.assert_close(model.predict(padded, lengths)[1], generated)
