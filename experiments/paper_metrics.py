"""The paper's own metrics in the toy: its Figure 2 (counterfactual vs parametric accuracy on
knowledge-conflict examples over finetuning) and its Figure 1a (context reliance against a
standard benchmark that keeps improving).

Varies the mixture ρ = n_C/n (the base's, and one where the answer flips back) and the
embeddings: the paper's orthonormal ones (deterministic; all conflict test examples alike, so
each accuracy is 0 or 1 at every step) and random ones of dimension `dim` over seeds (the
conflict examples differ, so the accuracies are fractions). Computes per step:
`counterfactual_accuracy` (argmax = the context's answer on the conflict test examples),
`parametric_accuracy` (argmax = the memorised fact), `train_accuracy` (argmax right on the
finetuning examples), M_C, and the training loss L with exp(−L), the geometric-mean probability
of the right answer on the finetuning examples (the toy's benchmark that keeps improving, since
train accuracy is 1 from step 0); and, for the paper's embeddings, M_C of the exact reduced
theory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import reduced_trajectory

from .configs import with_values
from .seeded import swept

PARAMS = dict(steps=1000, rhos=(0.5, 0.4), dim=300, seeds=8)
"""steps: GD steps; rhos: the mixtures (fraction of C examples); dim, seeds: the random
embeddings' dimension and seeds 0..seeds-1."""

METRICS = ("counterfactual_accuracy", "parametric_accuracy", "train_accuracy", "reliance", "loss")
SHORT = dict(counterfactual_accuracy="cf", parametric_accuracy="par", train_accuracy="train", reliance="reliance",
             loss="loss")


def compute(base: Config, work: Path, steps: int, rhos, dim: int, seeds: int) -> dict:
    """The accuracies, M_C and loss per step at each ρ: paper embeddings (one run each, and
    the exact theory's M_C) and random embeddings (per seed)."""
    rhos = [float(r) for r in rhos]
    paper = with_values(base, world__embeddings="paper", world__dim=0, train__steps=int(steps))
    rand = with_values(base, world__embeddings="random", world__dim=int(dim), train__steps=int(steps))
    seed_list = list(range(int(seeds)))
    p = swept(paper, {"mixture.context_critical": rhos}, work, METRICS)
    r = swept(rand, {"mixture.context_critical": rhos, "train.seed": seed_list}, work, METRICS)
    theory = np.array([reduced_trajectory(with_values(paper, mixture__context_critical=x))["reliance"] for x in rhos])
    n = base.mixture.n_train
    data = dict(
        config=cfg.to_toml(paper),
        step=np.arange(int(steps) + 1),
        lr=base.train.lr,
        rho=np.array([round(x * n) / n for x in rhos]),
        dim=int(dim),
        seed=np.array(seed_list),
        n_test=base.mixture.n_test * base.world.n_relations,
        theory_reliance=theory,
        paper_configs=p["configs"],
        random_configs=r["configs"],
    )
    for name in METRICS:
        data[f"paper_{SHORT[name]}"] = p[name]  # (rhos, steps + 1)
        data[f"random_{SHORT[name]}"] = r[name]  # (rhos, seeds, steps + 1)
    data["paper_benchmark"] = np.exp(-p["loss"])
    data["random_benchmark"] = np.exp(-r["loss"])
    return data


def headline(data: dict) -> dict:
    """The paper's Figure 2 and 1a metrics in the toy: counterfactual accuracy's first step at 1
    and (where it returns) at 0 with the paper embeddings; with random ones its final mean and
    range over seeds; the lowest train accuracy; the benchmark exp(−L) at start and end."""
    out = dict(steps=int(data["step"][-1]), dim=int(data["dim"]), seeds=int(len(data["seed"])),
               train_accuracy_min=float(min(data["paper_train"].min(), data["random_train"].min())))
    for i, rho in enumerate(data["rho"]):
        tag = f"{round(100 * float(rho)):02d}"
        cf = data["paper_cf"][i]
        ones = np.flatnonzero(cf >= 1.0)
        first_one = int(ones[0]) if ones.size else -1
        back = np.flatnonzero((np.arange(cf.size) > first_one) & (cf <= 0.0)) if ones.size else np.array([])
        out[f"paper_cf_one_from_{tag}"] = first_one
        out[f"paper_cf_zero_again_{tag}"] = f"from step {int(back[0])}" if back.size else "never"
        out[f"paper_final_reliance_{tag}"] = float(data["paper_reliance"][i, -1])
        final = data["random_cf"][i, :, -1]
        out[f"random_cf_final_mean_{tag}"] = float(final.mean())
        out[f"random_cf_final_min_{tag}"] = float(final.min())
        out[f"random_cf_final_max_{tag}"] = float(final.max())
        out[f"paper_benchmark_initial_{tag}"] = float(data["paper_benchmark"][i, 0])
        out[f"paper_benchmark_final_{tag}"] = float(data["paper_benchmark"][i, -1])
    return out
