"""`cpi run`: train the toy model on one config and save its metrics."""

from __future__ import annotations

import time
from pathlib import Path

from ..arguments import (add_config_arguments, add_force, add_record_every, check_out_dir, default_run_dir,
                         describe_run, load_config)
from ..report import reliance_lines

MEMORY_NOTE_BYTES = 2**30
"""Runs estimated to need more memory than this say so in their header."""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "run", help="train the toy model on one config and save its metrics",
        description=(
            "Train the paper's one-layer attention model by full-batch gradient descent on one config "
            "and print initial, peak and final context reliance. Writes DIR/config.toml (the resolved "
            "config), DIR/metrics.npz (every metric per recorded step) and DIR/summary.json; "
            "`cpi plot DIR` draws it, `cpi export DIR` writes its metrics as CSV. train.seed changes "
            "nothing under the paper's embeddings (it only relabels tokens)."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="DIR", help="output directory (default runs/<hash of the config>)")
    add_record_every(parser)
    add_force(parser, "replace DIR even when it holds a run of another config")
    parser.set_defaults(func=cmd_run)
    return parser


def cmd_run(args) -> int:
    from cpi.sims.budget import check_record_every, check_run_budget
    from cpi.core.dir_lock import claim_dir
    from cpi.sims.results import check_run_dir

    config = load_config(args)
    out = Path(args.out) if args.out else default_run_dir(config)
    check_out_dir(out)
    check_run_dir(out, config, force=args.force, source=args.config)
    check_record_every(args.record_every)
    check_run_budget(config, args.record_every)
    with claim_dir(out):  # one writer at a time; the check again, now that no other can write
        check_run_dir(out, config, force=args.force, source=args.config)
        return _train_and_save(args, config, out)


def _train_and_save(args, config, out: Path) -> int:
    from cpi.sims.budget import available_memory, human_bytes, run_bytes
    from cpi.sims.results import save_run
    from cpi.sims.train import run

    print(f"cpi run: {describe_run(config)}")
    if config.world.embeddings == "random" and config.knowledge.pretraining == "constructed":
        from cpi.sims.world import build_world

        world = build_world(config)
        print(f"  random embeddings in R^{world.embed.shape[0]} (seed {config.train.seed}, {world.embed.shape[1]} "
              f"tokens): the Lemma 3 value table is realised to within {world.value_table_error:.3g} "
              f"(max |Φᵀ W_V Φ − V|"
              f"{'' if world.embed.shape[0] >= world.embed.shape[1] else ', least squares: dim < K'})")
    need = run_bytes(config, args.record_every)
    if need > MEMORY_NOTE_BYTES:
        print(f"  memory: about {human_bytes(need)} (of {human_bytes(available_memory())} available)")
    start = time.perf_counter()
    result = run(config, progress=True, record_every=args.record_every)
    elapsed = time.perf_counter() - start
    save_run(out, config, result.metrics, result.summary)
    s, m = result.summary, result.metrics
    n_rel = config.world.n_relations
    per = f" ({config.mixture.n_test} per relation)" if n_rel > 1 else ""
    strengths = (f"W_V learned in {config.pretrain.steps} pretraining steps (sims.pretraining): achieved"
                 if config.knowledge.pretraining == "learned" else "W_V built from the Lemma 3 table: achieved")
    print(f"{strengths} delta_c {s['achieved_delta_c']:.4f}, delta_m {s['achieved_delta_m']:.4f} "
          "(mean probability of a context token's value on itself, of a memorised subject's value on its fact)")
    print(f"context reliance M_C on {config.mixture.n_test * n_rel} conflict test examples{per}:")
    for line in reliance_lines(s):
        print(f"  {line}")
    for j in range(1, n_rel + 1 if n_rel > 1 else 1):
        r = m[f"reliance_r{j}"]
        print(f"  relation {j}: initial {r[0]:.4f} -> peak {r.max():.4f} -> final {r[-1]:.4f}"
              + (" (peak over the recorded steps)" if args.record_every > 1 else ""))
    if "aligned_accuracy" in m:
        print(
            f"aligned held-out accuracy: {m['aligned_accuracy'][0]:.4f} -> "
            f"{m['aligned_accuracy'][-1]:.4f}"
        )
    if "counterfactual_accuracy" in m:
        cf, par, tr = m["counterfactual_accuracy"], m["parametric_accuracy"], m["train_accuracy"]
        print(f"argmax on the conflict test examples: context answer {cf[0]:.2f} -> max {cf.max():.2f} "
              f"-> {cf[-1]:.2f}, "
              f"memorised fact {par[0]:.2f} -> {par[-1]:.2f}; training examples right {tr[0]:.2f} -> {tr[-1]:.2f}")
    print(f"wrote {out}/config.toml, metrics.npz, summary.json ({elapsed:.1f} s incl. compile)")
    return 0
