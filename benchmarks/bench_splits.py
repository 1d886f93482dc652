"""Steady-state clips/s of `afgen extract` with each fixed split of the cores (producer processes
+ backbone threads) and with auto's, in alternating rounds on the same synthetic clips: how far
the split auto chooses is from the best fixed one on this machine.

    python benchmarks/bench_splits.py efficientnet_lite0 --size 224 --clips 48 --rounds 2
    python benchmarks/bench_splits.py resnet18 --size 112 --splits "1,1 1,2 2,1 2,2 auto"

auto's first round may try the splits (engines/balance.py) and remember the winner in the
user's cache (splits.json); later rounds start at it. Set AFGEN_CACHE_DIR to an empty folder
for a first-ever run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_extract import EXTRACT_CHILD

from afgen.config import SynthConfig
from afgen.extraction.synth import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("backbone")
    ap.add_argument("--size", type=int, default=224, help="working size fed to the backbone")
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--flow", default="farneback")
    ap.add_argument("--splits", default="1,1 1,2 2,1 2,2 auto", help="WORKERS,THREADS ... and/or auto")
    args = ap.parse_args()
    splits = [None if s == "auto" else tuple(map(int, s.split(","))) for s in args.splits.split()]
    root = Path(tempfile.mkdtemp(prefix="afgen-splits-"))
    listing = generate(root / "clips", SynthConfig(classes=6, clips_per_class=max(1, args.clips // 6), size=224,
                                                   frame_rates=(25.0,)), show_progress=False)
    results: dict[str, list[float]] = {"auto" if s is None else f"{s[0]}+{s[1]}": [] for s in splits}
    for _ in range(args.rounds):
        for s in splits:
            opts = {"backbone": args.backbone, "weights": "none", "batch_size": 16}
            if s is not None:
                opts |= {"workers": s[0], "threads": s[1]}
            out = root / "out"
            shutil.rmtree(out, ignore_errors=True)
            done = subprocess.run([sys.executable, "-c", EXTRACT_CHILD, str(listing), str(out), json.dumps(opts),
                                   args.flow, str(args.size)], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"extract failed:\n{done.stderr[-1500:]}")
            summary = json.loads(done.stdout.split("RESULT", 1)[1])
            steady = (summary["done"] - 1) / (summary["seconds"] - summary["first_clip_seconds"])
            key = "auto" if s is None else f"{s[0]}+{s[1]}"
            results[key].append(round(steady, 3))
            print(f"{key}: {steady:.3f} clips/s  {(summary.get('split') or '')[:200]}", flush=True)
    print("| split | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    print("| clips/s | " + " | ".join(" ".join(f"{v:.2f}" for v in vals) for vals in results.values()) + " |")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
