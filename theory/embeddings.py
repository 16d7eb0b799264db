"""The paper's idealised token embeddings (Assumptions 2-4) and their Gram matrices,
extended to R relation tokens (tasks) with a tunable overlap γ (issue 5).

Token layout (see `cpi.theory.pretrained`): subjects 0..K_S-1, answers K_S..K_S+K_A-1,
relations K_S+K_A..K-1 (K = K_S + K_A + R; R = 1 is the paper's single relation, token K-1).
Coordinates of R^d: s̃_0..s̃_{K_S-1}, c̃_0..c̃_{K_A-1}, θ_S, θ_C, e_{r_1}..e_{r_R}, and θ_R
only when R > 1, so d = K_S + K_A + 2 + R + [R > 1] (R = 1: d = K_S + K_A + 3 and exactly
the paper's arrays).

    φ(s) = (s̃ + θ_S)/√2,   φ(c) = (c̃ + θ_C)/√2,   φ(r_j) = √(1−γ) e_{r_j} + √γ θ_R.

So φ(r_i)·φ(r_j) = γ for i ≠ j and 1 for i = j; relations are orthogonal to every subject
and answer. γ ∈ [0, 1); with R = 1 there is no pair to overlap and γ is ignored (φ(r) = e_r).
"""

from __future__ import annotations

import numpy as np


def _check_relations(n_relations: int, relation_overlap: float) -> None:
    if int(n_relations) != n_relations or n_relations < 1:
        raise ValueError(f"n_relations must be a positive integer, got {n_relations!r}")
    if not 0.0 <= relation_overlap < 1.0:
        raise ValueError(f"relation_overlap must lie in [0, 1), got {relation_overlap!r}")


def embedding_dim(n_subjects: int, n_answers: int, n_relations: int = 1) -> int:
    """d = K_S + K_A + 2 + R, plus one for θ_R when R > 1 (K_S + K_A + 3 for R = 1)."""
    _check_relations(n_relations, 0.0)
    return n_subjects + n_answers + 2 + n_relations + (1 if n_relations > 1 else 0)


