"""Sweeps of the bridge over finetuning keys and seeds, reusing the pretrained models.

A grid is the toy's (`cpi.core.grid`: `section.key=start:stop:num` or `section.key=v1,v2,...`, the
first spec varying slowest, then `seeds` consecutive train.seed values innermost), over the
bridge's keys. `run_configs` computes a list of bridge configs: each pretrained model (one per
`config.pretrain_digest`) is loaded or trained once and kept in memory for every point that
shares it, and the points that also share the train config (but for train.lr) and the shapes
of their data (mixtures or learning rates at one seed, say) form a chunk, finetuned together as
one stacked, `jax.vmap`-ped computation (`finetune.finetune_stack`); `vmap=False` runs them one by one,
bit for bit as `cpi.bridge.run.run`.
Each point is saved as a run directory (`cpi bridge`'s files) named by the key of its config
(`config_digest`), and reused when there; the chunks (`chunks`) are the units a shard
(`run_shard`) computes.

`run_sweep` writes the toy's sweep directory: `sweep.json` (what the directory computes,
written first), `config.toml` (the base config), `runs/<hash>/` (one point each), and at the
end `sweep.npz` (coordinates, `summary_<field>` per point, every metric stacked points ×
recorded steps, NaN where a point lacks it), `summary.csv` and `summary.json` (one row per point).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpi.core import grid as core_grid
from cpi.core import store
from cpi.core import sweep_dir as core_dir
from cpi.core.dir_lock import claim_dir
from cpi.core.errors import ConfigError
from cpi.core.grid import Axis, Grid
from cpi.core.shards import Shard, ShardReport
from cpi.core.sweep_dir import MANIFEST  # noqa: F401  (the bridge's sweep-directory API)
from cpi.sims.results import json_bytes, write_atomic, write_npz_atomic

from . import config as bcfg
from .config import BridgeConfig

SUMMARY_FIELDS = ("initial_reliance", "peak_reliance", "peak_step", "final_reliance", "inversion",
                  "inversion_005", "reliance_drop", "delta_c", "delta_m", "m_C_heldout", "m_CS_heldout",
                  "rho_star")
"""The per-point summary values in summary.csv and sweep.npz (`summary_<field>`)."""

# ---------------------------------------------------------------------------- the grid


def parse_spec(spec: str) -> Axis:
    """One `section.key=start:stop:num` or `section.key=v1,v2,...` spec over the bridge's keys
    (`cpi.core.grid.parse_spec` with the bridge's schema); ConfigError naming the spec otherwise."""
    return core_grid.parse_spec(spec, bcfg.SCHEMA)


def expand_grid(base: BridgeConfig, grid=(), seeds: int = 1) -> Grid:
    """Every point of the grid over the bridge's keys (`cpi.core.grid.expand_grid`): the
    Cartesian product of the specs, then `seeds` seeds from base train.seed; ConfigError
    naming the spec or point that is bad."""
    return core_grid.expand_grid(base, grid, seeds, schema=bcfg.SCHEMA)


def config_digest(config: BridgeConfig) -> str:
    """The key of a config's TOML (`cpi.core.store.BRIDGE_RUN`, as `cpi bridge` names a run): the
    name of its run directory in a sweep."""
    return store.BRIDGE_RUN.key(bcfg.to_toml(config))


def sweep_digest(base: BridgeConfig, grid, seeds: int = 1) -> str:
    """The key of the base config, grid specs and seeds (`cpi.core.sweep_dir.sweep_digest` of
    kind "bridge-sweep")."""
    return core_dir.sweep_digest(store.BRIDGE_SWEEP, bcfg.to_toml(base), grid, seeds)


def default_sweep_dir(base: BridgeConfig, grid, seeds: int = 1) -> Path:
    """sweeps/bridge-<sweep_digest>."""
    return Path("sweeps") / f"bridge-{sweep_digest(base, grid, seeds)}"


def sweep_identity(base: BridgeConfig, grid, seeds: int = 1) -> dict:
    """What makes two bridge sweeps the same sweep (the manifest): the kind, the grid specs,
    the seeds and the base config's SHA-256."""
    return {"kind": "bridge", "grid": core_dir.grid_specs(grid), "seeds": int(seeds),
            "base_config_sha256": core_dir.config_sha256(bcfg.to_toml(base))}


def check_sweep_dir(out: str | Path, identity: dict, force: bool = False) -> None:
    """ConfigError when `out` holds another sweep or a run, unless `force`
    (`cpi.core.sweep_dir.check_sweep_dir`); the same sweep is resumed."""
    core_dir.check_sweep_dir(out, identity, force,
                             forced="the saved points are kept; they are named by their configs")


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


def _chunk_key(config: BridgeConfig) -> tuple:
    """Points with the same key finetune as one vmapped chunk: one pretrained model, one train
    config but for the learning rate, the same data shapes (finetuning examples after the
    filter, test and aligned examples)."""
    from cpi.sims.config import training_examples_after_filter

    from .finetune import program_train

    m = config.mixture
    return (bcfg.pretrain_digest(config), program_train(config.train), training_examples_after_filter(m),
            m.n_test, m.n_aligned)


def chunks(configs, vmap: bool = True) -> list[list[int]]:
    """The indices of `configs` in chunks that finetune together (`_chunk_key`; one point
    each without `vmap`), chunks in order of their first point. A sweep computes each chunk
    whole, so that a point's numbers do not depend on which others were computed with it."""
    found: dict = {}
    for i, config in enumerate(configs):
        found.setdefault(_chunk_key(config) if vmap else i, []).append(i)
    return list(found.values())


def run_configs(configs, cache_dir=None, runs_dir=None, vmap: bool = True, progress=None) -> list[tuple[dict, dict]]:
    """(metrics, summary) of `cpi.bridge.run.run(config)` for each config, in order. Each pretrained
    model is loaded (or trained) once; points that share a chunk key finetune together
    (`vmap`), equal to the one-by-one runs up to float32 rounding; with `vmap=False` bit for
    bit. With `runs_dir`, each point is saved to / reused from `runs_dir/<config_digest>`.
    `progress(done, total)` is told of finished points."""
    from . import corpus
    from .finetune import finetune, finetune_stack
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
    by_digest: dict[str, list[list[int]]] = {}  # the chunks of missing points, by pretrained model
    missing = [i for i in range(len(configs)) if out[i] is None]
    for chunk in chunks([configs[i] for i in missing], vmap):
        chunk = [missing[j] for j in chunk]
        by_digest.setdefault(bcfg.pretrain_digest(configs[chunk[0]]), []).append(chunk)
    for digest_chunks in by_digest.values():
        members = [i for chunk in digest_chunks for i in chunk]
        corpora = {i: corpus.build_corpus(configs[i]) for i in members}
        model, _ = pretrained(configs[members[0]], corpora[members[0]].vocab, cache_dir)
        prepared = {i: prepare(configs[i], model, corpora[i]) for i in members}
        for chunk in digest_chunks:
            train = configs[chunk[0]].train
            if len(chunk) == 1:
                rows = [finetune(model, train, prepared[chunk[0]][2])]
            else:
                rows = finetune_stack(model, train, [prepared[i][2] for i in chunk],
                                      lrs=[configs[i].train.lr for i in chunk])
            for i, r in zip(chunk, rows):
                out[i] = results(configs[i], model, *prepared[i], r)
                if dirs[i] is not None:
                    save(dirs[i], configs[i], *out[i])
            done[0] += len(chunk)
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
    configs: list[BridgeConfig]
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


def _row(point: dict, config: BridgeConfig, summary: dict) -> dict:
    row = {**point, "seed": config.train.seed}
    for f in SUMMARY_FIELDS:
        v = summary.get(f)
        row[f] = None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
    return row


def _csv_bytes(keys: list[str], rows: list[dict]) -> bytes:
    return core_dir.csv_bytes([*keys, "seed", *SUMMARY_FIELDS], rows)


def saved_points(configs, out: Path) -> list[bool]:
    """Whether each config's point is saved under out/runs (its summary.json, written last,
    is there)."""
    return [(Path(out) / "runs" / config_digest(c) / "summary.json").exists() for c in configs]


def _write_results(expanded: Grid, identity: dict, out: Path, computed: list[tuple[dict, dict]]) -> "BridgeSweep":
    """Write sweep.npz, summary.csv and summary.json (last) from every point's (metrics, summary)."""
    points, configs = list(expanded.points), list(expanded.configs)
    metrics = stack_metrics(computed)
    summaries = [s for _, s in computed]
    keys = expanded.keys
    rows = [_row(p, c, s) for p, c, s in zip(points, configs, summaries)]
    coords = {k: np.array([p[k] for p in points]) for k in keys}
    coords["seed"] = np.array([c.train.seed for c in configs], dtype=np.int64)
    table = {f"summary_{f}": np.array([np.nan if r[f] is None else r[f] for r in rows]) for f in SUMMARY_FIELDS}
    write_npz_atomic(out / "sweep.npz", {**coords, **metrics, **table})
    write_atomic(out / "summary.csv", _csv_bytes(keys, rows))
    write_atomic(out / "summary.json", json_bytes({**identity, "keys": keys, "points": rows}))
    return BridgeSweep(points, configs, metrics, summaries, out)


def _identity_files(base: BridgeConfig, identity: dict) -> dict[str, bytes]:
    return {MANIFEST: json_bytes(identity), "config.toml": bcfg.to_toml(base).encode()}


def run_sweep(base: BridgeConfig, grid=(), seeds: int = 1, out=None, *, cache_dir=None, progress: bool = False,
              vmap: bool = True, force: bool = False) -> BridgeSweep:
    """Run every point of the grid (`run_configs`) and write the sweep directory `out` (default
    sweeps/bridge-<sweep_digest>); points already saved there (by an interrupted run, or by
    shards, `run_shard`) are reused. A directory holding another sweep is refused
    (ConfigError) unless `force`."""
    from cpi.core.progress import StepProgress

    expanded = expand_grid(base, grid, seeds)
    out = Path(out) if out is not None else default_sweep_dir(base, grid, seeds)
    identity = sweep_identity(base, grid, seeds)
    check_sweep_dir(out, identity, force)
    with claim_dir(out):  # one writer at a time; the check again, now that no other can write
        check_sweep_dir(out, identity, force)
        (out / "summary.json").unlink(missing_ok=True)
        core_dir.write_identity_files(out, _identity_files(base, identity), write_atomic, exclusive=True)
        with StepProgress(len(expanded), "run", enabled=progress, description="bridge sweep") as bar:
            computed = run_configs(expanded.configs, cache_dir, out / "runs", vmap,
                                   lambda done, _: bar.advance_to(done))
        return _write_results(expanded, identity, out, computed)


def run_shard(base: BridgeConfig, grid=(), seeds: int = 1, out=None, *, shard: Shard, cache_dir=None,
              progress: bool = False, vmap: bool = True) -> ShardReport:
    """Compute the chunks of `shard` (`cpi.core.shards.Shard.share` of `chunks`) whose points
    are not all saved yet into `out`, the directory `run_sweep` writes, beside other shards
    of the same sweep running at the same time: no lock is held while computing; the
    manifest and config.toml are written only when absent and must be this sweep's; each
    point's files are written atomically. A shard that then finds every point saved takes
    the directory's lock (when free) and writes sweep.npz and the summaries, as `run_sweep`
    would. ConfigError (before anything is written) when `out` holds another sweep or a run."""
    from cpi.core.progress import StepProgress

    expanded = expand_grid(base, grid, seeds)
    configs = list(expanded.configs)
    out = Path(out) if out is not None else default_sweep_dir(base, grid, seeds)
    identity = sweep_identity(base, grid, seeds)
    check_sweep_dir(out, identity)
    core_dir.write_identity_files(out, _identity_files(base, identity), write_atomic, exclusive=False)
    units = chunks(configs, vmap)
    mine = shard.share(len(units))
    saved = saved_points(configs, out)
    todo = [u for u in mine if not all(saved[i] for i in units[u])]
    points = sorted(i for u in todo for i in units[u])
    start = time.perf_counter()
    with StepProgress(len(points), "run", enabled=progress and bool(points), description=f"shard {shard}") as bar:
        run_configs([configs[i] for i in points], cache_dir, out / "runs", vmap, lambda done, _: bar.advance_to(done))
    saved = saved_points(configs, out)
    missing = [u for u, members in enumerate(units) if not all(saved[i] for i in members)]
    report = ShardReport(shard, len(mine), len(todo), missing, len(units), time.perf_counter() - start)
    if missing:
        return report
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(claim_dir(out))
        except ConfigError:  # another process holds the directory: it assembles
            return report
        if _finished(out, identity, len(configs)):
            return report  # another shard has assembled it
        report.result = _write_results(expanded, identity, out, run_configs(configs, cache_dir, out / "runs", vmap))
    return report


def _finished(out: Path, identity: dict, n_points: int) -> bool:
    """Whether `out` holds this sweep's summary.json with a row per point."""
    import json

    try:
        document = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(document, dict) and all(document.get(k) == v for k, v in identity.items())
            and isinstance(document.get("points"), list) and len(document["points"]) == n_points)
