"""The data behind every figure: simulations and theory for one base config, as plain arrays.

One function per figure (`inversion_data`, `tug_of_war_data`, `phase_diagram_data`,
`three_steps_data`, `knowledge_strength_data`, and for the mitigations and extensions of
issue 5 `filtering_data`, `counterfactual_data`, `value_training_data`, `fact_recall_data`,
`tasks_data`) returns a dict of NumPy arrays and scalars:
simulated quantities under `sim_*` keys (the full d×d model trained by `sims.train.run` or
`sims.sweep.run_sweep`), theory under `theory_*` keys (`theory.*`: exact reduced dynamics,
gradient flow, closed forms), and the resolved configs it used as TOML text (`config`, and
`sim_configs` for sweeps). Nothing here plots; `figures/` turns these dicts into figures.

With a `data_dir`, the dict is saved to `<data_dir>/<figure>.npz` (deterministic bytes) and
reused on the next call when its `inputs` (a hash of the base config's TOML, the figure's
parameters and DATA_VERSION) are unchanged; simulations are cached under `<data_dir>/sims`
(single runs as `cpi run` directories, sweeps as `cpi sweep` directories).

The theory curves assume W_V frozen (the value-training figure has no theory beyond its
frozen reference). The first five figures assume one relation and no filtering (the default
config); the issue-5 figures change the mixture, the relations or value_lr themselves, each
starting from the base config; every figure's simulations run the configs it reports.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy.special import expit

from theory.asymptotics import long_time_law
from theory.closed_forms import paper_quantities, rho_star, lemma4_margins, theorem1_reliance
from theory.eta_star import eta_star, theta_c_after_one_step
from theory.reduced import group_flow, group_trajectory

from . import config as cfg
from .config import Config, group_counts
from .results import load_run, npz_bytes, save_run, write_atomic
from .theory_report import count_args, knowledge_args, reduced_trajectory, relation_counts

DATA_VERSION = 1
"""Part of every figure's input hash; bump it when a computation below changes its numbers."""

FIGURES = (
    "inversion", "tug_of_war", "phase_diagram", "three_steps", "knowledge_strength",
    "filtering", "counterfactual", "value_training", "fact_recall", "tasks",
)

PARAMS: dict[str, dict[str, Any]] = {
    "inversion": {},
    "tug_of_war": {},
    "phase_diagram": dict(
        n_rho=41, steps=1000, n_rho_lines=201, flow_rho=(0.3, 0.5, 0.6, 0.7, 0.8), t_max=1e10, n_times=400
    ),
    "three_steps": dict(eta_range=(0.1, 1000.0), n_eta=241, sim_eta=(0.3, 1.0, 3.0, 8.0, 20.0, 50.0)),
    "knowledge_strength": dict(
        steps=1000,
        n_rho=41,
        delta_m_range=(0.22, 0.95),
        delta_c_range=(0.04, 0.29),
        n_delta=41,
        sim_rho=(0.2, 0.35, 0.5, 0.65),
        sim_delta_m=(0.45, 0.6, 0.8),
        sim_delta_c=(0.06, 0.12, 0.2),
    ),
    "filtering": dict(
        fractions=tuple(round(0.05 * i, 2) for i in range(13)), sim_fractions=(0.0, 0.1, 0.25, 0.4, 0.6)
    ),
    "counterfactual": dict(
        steps=1000, sim_counts=(0, 1, 2, 3, 4, 6), flow_t_max=1e12, n_flow=300, needed_n=(20, 40, 80),
        needed_steps=10000, needed_max_cf=40, check_steps=(300, 1000),
    ),
    "value_training": dict(
        value_lrs=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0), steps=1000, record_every=10,
        shown=(0.0, 0.3, 0.5, 0.55, 0.6, 1.0), detail=(0.5, 1.0),
    ),
    "fact_recall": dict(n_s_max=12, sim_n_s=(0, 4, 10), held_out=4),
    "tasks": dict(
        gammas=tuple(round(0.025 * i, 3) for i in range(36)), sim_gammas=(0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.85),
        steps=600, counterfactual=0.25, held_out=5,
    ),
}
"""Each figure's own parameters and their defaults (overridable per call)."""

CONTEXT_GROUPS = ("C", "CS", "CF")
"""Training groups whose θ_C components are summed into the total (S points have none)."""


# --------------------------------------------------------------------------------------------
# Saving, loading, reuse


def resolve_params(name: str, params: dict) -> dict:
    """The figure's defaults updated with `params`; unknown names raise TypeError."""
    if name not in PARAMS:
        raise KeyError(f"unknown figure {name!r}; figures: {', '.join(FIGURES)}")
    unknown = set(params) - set(PARAMS[name])
    if unknown:
        raise TypeError(f"figure {name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(PARAMS[name])}")
    return {**PARAMS[name], **params}


