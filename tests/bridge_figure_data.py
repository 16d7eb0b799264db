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
        toy_peak_step=np.array([4.0, 4.0]), **_toy(TOY[None].repeat(2, axis=0)),
    )


TOY = np.array([0.05, 0.3, 0.5, 0.6, 0.62, 0.6, 0.58])
"""A calibrated toy's M_C at steps 0..6."""


def _toy(toy, n: int = 2) -> dict:
    """The calibrated-toy keys of a bridge experiment's data for toy curves `toy` (... × steps) of
    `n` seeds' toys."""
    return dict(toy_step=np.arange(toy.shape[-1]), toy_reliance=toy, toy_lr=np.full(n, 0.2),
                toy_matched=np.ones(n, bool), toy_clamped=np.zeros(n, bool), toy_achieved=np.full(n, 0.1),
                toy_target=np.full(n, 0.1), toy_initial_closed_form=np.full(n, 0.05), toy_delta_c=np.full(n, 0.3),
                toy_delta_m=np.full(n, 0.99), toy_mixture_rho=np.full(n, 0.5), toy_interval=5,
                **{f"toy_{k}": v for k, v in _summary(toy).items()})


def tiny_bridge_phase() -> dict:
    rho = np.array([0.0, 0.125, 0.5, 1.0])
    reliance = np.stack([np.stack([RISE_FALL[s] * (0.5 + r / 2) for r in rho]) for s in range(2)])
    change = reliance[:, :, 1] - reliance[:, :, 0]
    change[:, 0] = -0.01
    return dict(
        seeds=np.array([0, 1]), rho=rho, rho_requested=rho, step=STEP, reliance=reliance, initial_change=change,
        rise_rho=np.array([0.05, 0.06]), rise=reliance.max(-1) - reliance[:, :, 0],
        rise_rho_005=np.array([0.04, 0.05]), m_C=np.array([2.7, 2.3]), m_CS=np.array([-0.3, -0.4]),
        rho_star=np.array([0.1, 0.15]), optimizer="gd", lr=3.0, toy_rho=np.linspace(0, 1, 5),
        toy_rho_star=np.array([0.14, 0.15]), toy_rise_rho=np.array([0.1, 0.12]),
        toy_rise_rho_005=np.array([0.12, 0.14]),
        toy_rise=np.full((2, 5), 0.4), toy_initial_change=np.full((2, 5), 0.1), **_summary(reliance),
        **_toy(np.tile(np.linspace(0.05, 0.9, 7), (2, 5, 1))),
    )


def tiny_bridge_mitigations() -> dict:
    reliance = np.stack([RISE_FALL * f for f in (1.0, 1.05, 1.08, 1.1)])
    reliance[3] = np.maximum.accumulate(reliance[3], axis=-1)
    toy = np.stack([np.stack([TOY * f, TOY * f * 0.9]) for f in (1.0, 1.1, 1.2, 1.3)])
    return dict(
        settings=np.array(["default (QK only)", "filter CS", "counterfactual", "all parameters"]),
        seeds=np.array([0, 1]), step=STEP, reliance=reliance,
        filter=0.5, counterfactual=0.25, toy_value_ratio=1.0, inversion_005=np.ones((4, 2), bool),
        **_summary(reliance), **_toy(toy),
    )


def tiny_bridge_depth() -> dict:
    reliance = np.stack([RISE_FALL * f for f in (0.9, 1.0, 1.05)])
    return dict(
        seeds=np.array([0, 1]), layers=np.array([1, 2, 4]), step=STEP, reliance=reliance,
        attention_context=reliance * 0.6, inversion_005=np.ones((3, 2), bool), delta_c=np.full((3, 2), 0.3),
        delta_m=np.full((3, 2), 0.99), rho_star=np.full((3, 2), 0.12), **_summary(reliance),
    )


def tiny_bridge_prediction() -> dict:
    rho = np.array([0.0, 0.25, 0.5, 1.0])
    filters = np.array([0.0, 0.5])
    grid = lambda values: np.tile(np.asarray(values, dtype=np.float64), (2, 1))  # noqa: E731  (2 seeds)
    return dict(
        seeds=np.array([0, 1]), rho_requested=rho, filters=filters, optimizer="gd", lr=3.0, steps=25,
        filter_optimizer="adam", filter_lr=0.003, filter_steps=25,
        rho_rho_hat=grid(rho), rho_rho=grid(rho), rho_first_change=grid([-0.01, 0.02, 0.05, 0.08]),
        rho_toy_rho_star=grid([0.14] * 4), rho_rho_star_margins=grid([0.12] * 4),
        rho_fall=grid([0.0, 0.3, 0.4, 0.02]), rho_toy_fall=grid([0.0, 0.01, 0.03, 0.0]),
        filter_fall=grid([0.4, 0.06]), filter_toy_fall=grid([0.03, 0.0]),
        rho_score_initial_direction=0.75, rho_score_fall_order_tau=0.8,
    )


