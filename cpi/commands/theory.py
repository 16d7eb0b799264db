"""`cpi theory`: the paper's closed forms and the exact reduced dynamics for one config."""

from __future__ import annotations

import argparse
import json
import textwrap

from ..arguments import add_config_arguments, load_config
from ..report import glossary_text


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "theory", help="closed forms and reduced-dynamics predictions for a config",
        description=textwrap.fill(
            "Print the paper's closed forms for a config (Z0, the Lemma 4 margins, rho*, Lemmas 5-6, "
            "eta*), the long-time regime of the gradient flow (t -> infinity), the long-time law of the test "
            "attention gap, and the exact reduced-dynamics prediction of `cpi run`'s summary over the finite "
            "horizon asked for (train.steps at train.lr); where the regime and the horizon disagree on the "
            "inversion, one line says why. With world.embeddings = 'random' "
            "the closed forms of the paper's embeddings give way to that world's own margins, initial drift "
            "and rho*, and the prediction is the exact per-example form. Where nothing is exact (adam, "
            "minibatches, momentum, weight decay, a W_V that trains) it says so and prints the nearest exact "
            "prediction (full-batch gd, W_V frozen) to compare with. Writes nothing.", 100),
        epilog=glossary_text(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_theory)
    return parser


def cmd_theory(args) -> int:
    from cpi.sims.budget import check_world_budget
    from cpi.sims.theory_report import theory_report

    from ..report import format_theory

    config = load_config(args)
    check_world_budget([config])
    report = theory_report(config)
    print(json.dumps(report, indent=2) if args.json else format_theory(report, config))
    return 0
