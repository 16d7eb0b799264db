"""The pretrained value logits of the paper's Lemma 3 (Assumptions 5-6).

Token layout used throughout the project: subjects are tokens 0..K_S-1, answer/context
tokens are K_S..K_S+K_A-1, the relation is the last token K-1, K = K_S + K_A + 1.
V[a, y] = φ(a)ᵀ W_V φ(y) is the logit that the value of token y gives to output token a.
"""

from __future__ import annotations

import numpy as np


def logit(p):
    """logit(p) = log p − log(1 − p)."""
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def z0(n_subjects: int, n_answers: int, o_c: float, o_r: float) -> float:
    """Z₀ = (K_A − 1)e^{o_c} + e^{o_r} + K_S: the softmax mass of a value column off its own answer."""
    return (n_answers - 1) * np.exp(o_c) + np.exp(o_r) + n_subjects


def value_logit_table(
    n_subjects: int,
    n_answers: int,
    o_c: float,
    o_r: float,
    delta_c: float,
    fact: np.ndarray,
    strength: np.ndarray,
) -> np.ndarray:
    """The K×K table V of Lemma 3.

    Every column y: answer rows o_c, the relation row o_r, subject rows 0; then
    - y an answer/context token: V[y, y] = logit(δ_C) + log Z₀ (it predicts itself w.p. δ_C);
    - y a subject with fact[y] = j ≥ 0: V[K_S + j, y] = logit(strength[y]) + log Z₀
      (softmax(v(y)) puts strength[y] on its fact); fact[y] = −1 leaves it flat over answers;
    - y the relation: flat over answers.
    """
    fact = np.asarray(fact)
    strength = np.asarray(strength, dtype=np.float64)
    if fact.shape != (n_subjects,) or strength.shape != (n_subjects,):
        raise ValueError("fact and strength need one entry per subject")
    k = n_subjects + n_answers + 1
    log_z0 = np.log(z0(n_subjects, n_answers, o_c, o_r))
    table = np.zeros((k, k))
    table[n_subjects : n_subjects + n_answers, :] = o_c
    table[k - 1, :] = o_r
    answers = np.arange(n_subjects, n_subjects + n_answers)
    table[answers, answers] = logit(delta_c) + log_z0
    memorised = np.flatnonzero(fact >= 0)
    table[n_subjects + fact[memorised], memorised] = logit(strength[memorised]) + log_z0
    return table