def tiny_bridge_onset() -> dict:
    rho, lr = np.array([0.0, 0.01, 0.1, 0.5]), np.array([3.0, 0.3])
    rise = np.tile(np.array([0.0, 0.02, 0.3, 0.6]), (2, 2, 2, 1))  # arms, seeds, lrs, rho
    rise[1] *= 0.5
    reliance = np.concatenate([np.full((*rise.shape, 1), 0.3), 0.3 + rise[..., None] * np.ones(6)], axis=-1)
    p_cs = np.array([[[0.997, 0.99], [0.998, 0.995]], [[0.9, 0.8], [0.95, 0.85]]])
    return dict(
        seeds=np.array([0, 1]), arm_pretrain_steps=np.array([1000, 100]), rho=rho, lr=lr, steps=6, early_steps=2,
        n_train=64, n_test=32, trainable="attention",
        d_C=np.array([[0.05, 0.04], [1.2, 1.0]]), d_CS=np.array([[-1e-4, -2e-4], [-0.2, -0.1]]),
        rho_hat=np.array([[0.002, 0.005], [0.14, 0.09]]), rho_star=np.array([[0.1, 0.14], [0.17, 0.18]]),
        rho_star_lambda=np.array([[0.005, 0.01], [np.nan, 0.05]]), m_C=np.array([[2.7, 2.3], [4.2, 4.0]]),
        m_CS=np.array([[-0.3, -0.4], [-0.9, -0.8]]), m_CS_lambda=np.array([[-0.01, -0.02], [-0.3, -0.2]]),
        loss_C=np.array([[1.2, 1.1], [1.3, 1.3]]), loss_CS=np.array([[0.002, 0.003], [0.07, 0.1]]),
        delta_c=np.full((2, 2), 0.3), delta_m=np.array([[0.996, 0.995], [0.93, 0.94]]),
        initial_reliance=np.full((2, 2), 0.3), grad_norm_M=np.full((2, 2), 0.2), grad_norm_C=np.full((2, 2), 0.4),
        grad_norm_CS=np.full((2, 2), 0.01), d_C_points=np.full((2, 2, 2), 0.05),
        d_CS_points=np.array([[[-1e-4, 2e-5], [-3e-4, 1e-5]], [[-0.3, -0.1], [-0.2, 0.01]]]),
        p_C_points=np.full((2, 2, 2), 0.3), p_CS_points=p_cs, reliance=reliance, rise=rise,
        early_change=rise * 0.1 - 0.001, first_step_ratio=np.ones(rise.shape),
        onset_rise=np.array([[[0.01, 0.02], [0.015, 0.03]], [[0.05, 0.1], [0.02, np.nan]]]),
        onset_early=np.array([[[0.002, 0.003], [0.004, 0.006]], [[0.1, 0.12], [0.08, 0.1]]]),
        mixture_rho=np.array([0.0, 0.03125, 0.5]), mixture_rise=np.array([[0.01, 0.3, 0.6], [0.0, 0.2, 0.5]]),
        mixture_first_interval=5, mixture_onset_rise=np.array([0.005, 0.01]),
        mixture_onset_early=np.array([0.0, 0.002]),
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


def tiny_bridge_finetuning() -> dict:
    lrs = np.array([1e-3, 3e-3, 1e-2])
    reliance = np.stack([np.stack([RISE_FALL * f for f in (0.9, 1.0, 1.05)]),
                         np.stack([np.maximum.accumulate(RISE_FALL, axis=-1) * f for f in (0.9, 1.0, 1.05)])])
    attention = reliance * 0.6
    running = np.maximum.accumulate(attention, axis=-1)
    return dict(
        trainables=np.array(["attention", "all"]), lrs=lrs, seeds=np.array([0, 1]), optimizer="adamw",
        weight_decay=0.01, batch_size=16, n_train=64, step=STEP, reliance=reliance, attention_context=attention,
        attention_drop=(running - attention).max(-1), loss_C=np.full(reliance.shape, 0.1),
        loss_CS=np.full(reliance.shape, 0.01), in_distribution_accuracy=np.ones(reliance.shape), **_summary(reliance),
    )


def tiny_bridge_small_falls() -> dict:
    # mixtures x optimizers x trainables x seeds x steps
    reliance = np.stack([np.stack([np.stack([RISE_FALL * f, np.maximum.accumulate(RISE_FALL, axis=-1) * f])
                                   for f in (0.95, 1.05)]) for _ in range(2)])
    layers = np.stack([reliance * 0.5, reliance * 0.7], axis=-2)
    toy = np.stack([np.linspace(0.3, 0.95, 7), np.linspace(0.3, 0.9, 7), np.linspace(0.3, 0.96, 7)])
    return dict(
        mixtures=np.array(["C only", "filtered"]), optimizers=np.array(["gd", "adam"]), lrs=np.array([3.0, 0.003]),
        trainables=np.array(["attention", "attention_after_l1"]), seeds=np.array([0, 1]), step=STEP,
        n_C=np.full((2, 2, 2, 2), 64), n_CS=np.zeros((2, 2, 2, 2), int), n_train=np.full((2, 2, 2, 2), 64),
        delta_c=np.full((2, 2, 2, 2), 0.3),
        delta_m=np.full((2, 2, 2, 2), 0.99), attention_context_layers=layers, subject_context_layers=1.0 - layers,
        reliance=reliance, attention_context=reliance * 0.6, attention_subject=0.3 + 0 * reliance,
        loss=0.1 + 0 * reliance,
        parametric_accuracy=1.0 - reliance, toy_optimizer=np.array(["gd", "adam", "adam"]),
        toy_lr=np.array([1.0, 0.5, 1.5]), toy_adam_lr=0.5, toy_step=np.arange(7), toy_reliance=toy,
        toy_drop=np.zeros(3), **_summary(reliance),
    )


LATE_TINY = {"bridge_finetuning": tiny_bridge_finetuning, "bridge_small_falls": tiny_bridge_small_falls}
"""Bridge experiments registered after `timescale` (TINY keeps the registry's order)."""
