"""The bridge from a `Config` to theory's inputs: the `cpi.theory.params` records of its knowledge
and of its training examples' group counts (after filtering), and the reduced dynamics of the
config (the group forms for the paper's embeddings, the per-example form for any embeddings).
The report that `cpi theory` prints is built on it in `cpi.sims.theory_report`."""

from __future__ import annotations

import numpy as np

from cpi.theory.groups import GROUPS, theory_indices
from cpi.theory.params import GroupCounts, Knowledge
from cpi.theory.reduced import general_trajectory, group_trajectory, initial_margins, example_readout
from cpi.theory.relations import relation_group_trajectory

from .config import Config
from .world import Examples, World, build_world


def knowledge_of(config: Config) -> Knowledge:
    """The knowledge record of `config` (world sizes and the knowledge section)."""
    w, k = config.world, config.knowledge
    return Knowledge(n_subjects=w.n_subjects, n_answers=w.n_answers, delta_c=k.delta_c, delta_m=k.delta_m,
                     o_c=k.o_c, o_r=k.o_r, delta_s=k.delta_s)


def relation_counts(config: Config) -> np.ndarray:
    """(R, 5) counts of the training examples of `config` per relation and theory group,
    read off the built world (so the relation assignment and `mixture.filter` apply)."""
    world = build_world(config)
    train = world.train
    relation = train.tokens[:, 2] - world.relation
    kind = theory_indices(train.group, train.fact)
    counts = np.zeros((world.n_relations, len(GROUPS)), dtype=int)
    np.add.at(counts, (relation, kind), 1)
    return counts


def counts_of(config: Config) -> GroupCounts:
    """The group counts of `config`'s training examples over all relations (ints), after filtering."""
    return GroupCounts(*(int(x) for x in relation_counts(config).sum(axis=0)))


def reduced_trajectory(config: Config, steps: int | None = None) -> dict:
    """The exact reduced dynamics of `config` with W_V frozen: metrics at steps 0..steps.

    One relation: the group form (every per-group metric). Several: the relation group
    form, reduced to what the simulator reports for them: `reliance` (mean over the
    relations' equally many test examples), `reliance_r<j>`, `attention_context` and
    `aligned_accuracy`."""
    steps = config.train.steps if steps is None else steps
    if config.world.n_relations == 1:
        return group_trajectory(knowledge_of(config), counts_of(config), lr=config.train.lr, steps=steps)
    per_relation = relation_group_trajectory(
        knowledge_of(config), relation_counts(config), n_relations=config.world.n_relations,
        relation_overlap=config.world.relation_overlap, lr=config.train.lr, steps=steps,
    )
    n_aligned = config.mixture.n_aligned
    aligned_weights = np.bincount(np.arange(n_aligned) % config.world.n_relations,
                                  minlength=config.world.n_relations) / max(n_aligned, 1)
    out = {
        "reliance": np.mean(per_relation["reliance"], axis=0),
        "attention_context": np.mean(per_relation["attention_context"], axis=0),
        # aligned examples are dealt round-robin over the relations
        "aligned_accuracy": aligned_weights @ np.asarray(per_relation["aligned_accuracy"]),
    }
    for j, reliance in enumerate(per_relation["reliance"]):
        out[f"reliance_r{j + 1}"] = reliance
    return out


# ----------------------------------------------------------------------------- per example


def _keys(examples: Examples) -> tuple[np.ndarray, np.ndarray]:
    """(x1, x2): each example's two visible keys, the first the one σ(g) weighs: (c, s) for
    context-bearing examples, (s, r) for subject-only examples."""
    context = examples.key_mask[:, 0]
    x1 = np.where(context, examples.tokens[:, 0], examples.tokens[:, 1])
    x2 = np.where(context, examples.tokens[:, 1], examples.tokens[:, 2])
    return x1, x2


