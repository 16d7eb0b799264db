"""`cpi predict DIR...`: measure the toy's quantities in saved transformer runs and sweeps,
predict from the toy what it can predict, and score the predictions against the runs
(`cpi.experiments.prediction`)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "predict", help="measure δ_C, δ_M and ρ in transformer runs, predict from the toy, score the predictions",
        description=(
            "Read directories written by `cpi bridge` or `cpi bridge --grid` and, for every run: measure "
            "the toy's quantities in it (δ_C, δ_M of the pretrained model; ρ, the share of C examples; ρ̂, the "
            "share of context-bearing examples whose no-context probability of the target is below ½, the "
            "paper's section 4.4 criterion), predict from the toy what it can predict (whether M_C rises at "
            "the start: ρ̂ against the toy's ρ* at those strengths, and against the ρ* of the transformer's "
            "own margins; the calibrated toy's rise and fall, with its step size matched on the first "
            "recorded interval), and print the measurements, the predictions and their scores: the share "
            "of runs whose start and whose rise (at least 0.05) the toy gets right, the rank agreement "
            "(Kendall's tau) of the toy's falls with the transformer's across each seed's runs, and, for "
            "runs that differ only in mixture.filter, the share of filter steps where both falls move the "
            "same way. Toy directories are refused. Writes nothing; --json prints one JSON object."
        ),
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="directories written by cpi bridge (runs or sweeps)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_predict)
    return parser


def _runs(saved):
    """(runs, same, seeds): every run of a saved transformer run or sweep, with the keys that
    group them for the filter response (the other swept values and the seed) and for the fall
    order (the seed)."""
    from cpi.bridge.sweep import config_digest, load_point
    from cpi.core.errors import ConfigError
    from cpi.experiments.prediction import Run
    from cpi.sims.saved import SavedRun

    if isinstance(saved, SavedRun):
        seed = saved.config.train.seed
        return [Run(str(saved.path), saved.config, saved.summary, saved.metrics)], [(str(saved.path), seed)], [(seed,)]
    runs, same, seeds = [], [], []
    for i, row in enumerate(saved.rows):
        config = saved.point_config(i)
        point = load_point(saved.path / "runs" / config_digest(config))
        if point is None:
            raise ConfigError(f"{str(saved.path)!r}: point {i}'s run directory (runs/{config_digest(config)}) is "
                              "missing or damaged; rerun the cpi bridge --grid command that wrote it")
        metrics, summary = point
        runs.append(Run(saved.label(i), config, summary, metrics))
        same.append((str(saved.path), *(row[k] for k in saved.keys if k != "mixture.filter"), row["seed"]))
        seeds.append((str(saved.path), row["seed"]))
    return runs, same, seeds


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.3f}"
    return str(v)


def _plain(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def cmd_predict(args) -> int:
    from cpi.core.errors import ConfigError
    from cpi.experiments.prediction import measure, predict, score
    from cpi.sims.saved import read

    runs, same, seeds = [], [], []
    for d in args.dirs:
        saved = read(Path(d))
        if not saved.bridge:
            raise ConfigError(f"{d!r} holds a toy {saved.kind}; cpi predict reads transformer runs and sweeps "
                              "(cpi bridge)")
        r, s, k = _runs(saved)
        runs += r
        same += s
        seeds += k
    measured = [measure(r) for r in runs]
    predicted = [predict(m) for m in measured]
    scores = score(measured, predicted, same=same, seeds=seeds)
    if args.json:
        rows = [{**{k: _plain(v) for k, v in m.items() if k != "steps"}, **{k: _plain(v) for k, v in p.items()}}
                for m, p in zip(measured, predicted)]
        print(json.dumps({"runs": rows, "scores": {k: _plain(v) for k, v in scores.items()}}, indent=1))
        return 0
    columns = (("label", "run"), ("delta_c", "δ_C"), ("delta_m", "δ_M"), ("rho", "ρ"), ("rho_hat", "ρ̂"),
               ("toy_rho_star", "toy ρ*"), ("rho_star_margins", "own ρ*"), ("first_change", "ΔM_C first"),
               ("rises_initially", "toy: rises"), ("rise", "rise"), ("toy_rise", "toy rise"), ("fall", "fall"),
               ("toy_fall", "toy fall"))
    table = [[_cell({**m, **p}[key]) for key, _ in columns] for m, p in zip(measured, predicted)]
    widths = [max(len(title), *(len(row[j]) for row in table)) for j, (_, title) in enumerate(columns)]
    print("  ".join(title.ljust(w) for (_, title), w in zip(columns, widths)))
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"\nscores over {scores['runs']} runs:")
    print(f"  initial direction right, by the toy's ρ*: {_cell(scores['initial_direction'])}; by the "
          f"transformer's own ρ*: {_cell(scores['initial_direction_by_margins'])} "
          f"({scores['initial_direction_by_margins_runs']} runs with margins of both signs)")
    print(f"  rise of at least 0.05 right: {_cell(scores['rise'])}")
    print(f"  order of the falls, Kendall's tau over {scores['fall_order_groups']} seed(s) with 3 or more runs: "
          f"{_cell(scores['fall_order_tau'])}")
    print(f"  response of the fall to mixture.filter, same direction: {_cell(scores['filter_response'])} "
          f"of {scores['filter_pairs']} steps")
    return 0
