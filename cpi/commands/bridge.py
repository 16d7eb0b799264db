"""`cpi bridge`: pretrain (or reuse) the bridge transformer, finetune it on one mixture, save
its metrics in the toy's format and print the toy's summary."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cpi.core.errors import ConfigError

from ..arguments import check_out_dir


def add_parser(subparsers):
    from cpi.core.shards import SHARD_HELP

    parser = subparsers.add_parser(
        "bridge", help="the inversion in a small transformer pretrained on synthetic facts",
        description=(
            "Pretrain a small decoder-only transformer on synthetic facts and context sequences (reused "
            "from the checkpoint cache when the [transformer], [pretrain] keys and train.seed match), "
            "finetune it on a mixture of the toy's groups and record context reliance on held-out conflict "
            "points. Writes DIR/config.toml, DIR/metrics.npz, DIR/summary.json as `cpi run` does. Keys: "
            "[transformer], [pretrain], [mixture], [train] (`cpi bridge --keys` lists them)."
        ),
    )
    parser.add_argument("--config", metavar="FILE.toml", help="TOML file with [transformer], [pretrain], "
                        "[mixture], [train] sections (default: the bridge defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (repeatable), e.g. --set mixture.context_critical=0.3")
    parser.add_argument("--out", metavar="DIR", help="output directory (default runs/bridge-<hash of the config>)")
    parser.add_argument("--cache", metavar="DIR", help="checkpoint cache of pretrained models "
                        "(default $CPI_BRIDGE_CACHE, else ~/.cache/cpi/checkpoint)")
    parser.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=START:STOP:NUM",
                        help="sweep a key (repeatable; or SECTION.KEY=V1,V2,...): writes a sweep directory "
                        "(sweep.npz, summary.csv, summary.json, config.toml, sweep.json, runs/) instead of one run; "
                        "points sharing a pretrained model reuse it, and those sharing the train config and "
                        "shapes finetune as one vmapped chunk; every finished point is saved under DIR/runs at "
                        "once, so Ctrl-C keeps them and a rerun of the same command computes only the others")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="with --grid: N seeds per point, train.seed, train.seed+1, ... (default 1)")
    parser.add_argument("--no-vmap", dest="vmap", action="store_false",
                        help="with --grid: finetune the points one by one (bit for bit as single runs)")
    parser.add_argument("--shard", metavar="I/N",
                        help="with --grid: " + SHARD_HELP.format(units="chunks of points (points that "
                             "share a pretrained model and finetune together)")
                        + "; shards that share a pretrained model each train it once unless --cache is a "
                          "folder they share")
    parser.add_argument("--force", action="store_true", help="replace DIR even when it holds a run of another config")
    parser.add_argument("--keys", action="store_true", help="list every bridge config key (default, allowed, meaning) "
                        "and exit")
    parser.set_defaults(func=cmd_bridge)
    return parser


def cmd_bridge(args) -> int:
    from cpi.bridge import config as bcfg
    from cpi.bridge.run import check_run_dir
    from cpi.core import store
    from cpi.core.dir_lock import claim_dir

    if args.keys:
        rows = [("key", "default", "allowed", "meaning"), *bcfg.keys_table()]
        widths = [max(len(r[j]) for r in rows) for j in range(3)]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
        return 0
    config = bcfg.load(args.config, args.overrides)
    if args.grid or args.seeds != 1:
        return _sweep(args, config)
    if args.shard is not None:
        raise ConfigError(f"--shard {args.shard!r} needs --grid (or --seeds N): it splits a sweep, not one run")
    out = Path(args.out) if args.out else Path("runs") / f"bridge-{store.BRIDGE_RUN.key(bcfg.to_toml(config))}"
    check_out_dir(out)
    if args.cache:
        check_out_dir(args.cache, flag="--cache")
    check_run_dir(out, config, force=args.force, source=args.config)
    with claim_dir(out):  # one writer at a time; the check again, now that no other can write
        check_run_dir(out, config, force=args.force, source=args.config)
        return _run_and_save(args, config, out)


def _run_and_save(args, config, out: Path) -> int:
    from cpi.bridge import config as bcfg
    from cpi.bridge.run import run, save
    from cpi.core.progress import StepProgress

    counts = bcfg.group_counts(config.mixture)
    t, tr = config.transformer, config.train
    print(f"cpi bridge: {config.mixture.n_train} finetuning examples ("
          + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
          + f"); transformer {t.layers} layers x {t.heads} heads, d_model {t.d_model}; {tr.optimizer} lr {tr.lr:g}, "
          f"{tr.steps} steps, trainable {tr.trainable}, seed {tr.seed}")
    bars = {}

    def progress(stage, done, total):
        if stage not in bars:
            for bar in bars.values():
                bar.__exit__(None, None, None)
            bars[stage] = StepProgress(total, "step", description=stage).__enter__()
        bars[stage].advance_to(done)

    start = time.perf_counter()
    try:
        metrics, s = run(config, cache_dir=args.cache, progress=progress)
    finally:
        for bar in bars.values():
            bar.__exit__(None, None, None)
    elapsed = time.perf_counter() - start
    save(out, config, metrics, s)
    m = metrics
    print(f"pretrained model ({'trained now' if 'pretrain' in bars else 'from the cache'}, {s['pretrain_digest']}): "
          f"delta_c {s['delta_c']:.4f}, delta_m {s['delta_m']:.4f}; margins m_C {s.get('m_C', s['m_C_heldout']):.4f}, "
          f"m_CS {s.get('m_CS', s['m_CS_heldout']):.4f} -> predicted rho* {s['rho_star']:.4f}")
    print(f"context reliance M_C on {config.mixture.n_test} conflict test examples:")
    print(f"  initial {s['initial_reliance']:.4f} -> peak {s['peak_reliance']:.4f} at step {s['peak_step']} "
          f"-> final {s['final_reliance']:.4f}")
    print(f"  inversion (rise, then fall below the peak): {'yes' if s['inversion'] else 'no'}; "
          f"largest fall {s['reliance_drop']:.4f} ({'at least' if s['inversion_005'] else 'less than'} 0.05)")
    print(f"attention of r to the context: {m['attention_context'][0]:.4f} -> max {m['attention_context'].max():.4f} "
          f"-> {m['attention_context'][-1]:.4f}")
    print(f"in-distribution held-out accuracy: {m['in_distribution_accuracy'][0]:.4f} -> "
          f"{m['in_distribution_accuracy'][-1]:.4f}")
    cf, par, tr_acc = m["counterfactual_accuracy"], m["parametric_accuracy"], m["train_accuracy"]
    print(f"argmax on the conflict test examples: context answer {cf[0]:.2f} -> max {cf.max():.2f} -> {cf[-1]:.2f}, "
          f"memorised fact {par[0]:.2f} -> {par[-1]:.2f}; training examples right {tr_acc[0]:.2f} -> {tr_acc[-1]:.2f}")
    print(f"wrote {out}/config.toml, metrics.npz, summary.json ({elapsed:.1f} s incl. compile)")
    return 0


def _sweep(args, config) -> int:
    from cpi.bridge.sweep import (check_sweep_dir, default_sweep_dir, expand_grid, run_shard, run_sweep,
                                  saved_points, sweep_identity)
    from cpi.core.shards import parse_shard

    from ..sweeps import check_shard_flags, run_interruptibly, shard_lines

    shard = parse_shard(args.shard)  # every bad flag exits 2 before anything runs
    check_shard_flags(args, shard)
    expanded = expand_grid(config, args.grid, args.seeds)
    out = Path(args.out) if args.out else default_sweep_dir(config, args.grid, args.seeds)
    check_out_dir(out)
    if args.cache:
        check_out_dir(args.cache, flag="--cache")
    check_sweep_dir(out, sweep_identity(config, args.grid, args.seeds), force=args.force)
    print(f"cpi bridge: sweep of {len(expanded)} points ({', '.join(args.grid) or 'base config'}, "
          f"{args.seeds} seed(s))" + (f", shard {shard} (its share of the chunks)" if shard else ""))
    if shard is None and not args.force:
        saved = sum(saved_points(expanded.configs, out))
        if 0 < saved < len(expanded):
            print(f"cpi bridge: {saved} of {len(expanded)} point(s) of this sweep are already saved under {out}/runs; "
                  f"computing the {len(expanded) - saved} missing, then writing the results", file=sys.stderr)

    def interrupted():
        saved = sum(saved_points(expanded.configs, out))
        print(f"\ncpi bridge: interrupted; {saved} of {len(expanded)} point(s) of this sweep are saved under "
              f"{out}/runs (the chunk in progress is lost); rerun the same command to compute only the missing ones",
              file=sys.stderr)

    start = time.perf_counter()
    if shard is not None:
        report = run_interruptibly(lambda: run_shard(config, args.grid, args.seeds, out, shard=shard,
                                                     cache_dir=args.cache, progress=True, vmap=args.vmap), interrupted)
        if report.result is None:
            print("\n".join(shard_lines(report, out, "chunks", "runs", "cpi bridge")))
            return 0
        print(f"cpi bridge: shard {shard}: every chunk of the sweep is saved, so this shard wrote the results")
        result = report.result
    else:
        result = run_interruptibly(lambda: run_sweep(config, args.grid, args.seeds, out=out, cache_dir=args.cache,
                                                     progress=True, vmap=args.vmap, force=args.force), interrupted)
    keys = expanded.keys
    print("  ".join([*keys, "seed", "initial", "peak", "peak_step", "final", "drop", "inv_005", "rho*"]))
    for point, c, s in zip(result.points, result.configs, result.summaries):
        print("  ".join([*(str(point[k]) for k in keys), str(c.train.seed), f"{s['initial_reliance']:.4f}",
                         f"{s['peak_reliance']:.4f}", str(s["peak_step"]), f"{s['final_reliance']:.4f}",
                         f"{s['reliance_drop']:.4f}", "yes" if s["inversion_005"] else "no",
                         f"{s['rho_star']:.4f}"]))
    print(f"wrote {out}/sweep.npz, summary.csv, summary.json ({time.perf_counter() - start:.1f} s)")
    return 0
