"""The summary of a reliance trajectory, defined once for simulation and theory alike."""

from __future__ import annotations

import numpy as np

INVERSION_TOL = 1e-9


def summarize(reliance) -> dict:
    """initial, peak (and its first step), final reliance M_C, and `inversion`: true when
    M_C rises above its start and then falls below its peak (both by more than 1e-9)."""
    reliance = np.asarray(reliance, dtype=np.float64)
    peak_step = int(np.argmax(reliance))
    initial, peak, final = float(reliance[0]), float(reliance[peak_step]), float(reliance[-1])
    return {
        "initial_reliance": initial,
        "peak_reliance": peak,
        "peak_step": peak_step,
        "final_reliance": final,
        "inversion": bool(peak > initial + INVERSION_TOL and final < peak - INVERSION_TOL),
    }
