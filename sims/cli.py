"""The sims-level commands of `cpi`: `cpi run`, `cpi theory`, `cpi sweep` (`cpi.cli` adds
`cpi figures` from the layer above).

Exit status: 0 success, 2 bad input (the message names the key, the value and the allowed
range; nothing is written), 1 anything else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from . import config as cfg
from .errors import ConfigError, SimulationError

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def default_run_dir(config: cfg.Config) -> Path:
    """runs/<first 10 hex digits of the SHA-256 of the resolved config>."""
    digest = hashlib.sha256(cfg.to_toml(config).encode()).hexdigest()[:10]
    return Path("runs") / digest


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml", help="TOML file with [world], [knowledge], [mixture], [train] sections")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set mixture.context_critical=0.35",
    )


def _load_config(args) -> cfg.Config:
    config = cfg.load(args.config, args.overrides)
    from .world import check_vocabulary

    check_vocabulary(config)
    return config


def _describe(config: cfg.Config) -> str:
    counts = cfg.group_counts(config.mixture)
    mix = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    k, t = config.knowledge, config.train
    return (
        f"{config.mixture.n_train} training points ({mix}); delta_c {k.delta_c:g}, "
        f"delta_m {k.delta_m:g}; lr {t.lr:g}, value_lr {t.value_lr:g}, {t.steps} steps, {t.dtype}"
    )


def cmd_run(args) -> int:
    from .results import save_run
    from .train import run

    config = _load_config(args)
    out = Path(args.out) if args.out else default_run_dir(config)
    print(f"cpi run: {_describe(config)}", file=sys.stderr)
    start = time.perf_counter()
    result = run(config, progress=True, record_every=args.record_every)
    elapsed = time.perf_counter() - start
    save_run(out, config, result.metrics, result.summary)
    s, m = result.summary, result.metrics
    n_rel = config.world.n_relations
    per = f" ({config.mixture.n_test} per relation)" if n_rel > 1 else ""
    print(f"context reliance M_C on {config.mixture.n_test * n_rel} conflict test points{per}:")
    print(
        f"  initial {s['initial_reliance']:.4f} -> peak {s['peak_reliance']:.4f} "
        f"at step {s['peak_step']} -> final {s['final_reliance']:.4f}"
    )
    print(f"  inversion (rise, then fall below the peak): {'yes' if s['inversion'] else 'no'}")
    for j in range(1, n_rel + 1 if n_rel > 1 else 1):
        r = m[f"reliance_r{j}"]
        print(f"  relation {j}: initial {r[0]:.4f} -> peak {r.max():.4f} -> final {r[-1]:.4f}"
              + (" (peak over the recorded steps)" if args.record_every > 1 else ""))
    if "aligned_accuracy" in m:
        print(
            f"aligned held-out accuracy: {m['aligned_accuracy'][0]:.4f} -> "
            f"{m['aligned_accuracy'][-1]:.4f}"
        )
    print(f"wrote {out}/config.toml, metrics.npz, summary.json ({elapsed:.1f} s incl. compile)")
    return 0


def add_record_every(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--record-every", type=int, default=1, metavar="N",
        help="record the metrics every N steps and at the last step (default 1: every step); "
             "the summary always comes from every step",
    )


def cmd_theory(args) -> int:
    from .theory_report import format_report, theory_report

    config = _load_config(args)
    report = theory_report(config)
    print(json.dumps(report, indent=2) if args.json else format_report(report, config))
    return 0


def build_parser(extra=()) -> argparse.ArgumentParser:
    """The parser of the sims-level commands (run, theory, sweep); each function in `extra`
    registers one more subcommand (layers above sims add theirs this way)."""
    parser = argparse.ArgumentParser(
        prog="cpi", description="Simulate context-parametric inversion in the paper's one-layer attention model."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run_p = sub.add_parser("run", help="train the toy model on one config and save its metrics")
    _add_config_args(run_p)
    run_p.add_argument("--out", metavar="DIR", help="output directory (default runs/<config hash>)")
    add_record_every(run_p)
    run_p.set_defaults(func=cmd_run)

    theory_p = sub.add_parser("theory", help="closed forms and reduced-dynamics predictions for a config")
    _add_config_args(theory_p)
    theory_p.add_argument("--json", action="store_true", help="print one JSON object")
    theory_p.set_defaults(func=cmd_theory)

    from .sweep_cli import add_sweep_parser

    add_sweep_parser(sub)
    for register in extra:
        register(sub)
    return parser


def main(argv: list[str] | None = None, extra=()) -> int:
    args = build_parser(extra).parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"cpi {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SimulationError as err:
        print(f"cpi {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