def theta_directions(n_subjects: int, n_answers: int, n_relations: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(θ_C, θ_S) as unit vectors of R^d."""
    d = embedding_dim(n_subjects, n_answers, n_relations)
    theta_s = np.zeros(d)
    theta_c = np.zeros(d)
    theta_s[n_subjects + n_answers] = 1.0
    theta_c[n_subjects + n_answers + 1] = 1.0
    return theta_c, theta_s


def relation_direction(n_subjects: int, n_answers: int, n_relations: int) -> np.ndarray:
    """θ_R, the direction the relations share (the last coordinate; needs R > 1)."""
    if n_relations < 2:
        raise ValueError("θ_R exists only for n_relations > 1")
    d = embedding_dim(n_subjects, n_answers, n_relations)
    theta_r = np.zeros(d)
    theta_r[d - 1] = 1.0
    return theta_r


def relation_tokens(n_subjects: int, n_answers: int, n_relations: int = 1) -> np.ndarray:
    """Token ids of the relations r_1..r_R: K_S + K_A + j."""
    return n_subjects + n_answers + np.arange(n_relations)


def relation_gram_matrix(n_relations: int, relation_overlap: float = 0.0) -> np.ndarray:
    """(R, R) Gram of the relation embeddings: 1 on the diagonal, γ off it."""
    _check_relations(n_relations, relation_overlap)
    gamma = relation_overlap if n_relations > 1 else 0.0
    return (1.0 - gamma) * np.eye(n_relations) + gamma


def paper_embeddings(n_subjects: int, n_answers: int, n_relations: int = 1,
                     relation_overlap: float = 0.0) -> np.ndarray:
    """Φ ∈ R^{d×K}: column y is φ(y). Also the tied, frozen output head W_H."""
    _check_relations(n_relations, relation_overlap)
    k = n_subjects + n_answers + n_relations
    d = embedding_dim(n_subjects, n_answers, n_relations)
    phi = np.zeros((d, k))
    h = np.sqrt(0.5)
    for j in range(n_subjects):
        phi[j, j] = h
        phi[n_subjects + n_answers, j] = h
    for j in range(n_answers):
        phi[n_subjects + j, n_subjects + j] = h
        phi[n_subjects + n_answers + 1, n_subjects + j] = h
    if n_relations == 1:
        phi[d - 1, k - 1] = 1.0
    else:
        first = n_subjects + n_answers
        for j in range(n_relations):
            phi[first + 2 + j, first + j] = np.sqrt(1.0 - relation_overlap)
            phi[d - 1, first + j] = np.sqrt(relation_overlap)
    return phi


def token_gram(n_subjects: int, n_answers: int, n_relations: int = 1, relation_overlap: float = 0.0) -> np.ndarray:
    """G = ΦᵀΦ written out: ½(1 + [i = j]) within subjects and within answers, 0 across the
    two blocks, the relation Gram (1 on the diagonal, γ off it) on the relations, 0 between
    relations and everything else."""
    k = n_subjects + n_answers + n_relations
    g = np.zeros((k, k))
    s = slice(0, n_subjects)
    a = slice(n_subjects, n_subjects + n_answers)
    r = slice(n_subjects + n_answers, k)
    g[s, s] = 0.5 * (1.0 + np.eye(n_subjects))
    g[a, a] = 0.5 * (1.0 + np.eye(n_answers))
    g[r, r] = relation_gram_matrix(n_relations, relation_overlap)
    return g


def key_differences(phi: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Columns k_i = φ(first_i) − φ(second_i) for the two visible keys of each example."""
    return phi[:, np.asarray(first)] - phi[:, np.asarray(second)]


def random_embeddings(n_subjects: int, n_answers: int, n_relations: int = 1, relation_overlap: float = 0.0,
                      dim: int = 0,
                      rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Φ, θ_C, θ_S) with every direction an independent Gaussian unit vector of R^dim:
    the own directions s̃_j, c̃_j, the shared θ_S, θ_C, and per relation e_{r_j} (and θ_R
    when R > 1), mixed as in `paper_embeddings`:

        φ(s) = (s̃ + θ_S)/√2,   φ(c) = (c̃ + θ_C)/√2,   φ(r_j) = √(1−γ) e_{r_j} + √γ θ_R.

    Distinct directions overlap by O(1/√dim), so dim → ∞ recovers the paper's Gram matrix
    (`token_gram`). dim = 0 takes the paper's dimension (`embedding_dim`). Directions are drawn
    in the order s̃, c̃, θ_S, θ_C, e_r, θ_R, one dim-vector each, from `rng`."""
    _check_relations(n_relations, relation_overlap)
    dim = int(dim) or embedding_dim(n_subjects, n_answers, n_relations)
    if dim < 2:
        raise ValueError(f"dim must be >= 2 for random embeddings, got {dim}")
    rng = np.random.default_rng(0) if rng is None else rng
    n_dirs = n_subjects + n_answers + 2 + n_relations + (1 if n_relations > 1 else 0)
    dirs = rng.standard_normal((n_dirs, dim))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    s_own, rest = dirs[:n_subjects], dirs[n_subjects:]
    c_own, rest = rest[:n_answers], rest[n_answers:]
    theta_s, theta_c, rest = rest[0], rest[1], rest[2:]
    h = np.sqrt(0.5)
    columns = [h * (s_own + theta_s), h * (c_own + theta_c)]
    if n_relations == 1:
        columns.append(rest[:1])
    else:
        columns.append(np.sqrt(1.0 - relation_overlap) * rest[:n_relations]
                       + np.sqrt(relation_overlap) * rest[n_relations])
    return np.concatenate(columns).T.copy(), theta_c.copy(), theta_s.copy()
