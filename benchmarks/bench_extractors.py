"""Extractor benchmark: seconds per clip for each backbone / flow / audio option, one run.

Same synthetic 3-s 25 fps clips at 224 px for every row, random weights (the cost does not
depend on the values); each row extracts into a fresh store in this process with no worker
processes (`workers=0`: decode, flow, audio and backbone one after the other, so the figure
is the sum of the stages' cost per clip), after one warm-up clip, and reports seconds per
clip and the ratio to the default (ResNet50 + Farneback + log-mel). Every row runs its
backbone with the torch runtime, so rows compare extractors, not runtimes.

    python benchmarks/bench_extractors.py            # 6 clips per row
    python benchmarks/bench_extractors.py --quick    # 2 clips per row, ResNet18 rows only
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from afgen.config import AudioFeatureConfig, ExtractConfig, FlowConfig, SynthConfig, VideoConfig
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract
from afgen.extraction.synth import generate

ROWS = [  # label, backbone, flow, audio
    ("default: resnet50, farneback, logmel", "resnet50", "farneback", "logmel"),
    ("timm:resnet50", "timm:resnet50", "farneback", "logmel"),
    ("timm:convnext_tiny", "timm:convnext_tiny", "farneback", "logmel"),
    ("--flow raft_small", "resnet50", "raft_small", "logmel"),
    ("--flow raft", "resnet50", "raft", "logmel"),
    ("--audio vggish", "resnet50", "farneback", "vggish"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    n = 2 if args.quick else args.clips
    rows = [(label, "resnet18" if args.quick and not b.startswith("timm") else b, f, a) for label, b, f, a in ROWS]
    root = Path(tempfile.mkdtemp(prefix="afgen-extractors-"))
    listing = generate(root / "clips", SynthConfig(classes=2, clips_per_class=(n + 2) // 2, size=224,
                                                   frame_rates=(25.0,), missing_audio=0.0), show_progress=False)
    clips = discover(listing)
    results = {}
    for k, (label, backbone, flow, audio) in enumerate(rows):
        cfg = ExtractConfig(backbone=backbone, weights="none", flow_weights="none", workers=0,
                            runtime="torch")
        flow_cfg, audio_cfg = FlowConfig(algorithm=flow), AudioFeatureConfig(encoder=audio, weights="none")
        warm = replace(cfg, limit=1)
        extract(clips, root / f"warm{k}", warm, VideoConfig(), flow_cfg, audio_cfg, show_progress=False)
        start = time.perf_counter()
        s = extract(clips, root / f"row{k}", cfg, VideoConfig(), flow_cfg, audio_cfg, show_progress=False)
        results[label] = (time.perf_counter() - start) / s.done
        print(f"{label}: {results[label]:.2f} s/clip", flush=True)
    base = next(iter(results.values()))
    print(f"\n{n} synthetic 3-s 25 fps clips at 224 px per row, random weights, workers 0\n")
    print("| extractor | s per clip | vs default |\n|---|---:|---:|")
    for label, sec in results.items():
        print(f"| {label} | {sec:.2f} | {sec / base:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
