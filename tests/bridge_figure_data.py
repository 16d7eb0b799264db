"""Tiny data dicts shaped like the bridge experiments' (2 seeds, 6 recorded steps), for the
figure tests (`tests/test_figures.py` draws every registered figure from one)."""

import numpy as np

STEP = np.arange(0, 30, 5)
RISE_FALL = np.array([[0.3, 0.8, 0.6, 0.5, 0.45, 0.4], [0.35, 0.9, 0.7, 0.6, 0.6, 0.55]])


def _summary(reliance) -> dict:
    running = np.maximum.accumulate(reliance, axis=-1)
    return dict(initial=reliance[..., 0], peak=reliance.max(-1), final=reliance[..., -1],
                drop=(running - reliance).max(-1))


def tiny_bridge_inversion() -> dict:
    return dict(
        seeds=np.array([0, 1]), step=STEP, reliance=RISE_FALL, counterfactual_accuracy=RISE_FALL - 0.2,
        parametric_accuracy=1.0 - RISE_FALL, attention_context=RISE_FALL * 0.6, attention_subject=0.3 + 0 * RISE_FALL,
        attention_context_layers=np.stack([RISE_FALL * 0.5, RISE_FALL * 0.7], axis=1),
        loss_C=np.array([[1.2, 0.1, 0.05, 0.03, 0.02, 0.02]] * 2),
        loss_CS=np.array([[0.002, 0.02, 0.01, 0.005, 0.004, 0.003]] * 2),
        in_distribution_accuracy=np.ones((2, 6)), inversion_005=np.array([True, True]), peak_step=np.array([5.0, 5.0]),
        lr=0.003, optimizer="adam", delta_c=np.array([0.33, 0.32]), delta_m=np.array([0.99, 0.99]),
        m_C=np.array([2.7, 2.3]), m_CS=np.array([-0.3, -0.4]), rho_star=np.array([0.1, 0.15]), **_summary(RISE_FALL),
    )


def tiny_bridge_phase() -> dict:
    rho = np.array([0.0, 0.125, 0.5, 1.0])
    reliance = np.stack([np.stack([RISE_FALL[s] * (0.5 + r / 2) for r in rho]) for s in range(2)])
    change = reliance[:, :, 1] - reliance[:, :, 0]
    change[:, 0] = -0.01
    return dict(
        seeds=np.array([0, 1]), rho=rho, rho_requested=rho, step=STEP, reliance=reliance, initial_change=change,
        rise_rho=np.array([0.05, 0.06]), rise=reliance.max(-1) - reliance[:, :, 0],
        rise_rho_005=np.array([0.04, 0.05]), m_C=np.array([2.7, 2.3]), m_CS=np.array([-0.3, -0.4]),
        rho_star=np.array([0.1, 0.15]), optimizer="gd", lr=3.0, toy_rho=np.linspace(0, 1, 5), toy_step=np.arange(7),
        toy_reliance=np.tile(np.linspace(0.3, 0.9, 7), (5, 1)), toy_rho_star=0.27, toy_lr=1.0, **_summary(reliance),
    )


def tiny_bridge_mitigations() -> dict:
    reliance = np.stack([RISE_FALL * f for f in (1.0, 1.05, 1.08, 1.1)])
    reliance[3] = np.maximum.accumulate(reliance[3], axis=-1)
    toy = np.stack([np.array([0.3, 0.6, 0.5, 0.4, 0.35, 0.3, 0.3]) * f for f in (1.0, 1.1, 1.2, 1.3)])
    return dict(
        settings=np.array(["default (QK only)", "filter CS", "counterfactual", "all parameters"]),
        seeds=np.array([0, 1]), step=STEP, reliance=reliance, toy_step=np.arange(7), toy_reliance=toy,
        filter=0.5, counterfactual=0.25, toy_value_lr=1.0, inversion_005=np.ones((4, 2), bool),
        **_summary(reliance), **{f"toy_{k}": v for k, v in _summary(toy).items()},
    )


def tiny_bridge_depth() -> dict:
    reliance = np.stack([RISE_FALL * f for f in (0.9, 1.0, 1.05)])
    return dict(
        seeds=np.array([0, 1]), layers=np.array([1, 2, 4]), step=STEP, reliance=reliance,
        attention_context=reliance * 0.6, inversion_005=np.ones((3, 2), bool), delta_c=np.full((3, 2), 0.3),
        delta_m=np.full((3, 2), 0.99), rho_star=np.full((3, 2), 0.12), **_summary(reliance),
    )


def tiny_bridge_timescale() -> dict:
    """2 optimizers × 2 seeds × 6 recorded steps, 2 steps an epoch (NaN where a set is empty)."""
    reliance = np.stack([RISE_FALL, RISE_FALL * 0.9])
    visited = np.tile([np.nan, 0.5, 0.2, 0.3, 0.1, 0.2], (2, 2, 1))
    unvisited = np.tile([1.2, 1.0, np.nan, 0.4, np.nan, 0.3], (2, 2, 1))
    sets = {}
    for g, scale in (("C", 1.0), ("CS", 0.01)):
        sets.update({f"loss_{g}": np.full((2, 2, 6), scale), f"loss_{g}_visited": visited * scale,
                     f"loss_{g}_unvisited": unvisited * scale, f"fall_{g}_visited": 1.2 - visited,
                     f"fall_{g}_unvisited": 1.2 - unvisited})
    return dict(
        seeds=np.array([0, 1]), optimizers=np.array(["adamw", "sgd"]), lrs=np.array([0.003, 3.0]),
        trainables=np.array(["attention", "all"]), weight_decay=0.01,
        n_train=8, batch_size=4, steps_per_epoch=2, epochs=3, n_subjects=40, pretrain_steps=20, step=np.arange(6),
        reliance=reliance, attention_context=reliance * 0.6, in_distribution_accuracy=np.ones((2, 2, 6)),
        delta_c=np.array([0.33, 0.32]), delta_m=np.array([0.99, 0.99]), **sets,
    )


BRIDGE_TINY = {"bridge_inversion": tiny_bridge_inversion, "bridge_phase": tiny_bridge_phase,
               "bridge_mitigations": tiny_bridge_mitigations, "bridge_depth": tiny_bridge_depth}
