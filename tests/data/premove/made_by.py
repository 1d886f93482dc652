"""How tests/data/premove/ was made, by afgen at commit 95d6abb (before the package was split
into contracts/, extraction/, encoders/ and learning/): the store without its packed view and
the run's model.pt, metrics.json and provenance.json are kept, so tests can read files that
the old layout wrote. (Kept for the record; the import paths are the old ones.)"""

from afgen.dataset import discover
from afgen.extract import extract
from afgen.synth import generate
from afgen.train import train

from afgen.config import ExtractConfig, SynthConfig, TrainConfig, VideoConfig

if __name__ == "__main__":
    generate("clips", SynthConfig(classes=2, clips_per_class=6, size=32, seconds=1.0, workers=1), show_progress=False)
    extract(discover("clips"), "features", ExtractConfig(backbone="resnet18", weights="none", workers=1, dtype="float16"),
            video=VideoConfig(height=32, width=32), show_progress=False)
    train("features", "run", TrainConfig(epochs=1, hidden=4, fusion_hidden=4, oof_folds=2, batch_size=4),
          show_progress=False)
