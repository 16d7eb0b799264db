"""The paper's idealised token embeddings (Assumptions 2-4) and their Gram matrices.

Token layout (see `theory.pretrained`): subjects 0..K_S-1, answers K_S..K_S+K_A-1, relation
K-1. Coordinates of R^d, d = K_S + K_A + 3: s̃_0..s̃_{K_S-1}, c̃_0..c̃_{K_A-1}, θ_S, θ_C, e_r.

    φ(s) = (s̃ + θ_S)/√2,   φ(c) = (c̃ + θ_C)/√2,   φ(r) = e_r.
"""

from __future__ import annotations

import numpy as np


def embedding_dim(n_subjects: int, n_answers: int) -> int:
    """d = K_S + K_A + 3."""
    return n_subjects + n_answers + 3


def theta_directions(n_subjects: int, n_answers: int) -> tuple[np.ndarray, np.ndarray]:
    """(θ_C, θ_S) as unit vectors of R^d."""
    d = embedding_dim(n_subjects, n_answers)
    theta_s = np.zeros(d)
    theta_c = np.zeros(d)
    theta_s[n_subjects + n_answers] = 1.0
    theta_c[n_subjects + n_answers + 1] = 1.0
    return theta_c, theta_s


def paper_embeddings(n_subjects: int, n_answers: int) -> np.ndarray:
    """Φ ∈ R^{d×K}: column y is φ(y). Also the tied, frozen output head W_H."""
    k = n_subjects + n_answers + 1
    d = embedding_dim(n_subjects, n_answers)
    phi = np.zeros((d, k))
    h = np.sqrt(0.5)
    for j in range(n_subjects):
        phi[j, j] = h
        phi[n_subjects + n_answers, j] = h
    for j in range(n_answers):
        phi[n_subjects + j, n_subjects + j] = h
        phi[n_subjects + n_answers + 1, n_subjects + j] = h
    phi[d - 1, k - 1] = 1.0
    return phi


def token_gram(n_subjects: int, n_answers: int) -> np.ndarray:
    """G = ΦᵀΦ written out: ½(1 + [i = j]) within subjects and within answers, 0 across the
    two blocks, 1 for the relation with itself and 0 with everything else."""
    k = n_subjects + n_answers + 1
    g = np.zeros((k, k))
    s = slice(0, n_subjects)
    a = slice(n_subjects, n_subjects + n_answers)
    g[s, s] = 0.5 * (1.0 + np.eye(n_subjects))
    g[a, a] = 0.5 * (1.0 + np.eye(n_answers))
    g[k - 1, k - 1] = 1.0
    return g


def key_differences(phi: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Columns k_i = φ(first_i) − φ(second_i) for the two visible keys of each point."""
    return phi[:, np.asarray(first)] - phi[:, np.asarray(second)]
