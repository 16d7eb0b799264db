"""Full finetuning against the paper (issue 26 item 5): every parameter against the attention's
query and key maps only, under AdamW with minibatches at several learning rates.

The paper finetunes every parameter of its LLMs with AdamW and finds the inversion there (its
Figure 13 for Llama2-7B; the "All Params" curve of its Figure 5c, where finetuning the query and
key maps only helps on some data sets). The bridge's mitigation experiment found that training
every parameter with full-batch Adam at lr 0.003 removes the fall. Here, at the bridge's
default mixture (ρ = ½), each of `trainables` at each of `lrs` and each seed of `seeds`,
finetuned by `optimizer` (AdamW, decoupled weight decay `weight_decay`) on minibatches of
`batch_size` for `steps` steps. Computes M_C, the last position's attention to the context
(mean over layers) and the C and CS examples' losses over finetuning steps, and per run
M_C's initial, peak and final value and largest fall below its running peak, and the same fall
of the attention to the context. Runs of one seed and trainable set share a pretrained model
and a train config but for the learning rate, so their learning rates finetune as one vmapped stack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.theory.summary import reliance_drop

from .bridge_runs import bridge_config, curves, peak_final_drop, run_points
from .analysis import mean_sd

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=(), trainables=("attention", "all"), lrs=(1e-4, 3e-4, 1e-3, 3e-3),
              optimizer="adamw", weight_decay=0.01, batch_size=16, steps=1200, eval_every=20)
"""seeds, overrides: as every bridge experiment; trainables: train.trainable values; lrs: the
learning rates; optimizer, weight_decay, batch_size, steps, eval_every: the finetuning
(minibatches dealt each epoch from train.seed; 1200 steps, so that the lowest learning rate's
runs peak within the horizon)."""

FALL = 0.05
"""The fall of M_C below its running peak that counts a seed as inverting."""


def compute(base, work: Path, seeds, overrides, trainables, lrs, optimizer, weight_decay, batch_size, steps,
            eval_every) -> dict:
    """Every trainable set × learning rate × seed (arrays in that axis order); `base` unused."""
    configs = [bridge_config(overrides, train__seed=int(s), train__trainable=str(t), train__lr=float(lr),
                             train__optimizer=str(optimizer), train__weight_decay=float(weight_decay),
                             train__batch_size=int(batch_size), train__steps=int(steps),
                             train__eval_every=int(eval_every))
               for t in trainables for lr in lrs for s in seeds]
    results = run_points(configs, work)
    shape = (len(trainables), len(lrs), len(seeds))
    stack = lambda name: curves(results, name).reshape(*shape, -1)
    attention = stack("attention_context")
    out = dict(
        config=bcfg.to_toml(configs[0]),
        trainables=np.array([str(t) for t in trainables]),
        lrs=np.asarray(lrs, dtype=np.float64),
        seeds=np.asarray(seeds, dtype=np.int64),
        optimizer=str(optimizer), weight_decay=float(weight_decay), batch_size=int(batch_size),
        n_train=int(configs[0].mixture.n_train),
        step=np.asarray(results[0][0]["step"]),
        reliance=stack("reliance"),
        attention_context=attention,
        attention_drop=reliance_drop(attention),
        loss_C=stack("loss_C"),
        loss_CS=stack("loss_CS"),
        in_distribution_accuracy=stack("in_distribution_accuracy"),
    )
    out.update(peak_final_drop(out["reliance"]))
    return out




def differ(a, b) -> bool:
    """Whether two sets of per-seed values differ: their means further apart than the larger of
    their standard deviations (ddof = 1)."""
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    return abs(ma - mb) > max(sa, sb)


def headline(data: dict) -> dict:
    """Per trainable set and learning rate (index i of `lrs`, its value `lr_<i>`): M_C's initial
    value, peak, final value and largest fall (mean and sd over seeds), the seeds falling ≥ 0.05,
    the seeds whose M_C is highest at the last recorded step (still rising: no peak within the
    horizon), the largest final loss of the C and CS examples over seeds, the fall of the attention
    to the context; per learning rate whether the two trainable sets'
    falls differ (means apart by more than the larger spread); the largest mean fall of each set
    over the learning rates."""
    trainables = [str(t) for t in data["trainables"]]
    out = dict(seeds=int(len(data["seeds"])), steps=int(data["step"][-1]), batch_size=int(data["batch_size"]),
               weight_decay=float(data["weight_decay"]), optimizer=str(data["optimizer"]), n_lrs=int(len(data["lrs"])),
               epochs=float(data["step"][-1] * data["batch_size"] / data["n_train"]))
    for i, lr in enumerate(data["lrs"]):
        out[f"lr_{i}"] = float(lr)
    for k, tr in enumerate(trainables):
        falls = []
        for i in range(len(data["lrs"])):
            key = f"{tr}_{i}"
            for name in ("initial", "peak", "final", "drop"):
                label = "fall" if name == "drop" else name
                out[f"{key}_{label}_mean"], out[f"{key}_{label}_sd"] = mean_sd(np.asarray(data[name])[k, i])
            out[f"{key}_falling_seeds"] = int(np.sum(np.asarray(data["drop"])[k, i] >= FALL))
            out[f"{key}_peak_at_end_seeds"] = int(np.sum(np.argmax(np.asarray(data["reliance"])[k, i], axis=-1)
                                                         == len(data["step"]) - 1))
            for group in ("C", "CS"):
                out[f"{key}_final_loss_{group}_max"] = float(np.max(np.asarray(data[f"loss_{group}"])[k, i, :, -1]))
            out[f"{key}_attention_fall_mean"], out[f"{key}_attention_fall_sd"] = mean_sd(
                np.asarray(data["attention_drop"])[k, i])
            falls.append(out[f"{key}_fall_mean"])
        out[f"{tr}_largest_fall_mean"] = float(max(falls))
        out[f"{tr}_largest_fall_lr"] = float(data["lrs"][int(np.argmax(falls))])
    if len(trainables) > 1:
        told = [f"{float(lr):g}" for i, lr in enumerate(data["lrs"])
                if differ(np.asarray(data["drop"])[0, i], np.asarray(data["drop"])[1, i])]
        out["lrs_told_apart"] = ", ".join(told) if told else "none"
    return out
