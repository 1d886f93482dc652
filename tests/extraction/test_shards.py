"""`--shard I/N` (extraction/shards.py): every clip in exactly one shard, the same one on every
machine and in every process (Python's own hash() differs between processes; the shard must not)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from afgen.errors import AfgenError
from afgen.extraction.shards import parse_shard, shard_of

IDS = [f"class{k % 5}__clip_{k:04d}" for k in range(400)]


def test_every_clip_is_in_exactly_one_shard_and_the_shards_are_balanced():
    for count in (1, 3, 8):
        shards = [shard_of(i, count) for i in IDS]
        assert set(shards) == set(range(count))
        sizes = [shards.count(s) for s in range(count)]
        assert max(sizes) - min(sizes) < 0.3 * len(IDS) / count  # a hash, not e.g. "all in shard 0"
    assert {shard_of(i, 1) for i in IDS} == {0}


def test_the_shard_of_a_clip_is_the_same_in_another_process_whatever_its_hash_seed():
    here = [shard_of(i, 7) for i in IDS[:50]]
    code = ("from afgen.extraction.shards import shard_of; "
            f"print(','.join(str(shard_of(i, 7)) for i in {IDS[:50]!r}))")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert [int(x) for x in out.stdout.strip().split(",")] == here


def test_the_shard_rule_is_pinned():
    """Stores filled by several machines (or resumed by a newer afgen) rely on the rule not changing:
    the first 12 hex digits of the id's SHA-1, modulo N."""
    assert [shard_of(i, 4) for i in ("a", "bounce__bounce_0000", "roll__roll_0005")] == [
        int(h, 16) % 4 for h in ("86f7e437faa5", "15d982857495", "f44451af6c56")]


def test_parse_shard_reads_i_of_n_and_refuses_the_rest():
    assert parse_shard("0/4") == (0, 4) and parse_shard("3/4") == (3, 4) and parse_shard(None) is None
    for bad, message in (("4/4", "within 0..N-1"), ("-1/4", "within 0..N-1"), ("1", "takes I/N"),
                         ("a/b", "takes I/N"), ("1/2/3", "takes I/N")):
        with pytest.raises(AfgenError, match=message):
            parse_shard(bad)
