"""What the bridge measures: the toy's metrics on the transformer during finetuning, and the
toy's knowledge quantities (δ_C, δ_M, Lemma 4 margins, ρ*) on the pretrained transformer.

During finetuning (`evaluate`), on the held-out conflict examples [c, s, r] (s memorised with
fact a ≠ c), with p = softmax of the logits at the last position:
- reliance M_C = mean p_c/(p_c + p_a); counterfactual_accuracy = share with argmax c,
  parametric_accuracy = share with argmax a;
- attention_context: attention of the last position (r) to the context (position 0), mean
  over layers, heads and examples (the paper's Figure 3b), and per layer
  attention_context_l1..L; attention_subject likewise to the subject (position 1);
on the finetuning examples: loss (their mean), loss_<group> per group present, train_accuracy;
on the held-out in-distribution examples: in_distribution_accuracy, and aligned_accuracy on
their CS half (context = memorised fact).

On the pretrained model (`knowledge`): δ_C = mean p_c of [c, ∅, r] over the conflict examples'
contexts; δ_M = mean p_fact of [∅, s, r] over the conflict examples' subjects; the Lemma 4
margins m = ⟨v(c) − v(s), e_c − softmax(½v(c) + ½v(s))⟩ with v(c) the logits of [c, ∅, r] and
v(s) those of [∅, s, r] (the toy's value columns read off the model's outputs, an
approximation for a deep model), averaged over the finetuning examples of each group; and
ρ* = |m_CS|/(m_C + |m_CS|) (`cpi.theory.closed_forms.rho_star`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cpi.theory.closed_forms import margin, rho_star

from .corpus import GROUPS, Corpus, Examples, context_only, subject_only
from .model import answer_logits, answer_logits_compiled, cross_entropy

CONTEXT_POSITION, SUBJECT_POSITION = 0, 1


class EvalData:
    """The arrays `evaluate` reads (held as JAX arrays; built once per run)."""

    def __init__(self, corpus: Corpus, train: Examples):
        self.train_tokens = jnp.asarray(train.tokens)
        self.train_target = jnp.asarray(train.target)
        self.train_group = np.asarray(train.group)
        self.conflict_tokens = jnp.asarray(corpus.conflict.tokens)
        self.conflict_context = jnp.asarray(corpus.conflict.context)
        self.conflict_fact = jnp.asarray(corpus.conflict.fact)
        self.aligned_tokens = jnp.asarray(corpus.aligned.tokens)
        self.aligned_target = jnp.asarray(corpus.aligned.target)
        self.aligned_is_cs = jnp.asarray(corpus.aligned.group == 1)
        self.groups_present = tuple(i for i, _ in enumerate(GROUPS) if np.any(self.train_group == i))


def metric_names(data: EvalData, layers: int) -> tuple[str, ...]:
    """The names `evaluate` returns, in order."""
    return ("reliance", "counterfactual_accuracy", "parametric_accuracy", "attention_context",
            "attention_subject", *(f"attention_context_l{j + 1}" for j in range(layers)), "loss",
            *(f"loss_{GROUPS[g]}" for g in data.groups_present), "train_accuracy",
            "in_distribution_accuracy", "aligned_accuracy")


def _last_position(model, tokens):
    """Logits (n, V) and attention (n, L, H, T) of the last position."""
    logits, attention = jax.vmap(model)(tokens)
    return logits[:, -1], attention[:, :, :, -1, :]


def evaluate(model, data: EvalData) -> jax.Array:
    """Every metric of `metric_names`, stacked into one vector (traceable)."""
    logits, attention = _last_position(model, data.conflict_tokens)
    rows = jnp.arange(logits.shape[0])
    p = jax.nn.softmax(logits, axis=-1)
    p_c, p_a = p[rows, data.conflict_context], p[rows, data.conflict_fact]
    top = jnp.argmax(logits, axis=-1)
    to_context = attention[..., CONTEXT_POSITION]  # (n, L, H)
    out = [jnp.mean(p_c / (p_c + p_a)), jnp.mean(top == data.conflict_context), jnp.mean(top == data.conflict_fact),
           jnp.mean(to_context), jnp.mean(attention[..., SUBJECT_POSITION]), *jnp.mean(to_context, axis=(0, 2))]
    train_logits = answer_logits(model, data.train_tokens)
    losses = cross_entropy(train_logits, data.train_target)
    out.append(jnp.mean(losses))
    for g in data.groups_present:
        mask = jnp.asarray(data.train_group == g)
        out.append(jnp.sum(jnp.where(mask, losses, 0.0)) / mask.sum())
    out.append(jnp.mean(jnp.argmax(train_logits, axis=-1) == data.train_target))
    right = jnp.argmax(answer_logits(model, data.aligned_tokens), axis=-1) == data.aligned_target
    out += [jnp.mean(right), jnp.sum(right & data.aligned_is_cs) / jnp.sum(data.aligned_is_cs)]
    return jnp.stack([jnp.asarray(x, jnp.float32) for x in out])


def value_columns(model, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v(c), v(s)) (n, V) each: the logits of [c, ∅, r] and of [∅, s, r] for each example."""
    examples = Examples(tokens, *(np.zeros(len(tokens), np.int32),) * 4)
    v_c = answer_logits_compiled(model, jnp.asarray(context_only(examples)))
    v_s = answer_logits_compiled(model, jnp.asarray(subject_only(examples)))
    return np.asarray(v_c, np.float64), np.asarray(v_s, np.float64)


