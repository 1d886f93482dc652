"""One writer per store: a live holder is named and refused, a dead one is taken over, and two
concurrent `afgen extract` runs on one store end with one complete store."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from conftest import extract_cmd, lines_held, wait_until_waiting

from afgen.errors import StoreError
from afgen.extraction.lock import ALL, LOCKS, StoreLock, overlaps, shard_scope


def _write_lock(root, pid, scope=ALL, host=None):
    folder = root / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{scope}.lock"
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01 00:00:00",
                                "command": "afgen extract x y"}))
    return path


def test_live_holder_is_named_and_refused(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = _write_lock(tmp_path, sleeper.pid)
        with pytest.raises(StoreError) as err:
            with StoreLock(tmp_path):
                pass
        message = str(err.value)
        assert f"pid {sleeper.pid}" in message and socket.gethostname() in message and str(path) in message
        assert path.is_file()  # the holder's lock is left alone
    finally:
        sleeper.kill()
        sleeper.wait()


def test_dead_holder_is_taken_over_and_released(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = _write_lock(tmp_path, gone.pid)
    with StoreLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] != gone.pid
    assert not path.exists()


def test_holder_on_another_host_is_refused(tmp_path):
    _write_lock(tmp_path, 1, host="elsewhere.example")
    with pytest.raises(StoreError, match="elsewhere.example"):
        with StoreLock(tmp_path):
            pass


def test_shards_of_one_partition_coexist_and_everything_else_overlaps(tmp_path):
    assert not overlaps(shard_scope(0, 2), shard_scope(1, 2))
    assert overlaps(shard_scope(0, 2), shard_scope(0, 2))
    assert overlaps(shard_scope(0, 2), shard_scope(0, 3))
    assert overlaps(ALL, shard_scope(1, 4))
    with StoreLock(tmp_path, shard_scope(0, 2)), StoreLock(tmp_path, shard_scope(1, 2)):
        with pytest.raises(StoreError):
            with StoreLock(tmp_path, ALL):
                pass
    assert not list((tmp_path / LOCKS).glob("*.lock"))


@pytest.mark.slow
def test_two_concurrent_extracts_give_one_complete_store(tmp_path, clip_factory):
    for k in range(6):
        clip_factory(f"data/c{k % 2}/v{k}.mp4", fps=25, seconds=2.0, audio=k != 3)
    store = tmp_path / "store"
    lock = store / LOCKS / f"{ALL}.lock"
    # The first run waits to record its first clip (on the manifest's lock, held here) inside its
    # locked section, so the second surely starts while it works, whatever the load.
    with lines_held(store / "manifest.jsonl"):
        first = subprocess.Popen(extract_cmd(tmp_path / "data", store), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_until_waiting(store / "manifest.jsonl", first)
        assert lock.exists(), "the first run should hold the lock while it works"
        second = subprocess.run(extract_cmd(tmp_path / "data", store), capture_output=True, text=True)
    assert first.wait(timeout=300) == 0
    assert second.returncode == 2, second.stderr
    assert "another afgen run is writing this store" in second.stderr and "Traceback" not in second.stderr
    lines = [json.loads(line) for line in (store / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted({r["id"] for r in lines}) and len(lines) == 6
    assert all(r["status"] == "ok" for r in lines)
    assert not lock.exists()


def test_a_file_lock_lives_beside_its_file_and_names_the_file(tmp_path):
    from afgen.extraction.lock import FileLock

    out = tmp_path / "predictions.csv"
    with FileLock(out, shard_scope(0, 2)) as a, FileLock(out, shard_scope(1, 2)):
        assert a.path == tmp_path / ".predictions.csv.locks" / "shard-0-of-2.lock" and a.path.is_file()
        with pytest.raises(StoreError, match="writing this file.*Shards of one file"):
            with FileLock(out, shard_scope(0, 2)):
                pass
        with FileLock(tmp_path / "other.csv"):  # another file's lock is another lock
            pass
    assert not (tmp_path / ".predictions.csv.locks").exists() and not (tmp_path / ".other.csv.locks").exists()