def example_inputs(world: World) -> dict:
    """The per-example reduced system of `world` (any embeddings, W_V frozen, W_KQ(0) = 0):
    k_i = φ(x1ᵢ) − φ(x2ᵢ) and query φ(r_{jᵢ}), so W_KQ = Σ_l α_l k_l φ(r_{j_l})ᵀ and

        Gram_il = (k_iᵀ k_l) Γ[j_i, j_l],   Γ = Φ_Rᵀ Φ_R,

    value columns v1ᵢ = T[:, x1ᵢ], v2ᵢ = T[:, x2ᵢ] of the table T = Φᵀ W_V Φ. The held-out
    examples (conflict test examples, then aligned examples) get their rows of inner products
    `test_inner` and columns `test_v1`, `test_v2`. Keys: gram, v1, v2, answers, group (index
    into theory.groups.GROUPS), test_inner, test_v1, test_v2, test_answers, test_fact (the
    conflict examples' memorised fact), n_test, test_relation (j of each conflict example)."""
    phi, table = world.embed, world.value_table
    gamma = phi[:, world.relation:].T @ phi[:, world.relation:]

    def parts(examples: Examples):
        x1, x2 = _keys(examples)
        return phi[:, x1] - phi[:, x2], examples.tokens[:, 2] - world.relation, x1, x2

    k_tr, j_tr, x1, x2 = parts(world.train)
    held = Examples(*(np.concatenate([getattr(world.test, f), getattr(world.aligned, f)])
                    for f in ("tokens", "key_mask", "answer", "fact", "group")))
    k_te, j_te, t1, t2 = parts(held)
    return dict(
        gram=(k_tr.T @ k_tr) * gamma[np.ix_(j_tr, j_tr)],
        v1=table[:, x1].T, v2=table[:, x2].T, answers=world.train.answer,
        group=theory_indices(world.train.group, world.train.fact),
        test_inner=(k_te.T @ k_tr) * gamma[np.ix_(j_te, j_tr)],
        test_v1=table[:, t1].T, test_v2=table[:, t2].T, test_answers=held.answer,
        test_fact=world.test.fact, n_test=len(world.test), test_relation=j_te[: len(world.test)],
    )


def example_trajectory(config: Config, steps: int | None = None, world: World | None = None) -> dict:
    """The exact reduced dynamics of `config` (full-batch GD at train.lr, W_V frozen) in the
    per-example form (`cpi.theory.reduced.general_trajectory`), for any embeddings, as the metrics
    `cpi run` records: reliance (mean M_C of the conflict examples), attention_context (their
    mean σ(A)), aligned_accuracy (mean p_c of the aligned examples), loss (mean training loss),
    and reliance_r<j> with several relations; steps 0..steps. Also alpha, gaps (per example)."""
    steps = config.train.steps if steps is None else steps
    world = build_world(config) if world is None else world
    p = example_inputs(world)
    raw = general_trajectory(p["gram"], p["v1"], p["v2"], p["answers"], config.train.lr, steps, p["test_inner"])
    m = p["n_test"]
    gaps = np.asarray(raw["test_gaps"])
    conflict = example_readout(gaps[:, :m], p["test_v1"][:m], p["test_v2"][:m], p["test_answers"][:m], p["test_fact"])
    out = {
        "reliance": conflict["reliance"].mean(axis=-1),
        "attention_context": conflict["attention"].mean(axis=-1),
        "loss": np.asarray(raw["loss"]).mean(axis=-1),
        "alpha": np.asarray(raw["alpha"]),
        "gaps": np.asarray(raw["gaps"]),
    }
    if len(world.aligned):
        aligned = example_readout(gaps[:, m:], p["test_v1"][m:], p["test_v2"][m:], p["test_answers"][m:])
        out["aligned_accuracy"] = aligned["p_answer"].mean(axis=-1)
    if world.n_relations > 1:
        for j in range(world.n_relations):
            out[f"reliance_r{j + 1}"] = conflict["reliance"][:, p["test_relation"] == j].mean(axis=-1)
    return out


def initial_direction(config: Config, world: World | None = None) -> dict:
    """The start of the dynamics from `config`'s own margins (theory/NOTES.md §0.9, "Outside
    the idealisation"): per training example the Lemma 4 margin m_i (h_i(0) = m_i/4) and its push on
    the conflict test gaps, d_i = h_i(0)·mean_t(k_tᵀk_i Γ), so that dA/dt(0) = Σ_i d_i / n
    (t = η·steps, mean over the conflict examples). ρ* is where a mixture of C and CS examples
    holding these mean pushes has no initial drift: ρ* = −d̄_CS / (d̄_C − d̄_CS).

    Returns m_C, m_CS, m_CF (mean margins of the group's examples; None when absent),
    initial_drift (dA/dt at t = 0), initial_direction ("rise", "fall" or "flat": of the test
    gap and so of the context reliance), rho_star (None without both C and CS examples)."""
    world = build_world(config) if world is None else world
    p = example_inputs(world)
    margins = initial_margins(p["v1"], p["v2"], p["answers"])
    push = 0.25 * margins * p["test_inner"][: p["n_test"]].mean(axis=0)
    drift = float(push.sum() / len(push))

    def mean_of(values, group):
        chosen = values[p["group"] == GROUPS.index(group)]
        return float(chosen.mean()) if len(chosen) else None

    d_c, d_cs = mean_of(push, "C"), mean_of(push, "CS")
    rho = None if d_c is None or d_cs is None or d_c == d_cs else -d_cs / (d_c - d_cs)
    scale = 1e-12 * float(np.abs(push).sum() / len(push) or 1.0)
    return dict(m_C=mean_of(margins, "C"), m_CS=mean_of(margins, "CS"), m_CF=mean_of(margins, "CF"),
                initial_drift=drift, rho_star=rho,
                initial_direction="rise" if drift > scale else "fall" if drift < -scale else "flat")
