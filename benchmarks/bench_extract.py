"""Extraction benchmark: afgen extract vs the backbone alone vs a naive seed-style pipeline.

All measured in one run on the same synthetic 3-s 25 fps clips:
  1. backbone alone      images/s on pre-made tensors (same model, batch size, precision)
  2. afgen extract       end to end (decode + flow + audio + backbone + writes), clips/s, images/s
  3. naive reference     cv2, every int(fps/6)-th frame, JPEG round trip of frames and HSV
                         Farneback flow, fp32, one batch per clip
  4. bf16 vs fp32        cosine of the features of the same images
  5. peak RSS            of a fresh extraction process (workers=0): 20 vs 200 clips, 3-s vs 60-s clip

    python benchmarks/bench_extract.py            # full (several minutes on 2 cores)
    python benchmarks/bench_extract.py --quick    # smaller counts
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from afgen.config import ExtractConfig, SynthConfig, VideoConfig
from afgen.dataset import discover
from afgen.extract import extract
from afgen.synth import generate, make_clip, write_clip
from afgen.visual import _to_input, build_backbone


def backbone_alone(name: str, precision: str, batch: int, n: int) -> float:
    bb = build_backbone(name, "none", "cpu", precision, batch)
    x = _to_input(np.random.default_rng(0).integers(0, 255, (batch, 224, 224, 3), dtype=np.uint8), bb.device)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bb.precision == "bf16" else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), ctx:
        bb.model(x)
        start = time.perf_counter()
        for _ in range(n // batch):
            bb.model(x)
    return (n // batch) * batch / (time.perf_counter() - start)


def naive(clips: list[Path], name: str) -> tuple[float, int]:
    """The seed's way: cv2 decode, int(fps/6) stride, JPEGs on disk, fp32, one batch per clip."""
    bb = build_backbone(name, "none", "cpu", "fp32")
    images = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k, clip in enumerate(clips):
            cap = cv2.VideoCapture(str(clip))
            step = max(1, int(cap.get(cv2.CAP_PROP_FPS) / 6))
            frames, i = [], 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if i % step == 0:
                    frames.append(cv2.resize(frame, (224, 224)))
                i += 1
            paths = []
            prev = None
            for j, f in enumerate(frames):
                p = Path(tmp) / f"{k}_rgb_{j}.jpg"
                cv2.imwrite(str(p), f)
                paths.append(p)
                g = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
                if prev is not None:
                    flow = cv2.calcOpticalFlowFarneback(prev, g, None, 0.5, 3, 15, 3, 5, 1.2, 0)
                    mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1])
                    hsv = np.zeros_like(f)
                    hsv[..., 0], hsv[..., 1] = ang * 180 / np.pi / 2, 255
                    hsv[..., 2] = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX)
                    p = Path(tmp) / f"{k}_flow_{j}.jpg"
                    cv2.imwrite(str(p), cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))
                    paths.append(p)
                prev = g
            batch = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])
            with torch.inference_mode():
                bb.model(_to_input(batch, bb.device))  # the whole clip as one batch
            images += len(batch)
    return len(clips) / (time.perf_counter() - start), images


