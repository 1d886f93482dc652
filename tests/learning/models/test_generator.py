from __future__ import annotations

import torch

from afgen.learning.models import AudioVisualClassifier, SoundFeatureGenerator, generator_loss, masked_mse


def _batch(lengths=(5, 3, 7), dim=16):
    torch.manual_seed(0)
    x = torch.zeros(len(lengths), max(lengths), dim)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randn(n, dim)
    return x, torch.tensor(lengths)


def test_output_shapes_for_different_lengths():
    gen = SoundFeatureGenerator(16, num_classes=4, audio_dim=6, hidden=8).eval()
    x, lengths = _batch()
    logits, audio = gen(x, lengths)
    assert logits.shape == (3, 4) and audio.shape == (3, 6)
    assert gen.generate(x, lengths).shape == (3, 6)
    fusion = AudioVisualClassifier(16, num_classes=4, audio_dim=6, hidden=8).eval()
    assert fusion(x, lengths, torch.randn(3, 6)).shape == (3, 4)


def test_padding_does_not_change_the_result():
    gen = SoundFeatureGenerator(16, num_classes=4, audio_dim=6, hidden=8).eval()
    fusion = AudioVisualClassifier(16, num_classes=4, audio_dim=6, hidden=8).eval()
    x, lengths = _batch()
    padded = torch.cat([x, torch.full((3, 4, 16), 99.0)], dim=1)
    audio = torch.randn(3, 6)
    torch.testing.assert_close(gen(x, lengths)[0], gen(padded, lengths)[0])
    torch.testing.assert_close(fusion(x, lengths, audio), fusion(padded, lengths, audio))


def test_masked_mse_ignores_clips_without_audio():
    pred, target = torch.randn(4, 6), torch.randn(4, 6)
    has = torch.tensor([True, False, True, False])
    before = masked_mse(pred, target, has)
    target2 = target.clone()
    target2[~has] = 1000.0  # changing the targets of silent clips changes nothing
    assert torch.equal(before, masked_mse(pred, target2, has))
    target3 = target.clone()
    target3[0] += 1.0
    assert not torch.equal(before, masked_mse(pred, target3, has))
    assert masked_mse(pred, target, torch.zeros(4, dtype=torch.bool)) == 0


def test_tiny_overfit_reaches_full_training_accuracy():
    torch.manual_seed(0)
    x, lengths = _batch(lengths=(4, 6, 5, 3, 7, 4, 6, 5))
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    audio = torch.randn(8, 6)
    has = torch.tensor([True] * 6 + [False] * 2)
    gen = SoundFeatureGenerator(16, num_classes=4, audio_dim=6, hidden=32, dropout=0.0, input_dropout=0.0)
    opt = torch.optim.Adam(gen.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        logits, audio_hat = gen(x, lengths)
        loss, _, _ = generator_loss(logits, audio_hat, labels, audio, has, lambda_reg=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    gen.eval()
    logits, _ = gen(x, lengths)
    assert losses[-1] < 0.2 * losses[0]
    assert (logits.argmax(1) == labels).all()
