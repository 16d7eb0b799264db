"""The one summary of a reliance curve: `summarize`, the in-scan fold, `first_peak`,
`window_summary` and `reliance_drop`."""

import numpy as np
import pytest

from cpi.theory.summary import (
    INVERSION,
    NO_PEAK,
    NO_RISE,
    first_nonfinite_step,
    first_peak,
    fold_finish,
    fold_init,
    fold_update,
    reliance_drop,
    summarize,
    window_summary,
)

RECOVERY = np.array([0.3, 0.6, 0.5, 0.4, 0.55, 0.7, 0.8])
"""Rises to 0.6, falls to 0.4, then recovers past its first peak: the peak is the final value."""


def _fold(reliance):
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        fold = fold_init(1, jnp.float64)
        for t, r in enumerate(reliance):
            fold = fold_update(fold, jnp.asarray(r), jnp.asarray([r]), t)
        return fold_finish(fold)


def test_a_recovery_past_the_first_peak_is_still_an_inversion():
    """The old flag (peak > initial and final < peak) missed this curve: peak = final = 0.8."""
    s = summarize(RECOVERY)
    assert s["peak_reliance"] == s["final_reliance"] == 0.8 and s["peak_step"] == 6
    assert s["inversion"]
    assert (s["first_peak_reliance"], s["first_peak_step"]) == (0.6, 1)
    folded = _fold(RECOVERY)
    assert folded.pop("nonfinite_step") is None
    assert folded == s


@pytest.mark.parametrize(
    "curve,inversion",
    [
        ([0.2, 0.3, 0.4], False),  # rises only
        ([0.4, 0.3, 0.2], False),  # falls only
        ([0.4, 0.3, 0.5, 0.45], True),  # falls first, then rises above the start and falls
        ([0.4, 0.3, 0.35, 0.3], False),  # never above the start
        ([0.2, 0.5, 0.5 - 1e-12, 0.6], False),  # a fall within the tolerance
        ([0.2, 0.2 + 1e-12, 0.1], False),  # a rise within the tolerance
    ],
)
def test_inversion_is_a_rise_above_the_start_then_a_fall_below_a_peak(curve, inversion):
    s = summarize(np.array(curve))
    assert s["inversion"] == inversion
    if not inversion:
        assert (s["first_peak_reliance"], s["first_peak_step"]) == (s["peak_reliance"], s["peak_step"])
    folded = _fold(np.array(curve))
    folded.pop("nonfinite_step")
    assert folded == s


def test_summarize_reads_the_last_axis_of_a_stack():
    stacked = np.stack([RECOVERY, RECOVERY[::-1], np.sort(RECOVERY)])
    s = summarize(stacked)
    rows = [summarize(r) for r in stacked]
    for key, values in s.items():
        assert values.shape == (3,)
        assert values.tolist() == [row[key] for row in rows], key
    assert s["inversion"].tolist() == [True, False, False]  # reversed: never above its start


def test_first_peak_and_window_summary_of_a_recovery():
    """`first_peak` ignores the later recovery: the depth is the fall below the first peak."""
    fp = first_peak(RECOVERY)
    assert fp["kind"] == INVERSION and fp["peak_step"] == 1 and fp["depth"] == pytest.approx(0.2)
    w = window_summary(RECOVERY)
    assert w["peak"] == 0.8 and w["drop"] == 0 and w["first_peak_step"] == 1 and w["depth"] == pytest.approx(0.2)
    assert reliance_drop(RECOVERY) == pytest.approx(0.2)
    kinds = first_peak(np.array([[0.3, 0.2, 0.4], [0.3, 0.4, 0.5]]))["kind"]
    assert kinds.tolist() == [NO_RISE, NO_PEAK]


def test_first_nonfinite_step_is_the_folds_rule():
    """A metric NaN from the start does not count; the first metric to turn non-finite does."""
    import jax
    import jax.numpy as jnp

    metrics = np.array([[0.3, np.nan, 1.0], [0.4, np.nan, 2.0], [0.5, np.nan, np.inf], [np.nan, np.nan, np.inf]])
    assert first_nonfinite_step(metrics) == 2
    assert first_nonfinite_step(metrics[:2]) is None
    with jax.enable_x64(True):
        fold = fold_init(3, jnp.float64)
        for t, row in enumerate(metrics):
            fold = fold_update(fold, jnp.asarray(row[0]), jnp.asarray(row), t)
        assert fold_finish(fold)["nonfinite_step"] == 2
