"""Extraction benchmark: where the time goes, the limit it implies, and how close afgen gets.

All in one run, on the same synthetic 3-s 25 fps clips (Moments-in-Time length; 224 px at the
source) at the working size --size (224; e.g. ResNet18 at 112 for a small fast network):
  1. stage costs      core-seconds per clip of each stage, each measured alone on one core:
                      decode, resize (to the working size, RGB), flow, audio (decode + encoder),
                      backbone (its images on every core: wall x cores), write
  2. limit            the fastest any pipeline on these cores can go: per clip
                      (backbone + producer core-seconds) / cores on a CPU, the producer's being
                      its whole work (producer.produce on one core: the stages and their glue,
                      one BLAS thread as in a worker); on a GPU,
                      max(backbone wall, producer core-seconds / producer processes)
  3. backbone alone   images/s on pre-made images (same model, runtime, batch, threads)
  4. afgen extract    steady state (after the first clip) with Farneback and with DIS, as a
                      fraction of the limit and of the backbone alone, and the split of the
                      cores it chose (engines/balance.py); start-up = time to the first clip -
                      model build - one steady clip. Each flow runs twice on a cache that holds
                      the runtime measurement but no split: the first run tries the splits on its
                      clips (a trial is start-up work), the second starts at the winner (the
                      steady state every later run has); both are reported
  5. whole process    `afgen extract` (warm: the runtime measurement cached; and first-ever:
                      an empty AFGEN_CACHE_DIR, so it measures the runtimes and exports the
                      graph) vs the seed-style pipeline (cv2, int(fps/6) stride, JPEG
                      round trip of frames and HSV Farneback flow, plain torchvision model in
                      eager fp32, the whole clip as one batch), cold processes, same clips,
                      both on --device
  6. features         min cosine of the runtime's features to fp32 eager torch
  7. peak RSS         fresh extraction processes: 20 vs 200 clips, one 3-s vs one 60-s clip
  8. runtimes         every available backbone runtime side by side (img/s, cosine to fp32 eager
                      torch) and which one `--runtime auto` chose and why (its cached measurement);
                      every afgen run above uses that choice; the same table for each --beside
                      backbone (default efficientnet_lite0, the offline ImageNet one, beside ResNet50)
  9. start-up         whole process minus the same clips at the steady state, and where it goes
                      (interpreter + imports, model build, the first clip's wait)
 10. RAFT-small       seconds per clip of the learned flow on this device (random weights)

    python benchmarks/bench_extract.py                 # full (~15 min on 2 cores)
    python benchmarks/bench_extract.py --quick         # smaller counts, for a smoke test only
    python benchmarks/bench_extract.py --backbone resnet18 --size 112 --no-memory   # a small fast network
    python benchmarks/bench_extract.py --device cuda   # the same table on a GPU (a few minutes); every
                                                       # part, the seed-style baseline and the memory
                                                       # runs included, runs on --device
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_limits

import afgen.extraction.video
from afgen.config import (
    CACHE_DIR_ENV,
    RUNTIME_TRIAL_BATCHES,
    AudioFeatureConfig,
    ExtractConfig,
    FlowConfig,
    SynthConfig,
    VideoConfig,
)
from afgen.contracts.store import FeatureStore
from afgen.encoders.audio import get_encoder
from afgen.encoders.backbones import build_backbone
from afgen.encoders.flows import gray, make_encoder, make_flow
from afgen.encoders.raft import build_raft
from afgen.encoders.runtime_choice import choose_runtime, cpu_description, measure
from afgen.extraction.dataset import discover
from afgen.extraction.engines.pool import producer_settings
from afgen.extraction.producer import produce, warm_up
from afgen.extraction.synth import generate, make_clip, write_clip
from afgen.extraction.video import ClipReader

NAIVE_CHILD = """
import sys, tempfile, time
from pathlib import Path
import cv2, numpy as np, torch, torchvision
start = time.perf_counter()
SIZE = int(sys.argv[3])  # the seed resized to 224; at another working size, the same size as afgen
device = sys.argv[2]  # the seed ran its model on the GPU when it had one: the same device as afgen here
try:
    model = torchvision.models.get_model(sys.argv[1], weights=None).eval().to(device)
    model.fc = torch.nn.Identity()
