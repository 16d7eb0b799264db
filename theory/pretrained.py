"""The pretrained value logits of the paper's Lemma 3 (Assumptions 5-6).

Token layout used throughout the project: subjects are tokens 0..K_S-1, answer/context
tokens are K_S..K_S+K_A-1, the R relations are the last R tokens K_S+K_A..K-1,
K = K_S + K_A + R (R = 1: the paper's single relation, token K-1).
V[a, y] = φ(a)ᵀ W_V φ(y) is the logit that the value of token y gives to output token a.
"""

from __future__ import annotations

import numpy as np


def logit(p):
    """logit(p) = log p − log(1 − p)."""
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def z0(n_subjects: int, n_answers: int, o_c: float, o_r: float, n_relations: int = 1) -> float:
    """Z₀ = (K_A − 1)e^{o_c} + R·e^{o_r} + K_S: the softmax mass of a value column off its own answer."""
    return (n_answers - 1) * np.exp(o_c) + n_relations * np.exp(o_r) + n_subjects


def value_logit_table(
    n_subjects: int,
    n_answers: int,
    o_c: float,
    o_r: float,
    delta_c: float,
    fact: np.ndarray,
    strength: np.ndarray,
    n_relations: int = 1,
) -> np.ndarray:
    """The K×K table V of Lemma 3 (K = K_S + K_A + R).

    Every column y: answer rows o_c, every relation row o_r, subject rows 0; then
    - y an answer/context token: V[y, y] = logit(δ_C) + log Z₀ (it predicts itself w.p. δ_C);
    - y a subject with fact[y] = j ≥ 0: V[K_S + j, y] = logit(strength[y]) + log Z₀
      (softmax(v(y)) puts strength[y] on its fact); fact[y] = −1 leaves it flat over answers;
    - y a relation: flat over answers (all relation columns are equal).
    Z₀ = `z0(..., n_relations)`. A subject's fact does not depend on the relation it is
    queried with: the value of a token is read independently of the query.
    """
    fact = np.asarray(fact)
    strength = np.asarray(strength, dtype=np.float64)
    if fact.shape != (n_subjects,) or strength.shape != (n_subjects,):
        raise ValueError("fact and strength need one entry per subject")
    k = n_subjects + n_answers + n_relations
    log_z0 = np.log(z0(n_subjects, n_answers, o_c, o_r, n_relations))
    table = np.zeros((k, k))
    table[n_subjects : n_subjects + n_answers, :] = o_c
    table[n_subjects + n_answers :, :] = o_r
    answers = np.arange(n_subjects, n_subjects + n_answers)
    table[answers, answers] = logit(delta_c) + log_z0
    memorised = np.flatnonzero(fact >= 0)
    table[n_subjects + fact[memorised], memorised] = logit(strength[memorised]) + log_z0
    return table
