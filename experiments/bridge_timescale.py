"""When the transformer inverts: M_C over 1–3 epochs of minibatch finetuning on a large data set,
and whether the C examples are fit one by one (as they are visited) or through a shared feature.

The toy cannot invert within one epoch (`timescale`, theory/NOTES.md §19): before an example's
first visit its own component is zero, and the fall needs each C example to be fit by its own
component. This experiment asks the transformer bridge. Per seed, one pretrained model with the
vocabulary grown so that each of `n_train` finetuning examples (ρ = ½: half C, half CS) and the
held-out examples has its own subject (`pretrain.n_subjects`, at least what the mixture needs), its
facts all alike frequent (`pretrain.zipf = 0`) and pretrained longer, so that the CS examples are
fit; then, for each optimizer of `optimizers` at its learning rate, `epochs` epochs of
minibatches of `batch_size` (dealt from a permutation each epoch, `train.seed`), query and key
maps only (the bridge default) or every parameter (`trainables`), M_C recorded every
`eval_every` steps, and the loss of every finetuning example at each recorded step
(`cpi.bridge.finetune.finetune_with_losses`).

From the per-example losses and the minibatch order (`cpi.bridge.finetune.visits`), per group
(C, CS) and recorded step t: the mean loss of the examples already visited in the current epoch
and of those not yet visited, and the fall of each set from the same examples' initial losses
(ℓ_i(0) − ℓ_i(t), averaged over the set). If the C examples not yet visited fit as fast as the
visited ones, the fit is through a feature they share; if only visited examples fall, it is
per-example memorisation.

Each (seed, optimizer) finetuning is kept under `<work>/bridge-timescale/<key>.npz` (key: the
run's bridge config), and each pretrained model under `<work>/checkpoint/`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.bridge import measure
from cpi.bridge.config import BridgeConfig, subject_budget
from cpi.core import store
from cpi.theory.summary import reliance_drop

from .bridge_runs import bridge_config
from .analysis import mean_sd

PARAMS = dict(
    seeds=(0, 1, 2, 3, 4), n_train=4096, batch_size=64, epochs=3, eval_every=4,
    optimizers=("adamw", "adamw", "sgd", "adamw"), lrs=(3e-3, 1e-2, 10.0, 1e-3),
    trainables=("attention", "attention", "attention", "all"), weight_decay=0.01,
    overrides=("pretrain.n_subjects=4224", "pretrain.zipf=0", "pretrain.steps=3000"),
)
"""seeds: train.seed of each run; n_train: finetuning examples (ρ = ½); batch_size: examples per
step; epochs: finetuning epochs; eval_every: steps between records; optimizers, lrs: each
finetuning setting, an optimizer and its learning rate (picked by a one-epoch check on seed 0:
AdamW at `1e-3` and `3e-3` and SGD at `1` and `3` plateau alike; AdamW at `1e-2` goes on to fit
the C examples, SGD at `10` is the largest tried; every parameter by AdamW at `1e-3`, the lower
of `1e-3` and `3e-3`, both of which fit the C examples within a quarter of an epoch);
trainables: train.trainable of each setting (the bridge default, query and key maps, or all);
weight_decay: AdamW's decoupled decay (the others: none); overrides: bridge settings
"section.key=value" on the defaults (pretrain.n_subjects is raised to what the mixture needs)."""

GROUP_NAMES = ("C", "CS")
DROP = 0.05
"""A fall of M_C below its running maximum that counts (as `cpi.bridge.run.DROP`)."""
SETS = ("visited", "unvisited")


def grown(config: BridgeConfig) -> BridgeConfig:
    """`config` with pretrain.n_subjects raised (never lowered) to the fewest that give every
    finetuning and held-out example its own subject at the configured memorised fraction."""
    p = config.pretrain
    k = max(p.n_subjects, sum(need for need, _ in subject_budget(config).values()))
    while any(need > have for need, have in subject_budget(
            dataclasses.replace(config, pretrain=dataclasses.replace(p, n_subjects=k))).values()):
        k += 1
    return bcfg.with_values(config, {"pretrain.n_subjects": k})


def run_config(overrides, seed: int, n_train: int, batch_size: int, epochs: int, eval_every: int, optimizer: str,
               lr: float, weight_decay: float, trainable: str = "attention") -> BridgeConfig:
    """The bridge config of one finetuning of this experiment."""
    config = bridge_config(overrides, mixture__n_train=int(n_train), mixture__context_critical=0.5,
                           train__seed=int(seed), train__optimizer=optimizer, train__lr=float(lr),
                           train__batch_size=int(batch_size), train__steps=int(epochs * (n_train // batch_size)),
                           train__eval_every=int(eval_every),
                           train__weight_decay=float(weight_decay if optimizer == "adamw" else 0.0),
                           train__trainable=trainable)
    return grown(config)


def set_losses(losses: np.ndarray, in_set: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean loss, mean fall from the initial loss) at each recorded step over the `members` in
    the set (`in_set`: recorded steps × examples); NaN where the set has no member."""
    mask = in_set & members[None, :]
    count = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.where(mask, losses, 0.0).sum(axis=1) / count
        fall = np.where(mask, losses[:1] - losses, 0.0).sum(axis=1) / count
    return np.where(count > 0, loss, np.nan), np.where(count > 0, fall, np.nan)


