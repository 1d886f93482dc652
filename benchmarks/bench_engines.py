"""Engine benchmark: the local engine vs the Ray engine vs N concurrent shards, same clips, one run.

Every figure is a whole `afgen extract` process (imports, model build, Ray start-up included),
on the same synthetic 3-s 25 fps clips at 224 px, each into a fresh store:
  1. local            --engine local (producer processes + backbone in the main process)
  2. ray              --engine ray on a local Ray instance it starts itself
  3. ray, warm        the Ray engine with Ray already up in its process (timed from extract())
  4. shards           N `--shard I/N` processes started together on one store
  5. ray, finished    --engine ray on the finished store of (2): nothing to redo
Ratios (ray / local, shards / local) are what to compare across machines.

    python benchmarks/bench_engines.py               # full: 24 clips, ResNet50 (~10 min on 2 cores)
    python benchmarks/bench_engines.py --quick       # 8 clips, ResNet18
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from afgen.config import SynthConfig
from afgen.extraction.synth import generate

WARM_CHILD = """
import sys, time
from afgen.config import ExtractConfig, VideoConfig
from afgen.extraction.dataset import discover
from afgen.extraction.engines import ray_data
from afgen.extraction.extract import extract
cfg = ExtractConfig(backbone=sys.argv[3], weights="none", engine="ray", device="cpu")
ray_data.connect(cfg)
start = time.perf_counter()
s = extract(discover(sys.argv[1]), sys.argv[2], cfg, VideoConfig(), show_progress=False)
print("RESULT", s.done, time.perf_counter() - start)
"""


def timed(cmds: list[list[str]]) -> float:
    """Wall seconds for commands started together, all required to succeed."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in cmds]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"failed: {' '.join(proc.args)}\n{err[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    n_clips, backbone = (8, "resnet18") if args.quick else (args.clips, args.backbone)
    root = Path(tempfile.mkdtemp(prefix="afgen-engines-"))
    listing = generate(root / "clips", SynthConfig(classes=4, clips_per_class=max(1, n_clips // 4), size=224,
                                                   frame_rates=(25.0,), missing_audio=0.0), show_progress=False)
    n = len(listing.read_text().splitlines()) - 1

    def cmd(out: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "afgen", "extract", str(listing), str(root / out), "--backbone", backbone,
                "--weights", "none", "--device", "cpu", *extra]

    r: dict = {"backbone": backbone, "clips": n, "shards": args.shards}
    r["local_s"] = timed([cmd("local")])
    r["ray_s"] = timed([cmd("ray", "--engine", "ray")])
    r["shards_s"] = timed([cmd("shards", "--shard", f"{i}/{args.shards}") for i in range(args.shards)])
    r["ray_finished_s"] = timed([cmd("ray", "--engine", "ray")])
    warm = subprocess.run([sys.executable, "-c", WARM_CHILD, str(listing), str(root / "ray-warm"), backbone],
                          capture_output=True, text=True, check=True)
    done, seconds = warm.stdout.split("RESULT")[-1].split()
    r["ray_warm_s"] = float(seconds) * n / int(done)

    print(f"\n{backbone}, random weights, {n} synthetic 3-s 25 fps clips at 224 px, whole processes\n")
    print("| engine | seconds | clips/s | vs local |\n|---|---:|---:|---:|")
    for key, label in (("local_s", "local"), ("ray_s", "ray (starts Ray)"), ("ray_warm_s", "ray, Ray already up"),
                       ("shards_s", f"{args.shards} shards at once")):
        print(f"| {label} | {r[key]:.1f} | {n / r[key]:.3f} | {r['local_s'] / r[key]:.2f}x |")
    print(f"\nray on the finished store: {r['ray_finished_s']:.1f} s for {n} clips already done (nothing redone)")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
