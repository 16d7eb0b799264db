"""Sweeps of the bridge over finetuning keys and seeds, reusing the pretrained models.

A grid is the toy's (`cpi.sims.grid`: `section.key=start:stop:num` or `section.key=v1,v2,...`, the
first spec varying slowest, then `seeds` consecutive train.seed values innermost), over the
bridge's keys. `run_configs` computes a list of bridge configs: each pretrained model (one per
`config.pretrain_digest`) is loaded or trained once and kept in memory for every point that
shares it, and the points that also share the train config (but for train.lr) and the shapes
of their data (mixtures or learning rates at one seed, say) are finetuned together as one
`jax.vmap`-ped computation (`finetune.finetune_batch`); `vmap=False` runs them one by one,
bit for bit as `cpi.bridge.run.run`.
Each point is saved as a run directory (`cpi bridge`'s files) named by a hash of its config,
and reused when there.

`run_sweep` writes the toy's sweep directory: `sweep.json` (what the directory computes,
written first), `config.toml` (the base config), `runs/<hash>/` (one point each), and at the
end `sweep.npz` (coordinates, `summary_<field>` per point, every metric stacked points ×
recorded steps, NaN where a point lacks it), `summary.csv` and `summary.json` (one row per point).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpi.core.dir_lock import LOCK_NAME, claim_dir
from cpi.core.errors import ConfigError
from cpi.sims import grid
from cpi.sims.grid import Axis
from cpi.sims.results import json_bytes, write_atomic, write_npz_atomic

from . import config as bcfg
from .config import Config

SUMMARY_FIELDS = ("initial_reliance", "peak_reliance", "peak_step", "final_reliance", "inversion",
                  "inversion_005", "reliance_drop", "delta_c", "delta_m", "m_C_heldout", "m_CS_heldout",
                  "rho_star")
"""The per-point summary values in summary.csv and sweep.npz (`summary_<field>`)."""

MANIFEST = "sweep.json"


# ---------------------------------------------------------------------------- the grid


def parse_spec(spec: str) -> Axis:
    """One `section.key=start:stop:num` or `section.key=v1,v2,...` spec over the bridge's keys
    (`cpi.sims.grid.parse_spec` with the bridge's schema); ConfigError naming the spec otherwise."""
    return grid.parse_spec(spec, bcfg.SCHEMA)


def expand_grid(base: Config, grid=(), seeds: int = 1) -> tuple[list[dict], list[Config]]:
    """(swept values, validated config) of every point: the Cartesian product of the specs,
    then `seeds` seeds from base train.seed; ConfigError naming the spec or point that is bad."""
    grid = [grid] if isinstance(grid, str) else list(grid)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {seeds!r}")
    axes = []
    for spec in grid:
        axis = parse_spec(spec)
        if any(a.key == axis.key for a in axes) or (seeds > 1 and axis.key == "train.seed"):
            raise ConfigError(f"--grid {spec!r}: {axis.key} is already swept")
        axes.append(axis)
    points, configs = [], []
    for values in itertools.product(*(a.values for a in axes)):
        point = dict(zip((a.key for a in axes), values))
        for offset in range(seeds):
            overrides = {**point, **({"train.seed": base.train.seed + offset} if seeds > 1 else {})}
            try:
                configs.append(bcfg.with_values(base, overrides))
            except ConfigError as err:
                where = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "the base config"
                raise ConfigError(f"grid point {where}: {err}") from None
            points.append(point)
    return points, configs


def config_digest(config: Config) -> str:
    """12 hex digits of the SHA-256 of a config's TOML: the name of its run directory."""
    return hashlib.sha256(bcfg.to_toml(config).encode()).hexdigest()[:12]


def sweep_digest(base: Config, grid, seeds: int = 1) -> str:
    text = bcfg.to_toml(base) + json.dumps({"grid": [s.strip() for s in grid], "seeds": int(seeds)})
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------- computing points


def load_point(run_dir: Path) -> tuple[dict, dict] | None:
    """(metrics, summary) saved in a run directory (`cpi.sims.saved.read`), or None when it holds
    no complete, readable bridge run (the point is then computed again)."""
    from cpi.sims.saved import BRIDGE_RUN, read

    try:
        saved = read(run_dir)
    except ConfigError:
        return None
    return (saved.metrics, saved.summary) if saved.kind == BRIDGE_RUN else None


def _batch_key(config: Config, n_points: int) -> tuple:
    """Points with the same key finetune as one vmapped batch: one pretrained model, one train
    config but for the learning rate, the same data shapes."""
    from .finetune import program_train

    m = config.mixture
    return (bcfg.pretrain_digest(config), program_train(config.train), n_points, m.n_test, m.n_aligned)


def run_configs(configs, cache_dir=None, runs_dir=None, vmap: bool = True, progress=None) -> list[tuple[dict, dict]]:
    """(metrics, summary) of `cpi.bridge.run.run(config)` for each config, in order. Each pretrained
    model is loaded (or trained) once; points that share a batch key finetune together
    (`vmap`), equal to the one-by-one runs up to float32 rounding; with `vmap=False` bit for
    bit. With `runs_dir`, each point is saved to / reused from `runs_dir/<config_digest>`.
    `progress(done, total)` is told of finished points."""
    from . import corpus
    from .finetune import finetune, finetune_batch
    from .pretrain import pretrained
    from .run import prepare, results, save

    configs = list(configs)
    out: list = [None] * len(configs)
    dirs = [Path(runs_dir) / config_digest(c) if runs_dir is not None else None for c in configs]
    for i, d in enumerate(dirs):
        if d is not None:
            out[i] = load_point(d)
    done = [sum(o is not None for o in out)]
    if progress:
        progress(done[0], len(configs))
    by_digest: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        if out[i] is None:
            by_digest.setdefault(bcfg.pretrain_digest(c), []).append(i)
    for members in by_digest.values():
        worlds = {i: corpus.build_world(configs[i]) for i in members}
        model, _ = pretrained(configs[members[0]], worlds[members[0]].vocab, cache_dir)
        prepared = {i: prepare(configs[i], model, worlds[i]) for i in members}
        batches: dict[tuple, list[int]] = {}
        for i in members:
            key = _batch_key(configs[i], len(prepared[i][1].target)) if vmap else (i,)
            batches.setdefault(key, []).append(i)
        for batch in batches.values():
            train = configs[batch[0]].train
            if len(batch) == 1:
                rows = [finetune(model, train, prepared[batch[0]][2])]
            else:
                rows = finetune_batch(model, train, [prepared[i][2] for i in batch],
                                      lrs=[configs[i].train.lr for i in batch])
            for i, r in zip(batch, rows):
                out[i] = results(configs[i], model, *prepared[i], r)
                if dirs[i] is not None:
                    save(dirs[i], configs[i], *out[i])
            done[0] += len(batch)
            if progress:
                progress(done[0], len(configs))
    return out


# ---------------------------------------------------------------------------- the sweep directory


@dataclass
class BridgeSweep:
    """A finished sweep: point i has swept values `points[i]`, config `configs[i]`, metrics
    `metrics[name][i, j]` at step `metrics["step"][j]` (NaN where it lacks the metric or the
    step) and summary `summaries[i]` (as `cpi.bridge.run.run` returns it)."""

    points: list[dict]
    configs: list[Config]
    metrics: dict[str, np.ndarray]
    summaries: list[dict]
    out: Path | None = None


def stack_metrics(results: list[tuple[dict, dict]]) -> dict[str, np.ndarray]:
    """Every metric of the points stacked (points × steps of the longest), NaN where absent."""
    longest = max((m for m, _ in results), key=lambda m: len(m["step"]))
    names = sorted({k for m, _ in results for k in m} - {"step"})
    stacked = {name: np.full((len(results), len(longest["step"])), np.nan) for name in names}
    for i, (m, _) in enumerate(results):
        for name in names:
            if name in m:
                stacked[name][i, : len(m[name])] = m[name]
    return {"step": np.asarray(longest["step"]), **stacked}


def _row(point: dict, config: Config, summary: dict) -> dict:
    row = {**point, "seed": config.train.seed}
    for f in SUMMARY_FIELDS:
        v = summary.get(f)
        row[f] = None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
    return row


def _csv_bytes(keys: list[str], rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [*keys, "seed", *SUMMARY_FIELDS]
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else str(row[c]).lower() if isinstance(row[c], bool)
                         else repr(row[c]) if isinstance(row[c], float) else str(row[c]) for c in columns])
    return buffer.getvalue().encode()