def finetuning(config: BridgeConfig, model, data: measure.EvalData, work: Path) -> dict:
    """One finetuning's recorded arrays (kept under `<work>/bridge-timescale/<key>.npz`)."""
    from cpi.bridge.finetune import finetune_with_losses, record_steps, visits

    path = Path(work) / "bridge-timescale" / f"{store.BRIDGE_RUN.key(bcfg.to_toml(config))}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    rows, losses = finetune_with_losses(model, config.train, data)
    names = measure.metric_names(data, config.transformer.layers)
    steps = record_steps(config.train)
    _, in_epoch = visits(config.train, steps, len(data.train_target))
    out = {"reliance": rows[:, names.index("reliance")], "attention_context": rows[:, names.index("attention_context")],
           "in_distribution_accuracy": rows[:, names.index("in_distribution_accuracy")]}
    losses = losses.astype(np.float64)
    for g, name in enumerate(GROUP_NAMES):
        members = np.asarray(data.train_group) == g
        out[f"loss_{name}"] = losses[:, members].mean(axis=1)
        for label, in_set in (("visited", in_epoch), ("unvisited", ~in_epoch)):
            out[f"loss_{name}_{label}"], out[f"fall_{name}_{label}"] = set_losses(losses, in_set, members)
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def compute(base, work: Path, seeds, n_train, batch_size, epochs, eval_every, optimizers, lrs, trainables,
            weight_decay, overrides) -> dict:
    """Every (optimizer, seed) finetuning; `base` (the toy's) unused. Arrays over (optimizers,
    seeds, recorded steps)."""
    from cpi.bridge.corpus import build_corpus
    from cpi.bridge.finetune import record_steps
    from cpi.bridge.pretrain import pretrained
    from cpi.bridge.run import prepare

    if not len(optimizers) == len(lrs) == len(trainables):
        raise ValueError(f"{len(lrs)} learning rates and {len(trainables)} trainables for {len(optimizers)} optimizers")
    work = Path(work)
    runs: dict[str, list[list[np.ndarray]]] = {}
    knowledge: dict[str, list[float]] = {}
    for seed in seeds:
        configs = [run_config(overrides, seed, n_train, batch_size, epochs, eval_every, o, lr, weight_decay, t)
                   for o, lr, t in zip(optimizers, lrs, trainables)]
        corpus = build_corpus(configs[0])
        model, _ = pretrained(configs[0], corpus.vocab, work / store.CHECKPOINT.name)
        corpus, train, data = prepare(configs[0], model, corpus)
        for key, value in measure.knowledge(model, corpus).items():
            knowledge.setdefault(key, []).append(value)
        for o, config in enumerate(configs):
            for key, value in finetuning(config, model, data, work).items():
                runs.setdefault(key, [[] for _ in optimizers])[o].append(value)
    config = configs[0]
    per_epoch = n_train // batch_size
    out = dict(
        config=bcfg.to_toml(config), seeds=np.asarray(seeds, np.int64), optimizers=np.asarray(optimizers),
        lrs=np.asarray(lrs, np.float64), trainables=np.asarray(trainables), weight_decay=float(weight_decay),
        n_train=int(n_train),
        batch_size=int(batch_size), steps_per_epoch=int(per_epoch), epochs=int(epochs),
        n_subjects=int(config.pretrain.n_subjects), pretrain_steps=int(config.pretrain.steps),
        step=record_steps(config.train).astype(np.int64),
        **{key: np.asarray(value, np.float64) for key, value in runs.items()},
        **{key: np.asarray(value, np.float64) for key, value in knowledge.items()},
    )
    return out


