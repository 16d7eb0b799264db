"""What a run records at every step, defined once for both engines: the per-example values
each engine computes in its own coordinates (`ExampleValues`), and how they become the recorded
metrics (`collect`), named by `metric_names`.

reliance: mean M_C = p_c/(p_c + p_a) over conflict test examples; attention_context: mean
σ_c on them; aligned_accuracy: mean p_c on held-out examples whose context is their
memorised fact; loss_G / attention_context_G: per training group; u_theta_c/s: θ_Cᵀu and
θ_Sᵀu for u = W_KQ φ(r); neg_grad_theta_c_G / neg_grad_theta_s_G: the θ_C / θ_S
components of −∇_{W_KQ} L_G φ(r), L_G = (1/n)Σ_{i∈G} ℓ_i (the groups sum to −∇L).
With several relations, r is the first relation r_1 and reliance_r<j> is the mean M_C
over the conflict test examples queried with relation j.
counterfactual_accuracy / parametric_accuracy: the fraction of conflict test examples
whose argmax output token is the context's answer c / the memorised fact a;
train_accuracy: the fraction of training examples whose argmax is their answer (the argmax
rule with its tie tolerance: `cpi.sims.model.chosen`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from cpi.theory.groups import TRAINING_GROUPS, has_context

ACCURACY_METRICS = ("counterfactual_accuracy", "parametric_accuracy", "train_accuracy")
"""The paper's accuracies: the fraction of conflict test examples whose argmax is the context's
answer (counterfactual) or the memorised fact (parametric), and of training examples whose
argmax is their answer (train)."""


def metric_names(n_relations: int) -> list[str]:
    """The keys of the metrics dict, in the order the engine records them."""
    names = ["reliance", "attention_context", "aligned_accuracy", "loss", "u_theta_c", "u_theta_s", *ACCURACY_METRICS]
    if n_relations > 1:
        names += [f"reliance_r{j + 1}" for j in range(n_relations)]
    for g in TRAINING_GROUPS:
        names += group_metric_names(g)
    return names


def group_metric_names(group: str) -> list[str]:
    """The metrics of training group `group` (NaN throughout when it has no examples)."""
    attention = [f"attention_context_{group}"] if has_context(group) else []
    return [f"loss_{group}", *attention, f"neg_grad_theta_c_{group}", f"neg_grad_theta_s_{group}"]


class ExampleValues(NamedTuple):
    """The per-example values the metrics average, at one state: m conflict test examples, n
    training examples, the aligned held-out examples."""

    reliance: Any  # (m,) M_C = p_c / (p_c + p_a)
    attention_test: Any  # (m,) σ on the context slot
    aligned: Any  # (n_aligned,) p of the answer
    losses: Any  # (n,) ℓ_i
    attention_train: Any  # (n,) σ on the context slot
    d_theta_c: Any  # (n,) θ_Cᵀ ∇_{W_KQ} ℓ_i φ(r_1)
    d_theta_s: Any  # (n,) θ_Sᵀ ∇_{W_KQ} ℓ_i φ(r_1)
    u_theta_c: Any  # () θ_Cᵀ W_KQ φ(r_1)
    u_theta_s: Any  # () θ_Sᵀ W_KQ φ(r_1)
    counterfactual: Any  # (m,) 1.0 where the argmax is the context's answer (`cpi.sims.model.chosen`)
    parametric: Any  # (m,) 1.0 where the argmax is the memorised fact
    train_chosen: Any  # (n,) 1.0 where the argmax is the example's answer


def masked_sum(onehot, values):
    """Σ of `values` (n,) within each group of `onehot` (n, G), as a multiply-and-sum (XLA's
    CPU backend runs the tiny products of a vmapped `onehot.T @ values` slowly)."""
    return jnp.sum(onehot * values[:, None], axis=0)


def collect(values: ExampleValues, group_onehot, relation_onehot, *, group_sum=masked_sum) -> dict:
    """The metrics (the keys of `metric_names`) from the per-example values: means over the
    examples, per training group (`group_onehot`, (n, len(TRAINING_GROUPS))) and per relation
    of the conflict test examples (`relation_onehot`, (m, R)); a group's metrics are NaN when it
    has no examples. `group_sum(onehot, x)`: the sums of x within groups (`masked_sum`, or a
    product; the two round differently past a few dozen examples)."""
    n = group_onehot.shape[0]

    def group_mean(onehot, per_example):
        return group_sum(onehot, per_example) / onehot.sum(axis=0)

    out = {
        "reliance": jnp.mean(values.reliance),
        "attention_context": jnp.mean(values.attention_test),
        "aligned_accuracy": jnp.mean(values.aligned),
        "loss": jnp.mean(values.losses),
        "u_theta_c": values.u_theta_c,
        "u_theta_s": values.u_theta_s,
        "counterfactual_accuracy": jnp.mean(values.counterfactual),
        "parametric_accuracy": jnp.mean(values.parametric),
        "train_accuracy": jnp.mean(values.train_chosen),
    }
    if relation_onehot.shape[1] > 1:
        per_relation = group_mean(relation_onehot, values.reliance)
        for j in range(relation_onehot.shape[1]):
            out[f"reliance_r{j + 1}"] = per_relation[j]
    loss_g = group_mean(group_onehot, values.losses)
    attention_g = group_mean(group_onehot, values.attention_train)
    push_c = -group_sum(group_onehot, values.d_theta_c) / n
    push_s = -group_sum(group_onehot, values.d_theta_s) / n
    present = group_onehot.sum(axis=0) > 0
    for i, g in enumerate(TRAINING_GROUPS):
        out[f"loss_{g}"] = loss_g[i]
        if has_context(g):  # subject-only examples have no context to attend to
            out[f"attention_context_{g}"] = attention_g[i]
        out[f"neg_grad_theta_c_{g}"] = jnp.where(present[i], push_c[i], jnp.nan)
        out[f"neg_grad_theta_s_{g}"] = jnp.where(present[i], push_s[i], jnp.nan)
    return out