def run_sweep(base: Config, grid=(), seeds: int = 1, out=None, cache_dir=None, progress: bool = False,
              vmap: bool = True, force: bool = False) -> BridgeSweep:
    """Run every point of the grid (`run_configs`) and write the sweep directory `out` (default
    sweeps/bridge-<sweep_digest>); points already saved there are reused. A directory holding
    another sweep is refused (ConfigError) unless `force`."""
    from cpi.core.progress import StepProgress

    grid = [grid] if isinstance(grid, str) else [s.strip() for s in grid]
    points, configs = expand_grid(base, grid, seeds)
    out = Path(out) if out is not None else Path("sweeps") / f"bridge-{sweep_digest(base, grid, seeds)}"
    identity = {"kind": "bridge", "grid": grid, "seeds": int(seeds),
                "base_config_sha256": hashlib.sha256(bcfg.to_toml(base).encode()).hexdigest()}
    _check_sweep_dir(out, identity, force)
    with claim_dir(out):  # one writer at a time; the check again, now that no other can write
        _check_sweep_dir(out, identity, force)
        (out / "summary.json").unlink(missing_ok=True)
        write_atomic(out / MANIFEST, json_bytes(identity))
        write_atomic(out / "config.toml", bcfg.to_toml(base).encode())
        with StepProgress(len(configs), "run", enabled=progress, description="bridge sweep") as bar:
            computed = run_configs(configs, cache_dir, out / "runs", vmap, lambda done, _: bar.advance_to(done))
        metrics = stack_metrics(computed)
        summaries = [s for _, s in computed]
        keys = list(points[0]) if points else []
        rows = [_row(p, c, s) for p, c, s in zip(points, configs, summaries)]
        coords = {k: np.array([p[k] for p in points]) for k in keys}
        coords["seed"] = np.array([c.train.seed for c in configs], dtype=np.int64)
        table = {f"summary_{f}": np.array([np.nan if r[f] is None else r[f] for r in rows]) for f in SUMMARY_FIELDS}
        write_npz_atomic(out / "sweep.npz", {**coords, **metrics, **table})
        write_atomic(out / "summary.csv", _csv_bytes(keys, rows))
        write_atomic(out / "summary.json", json_bytes({**identity, "keys": keys, "points": rows}))
        return BridgeSweep(points, configs, metrics, summaries, out)


def _check_sweep_dir(out: Path, identity: dict, force: bool) -> None:
    """ConfigError when `out` holds anything but this bridge sweep (`identity`), unless `force`."""
    if force or not out.is_dir() or not any(p.name != LOCK_NAME for p in out.iterdir()):
        return
    try:
        same = json.loads((out / MANIFEST).read_text()) == identity
    except (OSError, ValueError):
        same = False
    if not same:
        raise ConfigError(f"--out {str(out)!r} holds something other than this bridge sweep; choose another "
                          "directory, or --force to write there anyway")