except ValueError:  # not a torchvision model (efficientnet_lite0): afgen's eager fp32 torch module, head removed
    from afgen.encoders.backbones import build_backbone
    model = build_backbone(sys.argv[1], "none", device, "fp32", 16, "torch").model.float()
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
with tempfile.TemporaryDirectory() as tmp:
    for k, clip in enumerate(sys.argv[4:]):
        cap = cv2.VideoCapture(clip)
        step = max(1, int(cap.get(cv2.CAP_PROP_FPS) / 6))
        frames, i = [], 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                frames.append(cv2.resize(frame, (SIZE, SIZE)))
            i += 1
        paths, prev = [], None
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
        batch = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]) / 255.0
        x = torch.from_numpy(((batch - mean) / std).transpose(0, 3, 1, 2)).float().to(device)
        with torch.no_grad():
            model(x).cpu()  # the whole clip as one batch; its features back on the host, as the seed saved them
"""

EXTRACT_CHILD = """
import dataclasses, json, sys
from afgen.config import ExtractConfig, FlowConfig, VideoConfig
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract
cfg = ExtractConfig(**json.loads(sys.argv[3]))
s = extract(discover(sys.argv[1]), sys.argv[2], cfg, VideoConfig(height=int(sys.argv[5]), width=int(sys.argv[5])),
            FlowConfig(algorithm=sys.argv[4]),
            show_progress=False)