def bf16_cosine(name: str) -> float:
    x = np.random.default_rng(1).integers(0, 255, (16, 224, 224, 3), dtype=np.uint8)
    a = build_backbone(name, "none", "cpu", "fp32", 16)(x)
    b = build_backbone(name, "none", "cpu", "bf16", 16)(x)
    return float(np.min(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


RSS_CHILD = """
import resource, sys
from afgen.config import ExtractConfig, VideoConfig
from afgen.dataset import discover
from afgen.extract import extract
extract(discover(sys.argv[1]), sys.argv[2], ExtractConfig(backbone=sys.argv[3], weights="none", workers=0),
        VideoConfig(), show_progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss(listing: Path, out: Path, name: str) -> float:
    res = subprocess.run([sys.executable, "-c", RSS_CHILD, str(listing), str(out), name],
                         capture_output=True, text=True, check=True)
    return int(res.stdout.split()[-1]) / 1024  # MiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--rss-backbone", default="resnet18", help="smaller model for the memory runs")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    n_clips, rss_small, rss_big = (8, 10, 60) if args.quick else (args.clips, 20, 200)
    precision = "bf16" if build_backbone("resnet18", "none").precision == "bf16" else "fp32"
    root = Path(tempfile.mkdtemp(prefix="afgen-bench-"))
    cfg = SynthConfig(classes=6, clips_per_class=max(1, n_clips // 6), size=224, frame_rates=(25.0,))
    listing = generate(root / "clips", cfg, show_progress=False)
    ds = discover(listing)
    clips = [c.path for c in ds.clips]

    results: dict = {"backbone": args.backbone, "precision": precision, "clips": len(clips)}
    results["backbone_img_s"] = backbone_alone(args.backbone, precision, 16, 96)
    ecfg = ExtractConfig(backbone=args.backbone, weights="none", precision=precision)
    s = extract(ds, root / "features", ecfg, VideoConfig(), show_progress=False)
    results["extract_clips_s"] = s.done / s.seconds
    results["extract_img_s"] = s.images / s.seconds
    results["naive_clips_s"], results["naive_images"] = naive(clips, args.backbone)
    results["bf16_min_cosine"] = bf16_cosine(args.backbone)

    # memory: 20 vs 200 clips (3 s), and one 3-s vs one 60-s clip
    many = generate(root / "many", SynthConfig(classes=5, clips_per_class=rss_big // 5, size=224,
                                               frame_rates=(25.0,)), show_progress=False)
    few = many.parent / "few.csv"
    few.write_text("\n".join(many.read_text().splitlines()[: rss_small + 1]) + "\n")
    results["rss_small_mib"] = peak_rss(few, root / "f_few", args.rss_backbone)
    results["rss_big_mib"] = peak_rss(many, root / "f_many", args.rss_backbone)
    for secs in (3.0, 60.0):
        frames, audio, fps = make_clip("bounce", np.random.default_rng(5), SynthConfig(size=224, seconds=secs,
                                                                                      frame_rates=(25.0,)))
        path = root / "long" / f"s{int(secs)}" / "bounce" / "clip.mp4"
        path.parent.mkdir(parents=True)
        write_clip(path, frames, audio, fps, 16_000)
        results[f"rss_{int(secs)}s_mib"] = peak_rss(path.parent.parent, root / f"f_{int(secs)}", args.rss_backbone)

    r = results
    rows = [
        ("backbone alone", f"{r['backbone_img_s']:.1f} img/s", ""),
        ("afgen extract", f"{r['extract_img_s']:.1f} img/s", f"{r['extract_clips_s']:.2f} clips/s"),
        ("naive reference", "", f"{r['naive_clips_s']:.2f} clips/s"),
    ]
    print(f"\n{args.backbone}, {precision}, batch 16, {len(clips)} synthetic 3-s 25 fps clips at 224 px\n")
    print("| pipeline | images/s | clips/s |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    print(f"\nextract / backbone (images/s): {r['extract_img_s'] / r['backbone_img_s']:.2f}  (target >= 0.9)")
    print(f"extract / naive (clips/s):     {r['extract_clips_s'] / r['naive_clips_s']:.2f}  (target >= 2.8)")
    print(f"bf16 vs fp32 min cosine:       {r['bf16_min_cosine']:.4f}  (target >= 0.999)")
    print(f"peak RSS {rss_small} vs {rss_big} clips:     {r['rss_small_mib']:.0f} vs {r['rss_big_mib']:.0f} MiB "
          f"({100 * (r['rss_big_mib'] / r['rss_small_mib'] - 1):+.1f}%)")
    print(f"peak RSS 3-s vs 60-s clip:     {r['rss_3s_mib']:.0f} vs {r['rss_60s_mib']:.0f} MiB "
          f"({100 * (r['rss_60s_mib'] / r['rss_3s_mib'] - 1):+.1f}%)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