def _probability(logits: np.ndarray, index: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    return p[np.arange(len(index)), index]


def knowledge(model, corpus: Corpus) -> dict:
    """δ_C, δ_M, the Lemma 4 margins per finetuning group and ρ* of the pretrained `model`, and
    the share of context-bearing finetuning examples that need their context
    (`context_needed_share`)."""
    conflict = corpus.conflict
    v_c, v_s = value_columns(model, conflict.tokens)
    out = {"delta_c": float(_probability(v_c, conflict.context).mean()),
           "delta_m": float(_probability(v_s, conflict.fact).mean())}
    train = corpus.train
    v_c, v_s_train = value_columns(model, train.tokens)
    m = margin(v_c, v_s_train, train.target)
    for g, name in enumerate(GROUPS[:3]):
        if np.any(train.group == g):
            out[f"m_{name}"] = float(m[train.group == g].mean())
    # Margins of the representative groups even when the mixture has none of them: on the
    # held-out in-distribution examples, C half and CS half.
    v_c, v_s = value_columns(model, corpus.aligned.tokens)
    m_held = margin(v_c, v_s, corpus.aligned.target)
    out["m_C_heldout"] = float(m_held[corpus.aligned.group == 0].mean())
    out["m_CS_heldout"] = float(m_held[corpus.aligned.group == 1].mean())
    m_c, m_cs = out.get("m_C", out["m_C_heldout"]), out.get("m_CS", out["m_CS_heldout"])
    out["rho_star"] = float(rho_star(m_c, m_cs)) if m_c > 0 > m_cs else float("nan")
    out["context_needed_share"] = _needed_share(v_s_train, train)
    return out


def _needed_share(v_s: np.ndarray, train: Examples) -> float:
    bearing = train.group < GROUPS.index("S")
    if not np.any(bearing):
        return float("nan")
    return float(np.mean(_probability(v_s[bearing], train.target[bearing]) < 0.5))


def context_needed_share(model, train: Examples) -> float:
    """The paper's section 4.4 criterion as a share: of the context-bearing finetuning examples
    (C, CS, CF; before any filtering), the fraction whose target the pretrained `model` gives
    probability below ½ from [∅, s, r], i.e. whose no-context loss exceeds ln 2: the examples
    that need their context (NaN without context-bearing examples)."""
    return _needed_share(value_columns(model, train.tokens)[1], train)
