"""The small falls of M_C that the bridge transformer shows without CS examples (issue 26 item 6).

The toy's fall needs CS examples to pull attention back to the subject; with none (ρ = 1, or
every CS example filtered out) the toy cannot fall. The transformer does a little. This
experiment asks why, at each seed of `seeds`, in two mixtures without CS examples:
- "C only": `mixture.context_critical = 1` (64 C examples);
- "filtered": ρ = ½ with `mixture.filter = 0.5` (the 32 CS examples dropped, 32 C examples left);
- "CF only": `mixture.counterfactual = 1` (64 CF examples: a context that contradicts the
  subject's memorised fact, answered by the context), where, unlike in the C examples, the
  subjects have a fact, as the held-out conflict examples' do;
under each optimizer of `optimizers` (full-batch GD at lr 3, the phase diagram's; full-batch
Adam at lr 0.003, the default), with the query and key maps of every layer trained
(`train.trainable = "attention"`) or of every layer but the first (`"attention_after_l1"`: the
first layer's attention is then that of the pretrained model). Per run it records every metric of
`cpi.bridge.measure.evaluate` and the attention of the subject position to the context position
in each layer on the held-out conflict examples (`subject_context_l<j>`: the route by which a
context can reach the answer through the subject's position, which the last position's attention
to the context does not see). Beside it: the toy at ρ = 1 (its base config otherwise) under
full-batch GD and Adam at several learning rates (multiples of the rate whose first step moves
θ_Cᵀu as far as GD's, `cpi.experiments.optimizers.matched_adam_lr`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.core import store

from .bridge_runs import bridge_config, peak_final_drop
from .configs import with_values
from .simulations import cached_arrays, cached_run
from .analysis import mean_sd

MIXTURES = {"C only": "c_only", "filtered": "filtered", "CF only": "cf_only"}
"""The mixtures (names in the figure: names in the headline summary)."""

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=(), mixtures=tuple(MIXTURES),
              optimizers=(("gd", 3.0), ("adam", 0.003)), steps=300, trainables=("attention", "attention_after_l1"),
              toy_adam_factors=(0.3, 1.0, 3.0, 10.0))
"""seeds, overrides: as every bridge experiment; mixtures: names of `MIXTURES`; optimizers:
(train.optimizer, train.lr) pairs, full batch; steps: finetuning steps; trainables:
train.trainable values; toy_adam_factors: multiples of the toy's matched Adam learning rate at
ρ = 1."""

CURVES = ("reliance", "attention_context", "attention_subject", "loss", "parametric_accuracy")
"""The metrics kept per run besides the per-layer attentions."""


def _mixture_values(mixture: str) -> dict:
    if mixture == "C only":
        return {"mixture__context_critical": 1.0}
    if mixture == "CF only":
        return {"mixture__context_critical": 0.0, "mixture__counterfactual": 1.0}
    return {"mixture__context_critical": 0.5, "mixture__filter": 0.5}


def subject_context_attention(model, tokens):
    """Per layer, the attention of the subject position (1) to the context position (0), mean over
    heads and the sequences `tokens` (n, T): shape (L,)."""
    import jax
    import jax.numpy as jnp

    _, attention = jax.vmap(model)(tokens)  # (n, L, H, T, T)
    return jnp.mean(attention[:, :, :, 1, 0], axis=(0, 2))


def _probe(model, data):
    """Every metric of `measure.evaluate` and the subject-to-context attention per layer."""
    import jax.numpy as jnp

    from cpi.bridge import measure

    return jnp.concatenate([measure.evaluate(model, data), subject_context_attention(model, data.conflict_tokens)])


def finetune_with_probe(model, train, data) -> np.ndarray:
    """Rows (recorded steps × (`measure.metric_names` then `subject_context_l1..L`)) of the
    finetuning `cpi.bridge.finetune.finetune(model, train, data)` computes, step for step (same
    optimizer, loss and batches), with the subject-to-context attention appended."""
    from cpi.bridge.finetune import finetune_observed

    return np.stack(finetune_observed(model, train, data, _probe))


def probe_run(config, work: Path) -> dict:
    """Every metric of `config`'s finetuning (as `cpi.bridge.run.run` names them), its summary's
    reliance drop, δ_C and δ_M, and `subject_context_l<j>`; saved under
    `<work>/bridge-probe/<key>.npz` (`cpi.core.store.BRIDGE_PROBE`) and reused."""

    def compute() -> dict:
        from cpi.bridge import measure
        from cpi.bridge.corpus import build_corpus
        from cpi.bridge.pretrain import pretrained
        from cpi.bridge.run import prepare, results

        corpus = build_corpus(config)
        model, _ = pretrained(config, corpus.vocab, Path(work) / store.CHECKPOINT.name)
        corpus, train, data = prepare(config, model, corpus)
        rows = finetune_with_probe(model, config.train, data)
        n = len(measure.metric_names(data, config.transformer.layers))
        metrics, summary = results(config, model, corpus, train, data, rows[:, :n])
        out = {k: np.asarray(v) for k, v in metrics.items()}
        for j in range(config.transformer.layers):
            out[f"subject_context_l{j + 1}"] = rows[:, n + j].astype(np.float64)
        out.update(n_train=np.int64(len(train.target)), n_C=np.int64(summary["counts"]["C"]),
                   n_CS=np.int64(summary["counts"]["CS"]), delta_c=float(summary["delta_c"]),
                   delta_m=float(summary["delta_m"]))
        return out

    return cached_arrays(store.BRIDGE_PROBE, bcfg.to_toml(config), work, compute)


def _toy(base, work: Path, factors) -> dict:
    """The toy at ρ = 1 under full-batch GD (its base learning rate) and Adam at `factors` times
    the matched learning rate: M_C per run and its largest fall."""
    from .optimizers import matched_adam_lr

    rho1 = with_values(base, mixture__context_critical=1.0)
    adam_lr, _, _ = matched_adam_lr(rho1, work)
    runs = [("gd", float(rho1.train.lr))] + [("adam", float(f * adam_lr)) for f in factors]
    toy = [cached_run(with_values(rho1, train__optimizer=o, train__lr=lr), work)[0] for o, lr in runs]
    reliance = np.stack([np.asarray(m["reliance"], dtype=np.float64) for m in toy])
    return dict(toy_optimizer=np.array([o for o, _ in runs]), toy_lr=np.array([lr for _, lr in runs]),
                toy_adam_lr=float(adam_lr), toy_step=np.arange(reliance.shape[1]), toy_reliance=reliance,
                toy_drop=peak_final_drop(reliance)["drop"])


def compute(base, work: Path, seeds, overrides, mixtures, optimizers, steps, trainables, toy_adam_factors) -> dict:
    """Every mixture × optimizer × trainable × seed of the bridge (arrays in that axis order), and
    the toy at ρ = 1 on `base`."""
    unknown = set(mixtures) - set(MIXTURES)
    if unknown:
        raise ValueError(f"unknown mixtures {sorted(unknown)}; expected some of {list(MIXTURES)}")
    grid = [(m, o, t, s) for m in mixtures for o in optimizers for t in trainables for s in seeds]
    configs = [bridge_config(overrides, train__seed=int(s), train__optimizer=str(o[0]), train__lr=float(o[1]),
                             train__steps=int(steps), train__trainable=str(t), **_mixture_values(m))
               for m, o, t, s in grid]
    runs = [probe_run(c, work) for c in configs]
    shape = (len(mixtures), len(optimizers), len(trainables), len(seeds))
    layers = configs[0].transformer.layers
    stack = lambda name: np.stack([np.asarray(r[name], dtype=np.float64) for r in runs]).reshape(*shape, -1)
    out = dict(
        config=bcfg.to_toml(configs[0]),
        mixtures=np.array([str(m) for m in mixtures]),
        optimizers=np.array([str(o) for o, _ in optimizers]),
        lrs=np.array([float(lr) for _, lr in optimizers]),
        trainables=np.array([str(t) for t in trainables]),
        seeds=np.asarray(seeds, dtype=np.int64),
        step=np.asarray(runs[0]["step"]),
        n_C=np.array([int(r["n_C"]) for r in runs]).reshape(shape),
        n_CS=np.array([int(r["n_CS"]) for r in runs]).reshape(shape),
        n_train=np.array([int(r["n_train"]) for r in runs]).reshape(shape),
        delta_c=np.array([float(r["delta_c"]) for r in runs]).reshape(shape),
        delta_m=np.array([float(r["delta_m"]) for r in runs]).reshape(shape),
        attention_context_layers=np.stack([stack(f"attention_context_l{j + 1}") for j in range(layers)], axis=-2),
        subject_context_layers=np.stack([stack(f"subject_context_l{j + 1}") for j in range(layers)], axis=-2),
        **{name: stack(name) for name in CURVES},
    )
    out.update(peak_final_drop(out["reliance"]))
    out.update(_toy(base, work, toy_adam_factors))
    return out




def _at_fall(curve: np.ndarray, reliance: np.ndarray) -> float:
    """The change of `curve` between the step of M_C's running peak and the step where M_C lies
    furthest below it (0 when M_C never falls)."""
    running = np.maximum.accumulate(reliance)
    low = int(np.argmax(running - reliance))
    high = int(np.argmax(reliance[: low + 1]))
    return float(curve[low] - curve[high])


def differ(a, b) -> bool:
    """Whether two sets of per-seed values differ: their means further apart than the larger
    of their standard deviations (ddof = 1)."""
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    return abs(ma - mb) > max(sa, sb)


def headline(data: dict) -> dict:
    """Per mixture, optimizer and trainable set: the fall of M_C (mean, sd over seeds, seeds
    falling ≥ 0.05), its peak and rise (peak − initial), the seeds ending ≥ 0.05 below their start;
    the change over the fall (from the step of the running peak to the lowest point below it) of
    the last position's attention to the context in the first and in the last layer and of the
    first layer's subject-to-context attention (and in how many seeds each fell), the first
    layer's attention to the context at M_C's peak and, at the start (first mixture), with the
    subject-to-context attention; whether GD and Adam differ (and the seeds that
    fall ≥ 0.05 under both), and whether freezing the first layer's maps changes the fall (means
    apart by more than the larger spread), and whether each mixture's fall differs from the first
    mixture's; the toy's largest fall at ρ = 1 under GD and Adam."""
    mixtures, opts, trainables = list(data["mixtures"]), list(data["optimizers"]), list(data["trainables"])
    out = dict(seeds=int(len(data["seeds"])), steps=int(data["step"][-1]),
               toy_steps=int(data["toy_step"][-1]), toy_adam_lr=float(data["toy_adam_lr"]))
    for j, opt in enumerate(opts):
        out[f"lr_{opt}"] = float(data["lrs"][j])
    drop, reliance = np.asarray(data["drop"]), np.asarray(data["reliance"])
    att, sub = np.asarray(data["attention_context_layers"]), np.asarray(data["subject_context_layers"])
    for name, values in (("first_attention", att[:, :, :, :, 0, 0]), ("subject_context_l1", sub[:, :, :, :, 0, 0])):
        out[f"initial_{name}_mean"], out[f"initial_{name}_sd"] = mean_sd(values[0, 0, 0])
    for i, mix in enumerate(MIXTURES[str(m)] for m in mixtures):
        out[f"{mix}_n_C"] = int(np.asarray(data["n_C"])[i].flat[0])
        out[f"{mix}_n_train"] = int(np.asarray(data["n_train"])[i].flat[0])
        out[f"{mix}_n_CS_max"] = int(np.asarray(data["n_CS"])[i].max())
        for j, opt in enumerate(opts):
            for k, tr in enumerate(trainables):
                key = f"{mix}_{opt}_{tr}"
                out[f"{key}_fall_mean"], out[f"{key}_fall_sd"] = mean_sd(drop[i, j, k])
                out[f"{key}_falling_seeds"] = int(np.sum(drop[i, j, k] >= 0.05))
                out[f"{key}_peak_mean"], out[f"{key}_peak_sd"] = mean_sd(np.asarray(data["peak"])[i, j, k])
                out[f"{key}_rise_mean"], out[f"{key}_rise_sd"] = mean_sd(
                    np.asarray(data["peak"])[i, j, k] - np.asarray(data["initial"])[i, j, k])
                out[f"{key}_below_start_seeds"] = int(np.sum(np.asarray(data["final"])[i, j, k]
                                                             < np.asarray(data["initial"])[i, j, k] - 0.05))
                seeds = range(drop.shape[-1])
                for layer, name in ((0, "first"), (-1, "last")):
                    change = [_at_fall(att[i, j, k, s, layer], reliance[i, j, k, s]) for s in seeds]
                    out[f"{key}_{name}_attention_change_mean"], out[f"{key}_{name}_attention_change_sd"] = mean_sd(
                        change)
                    out[f"{key}_{name}_attention_fell_seeds"] = int(np.sum(np.asarray(change) < 0))
                peaks = np.argmax(reliance[i, j, k], axis=-1)
                out[f"{key}_first_attention_at_peak_mean"], out[f"{key}_first_attention_at_peak_sd"] = mean_sd(
                    [att[i, j, k, s, 0, peaks[s]] for s in seeds])
                out[f"{key}_subject_context_l1_change_mean"], out[f"{key}_subject_context_l1_change_sd"] = mean_sd(
                    [_at_fall(sub[i, j, k, s, 0], reliance[i, j, k, s]) for s in seeds])
                out[f"{key}_subject_context_l1_fell_seeds"] = int(np.sum(np.asarray(
                    [_at_fall(sub[i, j, k, s, 0], reliance[i, j, k, s]) for s in seeds]) < 0))
                out[f"{key}_subject_context_l1_range_mean"], _ = mean_sd(
                    [np.ptp(sub[i, j, k, s, 0]) for s in seeds])
            if len(trainables) > 1:
                out[f"{mix}_{opt}_frozen_l1_differs"] = differ(drop[i, j, 0], drop[i, j, 1])
        if i > 0:
            first = MIXTURES[str(mixtures[0])]
            for j, opt in enumerate(opts):
                out[f"{mix}_{opt}_differs_from_{first}"] = differ(drop[i, j, 0], drop[0, j, 0])
        if len(opts) > 1:
            out[f"{mix}_optimizers_differ"] = differ(drop[i, 0, 0], drop[i, 1, 0])
            out[f"{mix}_falling_under_both_optimizers"] = int(np.sum((drop[i, 0, 0] >= 0.05) & (drop[i, 1, 0] >= 0.05)))
    toy_drop = np.asarray(data["toy_drop"])
    out["toy_gd_fall"] = float(toy_drop[0])
    out["toy_adam_fall_max"] = float(toy_drop[1:].max()) if toy_drop.size > 1 else float("nan")
    out["toy_adam_factor_min"] = float(np.min(data["toy_lr"][1:]) / data["toy_adam_lr"])
    out["toy_adam_factor_max"] = float(np.max(data["toy_lr"][1:]) / data["toy_adam_lr"])
    return out
