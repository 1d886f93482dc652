from __future__ import annotations

import torch

from afgen.config import TrainConfig
from afgen.learning.fit import ClassifierModule
from afgen.learning.models import AudioVisualClassifier


def test_distillation_is_zero_at_the_teacher_and_pulls_towards_it():
    torch.manual_seed(0)
    teacher = AudioVisualClassifier(8, 3, 4, 16, 0.0)
    student = AudioVisualClassifier(8, 3, 4, 16, 0.0)
    module = ClassifierModule(student, TrainConfig(), None, never_audio=True, teacher=teacher)
    v_c, lengths, audio = torch.randn(5, 6, 8), torch.full((5,), 6), torch.randn(5, 4)
    target = teacher(v_c, lengths, audio, torch.zeros(5, dtype=torch.bool))
    assert module._distillation(target, v_c, lengths, audio).abs() < 1e-6
    far = module._distillation(torch.randn(5, 3) * 5, v_c, lengths, audio)
    assert far > 0.1
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(not name.startswith("_teacher") for name, _ in module.named_parameters())  # not trained here


def test_generation_through_the_classifier_trains_the_generator_only():
    from afgen.learning.fit import ThroughModule
    from afgen.learning.models import SoundFeatureGenerator

    torch.manual_seed(0)
    classifier = AudioVisualClassifier(8, 3, 4, 16, 0.0)
    generator = SoundFeatureGenerator(8, 3, 4, 16, 1, 0.0, 0.0)
    module = ThroughModule(generator, TrainConfig(), None, 1.0, classifier)
    batch = (torch.randn(6, 5, 8), torch.full((6,), 5), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(6, 4),
             torch.tensor([True, False, True, True, False, True]), torch.zeros(6, 4))
    module.log = lambda *a, **k: None  # outside a Trainer
    module._step(batch, "train").backward()
    assert generator.regress.weight.grad is not None and generator.regress.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in classifier.parameters())
