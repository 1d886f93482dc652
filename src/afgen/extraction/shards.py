"""Which clips a `--shard I/N` run takes: a hash of each clip's id, the same on every machine,
so N processes (or machines) fill one store without overlap. Imports no torch: the CLI parses
`--shard` before anything heavy starts."""

from __future__ import annotations

import hashlib

from afgen.errors import AfgenError


def shard_of(clip_id: str, count: int) -> int:
    """The shard (0..count-1) a clip belongs to: a hash of its id, the same on every machine."""
    return int(hashlib.sha1(clip_id.encode()).hexdigest()[:12], 16) % count


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N) with 0 <= I < N; None stays None."""
    if text is None:
        return None
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise AfgenError(f"--shard takes I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise AfgenError(f"--shard {text}: I must be within 0..N-1")
    return index, count
