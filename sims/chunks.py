"""How the points of a sweep are computed: buckets, chunks of points, the devices and
processes they are spread over, and the engine that computes a chunk.

Points that share every static quantity (the array shapes of their packed worlds, steps,
dtype, whether W_V trains) form a *bucket*; a bucket is cut into chunks of at most
`chunk_size` points, so memory stays bounded whatever the size of the sweep, and every chunk
of a bucket is padded to the same size so that it compiles once. A chunk runs as one vmapped
computation (`cpi.sims.engine.simulate`) sharded over the local devices (on CPU, one host device
per core when the entry point set that up; on GPU, every GPU). With several processes
(`jax.distributed`), the chunks of a bucket are dealt round-robin over the processes and each
chunk's results are gathered to every process; only process 0 writes.

Engines: "fast" is the fast engine (`cpi.sims.engine`); "reduced" is the theory's group
recursion (`cpi.theory.reduced.group_trajectory`), exact where W_V is frozen, training is
full-batch GD and the embeddings are the paper's (`reduced_engine_problem` says why not).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from cpi.theory.groups import GROUPS, TRAINING_GROUPS, theory_indices, training_counts

from . import config as cfg
from . import engine, optimizers, packing
from cpi.core import store

from .budget import recorded_bytes, world_bytes
from .config import Config
from .precision import precision
from .pretraining import world_strengths
from .world import build_world, embedding_key

CHUNK_BYTES = 512 * 2**20
MAX_CHUNK_POINTS = 4096
"""A chunk holds at most MAX_CHUNK_POINTS points and about CHUNK_BYTES of worlds and records."""

PAPER_CLASSES = 5
CLASS_ROUNDING = 4


def padded_classes(classes: int) -> int:
    """How many output classes (`cpi.sims.packing.output_classes`) a chunk whose points have at
    most `classes` is padded to, so that the chunks of a bucket usually compile once:
    PAPER_CLASSES (the paper's table gives every point five) or more, rounded up to a
    multiple of CLASS_ROUNDING. Every padded class costs as much as a real one."""
    if classes <= PAPER_CLASSES:
        return PAPER_CLASSES
    return -(-classes // CLASS_ROUNDING) * CLASS_ROUNDING

SUMMARY_FIELDS = ("initial_reliance", "peak_reliance", "peak_step", "final_reliance", "inversion", "nonfinite_step",
                  "achieved_delta_c", "achieved_delta_m")
"""A sweep's columns for each point: the reliance summary of every step, the first non-finite
step, and the strengths δ_C, δ_M its pretrained W_V achieves (`cpi.sims.pretraining.achieved_strengths`)."""

def shape_key(config: Config) -> tuple:
    """Everything static about a point: the shapes of its packed world (vocabulary,
    relations, training examples after filtering, test and aligned examples), the number of
    steps, the dtype, whether W_V trains, the optimizer, the batch size and whether weights
    decay. Computed from the config (no world is built)."""
    w, m, t = config.world, config.mixture, config.train
    return (w.n_subjects, w.n_answers, w.n_relations, cfg.training_examples_after_filter(config.mixture),
            m.n_test, m.n_aligned, t.steps, t.dtype, t.value_lr > 0, t.optimizer, t.batch_size, t.weight_decay > 0)


MIXTURE_FRACTIONS = ("context_critical", "counterfactual", "fact_recall", "fact_recall_seen")
"""The mixture's fractions that reach the world only through the group counts they round to."""


_PLACEHOLDER_MIXTURE = cfg.MixtureConfig()  # one object: `config_repr` memoises sections by id


def world_key(config: Config, memo: dict[int, str] | None = None) -> str:
    """Everything a point's numbers depend on: its config, with the mixture's fractions
    replaced by the training-point counts of each group that they round to
    (`cpi.sims.config.group_counts`, all that `cpi.sims.world.build_world` reads of them). Points
    with equal keys build identical worlds and train identically, so a sweep computes one of
    them and copies its results to the others (a grid finer than 1/n_train in a fraction
    has such points: 41 values of ρ over 20 training examples make 21 distinct mixtures)."""
    memo = {} if memo is None else memo
    m = config.mixture
    kept = {f.name: getattr(m, f.name) for f in dataclasses.fields(m) if f.name not in MIXTURE_FRACTIONS}
    counts = sorted(cfg.group_counts(m).items())
    others = config_repr(dataclasses.replace(config, mixture=_PLACEHOLDER_MIXTURE), memo)
    return f"{others} mixture counts {counts} {sorted(kept.items())}"


def distinct_points(configs, indices: list[int]) -> tuple[list[int], dict[int, int]]:
    """(representatives, copies): `indices` without the points whose `world_key` an earlier
    one has (order kept), and each left-out point's representative."""
    memo: dict[int, str] = {}
    first: dict[str, int] = {}
    representatives, copies = [], {}
    for i in indices:
        key = world_key(configs[i], memo)
        if key in first:
            copies[i] = first[key]
        else:
            first[key] = i
            representatives.append(i)
    return representatives, copies


def bucket_points(configs) -> list[list[int]]:
    """Indices of the points of each bucket, buckets in order of first appearance."""
    buckets: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        buckets.setdefault(shape_key(config), []).append(i)
    return list(buckets.values())


REDUCED_POINT_BYTES = 4096
REDUCED_MAX_CHUNK_POINTS = 16384
"""The reduced engine builds no world: a point is its group counts, knowledge and a few
scalars of state, so its chunks can hold more points (fewer chunks, less overhead)."""


def chunk_size(config: Config, record_every: int, record: bool, engine_name: str = "fast") -> int:
    """Points per chunk for a bucket whose points look like `config`, computed by `engine_name`."""
    if engine_name == "reduced":
        per_point, most = REDUCED_POINT_BYTES + recorded_bytes(config, record_every, record), REDUCED_MAX_CHUNK_POINTS
    else:
        per_point, most = world_bytes(config) + recorded_bytes(config, record_every, record), MAX_CHUNK_POINTS
    return int(max(1, min(most, CHUNK_BYTES // per_point)))


def split_chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def chunk_hash(configs, engine_name: str, record_every: int, record: bool) -> str:
    """The cache key of a chunk: its points' resolved configs, in order, and what is recorded.
    A config's repr names every field and writes floats exactly, and is much cheaper to make
    than its TOML, which counts in a 10^4-point sweep."""
    stored = cfg.STORED_ENGINE.get(cfg.engine_name(engine_name), engine_name)
    head = f"engine {stored} record_every {record_every} record {record}\n"
    memo: dict[int, str] = {}
    return store.CHUNK.key(head + "\n".join(config_repr(c, memo) for c in configs))


def config_repr(config: Config, memo: dict[int, str]) -> str:
    """repr(config), made from the reprs of its sections, each computed once per section object
    (`memo`, by id): the configs of a grid share the sections it does not change. A section is
    written under its name without the "Config" suffix (`World(...)` for a `WorldConfig`), so that
    chunk keys, and the chunks saved under them, do not depend on the class names."""
    parts = []
    for field in dataclasses.fields(config):
        section = getattr(config, field.name)
        text = memo.get(id(section))
        if text is None:
            name = type(section).__qualname__
            text = memo[id(section)] = name.removesuffix("Config") + repr(section)[len(name):]
        parts.append(f"{field.name}={text}")
    return f"{type(config).__qualname__}({', '.join(parts)})"


# --------------------------------------------------------------------------------------------
# Devices


def pad_rows(tree, size: int):
    """Pad the leading axis of every array of `tree` to `size` with copies of its last row."""
    def pad(x):
        x = np.asarray(x)
        return x if x.shape[0] == size else np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)])

    return jax.tree_util.tree_map(pad, tree)


def _place(tree):
    """Put stacked points on the local devices, sharded along the points when there are
    several (the leading axis must be a multiple of their number)."""
    return jax.device_put(tree, _points_sharding())


def padded_size(n: int) -> int:
    """n rounded up to a multiple of the number of local devices."""
    d = len(jax.local_devices())
    return -(-n // d) * d


# --------------------------------------------------------------------------------------------
# The full engine


def _stack(trees: list):
    leaves = [jax.tree_util.tree_flatten(t) for t in trees]
    columns = []
    for parts in zip(*(ls for ls, _ in leaves)):
        arrays = [np.asarray(p) for p in parts]
        if len({(a.shape, a.dtype) for a in arrays}) != 1:  # shape_key missed a static quantity
            raise RuntimeError(f"points of one bucket pack to different shapes: {[a.shape for a in arrays]}")
        columns.append(np.stack(arrays))
    return jax.tree_util.tree_unflatten(leaves[0][1], columns)


def full_chunk(configs, size: int, record_every: int, record: bool,
               progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Train every config of one chunk (one bucket) with the fast engine, padded to
    `size` points (adam and adamw: the generic engine, point by point). Returns the summary
    fields as (n,) arrays and, when `record`, every metric as (n, recorded steps)."""
    with precision(configs[0].train.dtype):
        if configs[0].train.optimizer not in cfg.EXACT_OPTIMIZERS:
            return _generic_chunk(configs, record_every, record, progress)
        return _full_chunk(configs, size, record_every, record, progress)


def _strengths(worlds) -> dict[str, np.ndarray]:
    """The achieved δ_C and δ_M of each world's pretrained table, as `cpi.sims.train.run` reports them."""
    rows = [world_strengths(w) for w in worlds]
    return {k: np.array([r[k] for r in rows]) for k in ("achieved_delta_c", "achieved_delta_m")}


def _generic_chunk(configs, record_every, record, progress):
    """The points of a chunk one by one on the generic d×d engine (adam, adamw), in
    `_full_chunk`'s output format: the SUMMARY_FIELDS as (n,) arrays (the per-point summary
    has more fields, which a sweep does not keep) and, when `record`, every metric as
    (n, recorded steps)."""
    from .train import generic_run

    rows = []
    done = 0
    for config in configs:
        t = config.train
        world = build_world(config)
        values, summary, _ = generic_run(world, config, optimizers.hyper(t, t.dtype), record_every, lambda _: None)
        summary["nonfinite_step"] = -1 if summary["nonfinite_step"] is None else summary["nonfinite_step"]
        summary.update(world_strengths(world))
        rows.append(({f: summary[f] for f in SUMMARY_FIELDS}, values if record else {}))
        done += t.steps
        if progress is not None:
            progress(done)
    out = {f: np.array([s[f] for s, _ in rows]) for f in SUMMARY_FIELDS}
    out.update({k: np.stack([np.asarray(m[k]) for _, m in rows]) for k in rows[0][1]})
    return out


def _full_chunk(configs, size, record_every, record, progress):
    first = configs[0]
    steps, dtype, t = first.train.steps, first.train.dtype, first.train
    n = len(configs)
    total = padded_size(max(size, n))
    train_values = t.value_lr > 0  # one bucket: the same for every point
    shared_axis = None if len({embedding_key(c) for c in configs}) == 1 else 0  # the embeddings differ (γ, random)

    def host_arrays(worlds, packed, configs, size):
        """(shared, points, lr, value_lr, hyper) of these examples, stacked and padded to `size`."""
        shared = packing.pack_shared(worlds[0], dtype) if shared_axis is None else _stack(
            [packing.pack_shared(w, dtype) for w in worlds])
        if not train_values:  # a common number of output classes, rounded up so chunks share it
            classes = padded_classes(max(p.class_values.shape[1] for p in packed))
            packed = [packing.pad_classes(p, classes) for p in packed]
        if shared_axis is None and packing.same_layout(packed):
            shared = packing.with_layout(shared, packed[0])
        hyper = None if optimizers.is_plain(t) else optimizers.Hyper(
            np.array([c.train.momentum for c in configs], dtype=dtype),
            np.array([c.train.weight_decay for c in configs], dtype=dtype),
            np.array([c.train.seed for c in configs], dtype=np.uint32))
        per_point = pad_rows((_stack(packed), np.array([c.train.lr for c in configs], dtype=dtype),
                            np.array([c.train.value_lr for c in configs], dtype=dtype), hyper), size)
        return (shared if shared_axis is None else pad_rows(shared, size), *per_point)

    worlds = [build_world(c) for c in configs]
    packed = [packing.pack_examples(w, dtype, frozen_values=not train_values) for w in worlds]
    shared, points, lr, value_lr, hyper = host_arrays(worlds, packed, configs, total)
    points, lr, value_lr, hyper = _place((points, lr, value_lr, hyper))
    shared = _place(shared) if shared_axis == 0 else jax.device_put(shared)
    recorded, summary, _ = engine.simulate(
        shared, points, lr, value_lr, steps, train_values=train_values,
        record_every=record_every, record=record, stacked=True, shared_axis=shared_axis,
        progress=None if progress is None else (lambda done: progress(done * n)),
        hyper=hyper, optimizer=t.optimizer, batch_size=t.batch_size,
    )
    out = {**{k: np.asarray(v)[:n] for k, v in summary.items() if k in SUMMARY_FIELDS}, **_strengths(worlds)}
    if recorded is not None:
        out.update({k: np.asarray(v)[:n] for k, v in recorded.items()})
    return out


def _points_sharding():
    """Where stacked points go: split along the points over the local devices when there are
    several, else on the one device."""
    devices = jax.local_devices()
    if len(devices) < 2:
        return jax.sharding.SingleDeviceSharding(devices[0])
    return jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("points",)),
                                      jax.sharding.PartitionSpec("points"))


# --------------------------------------------------------------------------------------------
# The reduced engine


def reduced_engine_problem(config: Config) -> str | None:
    """Why the group-reduced dynamics is not exact (or not available) for `config`; None
    when `--engine reduced` computes it exactly."""
    if config.train.value_lr > 0:
        return f"train.value_lr = {config.train.value_lr:g} trains W_V, and the reduction needs W_V frozen (0)"
    if config.world.embeddings != "paper":
        return (f"world.embeddings = {config.world.embeddings!r}: the group form needs the paper's symmetric "
                "embeddings (all examples of a group interchangeable); `cpi theory` gives the exact per-example "
                "prediction for random embeddings")
    if config.knowledge.pretraining == "learned":
        return ("knowledge.pretraining = 'learned': the group form needs the Lemma 3 table (every point of a group "
                "alike); `cpi theory` gives the exact per-example prediction with the learned table")
    if config.world.n_relations > 1:
        return (f"world.n_relations = {config.world.n_relations}: the reduced engine records the per-group "
                "metrics of one relation only")
    if config.train.dtype != "float64":
        return f"train.dtype = {config.train.dtype!r}: the reduced engine computes in float64 only"
    t = config.train
    if t.optimizer != "gd" or t.batch_size > 0 or t.weight_decay > 0:
        return (f"train.optimizer = {t.optimizer!r}, train.batch_size = {t.batch_size}, train.weight_decay = "
                f"{t.weight_decay:g}: the reduction is of full-batch gradient descent without weight decay")
    return None


def _reduced_counts(config: Config) -> tuple[int, ...]:
    """(n_C, n_CS, n_CF, n_S_seen, n_S_unseen) of the training set, after filtering."""
    if config.mixture.filter == 0:
        c = cfg.group_counts(config.mixture)
        return c["C"], c["CS"], c["CF"], c["S_seen"], c["S_unseen"]
    world = build_world(config)
    train = world.train
    kind = theory_indices(train.group, train.fact)
    return tuple(int(x) for x in np.bincount(kind, minlength=len(GROUPS)))


def reduced_chunk(configs, record_every: int, record: bool,
                  progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """The chunk's points by the exact group recursion, in the full engine's output format:
    the summary of every step is folded inside the theory's compiled scan, and only the
    recorded steps (none when not `record`) come back from it. The accuracies come from the
    theory's argmax per group (`cpi.theory.reduced_system.chosen`): counterfactual_accuracy and
    parametric_accuracy of the conflict example, train_accuracy = Σ_G n_G accuracy_G / n."""
    from cpi.theory.params import GroupCounts, Knowledge
    from cpi.theory.reduced import group_descent

    steps = configs[0].train.steps
    counts = np.array([_reduced_counts(c) for c in configs], dtype=np.float64)
    args = {name: np.array([getattr(getattr(c, s), name) for c in configs], dtype=np.float64)
            for s, name in (("world", "n_subjects"), ("world", "n_answers"), ("knowledge", "delta_c"),
                            ("knowledge", "delta_m"), ("knowledge", "o_c"), ("knowledge", "o_r"),
                            ("knowledge", "delta_s"), ("train", "lr"))}
    knowledge = Knowledge(**{name: values for name, values in args.items() if name != "lr"})
    th, summary = group_descent(knowledge, GroupCounts.from_array(counts), lr=args["lr"], steps=steps,
                                record_every=record_every, record=record)
    out = {f: np.asarray(summary[f]) for f in SUMMARY_FIELDS if f in summary}
    # The reduced engine's table is Lemma 3's, whose strengths are the configured ones (the
    # full engine's measured strengths of that table equal them to 1e-12).
    out["achieved_delta_c"], out["achieved_delta_m"] = args["delta_c"], args["delta_m"]
    if record:
        n_train = counts.sum(axis=1)
        loss_terms = np.nan_to_num(np.stack([th[f"loss_{g}"] for g in TRAINING_GROUPS], axis=-1))
        weights = training_counts(counts)
        metrics = {name: th[name] for name in engine.metric_names(1) if name in th}
        metrics["loss"] = np.einsum("ntg,ng->nt", loss_terms, weights) / n_train[:, None]
        missing = set(engine.metric_names(1)) - set(metrics)
        if missing:
            raise RuntimeError(f"the reduced dynamics lacks metrics {sorted(missing)}")
        if min(c.mixture.n_aligned for c in configs) == 0:  # the theory always has an aligned example
            metrics["aligned_accuracy"] = np.where(
                np.array([c.mixture.n_aligned == 0 for c in configs])[:, None], np.nan, metrics["aligned_accuracy"])
        out.update({k: np.ascontiguousarray(metrics[k]) for k in engine.metric_names(1)})
    if progress is not None:
        progress(len(configs) * steps)
    return out
