"""logsumexp and the logistic function σ in NumPy alone.

SciPy's special functions cost about a third of a second to import, and the theory's closed
forms sit on the path of every `cpi run` (the engine reads their constants); these two
functions are all the theory needs from there. Both are exact in the sense of floating point
(no overflow for large arguments), and the tests compare them with SciPy's.
"""

from __future__ import annotations

import numpy as np


def logsumexp(a, axis=None, keepdims: bool = False):
    """log Σ exp(a) over `axis` (all axes when None), computed as m + log Σ exp(a − m) with
    m the largest entry, so that no exponential overflows; −inf where every entry is −inf."""
    a = np.asarray(a)
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    if not keepdims:
        out = np.squeeze(out, axis=axis)
    return out[()] if out.ndim == 0 else out


def expit(x):
    """σ(x) = 1 / (1 + e^{−x}), from e = e^{−|x|} ≤ 1 (1/(1 + e) for x ≥ 0, e/(1 + e) below),
    so that no exponential overflows."""
    x = np.asarray(x, dtype=np.result_type(x, np.float64))
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out[()] if out.ndim == 0 else out
