"""`cpi plot DIR...`: one figure of saved runs (one, or several overlaid) or of one saved
sweep, without recomputing; every kind of result directory (`cpi.sims.saved.read`)."""

from __future__ import annotations

from pathlib import Path

from ..arguments import check_out_file

DPI = 150
FORMATS = ("png", "pdf", "svg")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "plot", help="draw saved runs (one, or several overlaid) or one saved sweep",
        description=(
            "Draw one figure of directories written by `cpi run` or `cpi bridge` (context reliance, "
            "attention on the context and the training loss against the step; per group, or per layer "
            "for a transformer) or of one directory written by `cpi sweep` or `cpi bridge --grid` "
            "(initial, peak and final reliance against the swept key; maps over two swept keys). "
            "Several run directories are overlaid in one figure, each labelled with its directory's "
            "name; a sweep is drawn alone. Nothing is recomputed. Writes DIR/plot.png for one "
            "directory unless --out says otherwise; for several, --out is required (.png, .pdf or .svg)."
        ),
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="a run or sweep directory (cpi run, cpi sweep, cpi bridge), or several run directories")
    parser.add_argument("--out", metavar="FILE",
                        help="the figure file (default DIR/plot.png for one directory; required for several)")
    parser.set_defaults(func=cmd_plot)
    return parser


def cmd_plot(args) -> int:
    from cpi.core.errors import ConfigError
    from cpi.sims.saved import SavedSweep, read

    sources = [Path(d) for d in args.dirs]
    if len(sources) > 1 and not args.out:
        raise ConfigError(f"{len(sources)} directories are drawn in one figure: name its file with --out FILE "
                          "(.png, .pdf or .svg)")
    out = Path(args.out) if args.out else sources[0] / "plot.png"
    if out.suffix.lstrip(".").lower() not in FORMATS:
        raise ConfigError(f"--out {str(out)!r}: unknown figure format {out.suffix!r}; expected "
                          + ", ".join(f".{f}" for f in FORMATS))
    saved = [read(s) for s in sources]
    sweeps = [s for s in saved if isinstance(s, SavedSweep)]
    if sweeps and len(saved) > 1:
        raise ConfigError(f"{str(sweeps[0].path)!r} is a sweep: cpi plot draws one sweep alone, or overlays "
                          f"runs; got {len(sweeps)} sweep(s) and {len(saved) - len(sweeps)} run(s)")
    check_out_file(out)
    if sweeps:
        fig = _sweep_figure(sweeps[0])
    elif len(saved) == 1:
        fig = _run_figure(saved[0])
    else:
        fig = _runs_figure(saved)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, metadata={"CreationDate": None} if out.suffix.lower() == ".pdf" else None)
    print(f"wrote {out}")
    return 0


def run_title(saved) -> str:
    """The directory's name and the config values that set the run's course."""
    config = saved.config
    m = config.mixture
    if saved.bridge:
        t = config.transformer
        return (f"{saved.name}: transformer L = {t.layers}, d = {t.d_model}; ρ = {m.context_critical:g}, "
                f"n = {m.n_train}, lr = {config.train.lr:g}")
    return (f"{saved.name}: ρ = {m.context_critical:g}, n = {m.n_train}, δ_C = {config.knowledge.delta_c:g}, "
            f"δ_M = {config.knowledge.delta_m:g}, lr = {config.train.lr:g}")


def _run_figure(saved):
    from cpi.figures.run_plot import plot_run

    return plot_run(saved.metrics, saved.summary, run_title(saved))


def _runs_figure(saved: list):
    from cpi.figures.run_plot import plot_runs

    labels = [s.name for s in saved]
    if len(set(labels)) < len(labels):  # runs/a and other/a: tell them apart by their paths
        labels = [str(s.path) for s in saved]
    return plot_runs([(label, s.metrics, s.summary) for label, s in zip(labels, saved)],
                     f"{len(saved)} runs: " + ", ".join(labels))


def _sweep_figure(saved):
    import numpy as np

    from cpi.figures.sweep_plot import plot_sweep
    from cpi.core.errors import ConfigError

    rows = saved.rows
    if not rows:
        raise ConfigError(f"{str(saved.path)!r}: the sweep has no points to draw")
    keys = list(saved.keys)
    seeds = np.array([row["seed"] for row in rows])
    first = seeds == seeds.min()  # seeds only relabel tokens
    if not keys:
        keys, coords = ["seed"], {"seed": seeds}
        first = np.ones(len(rows), dtype=bool)
    else:
        coords = {k: np.asarray([row[k] for row in rows])[first] for k in keys}
    if len(keys) > 2:
        raise ConfigError(f"cpi plot draws sweeps over one or two keys; {saved.path} sweeps {len(keys)}: "
                          f"{', '.join(keys)} (read it with cpi.load_sweep)")
    fields = ("initial_reliance", "peak_reliance", "final_reliance", "inversion")

    def value(row, f):  # NaN where the point's numbers became non-finite
        v = row.get(f)
        return np.nan if v is None or row.get("nonfinite_step") is not None else float(v)

    summary = {f: np.array([value(row, f) for row in rows])[first] for f in fields}
    summary["inversion"] = summary["inversion"] == 1
    return plot_sweep(keys, coords, summary, f"{saved.name}: {len(rows)} points")
