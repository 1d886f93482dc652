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


def test_validation_sums_are_reduced_on_the_modules_device_for_gpu_ddp():
    """Under DDP on GPUs the strategy reduces through NCCL, which rejects CPU tensors: the sums
    must be made on the module's device (here the meta device stands in for a GPU)."""
    from afgen.learning.fit import GeneratorModule
    from afgen.learning.models import SoundFeatureGenerator

    module = GeneratorModule(SoundFeatureGenerator(8, 3, 4, 16), TrainConfig(), None, 1.0).to("meta")
    seen = []

    class Strategy:
        def reduce(self, tensor, reduce_op):
            seen.append(tensor.device)
            assert tensor.device == module.device, "reduced a tensor that is not on the module's device"
            return torch.tensor([2.0, 4.0, 3.0, 4.0, 4.0, 1.0, 2.0, 2.0, 2.0], dtype=torch.float64)  # what NCCL gives

    class Trainer:
        world_size = 2
        strategy = Strategy()

    module.trainer = Trainer()
    logged = {}
    module.log = lambda key, value, **_: logged.__setitem__(key, value)
    module.on_validation_epoch_start()
    module.on_validation_epoch_end()
    assert seen == [torch.device("meta")] and logged["val_acc"] == 0.75 and logged["val_ce"] == 0.5


def test_saved_state_dicts_are_on_the_cpu_so_a_gpu_run_loads_anywhere():
    """A teacher kept outside Lightning stays on the GPU after training; model.pt must hold CPU
    tensors so a plain torch.load(weights_only=True) works on a machine without CUDA."""
    import io

    from afgen.learning.train import _cpu_state

    moved = []

    class OnGpu:  # a state-dict value as a CUDA tensor behaves: it is moved by .cpu() alone
        def detach(self):
            return self

        def cpu(self):
            moved.append(True)
            return torch.ones(2)

    class Model:
        def state_dict(self):
            return {"w": OnGpu()}

    state = _cpu_state(Model())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert moved == [True] and torch.equal(loaded["w"], torch.ones(2))


def test_validation_cosine_is_audio_cosines_raw_value_over_the_clips_with_audio():
    """fit's `val_cos` is the same generated-vs-real cosine as the stage metrics and evaluate
    (models.audio_cosines, raw), averaged over every validation clip with real audio."""
    import pytest

    from afgen.learning.fit import GeneratorModule
    from afgen.learning.models import SoundFeatureGenerator, audio_cosines

    torch.manual_seed(0)
    generator = SoundFeatureGenerator(8, 3, 4, 16, 1, 0.0, 0.0)
    generator.audio_norm.fit(torch.randn(20, 4) * 3 + 5)  # off zero and unit: the raw space differs
    module = GeneratorModule(generator, TrainConfig(), None, 1.0).eval()

    class Trainer:
        world_size = 1

    module.trainer = Trainer()
    logged = {}
    module.log = lambda key, value, **_: logged.__setitem__(key, float(value))
    batches = [(torch.randn(n, 5, 8), torch.full((n,), 5), torch.arange(n) % 3, torch.randn(n, 4) * 3 + 5,
                torch.rand(n) < 0.6, torch.zeros(n, 4)) for n in (6, 4)]
    for batch in batches:
        batch[4][0] = True  # every batch has a clip with audio
    module.on_validation_epoch_start()
    with torch.no_grad():
        for batch in batches:
            module._step(batch, "val")
    made = torch.cat([generator.generate(b[0], b[1])[b[4]] for b in batches])
    real = torch.cat([b[3][b[4]] for b in batches])
    module.on_validation_epoch_end()
    raw, _ = audio_cosines(made, real, generator.audio_norm.mean)
    assert logged["val_cos"] == pytest.approx(float(raw.mean()), rel=1e-6)