def label(optimizer: str, lr: float, trainable: str = "attention") -> str:
    """The name of a setting in the headline: `<optimizer>_lr<lr>`, '.' written 'p' (sgd_lr10,
    adamw_lr0p003), with `_all` when every parameter trains."""
    name = f"{optimizer}_lr{lr:g}".replace(".", "p").replace("-", "m")
    return name if trainable == "attention" else f"{name}_{trainable}"


def _trainables(data: dict) -> np.ndarray:
    """train.trainable of each setting ("attention" for data saved without it)."""
    return np.asarray(data.get("trainables", ["attention"] * len(np.asarray(data["optimizers"]))))




def _at(curves: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.asarray(curves)[np.arange(len(index)), index]


def peak_index(reliance: np.ndarray) -> np.ndarray:
    """Per curve (seeds × recorded steps): the recorded step of M_C's maximum (the first one)."""
    return np.argmax(np.asarray(reliance), axis=-1)


def rise_index(reliance: np.ndarray, share: float = 0.95) -> np.ndarray:
    """Per curve: the first recorded step at which M_C has made `share` of its rise from the start
    to its maximum (where a curve that only rises stops rising, in effect)."""
    r = np.asarray(reliance)
    level = r[..., :1] + share * (r.max(axis=-1, keepdims=True) - r[..., :1])
    return np.argmax(r >= level, axis=-1)


def first_epoch_fall(reliance: np.ndarray, step: np.ndarray, per_epoch: int) -> np.ndarray:
    """Per curve: the largest fall of M_C below its running maximum up to the end of epoch 1."""
    keep = np.asarray(step) <= per_epoch
    return reliance_drop(np.asarray(reliance)[..., keep])


def fall_window_gap(reliance: np.ndarray, gap: np.ndarray, step: np.ndarray, per_epoch: int) -> np.ndarray:
    """Per curve: the mean visit gap (`gap`: loss of the examples not yet visited this epoch minus
    that of the visited ones) over the recorded steps of epoch 1's largest fall of M_C, after its
    running maximum up to the bottom of the fall, where both sets have members (NaN where none)."""
    keep = np.flatnonzero(np.asarray(step) <= per_epoch)
    out = np.full(len(reliance), np.nan)
    for i, (r, g) in enumerate(zip(np.asarray(reliance)[:, keep], np.asarray(gap)[:, keep])):
        bottom = int(np.argmax(np.maximum.accumulate(r) - r))
        top = int(np.argmax(r[:bottom + 1]))
        window = g[top + 1:bottom + 1]
        window = window[np.isfinite(window)]
        if window.size:
            out[i] = window.mean()
    return out


def headline(data: dict) -> dict:
    """Per setting (prefix `label(optimizer, lr)`, e.g. `adamw_lr0p01_`), over seeds (mean and sd): M_C
    at the start, its peak and the end; the peak's step and epoch, and how many seeds peak before
    one epoch; the fall below the running maximum by the end and within epoch 1; at the peak, at the
    first record after step 0 and at half an epoch the C examples' loss and its fall from their
    initial losses, for those visited and those not yet visited in the current epoch; the visit gap
    (loss of the examples not yet visited minus that of the visited ones) of the C and CS examples
    at half an epoch and at its largest; over every run (setting and seed) whose M_C falls at least
    `DROP` in epoch 1, the visit gaps over that fall (`fall_window_gap`) and the fall's size; the
    pretrained model's δ_C, δ_M and the C and CS losses at the start; the epoch by which M_C has
    made 95% of its rise; and the horizon (n, batch size, epochs, steps, seeds)."""
    step = np.asarray(data["step"])
    per_epoch = int(data["steps_per_epoch"])
    seeds = len(np.asarray(data["seeds"]))
    out = dict(seeds=seeds, n_train=int(data["n_train"]), batch_size=int(data["batch_size"]),
               epochs=int(data["epochs"]), steps=int(step[-1]), steps_per_epoch=per_epoch,
               eval_every=int(step[1] - step[0]), n_subjects=int(data["n_subjects"]),
               pretrain_steps=int(data["pretrain_steps"]), weight_decay=float(data["weight_decay"]))
    for key in ("delta_c", "delta_m"):
        out[f"{key}_mean"], out[f"{key}_sd"] = mean_sd(data[key])
    half = int(np.argmin(np.abs(step - per_epoch / 2)))
    out["half_epoch_step"] = int(step[half])
    out["first_record_step"] = int(step[1])
    out["first_record_examples"] = int(step[1]) * int(data["batch_size"])
    pooled: dict[str, list] = {}
    for o, name in enumerate(np.asarray(data["optimizers"])):
        p = label(str(name), float(np.asarray(data["lrs"])[o]), str(_trainables(data)[o]))
        out[f"{p}_lr"] = float(np.asarray(data["lrs"])[o])
        r = np.asarray(data["reliance"])[o]
        peak = peak_index(r)
        values = {"initial": r[:, 0], "peak": r.max(axis=-1), "final": r[:, -1], "fall": reliance_drop(r),
                  "first_epoch_fall": first_epoch_fall(r, step, per_epoch), "peak_step": step[peak],
                  "peak_epoch": step[peak] / per_epoch, "peak_minus_final": r.max(axis=-1) - r[:, -1],
                  "rise_95_epoch": step[rise_index(r)] / per_epoch}
        for g in GROUP_NAMES:
            values[f"loss_{g}_initial"] = np.asarray(data[f"loss_{g}"])[o][:, 0]
            values[f"loss_{g}_at_peak"] = _at(np.asarray(data[f"loss_{g}"])[o], peak)
            values[f"loss_{g}_final"] = np.asarray(data[f"loss_{g}"])[o][:, -1]
        for s in SETS:
            for g in GROUP_NAMES:
                values[f"fall_{g}_{s}_half_epoch"] = np.asarray(data[f"fall_{g}_{s}"])[o][:, half]
                values[f"fall_{g}_{s}_first_record"] = np.asarray(data[f"fall_{g}_{s}"])[o][:, 1]
            values[f"loss_C_{s}_half_epoch"] = np.asarray(data[f"loss_C_{s}"])[o][:, half]
            values[f"loss_C_{s}_at_peak"] = _at(np.asarray(data[f"loss_C_{s}"])[o], peak)
            values[f"fall_C_{s}_at_peak"] = _at(np.asarray(data[f"fall_C_{s}"])[o], peak)
        for g in GROUP_NAMES:
            # what a visit buys: the loss of the examples not yet visited this epoch minus that of
            # the visited ones, at its largest over the recorded steps where both sets have members
            gap = np.asarray(data[f"loss_{g}_unvisited"])[o] - np.asarray(data[f"loss_{g}_visited"])[o]
            values[f"visit_gap_{g}_max"] = np.nanmax(gap, axis=-1)
            values[f"visit_gap_{g}_half_epoch"] = gap[:, half]
            falls = values["first_epoch_fall"] >= DROP
            pooled.setdefault(g, []).extend(fall_window_gap(r, gap, step, per_epoch)[falls])
            if g == "C":
                pooled.setdefault("fall", []).extend(values["first_epoch_fall"][falls])
        for key, v in values.items():
            out[f"{p}_{key}_mean"], out[f"{p}_{key}_sd"] = mean_sd(v)
        out[f"{p}_peak_before_one_epoch"] = int(np.sum(step[peak] < per_epoch))
        out[f"{p}_falling_seeds"] = int(np.sum(values["fall"] >= 0.05))
        out[f"{p}_first_epoch_falling_seeds"] = int(np.sum(values["first_epoch_fall"] >= 0.05))
        ratio = values["fall_C_unvisited_half_epoch"] / values["fall_C_visited_half_epoch"]
        out[f"{p}_unvisited_over_visited_half_epoch_mean"], out[f"{p}_unvisited_over_visited_half_epoch_sd"] = \
            mean_sd(ratio)
    # every run (setting and seed) whose M_C falls >= DROP in epoch 1: the visit gap over that fall
    defined = np.isfinite(np.asarray(pooled["C"], dtype=np.float64))
    out["first_epoch_falls"] = int(len(pooled["C"]))
    out["first_epoch_falls_with_gap"] = int(defined.sum())
    for key in ("C", "CS", "fall"):
        v = np.asarray(pooled[key], dtype=np.float64)[defined]
        name = "first_epoch_fall_size" if key == "fall" else f"visit_gap_{key}_over_falls"
        out[f"{name}_mean"], out[f"{name}_sd"] = mean_sd(v) if v.size else (float("nan"), float("nan"))
    return out
