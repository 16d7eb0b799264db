"""`cpi plot DIR`: one figure of one saved run or one saved sweep, without recomputing."""

from __future__ import annotations

from pathlib import Path

from ..arguments import check_out_file

DPI = 150
FORMATS = ("png", "pdf", "svg")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "plot", help="draw one saved run or sweep (reliance, attention, losses; or the sweep's summary)",
        description=(
            "Draw one figure of a directory written by `cpi run` (context reliance, attention on the "
            "context and the training loss per group, against the step) or by `cpi sweep` (initial, "
            "peak and final reliance against the swept key; maps over two swept keys). Nothing is "
            "recomputed. Writes DIR/plot.png unless --out says otherwise (.png, .pdf or .svg)."
        ),
    )
    parser.add_argument("dir", metavar="RUN_OR_SWEEP_DIR", help="a directory written by cpi run or cpi sweep")
    parser.add_argument("--out", metavar="FILE", help="the figure file (default DIR/plot.png)")
    parser.set_defaults(func=cmd_plot)
    return parser


def saved_kind(path: Path) -> str:
    """'run' or 'sweep' for a complete saved directory; ConfigError otherwise."""
    from sims.errors import ConfigError

    if not path.is_dir():
        raise ConfigError(f"{str(path)!r} is not a directory; expected one written by cpi run or cpi sweep")
    if not (path / "summary.json").exists():
        raise ConfigError(f"{str(path)!r} holds no complete run or sweep (no summary.json); "
                          "an interrupted sweep completes when its command is run again")
    if (path / "sweep.npz").exists():
        return "sweep"
    if (path / "metrics.npz").exists():
        return "run"
    raise ConfigError(f"{str(path)!r} holds neither metrics.npz (a run) nor sweep.npz (a sweep)")


def cmd_plot(args) -> int:
    from sims.errors import ConfigError

    source = Path(args.dir)
    kind = saved_kind(source)
    out = Path(args.out) if args.out else source / "plot.png"
    if out.suffix.lstrip(".").lower() not in FORMATS:
        raise ConfigError(f"--out {str(out)!r}: unknown figure format {out.suffix!r}; expected "
                          + ", ".join(f".{f}" for f in FORMATS))
    check_out_file(out)
    fig = _run_figure(source) if kind == "run" else _sweep_figure(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, metadata={"CreationDate": None} if out.suffix.lower() == ".pdf" else None)
    print(f"wrote {out}")
    return 0


def _run_figure(source: Path):
    from figures.run_plot import plot_run
    from sims.results import load_run

    config, metrics, summary = load_run(source)
    m = config.mixture
    title = (f"{source.name}: ρ = {m.context_critical:g}, n = {m.n_train}, δ_C = {config.knowledge.delta_c:g}, "
             f"δ_M = {config.knowledge.delta_m:g}, lr = {config.train.lr:g}")
    return plot_run(metrics, summary, title)


def _sweep_figure(source: Path):
    import numpy as np

    from figures.sweep_plot import plot_sweep
    from sims.errors import ConfigError
    from sims.sweep import load_sweep

    result = load_sweep(source)
    keys = list(result.grid.keys)
    first = result.coords["seed"] == result.coords["seed"].min()  # seeds only relabel tokens
    if not keys:
        keys, coords = ["seed"], {"seed": result.coords["seed"]}
        first = np.ones(len(result), dtype=bool)
    else:
        coords = {k: np.asarray(result.coords[k])[first] for k in keys}
    if len(keys) > 2:
        raise ConfigError(f"cpi plot draws sweeps over one or two keys; {source} sweeps {len(keys)}: "
                          f"{', '.join(keys)} (load it with sims.sweep.load_sweep)")
    fields = ("initial_reliance", "peak_reliance", "final_reliance", "inversion")
    finite = [row["nonfinite_step"] is None for row in result.summaries]
    summary = {f: np.array([float(row[f]) if ok else np.nan for row, ok in zip(result.summaries, finite)])[first]
               for f in fields}
    summary["inversion"] = summary["inversion"] == 1
    return plot_sweep(keys, coords, summary, f"{source.name}: {len(result)} points")
