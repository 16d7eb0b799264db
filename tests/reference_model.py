"""An independent NumPy implementation of the toy model, for tests only.

It shares no code with `cpi.sims` or `cpi.theory`: its own token layout (points take tokens in
order, no permutation), its own embeddings and value table written from theory/NOTES.md §0, W_V from
a pseudo-inverse instead of a linear solve, and gradient descent on W_KQ with the gradient
of the paper's Lemma 1 instead of autodiff. Frozen W_V only.
"""

from __future__ import annotations

import numpy as np


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


class Reference:
    def __init__(self, n_subjects=40, n_answers=80, delta_c=0.2, delta_m=0.6, delta_s=0.9,
                 o_c=1.0, o_r=0.5, n_c=10, n_cs=10, n_cf=0, n_s_seen=0, n_s_unseen=0, n_test=10):
        ks, ka = n_subjects, n_answers
        self.k = k = ks + ka + 1
        d = k + 2
        self.r = k - 1
        # Embeddings: basis s̃ (ks), c̃ (ka), θ_S, θ_C, φ(r).
        phi = np.zeros((d, k))
        for j in range(ks):
            phi[j, j] = phi[k - 1, j] = np.sqrt(0.5)
        for j in range(ks, ks + ka):
            phi[j, j] = phi[k, j] = np.sqrt(0.5)
        phi[k + 1, k - 1] = 1.0
        self.phi, self.theta_c, self.theta_s = phi, np.eye(d)[k], np.eye(d)[k - 1]
        z0 = (ka - 1) * np.exp(o_c) + np.exp(o_r) + ks
        lg = lambda p: np.log(p / (1 - p))  # noqa: E731
        v = np.zeros((k, k))
        for y in range(k):
            v[ks:ks + ka, y] = o_c
            v[k - 1, y] = o_r
            if ks <= y < ks + ka:
                v[y, y] = lg(delta_c) + np.log(z0)
        self.points, self.test = [], []  # (visible key tokens, answer) / (keys, c, a)
        subj, ans = iter(range(ks)), iter(range(ks, ks + ka))

        def memorise(s, a, delta):
            v[a, s] = lg(delta) + np.log(z0)

        for _ in range(n_c):
            c, s = next(ans), next(subj)
            self.points.append(([c, s], c))
        for _ in range(n_cs):
            c, s = next(ans), next(subj)
            memorise(s, c, delta_m)
            self.points.append(([c, s], c))
        for _ in range(n_cf):
            c, b, s = next(ans), next(ans), next(subj)
            memorise(s, b, delta_m)
            self.points.append(([c, s], c))
        for seen in [True] * n_s_seen + [False] * n_s_unseen:
            a, s = next(ans), next(subj)
            if seen:
                memorise(s, a, delta_s)
            self.points.append(([s, self.r], a))
        for _ in range(n_test):
            c, a, s = next(ans), next(ans), next(subj)
            memorise(s, a, delta_m)
            self.test.append(([c, s], c, a))
        self.table = v
        pinv = np.linalg.pinv(phi)  # (k, d): pinv Φ = I_k
        self.w_v = pinv.T @ v @ pinv
        self._cache = {}

    def _products(self, w_v):
        """(W_Hᵀ W_V, W_Vᵀ W_H) with W_H = Φ, cached per value matrix."""
        key = id(w_v)
        if key not in self._cache:
            self._cache = {key: (self.phi.T @ w_v, w_v.T @ self.phi, w_v)}
        return self._cache[key][:2]

    def forward(self, w_kq, keys, w_v=None):
        """(p = softmax(z), σ) at query r over the visible keys, as in theory/NOTES.md §0.2."""
        w_v = self.w_v if w_v is None else w_v
        x = self.phi[:, keys]
        sigma = _softmax(x.T @ w_kq @ self.phi[:, self.r])
        z = self._products(w_v)[0] @ x @ sigma
        return _softmax(z), sigma

    def lemma1_neg_grad(self, w_kq, keys, answer, w_v=None):
        """−∇_{W_KQ} ℓ = φ(x)[diag σ − σσᵀ]φ(x)ᵀ W_Vᵀ W_H (e_a − p) φ(r)ᵀ (Lemma 1)."""
        w_v = self.w_v if w_v is None else w_v
        p, sigma = self.forward(w_kq, keys, w_v)
        x = self.phi[:, keys]
        e = np.zeros(self.k)
        e[answer] = 1.0
        jac = np.diag(sigma) - np.outer(sigma, sigma)
        return np.outer(x @ jac @ x.T @ self._products(w_v)[1] @ (e - p), self.phi[:, self.r])

    def reliance(self, w_kq):
        vals = []
        for keys, c, a in self.test:
            p, _ = self.forward(w_kq, keys)
            vals.append(p[c] / (p[c] + p[a]))
        return float(np.mean(vals))

    def trajectory(self, lr=1.0, steps=300):
        """Test reliance at steps 0..steps of full-batch GD on the mean loss."""
        d = self.phi.shape[0]
        w = np.zeros((d, d))
        out = [self.reliance(w)]
        for _ in range(steps):
            w = w + lr * np.mean([self.lemma1_neg_grad(w, k, a) for k, a in self.points], axis=0)
            out.append(self.reliance(w))
        return np.array(out)
