"""A killed run leaves nothing behind: no process afgen started outlives it, a stop signal
prints one line and exits 143 (SIGTERM) / 130 (SIGINT), and the rerun finishes the work with
the same bytes as a clean run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import extract_cmd, lines_held, wait_until_waiting

from afgen import lifecycle


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _descendants(pid: int) -> set[int]:
    out, stack = set(), [pid]
    while stack:
        p = stack.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for c in children:
                if c not in out:
                    out.add(c)
                    stack.append(c)
    return out


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return set()
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_critical_block_defers_a_stop_signal_to_its_end(monkeypatch):
    monkeypatch.setattr(lifecycle, "received", None)
    steps = []
    with pytest.raises(lifecycle.Stopped) as stop:
        with lifecycle.critical():
            lifecycle._handler(signal.SIGTERM, None)  # arrives mid-block
            steps.append("finished the block")
    assert steps == ["finished the block"] and stop.value.status == 143
    monkeypatch.setattr(lifecycle, "received", None)
    with pytest.raises(lifecycle.Stopped) as stop:
        lifecycle._handler(signal.SIGINT, None)
    assert stop.value.status == 130


def test_pool_workers_die_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        from afgen.lifecycle import process_pool

        if __name__ == "__main__":
            with process_pool(2) as pool:
                pool.submit(time.sleep, 60)
                pool.submit(time.sleep, 60)
                print("ready", flush=True)
                time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    children = _descendants(proc.pid)
    assert len(children) >= 2  # the two workers (and the resource tracker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _gone_within(children, 5.0) == set()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_extract_leaves_no_process_and_the_rerun_equals_a_clean_run(tmp_path, clip_factory, sig):
    for k in range(14):
        clip_factory(f"data/c{k % 2}/v{k}.mp4", fps=25, seconds=2.0, size=32, audio=k % 3 != 0)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(extract_cmd(tmp_path / "data", clean, workers=1), check=True, capture_output=True)
    subprocess.run(extract_cmd(tmp_path / "data", killed, workers=1) + ["--limit", "2"], check=True,
                   capture_output=True)
    manifest = killed / "manifest.jsonl"
    # The signal lands at a known point, whatever the load: the 3rd clip is written and the run
    # waits (on the manifest's lock, held here) to record it; its producer is working ahead.
    with lines_held(manifest):
        proc = subprocess.Popen(extract_cmd(tmp_path / "data", killed, workers=1), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        wait_until_waiting(manifest, proc)
        started = _descendants(proc.pid)
        assert started, "the producer worker should be running"
        proc.send_signal(sig)  # SIGTERM waits for the clip's manifest line: written once the block ends
    _, err = proc.communicate(timeout=120)
    assert _gone_within(started, 5.0) == set()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert "stopped after 3 of 14 clips" in lines[-1] and "rerun the same command" in lines[-1]
        assert not (killed / ".locks").exists() or not list((killed / ".locks").glob("*"))
    assert manifest.read_text().count('"ok"') == (3 if sig == signal.SIGTERM else 2)
    subprocess.run(extract_cmd(tmp_path / "data", killed, workers=1), check=True, capture_output=True)
    records = [json.loads(line) for line in (killed / "manifest.jsonl").read_text().splitlines()]
    assert sum(r["status"] == "ok" for r in records) == 14
    files = sorted(p.relative_to(clean) for p in clean.rglob("*.npy"))
    assert files == sorted(p.relative_to(killed) for p in killed.rglob("*.npy"))
    for rel in files:
        assert (clean / rel).read_bytes() == (killed / rel).read_bytes(), rel
    assert not list(killed.rglob("*.tmp"))


@pytest.mark.slow
def test_killed_parallel_seed_training_leaves_no_process_and_resumes(tiny_store, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "afgen", "train", str(tiny_store / "features"), str(run), "--seeds", "0,1,2",
           "--seed-workers", "2", "--epochs", "3", "--hidden", "16", "--oof-folds", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and not list(run.glob("seed-*/generator/checkpoints/last.ckpt")):
        time.sleep(0.1)
    started = _descendants(proc.pid)
    assert len(started) >= 2, "two seed processes should be training"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "--resume" in err.splitlines()[-1]
    assert _gone_within(started, 5.0) == set()
    subprocess.run(cmd + ["--resume"], check=True, capture_output=True)
    assert json.loads((run / "seeds.json").read_text())["seeds"] == [0, 1, 2]
    assert all((run / f"seed-{s}" / "model.pt").is_file() for s in (0, 1, 2))


@pytest.mark.slow
def test_killed_batch_prediction_leaves_no_process_and_the_rerun_completes(tiny_run, tmp_path, clip_factory):
    for k in range(12):
        clip_factory(f"clips/v{k}.mp4", fps=25, seconds=2.0, size=32, audio=k % 2 == 0)
    out = tmp_path / "p.csv"
    cmd = [sys.executable, "-m", "afgen", "predict", str(tmp_path / "clips"), "--run", str(tiny_run), "--out", str(out),
           "--workers", "1"]
    subprocess.run(cmd + ["--shard", "0/2"], check=True, capture_output=True)  # some rows are done
    done = len(out.read_text().splitlines()) - 1
    assert 1 <= done < 11
    # The signal lands at a known point, whatever the load: a clip is scored and the run waits (on
    # the file's lock, held here) to write its row; the row is written once the block ends.
    with lines_held(out):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_until_waiting(out, proc)
        started = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"stopped after {done + 1} of 12 clips" in err.splitlines()[-1]
    assert _gone_within(started, 5.0) == set()
    assert len(out.read_text().splitlines()) - 1 == done + 1
    subprocess.run(cmd, check=True, capture_output=True)
    ids = [line.split(",")[1] for line in out.read_text().splitlines()[1:]]
    assert len(ids) == len(set(ids)) == 12
