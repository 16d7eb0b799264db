"""The data behind every figure: simulations and theory for one base config, as plain arrays.

One function per figure (`inversion_data`, `tug_of_war_data`, `phase_diagram_data`,
`three_steps_data`, `knowledge_strength_data`) returns a dict of NumPy arrays and scalars:
simulated quantities under `sim_*` keys (the full d×d model trained by `sims.train.run` or
`sims.sweep.run_sweep`), theory under `theory_*` keys (`theory.*`: exact reduced dynamics,
gradient flow, closed forms), and the resolved configs it used as TOML text (`config`, and
`sim_configs` for sweeps). Nothing here plots; `figures/` turns these dicts into figures.

With a `data_dir`, the dict is saved to `<data_dir>/<figure>.npz` (deterministic bytes) and
reused on the next call when its `inputs` (a hash of the base config's TOML, the figure's
parameters and DATA_VERSION) are unchanged; simulations are cached under `<data_dir>/sims`
(single runs as `cpi run` directories, sweeps as `cpi sweep` directories).

The theory curves assume the paper's setting: W_V frozen, one relation, no filtering (the
default config); every figure's simulations run whatever the base config says.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from theory.asymptotics import long_time_law
from theory.closed_forms import paper_quantities, rho_star, lemma4_margins, theorem1_reliance
from theory.eta_star import eta_star, theta_c_after_one_step
from theory.reduced import group_flow, group_trajectory

from . import config as cfg
from .config import Config, group_counts
from .results import load_run, npz_bytes, save_run, write_atomic
from .theory_report import count_args, knowledge_args, reduced_trajectory

DATA_VERSION = 1
"""Part of every figure's input hash; bump it when a computation below changes its numbers."""

FIGURES = ("inversion", "tug_of_war", "phase_diagram", "three_steps", "knowledge_strength")

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


COMPUTE: dict[str, Callable[..., dict]] = {
    "inversion": compute_inversion,
    "tug_of_war": compute_tug_of_war,
    "phase_diagram": compute_phase_diagram,
    "three_steps": compute_three_steps,
    "knowledge_strength": compute_knowledge_strength,
}
"""figure name -> computation (base, work_dir, **params) -> data dict (looked up at call time)."""