def inputs_digest(name: str, base: Config, params: dict) -> str:
    """SHA-256 (16 hex digits) of the figure name, DATA_VERSION, the base config's TOML and
    the figure's resolved parameters: the key under which saved data is reused."""
    text = json.dumps(
        {"figure": name, "version": DATA_VERSION, "config": cfg.to_toml(base), "params": params},
        sort_keys=True,
        default=list,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _from_archive(archive) -> dict:
    """0-d arrays back to Python scalars (str, float, int, bool); other arrays as they are."""
    out = {}
    for key in archive.files:
        value = archive[key]
        out[key] = value.item() if value.ndim == 0 else value
    return out


def data_bytes(data: dict) -> bytes:
    """The .npz bytes of a figure's data dict (same dict, same bytes)."""
    return npz_bytes({k: np.asarray(v) for k, v in data.items()})


def load_data(path: str | Path) -> dict:
    """A figure's data dict saved by `save_data` (scalars as Python scalars)."""
    with np.load(Path(path), allow_pickle=False) as archive:
        return _from_archive(archive)


def save_data(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data_bytes(data))


def _normalise(data: dict) -> dict:
    """The dict exactly as `load_data` would return it after saving."""
    with np.load(io.BytesIO(data_bytes(data)), allow_pickle=False) as archive:
        return _from_archive(archive)


def is_saved(name: str, base: Config | None = None, data_dir: str | Path | None = None, **params) -> bool:
    """Whether `<data_dir>/<name>.npz` holds data for exactly these inputs (would be reused)."""
    if data_dir is None:
        return False
    base = cfg.validate(base if base is not None else Config())
    path = Path(data_dir) / f"{name}.npz"
    try:
        return load_data(path).get("inputs") == inputs_digest(name, base, resolve_params(name, params))
    except (OSError, ValueError, EOFError):
        return False


def figure_data(
    name: str, base: Config | None = None, data_dir: str | Path | None = None, force: bool = False, **params
) -> dict:
    """The data of figure `name` for `base` (default: the default config).

    With `data_dir`, `<data_dir>/<name>.npz` is reused when its inputs hash matches (unless
    `force`), and otherwise computed and saved there."""
    base = cfg.validate(base if base is not None else Config())
    params = resolve_params(name, params)
    inputs = inputs_digest(name, base, params)
    path = Path(data_dir) / f"{name}.npz" if data_dir is not None else None
    if path is not None and path.exists() and not force:
        try:
            saved = load_data(path)
        except (OSError, ValueError, EOFError):
            saved = {}
        if saved.get("inputs") == inputs:
            return saved
    with tempfile.TemporaryDirectory(prefix="cpi-figure-") as scratch:
        work = Path(data_dir) / "sims" if data_dir is not None else Path(scratch)
        data = COMPUTE[name](base, work, **params)
    data = _normalise({**data, "figure": name, "inputs": inputs, "base_config": cfg.to_toml(base)})
    if path is not None:
        save_data(path, data)
    return data


def inversion_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """M_C, σ_c and aligned accuracy vs step at `base`: simulation and exact reduced theory."""
    return figure_data("inversion", base, data_dir, force, **params)


def tug_of_war_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """θ_C components of −∇L from C and C+S points vs step: simulation and theory."""
    return figure_data("tug_of_war", base, data_dir, force, **params)


def phase_diagram_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """M_C over (ρ, step), peak/final/drop vs ρ (theory and a ρ sweep), long-time flows."""
    return figure_data("phase_diagram", base, data_dir, force, **params)


def three_steps_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """M_C at steps 0, 1, 2 and the t = 1 θ_C component vs η (Proposition 1, Theorem 1)."""
    return figure_data("three_steps", base, data_dir, force, **params)


def knowledge_strength_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """Depth of the inversion (first peak of M_C minus the lowest M_C after it) over (δ_M, ρ)
    and (δ_C, ρ) from theory, ρ* curves, simulated points."""
    return figure_data("knowledge_strength", base, data_dir, force, **params)


def filtering_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """M_C trajectories, peak/final/drop and the final aligned accuracy vs `mixture.filter`."""
    return figure_data("filtering", base, data_dir, force, **params)


def counterfactual_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """M_C vs `mixture.counterfactual` (CF points in place of C+S points), gradient-flow peak
    times, and the number of CF points needed over horizons and n."""
    return figure_data("counterfactual", base, data_dir, force, **params)


def value_training_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """Simulation over `train.value_lr`: M_C, the C+S pull, and blocks of the value-logit change."""
    return figure_data("value_training", base, data_dir, force, **params)


def fact_recall_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """M_C with seen / unseen fact-recall (S) points added, and Proposition 2 at t = 0."""
    return figure_data("fact_recall", base, data_dir, force, **params)


def tasks_data(base: Config | None = None, data_dir=None, force: bool = False, **params) -> dict:
    """Two relations, CF points on relation 1: M_C per relation vs the overlap γ."""
    return figure_data("tasks", base, data_dir, force, **params)


# --------------------------------------------------------------------------------------------
# Simulations (cached under the work directory)


def _config_digest(config: Config) -> str:
    return hashlib.sha256(cfg.to_toml(config).encode()).hexdigest()[:12]


def _run(config: Config, work: Path) -> tuple[dict, dict]:
    """(metrics, summary) of `sims.train.run(config)`, saved as a run directory and reused."""
    run_dir = work / "runs" / _config_digest(config)
    try:
        _, metrics, summary = load_run(run_dir)
        return metrics, summary
    except FileNotFoundError:
        pass
    from .train import run

    result = run(config)
    save_run(run_dir, config, result.metrics, result.summary)
    return result.metrics, result.summary


def _sweep(base: Config, grid: list[str], work: Path, label: str):
    """`run_sweep(base, grid)` saved under the work directory (completed groups reused)."""
    from .sweep import run_sweep, sweep_digest

    return run_sweep(base, grid, out=work / "sweeps" / f"{label}-{sweep_digest(base, grid)}")


def _sweep_columns(result) -> dict:
    """Per-point summaries and effective ρ = n_C/n of a sweep, as arrays."""
    rows = result.summaries
    counts = [group_counts(c.mixture) for c in result.configs]
    return dict(
        rho=np.array([k["C"] / c.mixture.n_train for k, c in zip(counts, result.configs)]),
        initial=np.array([r["initial_reliance"] for r in rows]),
        peak=np.array([r["peak_reliance"] for r in rows]),
        peak_step=np.array([r["peak_step"] for r in rows], dtype=np.int64),
        final=np.array([r["final_reliance"] for r in rows]),
        inversion=np.array([r["inversion"] for r in rows], dtype=bool),
        configs=np.array([cfg.to_toml(c) for c in result.configs]),
    )


def _with(config: Config, **values) -> Config:
    """`config` with `section__key=value` replacements (validated)."""
    return cfg.with_values(config, {k.replace("__", "."): v for k, v in values.items()})


# --------------------------------------------------------------------------------------------
# Theory helpers


def _theory_counts(base: Config, rho) -> dict:
    """Group counts for the reduced dynamics at (possibly fractional) ρ: n_C = ρn,
    n_CS = n − n_C − (CF and S points of the base mixture). Real counts interpolate between
    mixtures; at ρ = k/n they are exactly the mixture a simulation trains on."""
    counts = count_args(base)
    n = base.mixture.n_train
    others = counts["n_cf"] + counts["n_s_seen"] + counts["n_s_unseen"]
    rho = np.asarray(rho, dtype=np.float64)
    return dict(counts, n_c=rho * n, n_cs=n - rho * n - others)


def _rho_max(base: Config) -> float:
    m = base.mixture
    return float(round(1.0 - m.counterfactual - m.fact_recall, 12))


def _summaries(reliance: np.ndarray) -> dict:
    """initial, peak, peak step and final along the last axis of `reliance`."""
    peak_step = np.argmax(reliance, axis=-1)
    return dict(
        initial=reliance[..., 0],
        peak=np.take_along_axis(reliance, peak_step[..., None], axis=-1)[..., 0],
        peak_step=peak_step.astype(np.int64),
        final=reliance[..., -1],
    )


def _first_nonpositive(x: np.ndarray) -> int:
    """First index at which a series that starts positive is ≤ 0 (−1: never, or no start > 0)."""
    x = np.asarray(x)
    if not x.size or not x[0] > 0:
        return -1
    hits = np.flatnonzero(x <= 0)
    return int(hits[0]) if hits.size else -1


def _theta_c_sum(metrics: dict, index=...) -> np.ndarray:
    """θ_C component of −∇L summed over the context groups present in `metrics`."""
    parts = [np.asarray(metrics[f"neg_grad_theta_c_{g}"])[index] for g in CONTEXT_GROUPS if f"neg_grad_theta_c_{g}" in metrics]
    return np.nansum(np.stack(parts), axis=0)


# --------------------------------------------------------------------------------------------
# The figures' computations


def compute_inversion(base: Config, work: Path) -> dict:
    metrics, summary = _run(base, work)
    theory = reduced_trajectory(base)
    q = paper_quantities(*knowledge_args(base), delta_s=base.knowledge.delta_s)
    th = _summaries(theory["reliance"])
    data = dict(
        config=cfg.to_toml(base),
        step=metrics["step"],
        sim_reliance=metrics["reliance"],
        sim_attention=metrics["attention_context"],
        theory_reliance=theory["reliance"],
        theory_attention=theory["attention_context"],
        theory_aligned=theory["aligned_accuracy"],
        sim_peak=summary["peak_reliance"],
        sim_peak_step=summary["peak_step"],
        sim_inversion=summary["inversion"],
        theory_peak=float(th["peak"]),
        theory_peak_step=int(th["peak_step"]),
        rho=count_args(base)["n_c"] / base.mixture.n_train,
        rho_star=q["rho_star"],
        lr=base.train.lr,
        values_frozen=base.train.value_lr == 0,
    )
    if "aligned_accuracy" in metrics:
        data["sim_aligned"] = metrics["aligned_accuracy"]
    return data


def compute_tug_of_war(base: Config, work: Path) -> dict:
    metrics, summary = _run(base, work)
    theory = reduced_trajectory(base)
    data = dict(config=cfg.to_toml(base), step=metrics["step"], lr=base.train.lr)
    for values, prefix in ((metrics, "sim"), (theory, "theory")):
        for g in ("C", "CS"):
            key = f"neg_grad_theta_c_{g}"
            data[f"{prefix}_{g}"] = values[key] if key in values else np.zeros_like(values["reliance"])
        data[f"{prefix}_sum"] = data[f"{prefix}_C"] + data[f"{prefix}_CS"]
        data[f"{prefix}_total"] = _theta_c_sum(values)
        data[f"{prefix}_sign_change"] = _first_nonpositive(data[f"{prefix}_sum"])
        data[f"{prefix}_peak_step"] = int(np.argmax(values["reliance"]))
    data["other_groups"] = any(count_args(base)[k] for k in ("n_cf", "n_s_seen", "n_s_unseen"))
    return data


def compute_phase_diagram(
    base: Config, work: Path, n_rho: int, steps: int, n_rho_lines: int, flow_rho, t_max: float, n_times: int
) -> dict:
    base = _with(base, train__steps=int(steps))
    kargs, ds, lr = knowledge_args(base), base.knowledge.delta_s, base.train.lr
    q = paper_quantities(*kargs, delta_s=ds)
    rho_max = _rho_max(base)

    # (a) heat map and (b) lines: the reduced dynamics at real-valued counts
    rho = np.linspace(0.0, rho_max, n_rho)
    heat = group_trajectory(*kargs, **_theory_counts(base, rho), delta_s=ds, lr=lr, steps=steps)["reliance"]
    rho_lines = np.linspace(0.0, rho_max, n_rho_lines)
    lines = _summaries(
        group_trajectory(*kargs, **_theory_counts(base, rho_lines), delta_s=ds, lr=lr, steps=steps)["reliance"]
    )
    heat_summary = _summaries(heat)

    # simulation: the same ρ grid (counts round(ρn), so ρ_eff = n_C/n)
    sweep = _sweep_columns(_sweep(base, [f"mixture.context_critical=0:{rho_max!r}:{n_rho}"], work, "phase"))

    # (c) long-time gradient flow at a few mixtures, with the ln t law
    times = np.geomspace(1e-2, t_max, n_times)
    flow_a, flow_rho_eff, slope, constant, consistent = [], [], [], [], []
    for r in flow_rho:
        counts = count_args(_with(base, mixture__context_critical=float(r)))
        flow_a.append(group_flow(*kargs, **counts, delta_s=ds, times=times)["A"])
        law = long_time_law(*kargs, **counts, delta_s=ds)
        flow_rho_eff.append(counts["n_c"] / base.mixture.n_train)
        slope.append(law["slope"])
        constant.append(law["constant"])
        consistent.append(law["consistent"])
    return dict(
        config=cfg.to_toml(base),
        rho_star=q["rho_star"],
        m_C=q["m_C"],
        m_CS=q["m_CS"],
        n_train=base.mixture.n_train,
        lr=lr,
        step=np.arange(steps + 1),
        theory_rho=rho,
        theory_reliance=heat,
        theory_peak_step=heat_summary["peak_step"],
        theory_rho_lines=rho_lines,
        theory_initial=lines["initial"],
        theory_peak=lines["peak"],
        theory_final=lines["final"],
        theory_drop=lines["peak"] - lines["final"],
        theory_lines_peak_step=lines["peak_step"],
        sim_rho=sweep["rho"],
        sim_initial=sweep["initial"],
        sim_peak=sweep["peak"],
        sim_final=sweep["final"],
        sim_drop=sweep["peak"] - sweep["final"],
        sim_peak_step=sweep["peak_step"],
        sim_inversion=sweep["inversion"],
        sim_configs=sweep["configs"],
        flow_time=times,
        flow_rho=np.array(flow_rho_eff),
        flow_A=np.array(flow_a),
        flow_slope=np.array(slope),
        flow_constant=np.array(constant),
        flow_consistent=np.array(consistent, dtype=bool),
    )


def compute_three_steps(base: Config, work: Path, eta_range, n_eta: int, sim_eta) -> dict:
    kargs, counts, ds = knowledge_args(base), count_args(base), base.knowledge.delta_s
    eta = np.geomspace(*eta_range, n_eta)
    reliance = np.array([theorem1_reliance(*kargs, e, **counts, delta_s=ds) for e in eta])
    two = _with(base, train__steps=2)
    result = _sweep(two, ["train.lr=" + ",".join(repr(float(e)) for e in sim_eta)], work, "three-steps")
    return dict(
        config=cfg.to_toml(two),
        eta_star=eta_star(*kargs, **counts, delta_s=ds),
        rho=counts["n_c"] / base.mixture.n_train,
        rho_star=paper_quantities(*kargs, delta_s=ds)["rho_star"],
        theory_eta=eta,
        theory_reliance=reliance,
        theory_theta_c=theta_c_after_one_step(eta, *kargs, **counts, delta_s=ds),
        sim_eta=np.array([c.train.lr for c in result.configs]),
        sim_reliance=result.metrics["reliance"][:, :3],
        sim_theta_c=_theta_c_sum(result.metrics, (slice(None), 1)),
        sim_configs=np.array([cfg.to_toml(c) for c in result.configs]),
    )


INVERSION, NO_RISE, NO_PEAK = 0, 1, 2
"""Kinds of a trajectory in `first_peak`: rise then fall; falls (or stays) from step 0;
rises without falling (by more than 1e-9) within the window."""


def first_peak(reliance, tol: float = 1e-9) -> dict:
    """The first peak of M_C along the last axis and the depth of the fall after it.

    peak_step: first step after which M_C decreases (0 when it never rises, the last step
    when it never decreases); depth: M_C at that peak minus the lowest M_C after it (the
    inversion's depth within the window, unaffected by a later recovery above the peak);
    kind: INVERSION, NO_RISE or NO_PEAK (depth ≤ tol counts as no peak)."""
    r = np.asarray(reliance, dtype=np.float64)
    d = np.diff(r, axis=-1)
    rises = d[..., 0] > 0
    falling = d < 0
    has_fall = falling.any(axis=-1)
    peak_step = np.where(has_fall, np.argmax(falling, axis=-1), r.shape[-1] - 1)
    peak_step = np.where(rises, peak_step, 0)
    steps = np.arange(r.shape[-1])
    after = np.where(steps >= peak_step[..., None], r, np.inf)
    peak = np.take_along_axis(r, peak_step[..., None], axis=-1)[..., 0]
    depth = peak - after.min(axis=-1)
    kind = np.where(~rises, NO_RISE, np.where(depth > tol, INVERSION, NO_PEAK))
    return dict(peak_step=peak_step.astype(np.int64), peak=peak, depth=depth, kind=kind.astype(np.int64))


def _depth_map(base: Config, key: str, values: np.ndarray, rho: np.ndarray, steps: int) -> dict:
    """`first_peak` of the reduced dynamics over (knowledge value, ρ): one vmapped call per value."""
    rows = []
    for v in values:
        config = _with(base, **{f"knowledge__{key}": float(v)})
        traj = group_trajectory(
            *knowledge_args(config), **_theory_counts(config, rho), delta_s=config.knowledge.delta_s,
            lr=config.train.lr, steps=steps,
        )
        rows.append(first_peak(traj["reliance"]))
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def _rho_star_curve(base: Config, key: str, values: np.ndarray) -> np.ndarray:
    out = []
    for v in values:
        config = _with(base, **{f"knowledge__{key}": float(v)})
        m = lemma4_margins(*knowledge_args(config), delta_s=config.knowledge.delta_s)
        out.append(rho_star(m["m_C"], m["m_CS"]))
    return np.array(out)


def compute_knowledge_strength(
    base: Config, work: Path, steps: int, n_rho: int, delta_m_range, delta_c_range, n_delta: int,
    sim_rho, sim_delta_m, sim_delta_c,
) -> dict:
    base = _with(base, train__steps=int(steps))
    rho = np.linspace(0.0, _rho_max(base), n_rho)
    data = dict(
        config=cfg.to_toml(base), steps=int(steps), theory_rho=rho, n_answers=base.world.n_answers,
        delta_c=base.knowledge.delta_c, delta_m=base.knowledge.delta_m,
    )
    rho_grid = ",".join(repr(float(r)) for r in sim_rho)
    for key, short, span, sim_values in (
        ("delta_m", "dm", delta_m_range, sim_delta_m),
        ("delta_c", "dc", delta_c_range, sim_delta_c),
    ):
        values = np.linspace(*span, n_delta)
        theory = _depth_map(base, key, values, rho, steps)
        fine = np.linspace(*span, 4 * n_delta)
        result = _sweep(
            base, [f"knowledge.{key}=" + ",".join(repr(float(v)) for v in sim_values), f"mixture.context_critical={rho_grid}"],
            work, f"knowledge-{short}",
        )
        sweep = _sweep_columns(result)
        sim = first_peak(result.metrics["reliance"][:, : steps + 1])
        data.update({
            f"theory_{short}": values,
            f"theory_{short}_depth": theory["depth"],
            f"theory_{short}_peak_step": theory["peak_step"],
            f"theory_{short}_kind": theory["kind"],
            f"rho_star_{short}_x": fine,
            f"rho_star_{short}": _rho_star_curve(base, key, fine),
            f"sim_{short}": np.array([getattr(c.knowledge, key) for c in result.configs]),
            f"sim_{short}_rho": sweep["rho"],
            f"sim_{short}_depth": sim["depth"],
            f"sim_{short}_peak_step": sim["peak_step"],
            f"sim_{short}_kind": sim["kind"],
            f"sim_{short}_configs": sweep["configs"],
        })
    return data


# --------------------------------------------------------------------------------------------
# Issue 5: mitigations (filtering, counterfactual augmentation), value training, fact recall,
# several relations


def _window_summary(reliance) -> dict:
    """peak (max over the window), its step, final, drop = peak − final, and the depth of the
    first peak (`first_peak`) along the last axis."""
    r = np.asarray(reliance, dtype=np.float64)
    s, fp = _summaries(r), first_peak(r)
    return dict(peak=s["peak"], peak_step=s["peak_step"], final=s["final"], drop=s["peak"] - s["final"],
                first_peak_step=fp["peak_step"], depth=fp["depth"])


def _prefixed(prefix: str, values: dict) -> dict:
    return {f"{prefix}_{k}": v for k, v in values.items()}


def compute_filtering(base: Config, work: Path, fractions, sim_fractions) -> dict:
    """Theory (reduced dynamics of the filtered counts) at every fraction of `fractions`,
    simulations at `sim_fractions` (each filtered set has its own size: one run each)."""
    counts0 = count_args(base)
    n_context = counts0["n_c"] + counts0["n_cs"] + counts0["n_cf"]

    def theory(f):
        config = _with(base, mixture__filter=float(f))
        t = reduced_trajectory(config)
        aligned = t.get("aligned_accuracy", np.full_like(t["reliance"], np.nan))
        return count_args(config), np.asarray(t["reliance"]), np.asarray(aligned)

    th = [theory(f) for f in fractions]
    at_sim = [theory(f) for f in sim_fractions]
    sims = [_run(_with(base, mixture__filter=float(f)), work) for f in sim_fractions]
    th_rel, th_aligned = np.stack([t[1] for t in th]), np.stack([t[2] for t in th])
    sim_rel = np.stack([m["reliance"] for m, _ in sims])
    sim_aligned = np.stack([m.get("aligned_accuracy", np.full(sim_rel.shape[1], np.nan)) for m, _ in sims])
    q = paper_quantities(*knowledge_args(base), delta_s=base.knowledge.delta_s)
    return dict(
        config=cfg.to_toml(base),
        step=np.arange(sim_rel.shape[1]),
        rho=counts0["n_c"] / base.mixture.n_train,
        rho_star=q["rho_star"],
        n_context=n_context,
        lr=base.train.lr,
        theory_fraction=np.asarray(fractions, dtype=np.float64),
        theory_dropped=np.array([n_context - sum(t[0][k] for k in ("n_c", "n_cs", "n_cf")) for t in th]),
        theory_counts=np.array([[t[0][k] for k in ("n_c", "n_cs", "n_cf")] for t in th]),
        theory_reliance=th_rel,
        theory_aligned=th_aligned,
        theory_aligned_final=th_aligned[:, -1],
        aligned_initial=float(th_aligned[0, 0]),
        **_prefixed("theory", _window_summary(th_rel)),
        sim_fraction=np.asarray(sim_fractions, dtype=np.float64),
        sim_theory_reliance=np.stack([t[1] for t in at_sim]),
        sim_reliance=sim_rel,
        sim_aligned=sim_aligned,
        sim_aligned_final=sim_aligned[:, -1],
        **_prefixed("sim", _window_summary(sim_rel)),
        sim_configs=np.array([cfg.to_toml(_with(base, mixture__filter=float(f))) for f in sim_fractions]),
    )


def counterfactual_needed_curve(knowledge, rho: float, n: int, max_cf: int, steps: int, lr: float = 1.0,
                                tol: float = 1e-9) -> np.ndarray:
    """For every horizon T = 0..steps: the smallest number k ≤ max_cf of CF points ADDED to a
    C/C+S mixture of n points (n_C = round(ρn)) for which GD at rate lr has no drop of M_C
    (fall > tol below its running maximum) within the first T steps; −1 when none.
    This is `theory.mitigations.counterfactual_needed(..., criterion="discrete", steps=T)`
    for every T at once (one vmapped trajectory per k)."""
    n_c = round(rho * n)
    ks = np.arange(max_cf + 1)
    r = group_trajectory(*knowledge, n_c, n - n_c, ks, lr=lr, steps=steps)["reliance"]
    drop_so_far = np.maximum.accumulate(np.maximum.accumulate(r, axis=-1) - r, axis=-1)  # (k, T)
    ok = drop_so_far <= tol
    return np.where(ok.any(axis=0), np.argmax(ok, axis=0), -1)


def compute_counterfactual(base: Config, work: Path, steps: int, sim_counts, flow_t_max: float, n_flow: int,
                           needed_n, needed_steps: int, needed_max_cf: int, check_steps) -> dict:
    """k CF points in place of k C+S points (`mixture.counterfactual` = k/n) for every k from
    0 to the base's n_CS: discrete theory and simulation over `steps` steps, the gradient flow
    to `flow_t_max`; and the number of CF points to ADD to remove the drop within a horizon."""
    base = _with(base, train__steps=int(steps), mixture__counterfactual=0.0)
    kargs, ds, lr = knowledge_args(base), base.knowledge.delta_s, base.train.lr
    n = base.mixture.n_train
    counts = count_args(base)
    n_c, n_cs = counts["n_c"], counts["n_cs"]
    ks = np.arange(n_cs + 1)
    configs = [_with(base, mixture__counterfactual=float(k / n)) for k in ks]
    th = np.stack([reduced_trajectory(c)["reliance"] for c in configs])
    bad = [int(k) for k in sim_counts if not 0 <= k <= n_cs]
    if bad:
        raise ValueError(f"sim_counts {bad} outside 0..{n_cs} (the C+S points of the base mixture)")
    sweep = _sweep(base, ["mixture.counterfactual=" + ",".join(repr(float(k / n)) for k in sim_counts)], work,
                   "counterfactual")
    sim = np.asarray(sweep.metrics["reliance"])[:, : steps + 1]

    times = np.concatenate([[0.0], np.geomspace(1e-2, flow_t_max, n_flow)])
    flows = []
    for k in ks:
        others = dict(n_s_seen=counts["n_s_seen"], n_s_unseen=counts["n_s_unseen"])
        flows.append(group_flow(*kargs, n_c, n_cs - int(k), int(k), **others, delta_s=ds, times=times)["reliance"])
    flows = np.stack(flows)
    fp = first_peak(flows)

    rho = n_c / n
    needed = np.stack([counterfactual_needed_curve(kargs, rho, int(m), needed_max_cf, needed_steps, lr)
                       for m in needed_n])
    horizons = np.unique(np.round(np.geomspace(10, needed_steps, 200)).astype(np.int64))
    from theory.mitigations import counterfactual_needed

    check = np.array([[counterfactual_needed(*kargs, rho=rho, n=int(m), mode="add", criterion="discrete",
                                             steps=int(s), max_cf=needed_max_cf, lr=lr)["n_cf"]
                       for s in check_steps] for m in needed_n], dtype=np.float64)
    return dict(
        config=cfg.to_toml(base),
        step=np.arange(steps + 1),
        n_train=n,
        n_c=n_c,
        n_cs=n_cs,
        rho=rho,
        lr=lr,
        theory_k=ks,
        theory_fraction=ks / n,
        theory_reliance=th,
        **_prefixed("theory", _window_summary(th)),
        sim_k=np.asarray(sim_counts, dtype=np.int64),
        sim_fraction=np.array([c.mixture.counterfactual for c in sweep.configs]),
        sim_reliance=sim,
        **_prefixed("sim", _window_summary(sim)),
        sim_configs=np.array([cfg.to_toml(c) for c in sweep.configs]),
        flow_time=times,
        flow_reliance=flows,
        flow_peak_time=times[fp["peak_step"]],
        flow_depth=fp["depth"],
        flow_kind=fp["kind"],
        needed_n=np.asarray(needed_n, dtype=np.int64),
        needed_horizon=horizons,
        needed=needed[:, horizons],
        needed_max_cf=needed_max_cf,
        check_steps=np.asarray(check_steps, dtype=np.int64),
        check_needed=check,
    )


# value training: the simulator's own step function, vmapped over value_lr, with W_V recorded

VALUE_BLOCKS = ("C_cs", "C_cc", "CS_cs", "CS_cc", "test_cc", "test_ac", "test_cs", "test_as")
"""Mean ΔV[row, column] of `value_blocks`: for the C and C+S training points, the answer row c
on the subject column s (`_cs`) and on the context column c (`_cc`); for the conflict test
points, the context row c and the memorised-fact row a on the columns c and s."""


def _value_block_means(world, w_v: np.ndarray, w_v0: np.ndarray) -> dict:
    """Block means of ΔV = Φᵀ(W_V − W_V(0))Φ and the value margins V[c, c] − V[c, s] on the C
    and C+S points, and the probability a C point's subject gives its answer (Proposition 3)."""
    phi = world.embed
    table = phi.T @ w_v @ phi
    delta = table - phi.T @ w_v0 @ phi
    train, test = world.train, world.test
    c, s = train.tokens[:, 0], train.tokens[:, 1]
    ct, st, at = test.tokens[:, 0], test.tokens[:, 1], test.fact
    out = {}
    for g, name in ((0, "C"), (1, "CS")):
        sel = train.group == g
        if not sel.any():
            for key in ("cs", "cc"):
                out[f"{name}_{key}"] = np.nan
            out[f"margin_{name}"] = np.nan
            continue
        out[f"{name}_cs"] = delta[c[sel], s[sel]].mean()
        out[f"{name}_cc"] = delta[c[sel], c[sel]].mean()
        out[f"margin_{name}"] = (table[c[sel], c[sel]] - table[c[sel], s[sel]]).mean()
    out["test_cc"], out["test_ac"] = delta[ct, ct].mean(), delta[at, ct].mean()
    out["test_cs"], out["test_as"] = delta[ct, st].mean(), delta[at, st].mean()
    sel = train.group == 0
    if sel.any():
        cols = table[:, s[sel]]
        log_p = cols - np.log(np.exp(cols - cols.max(axis=0)).sum(axis=0)) - cols.max(axis=0)
        out["C_subject_prob"] = np.exp(log_p[c[sel], np.arange(sel.sum())]).mean()
    else:
        out["C_subject_prob"] = np.nan
    return out


def value_training_run(config: Config, value_lrs, record_every: int = 10) -> dict:
    """Train `config`'s world with W_V trained at each step size in `value_lrs` (W_KQ at
    train.lr), as one computation vmapped over value_lr, with `sims.generic.simulate_chunk` (the
    simulator's own step). Returns every metric of `sims.generic.metrics` as (V, steps + 1)
    arrays and, every `record_every` steps (`checkpoint`), the `_value_block_means` of W_V as
    (V, checkpoints) arrays. value_lr = 0 points get exactly-zero W_V updates (frozen)."""
    import jax

    from .generic import final_metrics, initial_state, pack, simulate_chunk
    from .world import build_world

    world = build_world(config)
    data = pack(world, config.train.dtype)
    lr, steps = config.train.lr, config.train.steps
    if steps % record_every:
        raise ValueError(f"train.steps = {steps} is not a multiple of record_every = {record_every}")
    value_lr = np.asarray(value_lrs, dtype=config.train.dtype)
    chunk = jax.jit(jax.vmap(
        lambda d, v, s: simulate_chunk(d, lr, v, s, steps=record_every, train_values=True), in_axes=(None, 0, 0)
    ))
    state = jax.vmap(lambda v: initial_state(data, lr, v, True))(value_lr)
    w_v0 = np.asarray(data["w_v"])
    blocks, pieces = [], []

    def record(state):
        w = np.asarray(state[0]["v"])
        blocks.append([_value_block_means(world, w[i], w_v0) for i in range(len(value_lr))])

    record(state)
    for _ in range(steps // record_every):
        state, recorded = chunk(data, value_lr, state)
        pieces.append({k: np.asarray(v) for k, v in recorded.items()})
        record(state)
    last = jax.vmap(lambda s: final_metrics(data, s, train_values=True))(state)
    pieces.append({k: np.asarray(v)[:, None] for k, v in last.items()})
    out = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}
    out = {k: v for k, v in out.items() if not np.all(np.isnan(v))}  # absent groups
    out["step"] = np.arange(steps + 1)
    out["checkpoint"] = np.arange(0, steps + 1, record_every)
    for key in blocks[0][0]:
        out[f"dv_{key}" if not key.startswith(("margin", "C_subject")) else key] = np.array(
            [[b[i][key] for b in blocks] for i in range(len(value_lr))]
        )
    out["value_lr"] = value_lr
    return out


def compute_value_training(base: Config, work: Path, value_lrs, steps: int, record_every: int, shown, detail) -> dict:
    """W_KQ and W_V trained together at every value_lr of `value_lrs` (simulation only; the
    theory's frozen-W_V trajectory as the reference), with the value-logit blocks recorded
    every `record_every` steps; `shown` / `detail` are the value_lrs the figure singles out."""
    missing = [v for v in (*shown, *detail) if v not in value_lrs]
    if missing:
        raise ValueError(f"shown/detail value_lr {missing} are not in value_lrs {value_lrs}")
    base = _with(base, train__steps=int(steps), train__value_lr=0.0)
    path = work / "value_training" / f"{_config_digest(base)}-{hashlib.sha256(repr((tuple(value_lrs), record_every)).encode()).hexdigest()[:10]}.npz"
    try:
        sim = load_data(path)
    except (OSError, ValueError, EOFError):
        sim = value_training_run(base, value_lrs, record_every)
        save_data(path, sim)
    frozen = reduced_trajectory(base)
    kargs = knowledge_args(base)
    from theory.pretrained import logit, z0

    log_z0 = np.log(z0(*kargs[:2], *kargs[4:], n_relations=base.world.n_relations))
    d_context = float(logit(base.knowledge.delta_c) + log_z0 - base.knowledge.o_c)  # V[c,c] − V[a,c] on a test point
    d_subject = float(base.knowledge.o_c - logit(base.knowledge.delta_m) - log_z0)  # V[c,s] − V[a,s]
    sigma = np.linspace(0.0, 1.0, 201)
    data = dict(
        config=cfg.to_toml(base),
        step=sim["step"],
        lr=base.train.lr,
        value_lr=np.asarray(sim["value_lr"], dtype=np.float64),
        checkpoint=sim["checkpoint"],
        sim_reliance=sim["reliance"],
        sim_attention=sim["attention_context"],
        sim_aligned=sim.get("aligned_accuracy", np.full_like(sim["reliance"], np.nan)),
        sim_pull_C=sim.get("neg_grad_theta_c_C", np.full_like(sim["reliance"], np.nan)),
        sim_pull_CS=sim.get("neg_grad_theta_c_CS", np.full_like(sim["reliance"], np.nan)),
        **_prefixed("sim", _window_summary(sim["reliance"])),
        margin_C=sim["margin_C"],
        margin_CS=sim["margin_CS"],
        C_subject_prob=sim["C_subject_prob"],
        theory_reliance=frozen["reliance"],
        theory_attention=frozen["attention_context"],
        theory_sigma=sigma,
        theory_reliance_of_sigma=expit(sigma * d_context + (1 - sigma) * d_subject),
        test_value_gap_context=d_context,
        test_value_gap_subject=d_subject,
        shown_value_lr=np.asarray(shown, dtype=np.float64),
        detail_value_lr=np.asarray(detail, dtype=np.float64),
        sim_configs=np.array([cfg.to_toml(_with(base, train__value_lr=float(v))) for v in sim["value_lr"]]),
    )
    for key in VALUE_BLOCKS:
        data[f"dv_{key}"] = sim[f"dv_{key}"]
    return data


def _fact_recall_config(base: Config, counts: dict, k: int, seen: bool, held_out: int) -> Config:
    """`base` with k S points (seen or not) ADDED to its C, C+S and CF points."""
    n0 = counts["n_c"] + counts["n_cs"] + counts["n_cf"]
    n = n0 + k
    config = _with(
        base, mixture__n_train=n, mixture__context_critical=counts["n_c"] / n,
        mixture__counterfactual=counts["n_cf"] / n, mixture__fact_recall=k / n,
        mixture__fact_recall_seen=1.0 if seen else 0.0, mixture__n_test=held_out, mixture__n_aligned=held_out,
        mixture__filter=0.0,
    )
    got = count_args(config)
    want = dict(counts, n_s_seen=k if seen else 0, n_s_unseen=0 if seen else k)
    if got != want:
        raise RuntimeError(f"fact-recall mixture {got} is not the intended {want}")
    return config


def compute_fact_recall(base: Config, work: Path, n_s_max: int, sim_n_s, held_out: int) -> dict:
    """k = 0..n_s_max seen or unseen S points added to the base's C/C+S/CF points (n = n0 + k,
    held-out sets of `held_out` points so that the vocabulary suffices): theory trajectories,
    Proposition 2's t = 0 θ components, and simulations at `sim_n_s`."""
    c0 = count_args(base)
    counts = {k: c0[k] for k in ("n_c", "n_cs", "n_cf")}
    kargs, ds = knowledge_args(base), base.knowledge.delta_s
    ks = np.arange(n_s_max + 1)
    theory = np.stack([
        np.stack([reduced_trajectory(_fact_recall_config(base, counts, int(k), seen, held_out))["reliance"] for k in ks])
        for seen in (True, False)
    ])  # (seen/unseen, k, T)
    from theory.closed_forms import initial_gradient_components
    from theory.propositions import proposition2

    prop2 = [proposition2(*kargs, counts["n_c"], counts["n_cs"], int(k), counts["n_cf"], delta_s=ds) for k in ks]
    unseen = [initial_gradient_components(*kargs, **counts, n_s_unseen=int(k), delta_s=ds) for k in ks]
    n0 = sum(counts.values())
    sim_rel = np.full((2, len(sim_n_s), base.train.steps + 1), np.nan)
    sim_theta = np.full((2, 2, len(sim_n_s)), np.nan)  # (seen/unseen, θ_C/θ_S, k), summed loss
    sim_configs = []
    for j, k in enumerate(sim_n_s):
        if k == 0:
            config = _fact_recall_config(base, counts, 0, True, held_out)
            m, _ = _run(config, work)
            runs = [(0, m), (1, m)]
            sim_configs.append(cfg.to_toml(config))
        else:
            config = _fact_recall_config(base, counts, int(k), True, held_out)
            sweep = _sweep(config, ["mixture.fact_recall_seen=1,0"], work, "fact-recall")
            runs = [(i, sweep.point_metrics(i)) for i in range(2)]
            sim_configs.append(cfg.to_toml(config))
        for i, m in runs:
            n = n0 + k
            sim_rel[i, j] = m["reliance"]
            for a, theta in enumerate(("c", "s")):
                parts = [m[key][0] for key in (f"neg_grad_theta_{theta}_{g}" for g in ("C", "CS", "CF", "S")) if key in m]
                sim_theta[i, a, j] = n * np.nansum(parts)
    return dict(
        config=cfg.to_toml(base),
        step=np.arange(base.train.steps + 1),
        lr=base.train.lr,
        n_c=counts["n_c"],
        n_cs=counts["n_cs"],
        n_cf=counts["n_cf"],
        delta_s=ds,
        theory_k=ks,
        theory_reliance=theory,
        **_prefixed("theory", _window_summary(theory)),
        theory_sum_theta_c=np.array([[p["sum_theta_c_with"] for p in prop2],
                                     [u["theta_c"] * (n0 + k) for u, k in zip(unseen, ks)]]),
        theory_sum_theta_s=np.array([[p["sum_theta_s_with"] for p in prop2],
                                     [u["theta_s"] * (n0 + k) for u, k in zip(unseen, ks)]]),
        theory_mean_theta_c=np.array([[p["theta_c_with"] for p in prop2], [u["theta_c"] for u in unseen]]),
        theory_mean_theta_s=np.array([[p["theta_s_with"] for p in prop2], [u["theta_s"] for u in unseen]]),
        prop2_holds=bool(all(p["raises_theta_s"] and p["theta_c_unchanged_sum"] for p in prop2[1:])),
        sim_k=np.asarray(sim_n_s, dtype=np.int64),
        sim_reliance=sim_rel,
        **_prefixed("sim", _window_summary(sim_rel)),
        sim_sum_theta_c=sim_theta[:, 0],
        sim_sum_theta_s=sim_theta[:, 1],
        sim_configs=np.array(sim_configs),
    )


def compute_tasks(base: Config, work: Path, gammas, sim_gammas, steps: int, counterfactual: float,
                  held_out: int) -> dict:
    """Two relations (tasks) with overlap γ; `counterfactual`·n CF points all on relation 1
    (`mixture.counterfactual_relation = 1`, in place of its C+S points) against the control
    without them. Theory: the relation group form at every γ of `gammas`; simulation: one
    vmapped sweep over (with/without CF) × `sim_gammas`."""
    from theory.relations import first_step_gaps, relation_group_trajectory

    two = _with(base, world__n_relations=2, world__relation_overlap=0.0, mixture__counterfactual_relation=1,
                mixture__n_test=held_out, mixture__n_aligned=held_out, train__steps=int(steps),
                mixture__counterfactual=0.0)
    aug = _with(two, mixture__counterfactual=float(counterfactual))
    kargs, ds, lr = knowledge_args(two), two.knowledge.delta_s, two.train.lr
    gam = np.asarray(gammas, dtype=np.float64)
    out = dict(config=cfg.to_toml(aug), step=np.arange(steps + 1), lr=lr, theory_gamma=gam,
               counterfactual=float(counterfactual))
    for name, config in (("aug", aug), ("ctrl", two)):
        counts = relation_counts(config)
        rel = relation_group_trajectory(*kargs, counts, n_relations=2, relation_overlap=gam, delta_s=ds, lr=lr,
                                        steps=steps)["reliance"]  # (G, 2, T)
        out[f"counts_{name}"] = counts
        for j in range(2):
            out[f"theory_{name}_r{j + 1}"] = rel[:, j]
            out[f"theory_{name}_r{j + 1}_final"] = rel[:, j, -1]
            out[f"theory_{name}_r{j + 1}_peak"] = rel[:, j].max(axis=-1)
    out["theory_transfer_final"] = out["theory_aug_r2_final"] - out["theory_ctrl_r2_final"]
    r2 = out["theory_aug_r2"]
    out["theory_aug_r2_first_peak_step"] = first_peak(r2)["peak_step"]
    out["theory_aug_r2_end_slope"] = (r2[:, -1] - r2[:, -11]) / 10  # per step, over the last 10 steps
    first = [first_step_gaps(*kargs, out["counts_aug"], relation_overlap=float(g), delta_s=ds, lr=lr) for g in gam]
    out["theory_step1_transfer_A"] = np.array([f["transfer"][1] for f in first])
    out["theory_step1_transfer_reliance"] = np.array([f["reliance1"][1] - f["reliance1_without_transfer"][1]
                                                      for f in first])
    sweep = _sweep(two, [f"mixture.counterfactual=0,{float(counterfactual)!r}",
                         "world.relation_overlap=" + ",".join(repr(float(g)) for g in sim_gammas)], work, "tasks")
    n_g = len(sim_gammas)
    for i, name in enumerate(("ctrl", "aug")):
        rows = slice(i * n_g, (i + 1) * n_g)
        for j in range(2):
            rel = np.asarray(sweep.metrics[f"reliance_r{j + 1}"])[rows, : steps + 1]
            out[f"sim_{name}_r{j + 1}"] = rel
            out[f"sim_{name}_r{j + 1}_final"] = rel[:, -1]
    out["sim_gamma"] = np.array([c.world.relation_overlap for c in sweep.configs[:n_g]])
    out["sim_transfer_final"] = out["sim_aug_r2_final"] - out["sim_ctrl_r2_final"]
    out["sim_configs"] = np.array([cfg.to_toml(c) for c in sweep.configs])
    return out


COMPUTE: dict[str, Callable[..., dict]] = {
    "inversion": compute_inversion,
    "tug_of_war": compute_tug_of_war,
    "phase_diagram": compute_phase_diagram,
    "three_steps": compute_three_steps,
    "knowledge_strength": compute_knowledge_strength,
    "filtering": compute_filtering,
    "counterfactual": compute_counterfactual,
    "value_training": compute_value_training,
    "fact_recall": compute_fact_recall,
    "tasks": compute_tasks,
}
"""figure name -> computation (base, work_dir, **params) -> data dict (looked up at call time)."""
