"""Shards: `--shard I/N` computes only the I-th of N shares of a sweep's units of work (the
chunks of points of the toy's and of the transformer's sweeps), so that N processes started
independently (a SLURM array job, submitit) compute a sweep together into one directory with
no coordinator and no collective. I counts from 0. Units are dealt round-robin in the
sweep's order, the same way by every process, so the N shares are disjoint and cover the
sweep whatever order the shards run in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

SHARD_HELP = ("compute only share I of N of the sweep's {units} (I counts from 0: 0 <= I < N) into DIR, beside "
              "other shards running at the same time (no lock, no coordinator); in a SLURM array job "
              "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT (with --array=0-<N-1>). "
              "A shard saves its share and "
              "exits 0; the shard that finds the whole sweep saved writes sweep.npz and the summaries, and so does any "
              "later run of the same command without --shard, which first computes whatever is still missing")
"""The --shard flag's help, {units} being what the command's sweep is dealt in."""


@dataclass(frozen=True)
class Shard:
    """Share `index` (from 0) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def share(self, n_units: int) -> list[int]:
        """The units of work of this shard among `n_units`: index, index + count, ..."""
        return list(range(self.index, n_units, self.count))

    def owner(self, unit: int) -> int:
        """The shard (its index) that computes `unit`."""
        return unit % self.count


def parse_shard(text: str | None) -> Shard | None:
    """`--shard I/N` as a Shard (None when not given); ConfigError unless I and N are integers
    with 0 <= I < N."""
    if text is None:
        return None
    parts = str(text).split("/")
    try:
        index, count = (int(p.strip()) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        index = count = None
    if index is None or count is None or count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: expected I/N with integers 0 <= I < N (I counts from 0), "
                          "e.g. --shard 0/4 ... --shard 3/4, or --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
    return Shard(index, count)


@dataclass
class ShardReport:
    """What a shard did: `computed` of its `mine` units computed (the others were saved
    already), `missing` the sweep's units (places in its order) not saved when it ended, of
    `total`; `result` the finished sweep when this shard found every unit saved and assembled
    it (None when units are missing, or another process holds the directory or has assembled
    it)."""

    shard: Shard
    mine: int
    computed: int
    missing: list[int]
    total: int
    seconds: float = 0.0
    result: Any = None


def missing_note(missing_units: list[int], shard: Shard, units: str = "chunks") -> str:
    """Which shards owe the missing units: 'the chunks of shards 1/4, 3/4'."""
    owners = sorted({shard.owner(u) for u in missing_units})
    return f"the {units} of shard{'s' if len(owners) > 1 else ''} " + ", ".join(f"{o}/{shard.count}" for o in owners)