print("RESULT", json.dumps({k: v for k, v in dataclasses.asdict(s).items() if k != "store"}))
"""

RSS_CHILD = """
import resource, sys
from afgen.config import ExtractConfig, VideoConfig
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract
extract(discover(sys.argv[1]), sys.argv[2], ExtractConfig(backbone=sys.argv[3], weights="none", workers=0,
                                                          device=sys.argv[4]), VideoConfig(), show_progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def stage_costs(clips: list[Path], store_root: Path, size: int = 224) -> dict[str, float]:
    """Core-seconds per clip of each producer stage and of the writes, one thread, this process."""
    cv2.setNumThreads(1)
    video = VideoConfig(decoder_threads=1, height=size, width=size)
    flows = {name: (make_flow(FlowConfig(algorithm=name)), make_encoder(FlowConfig())) for name in ("farneback", "dis")}
    encoder = get_encoder("logmel", AudioFeatureConfig())
    # one BLAS thread, as in a worker: a pool's threads spinning after the encoder's call would
    # bill the next stage timed here (Farneback read 0.27 core-s per clip that way, 0.15 alone)
    blas = threadpool_limits(limits=1, user_api="blas")
    encoder.encode(np.zeros(16_000, np.float32), 16_000, [0.0, 1 / 6], 1 / 6)  # imports: a worker's warm-up
    costs = dict.fromkeys(["decode", "resize", "farneback", "dis", "audio", "audio_packets", "write"], 0.0)
    real_rgb, real_audio = afgen.extraction.video._to_rgb, afgen.extraction.video.ClipReader._decode_audio

    def timed(key, fn):
        def wrapper(*args):
            t = time.process_time()
            try:
                return fn(*args)
            finally:
                costs[key] += time.process_time() - t
        return wrapper

    afgen.extraction.video._to_rgb = timed("resize", real_rgb)
    afgen.extraction.video.ClipReader._decode_audio = timed("audio_packets", real_audio)
    store = FeatureStore(store_root)
    store.root.mkdir(parents=True)
    try:
        for path in clips:
            t = time.process_time()
            with ClipReader(path, video) as clip:
                frames = [f.rgb for f in clip.frames()]
                costs["decode"] += time.process_time() - t
                t = time.process_time()
                track = clip.audio()
                feats = encoder.encode(track.samples, track.rate, [k / 6 for k in range(len(frames))], 1 / 6)
                costs["audio"] += time.process_time() - t
            for name, (flow, encode) in flows.items():
                t = time.process_time()
                images = [encode(flow(gray(a), gray(b))) for a, b in zip(frames[:-1], frames[1:])]
                costs[name] += time.process_time() - t
            d = 2048
            arrays = {"rgb": np.zeros((len(frames), d), np.float16), "flow": np.zeros((len(images), d), np.float16),
                      "audio": feats.clip, "audio_frames": feats.frames}
            t = time.process_time()
            store.write_clip(path.stem, arrays, {"id": path.stem})
            costs["write"] += time.process_time() - t
    finally:
        afgen.extraction.video._to_rgb, afgen.extraction.video.ClipReader._decode_audio = real_rgb, real_audio
        blas.unregister()
    costs["decode"] -= costs["resize"] + costs["audio_packets"]  # frames() also decoded the audio packets
    costs["audio"] += costs.pop("audio_packets")
    return {k: v / len(clips) for k, v in costs.items()}


def producer_costs(clips: list[Path], size: int = 224) -> dict[str, float]:
    """Core-seconds per clip of a producer's whole work (producer.produce: decode, resize, flow,
    audio, the chunks it sends), one core, as a worker runs it: what the limit counts."""
    cv2.setNumThreads(1)
    out = {}
    for flow in ("farneback", "dis"):
        settings = producer_settings(ExtractConfig(), VideoConfig(decoder_threads=1, height=size, width=size),
                                     FlowConfig(algorithm=flow), AudioFeatureConfig())
        warm_up(settings)
        t = time.process_time()
        for i, path in enumerate(clips):
            list(produce(str(i), path, settings))
        out[flow] = (time.process_time() - t) / len(clips)
    return out


def backbone_alone(cfg: ExtractConfig, images: int, size: int = 224) -> tuple[float, float]:
    """Images/s of the backbone (with its preprocessing) on pre-made images, on every core, and
    the CPU seconds it used per image (a small network's threads do not keep every core busy:
    wall x cores overstates its cost, and the producers use what it leaves)."""
    bb = build_backbone(cfg.backbone, "none", cfg.device, cfg.precision, cfg.batch_size, cfg.runtime)
    x = np.random.default_rng(0).integers(0, 255, (cfg.batch_size * 2, size, size, 3), dtype=np.uint8)
    bb(x)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(max(1, images // len(x))):
        bb(x)
    if bb.device.type == "cuda":
        torch.cuda.synchronize()
    n = max(1, images // len(x)) * len(x)
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n


def run_extract(listing: Path, out: Path, cfg: ExtractConfig, flow: str, size: int = 224,
                env: dict | None = None) -> dict:
    """afgen extract in a fresh `python -c` process (its workers re-import nothing heavy, as under
    the CLI; the model is exported anew), timed by its summary; the cores split as extract chooses."""
    opts = {"backbone": cfg.backbone, "weights": "none", "device": cfg.device, "batch_size": cfg.batch_size,
            "runtime": cfg.runtime, "precision": cfg.precision}
    res = subprocess.run([sys.executable, "-c", EXTRACT_CHILD, str(listing), str(out), json.dumps(opts), flow,
                          str(size)], capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(f"extract failed:\n{res.stderr[-2000:]}")
    s = json.loads(res.stdout.split("RESULT", 1)[1])
    steady = (s["done"] - 1) / (s["seconds"] - s["first_clip_seconds"])
    images_per_clip = s["images"] / s["done"]
    running = s["seconds"] - s["build_seconds"] - s["startup_wait_seconds"]
    return {"clips_s": steady, "img_s": steady * images_per_clip, "images_per_clip": images_per_clip,
            "build_s": s["build_seconds"], "first_clip_s": s["first_clip_seconds"],
            "startup_s": s["first_clip_seconds"] - s["build_seconds"] - 1 / steady,
            "wait_fraction": s["wait_seconds"] / running, "total_s": s["seconds"], "split": s.get("split")}


def _cache_without_splits(folder: Path) -> Path:
    """A cache folder with the user's runtime measurement and exported graphs (linked) but no
    remembered producer cost or split: extract's first run there does its trial of splits."""
    from afgen.config import cache_dir

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("runtimes.json", "graphs", "openvino"):
        if (cache_dir() / name).exists():
            (folder / name).symlink_to(cache_dir() / name)
    return folder


def whole(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(f"failed: {' '.join(cmd[:4])} ...\n{res.stderr[-2000:]}")
    return time.perf_counter() - start


def feature_cosine(cfg: ExtractConfig, size: int = 224) -> float:
    x = np.random.default_rng(1).integers(0, 255, (cfg.batch_size, size, size, 3), dtype=np.uint8)
    a = build_backbone(cfg.backbone, "none", "cpu", "fp32", cfg.batch_size, runtime="torch")(x)
    b = build_backbone(cfg.backbone, "none", cfg.device, cfg.precision, cfg.batch_size, cfg.runtime)(x)
    return float(np.min(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def import_seconds() -> float:
    """A fresh interpreter importing what `afgen extract` needs before it can build the model."""
    return whole([sys.executable, "-c", "import afgen.cli.app, afgen.extraction.extract"])


def raft_seconds(device: str, clip: Path) -> float:
    """Seconds per clip of RAFT-small (random weights: the same cost) on one clip's frame pairs."""
    with ClipReader(clip, VideoConfig()) as reader:
        frames = np.stack([f.rgb for f in reader.frames()])
    raft = build_raft(FlowConfig(algorithm="raft_small"), torch.device(device), "none",
                      ExtractConfig().batch_for(device))
    raft.images(frames[:3])  # warm up
    start = time.perf_counter()
    raft.images(frames)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_rss(listing: Path, out: Path, name: str, device: str) -> float:
    """Peak host RSS (MiB) of a fresh extraction process on `device` (on a GPU, host memory only)."""
    res = subprocess.run([sys.executable, "-c", RSS_CHILD, str(listing), str(out), name, device],
                         capture_output=True, text=True, check=True)
    return int(res.stdout.split()[-1]) / 1024  # MiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (every part runs there)")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--rss-backbone", default="resnet18", help="smaller model for the memory runs")
    ap.add_argument("--size", type=int, default=224, help="working size fed to the backbone (the clips stay 224 px)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS runs and RAFT-small")
    ap.add_argument("--beside", default="efficientnet_lite0",
                    help="comma-separated backbones whose runtimes are reported beside --backbone's ('' for none)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    n_clips, rss_small, rss_big = (8, 10, 40) if args.quick else (args.clips, 20, 200)
    cores = os.cpu_count() or 1
    cfg = ExtractConfig(backbone=args.backbone, weights="none", device=args.device,
                        batch_size=ExtractConfig().batch_for(args.device))
    root = Path(tempfile.mkdtemp(prefix="afgen-bench-"))
    listing = generate(root / "clips", SynthConfig(classes=6, clips_per_class=max(1, n_clips // 6), size=224,
                                                   frame_rates=(25.0,)), show_progress=False)
    ds = discover(listing)
    clips = [c.path for c in ds.clips]
    size = args.size
    r: dict = {"backbone": args.backbone, "device": args.device, "cores": cores, "clips": len(clips), "size": size}

    r["stages"] = stage_costs(clips[: min(8, len(clips))], root / "stage_store", size)
    r["producer"] = producer_costs(clips[: min(8, len(clips))], size)
    torch.set_num_threads(cores)  # the backbone's threads while extract measures (its split follows)
    r["cpu"] = cpu_description()
    if args.device == "cpu":  # what `--runtime auto` measured (or reads from its cache); every run here uses it
        choice = choose_runtime(cfg.backbone, (size, size), cfg.batch_size, cfg.precision)
        cfg = replace(cfg, runtime=choice.runtime, precision=choice.precision)
        r["runtime_trials"] = [asdict(t) for t in choice.trials]
        r["auto_choice"] = choice.reason()
        r["beside"] = {name: [asdict(t) for t in measure(name, (224, 224), cfg.batch_size, "auto",
                                                         trials=2 if args.quick else RUNTIME_TRIAL_BATCHES)]
                       for name in filter(None, args.beside.split(","))}
    r["backbone_img_s"], r["backbone_cpu_s_per_image"] = backbone_alone(
        cfg, (96 if args.quick else 192) if args.device == "cpu" else 4096, size)
    built = build_backbone(cfg.backbone, "none", cfg.device, cfg.precision, cfg.batch_size, cfg.runtime)
    r["runtime"], r["precision"] = built.runtime, built.precision
    if not args.no_memory:
        r["raft_small_s_per_clip"] = raft_seconds(args.device, clips[0])
    r["import_s"] = import_seconds()
    splits_cache = _cache_without_splits(root / "cache")  # the runtime measurement, no split remembered
    for flow in ("farneback", "dis"):  # the first run tries the splits, the second starts at the winner
        env = os.environ | {CACHE_DIR_ENV: str(splits_cache)}
        r[f"{flow}_trial"] = run_extract(listing, root / f"f_{flow}_1", cfg, flow, size, env)
        r[flow] = run_extract(listing, root / f"f_{flow}", cfg, flow, size, env)
    per_clip = r["farneback"]["images_per_clip"]
    producer = r["producer"]  # the whole of a worker's work per clip (the stages and their glue)
    if args.device == "cpu":
        backbone_core_s = per_clip * cores / r["backbone_img_s"]
        r["limit_clips_s"] = {f: cores / (backbone_core_s + producer[f] + r["stages"]["write"]) for f in producer}
        # the same with the backbone's CPU time (what its threads really use of the cores)
        cpu_core_s = per_clip * r["backbone_cpu_s_per_image"]
        r["limit_cpu_clips_s"] = {f: cores / (cpu_core_s + producer[f] + r["stages"]["write"]) for f in producer}
    else:
        backbone_s = per_clip / r["backbone_img_s"]
        r["limit_clips_s"] = {f: 1 / max(backbone_s, producer[f] / max(1, cores - 1)) for f in producer}

    # whole processes, cold: afgen extract (CLI) vs the seed-style pipeline, same clips
    # (warm: `--runtime auto` as a user runs it, its measurement cached; first-ever: an empty cache)
    afgen_cmd = [sys.executable, "-m", "afgen", "extract", str(listing), str(root / "f_cli"), "--backbone",
                 args.backbone, "--weights", "none", "--device", args.device, "--size", str(size)]
    r["whole_afgen_s"] = whole(afgen_cmd, env=os.environ | {CACHE_DIR_ENV: str(splits_cache)})  # split remembered
    r["whole_afgen_clips_s"] = len(clips) / r["whole_afgen_s"]
    r["startup_overhead_s"] = r["whole_afgen_s"] - len(clips) / r["farneback"]["clips_s"]
    if args.device == "cpu":
        afgen_cmd[5] = str(root / "f_first")
        r["whole_first_s"] = whole(afgen_cmd, env=os.environ | {CACHE_DIR_ENV: str(root / "empty_cache")})
    r["whole_naive_clips_s"] = len(clips) / whole([sys.executable, "-c", NAIVE_CHILD, args.backbone, args.device,
                                                   str(size), *map(str, clips)])
    r["min_cosine_vs_fp32_eager"] = feature_cosine(cfg, size)
    if args.no_memory:
        report(r, args.quick)
        if args.json:
            args.json.write_text(json.dumps(r, indent=2))
        return

    many = generate(root / "many", SynthConfig(classes=5, clips_per_class=rss_big // 5, size=224,
                                               frame_rates=(25.0,)), show_progress=False)
    few = many.parent / "few.csv"
    few.write_text("\n".join(many.read_text().splitlines()[: rss_small + 1]) + "\n")
    r["rss_small_mib"] = peak_rss(few, root / "r_few", args.rss_backbone, args.device)
    r["rss_big_mib"] = peak_rss(many, root / "r_many", args.rss_backbone, args.device)
    for secs in (3.0, 60.0):
        frames, audio, fps = make_clip("bounce", np.random.default_rng(5),
                                       SynthConfig(size=224, seconds=secs, frame_rates=(25.0,)))
        path = root / "long" / f"s{int(secs)}" / "bounce" / "clip.mp4"
        path.parent.mkdir(parents=True)
        write_clip(path, frames, audio, fps, 16_000)
        r[f"rss_{int(secs)}s_mib"] = peak_rss(path.parent.parent, root / f"r_{int(secs)}", args.rss_backbone,
                                              args.device)
    report(r, args.quick)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


def report(r: dict, quick: bool) -> None:
    st, per_clip = r["stages"], r["farneback"]["images_per_clip"]
    backbone_core_s = per_clip * (r["cores"] if r["device"] == "cpu" else 1) / r["backbone_img_s"]
    print(f"\n{r['cpu']}")
    if r.get("runtime_trials"):
        from bench_runtimes import table

        from afgen.encoders.runtime_choice import Choice, Trial
        print(table([Trial(**t) for t in r["runtime_trials"]], Choice(r["runtime"], r["precision"])))
        print(f"--runtime auto chose {r['auto_choice']}\n")
        for name, trials in r.get("beside", {}).items():
            print(f"beside it, {name} at 224 px, batch 16 (random weights):")
            print(table([Trial(**t) for t in trials]) + "\n")
    print(f"\n{r['backbone']} ({r['runtime']}), {r['device']}, {r['cores']} cores, {r['clips']} synthetic 3-s "
          f"25 fps clips at {r.get('size', 224)} px, {per_clip:.0f} images per clip"
          f"{' (QUICK: not for the README)' if quick else ''}\n")
    print("| stage | core-s per clip |\n|---|---:|")
    for key, label in [("decode", "decode (video + audio packets)"), ("resize", "resize + RGB (sampled frames)"),
                       ("farneback", "flow: Farneback"), ("dis", "flow: DIS"), ("audio", "audio (decode + log-mel)"),
                       ("write", "write (4 .npy + manifest line, fsync)")]:
        print(f"| {label} | {st[key]:.3f} |")
    for f in ("farneback", "dis"):
        print(f"| producer, whole (produce(): the above as a worker runs them), {f} | {r['producer'][f]:.3f} |")
    unit = "core-s" if r["device"] == "cpu" else "GPU s"
    print(f"| backbone ({per_clip:.0f} images, {r['backbone_img_s']:.1f} img/s alone) | {backbone_core_s:.3f} {unit} |")
    if "limit_cpu_clips_s" in r:
        print(f"| backbone by its CPU time ({1000 * r['backbone_cpu_s_per_image']:.2f} core-ms per image) "
              f"| {per_clip * r['backbone_cpu_s_per_image']:.3f} core-s |")
    print("\n| flow | limit clips/s | extract clips/s | of limit | of the CPU-time limit | extract img/s | of backbone "
          "| start-up s | backbone waited |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in ("farneback", "dis"):
        e = r[f]
        cpu_limit = r.get("limit_cpu_clips_s", {}).get(f)
        of_cpu = f"{e['clips_s'] / cpu_limit:.2f} ({cpu_limit:.3f})" if cpu_limit else "-"
        print(f"| {f} | {r['limit_clips_s'][f]:.3f} | {e['clips_s']:.3f} | {e['clips_s'] / r['limit_clips_s'][f]:.2f} "
              f"| {of_cpu} | {e['img_s']:.1f} | {e['img_s'] / r['backbone_img_s']:.2f} | {e['startup_s']:.1f} "
              f"(build {e['build_s']:.1f}) | {100 * e['wait_fraction']:.0f}% |")
    print("\nthe first run of each, which tried the splits on its clips (the rows above: the second run):\n"
          "| flow | extract clips/s | of the CPU-time limit | split chosen |\n|---|---:|---:|---|")
    for f in ("farneback", "dis"):
        e, cpu_limit = r[f"{f}_trial"], r.get("limit_cpu_clips_s", {}).get(f)
        of_cpu = f"{e['clips_s'] / cpu_limit:.2f}" if cpu_limit else "-"
        print(f"| {f} | {e['clips_s']:.3f} | {of_cpu} | {(e.get('split') or '')[:160]} |")
    for f in ("farneback", "dis"):
        if r[f].get("split"):
            print(f"cores, {f}: {r[f]['split']}")
    ratio = r["whole_afgen_clips_s"] / r["whole_naive_clips_s"]
    print(f"\nwhole process, cold, {r['clips']} clips, both on {r['device']}: afgen extract (runtime measurement "
          f"cached) {r['whole_afgen_clips_s']:.3f} clips/s, seed-style (eager fp32) {r['whole_naive_clips_s']:.3f} "
          f"clips/s: {ratio:.2f}x  (target >= 2.5)")
    if "whole_first_s" in r:
        first = r["clips"] / r["whole_first_s"]
        print(f"first-ever (empty AFGEN_CACHE_DIR: measures the runtimes, exports the graph): {r['whole_first_s']:.1f} s "
              f"against {r['whole_afgen_s']:.1f} s warm ({r['whole_first_s'] - r['whole_afgen_s']:+.1f} s): "
              f"{first:.3f} clips/s, {first / r['whole_naive_clips_s']:.2f}x the seed-style pipeline")
    wait = r["farneback"]["first_clip_s"] - r["farneback"]["build_s"]
    print(f"start-up overhead: whole process {r['whole_afgen_s']:.1f} s - {r['clips']} clips at the steady state "
          f"{r['clips'] / r['farneback']['clips_s']:.1f} s = {r['startup_overhead_s']:.1f} s (target <= 5); of it: "
          f"interpreter + imports {r['import_s']:.1f} s, model build {r['farneback']['build_s']:.1f} s, first clip "
          f"{wait:.1f} s after the build (one steady clip: {1 / r['farneback']['clips_s']:.1f} s)")
    if "raft_small_s_per_clip" in r:
        print(f"RAFT-small ({r['device']}, random weights): {r['raft_small_s_per_clip']:.2f} s per clip "
              f"({(per_clip - 1) / 2:.0f} frame pairs at {r.get('size', 224)} px)")
    print(f"features vs fp32 eager torch: min cosine {r['min_cosine_vs_fp32_eager']:.6f}  (target >= 0.999)")
    if "rss_small_mib" in r:
            print(f"peak host RSS on {r['device']}, 20 vs 200 clips: {r['rss_small_mib']:.0f} vs {r['rss_big_mib']:.0f} MiB "
              f"({100 * (r['rss_big_mib'] / r['rss_small_mib'] - 1):+.1f}%); 3-s vs 60-s clip: {r['rss_3s_mib']:.0f} vs "
              f"{r['rss_60s_mib']:.0f} MiB ({100 * (r['rss_60s_mib'] / r['rss_3s_mib'] - 1):+.1f}%)")
    steady = r["farneback"]["clips_s"]
    print(f"at the Farneback steady state: {10_000 / steady / 3600:.1f} h per 10,000 clips, "
          f"{1_000_000 / steady / 3600:.0f} h per 1,000,000 clips")


if __name__ == "__main__":
    main()
