"""`cpi config` (or `cpi keys`): every config key with its default, allowed values and
meaning; or a resolved config as TOML."""

from __future__ import annotations

from ..arguments import add_config_arguments, load_config


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "config", aliases=["keys"], help="list every config key (default, allowed values, meaning)",
        description=(
            "List every config key with its default, its allowed values and its meaning; keys are set "
            "with --set section.key=value or in a TOML file passed with --config. --toml prints the "
            "resolved config of --config/--set instead (a starting point for a config file); "
            "--markdown prints the key table as in docs/guide.md."
        ),
    )
    add_config_arguments(parser, "the config --toml prints")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--toml", action="store_true", help="print the resolved config as TOML")
    how.add_argument("--markdown", action="store_true", help="print the key table as Markdown")
    parser.set_defaults(func=cmd_config)
    return parser


def cmd_config(args) -> int:
    from cpi.sims import config as cfg

    if args.toml:
        print(cfg.to_toml(load_config(args)), end="")
        return 0
    if args.markdown:
        print(cfg.keys_markdown())
        return 0
    load_config(args)  # bad --config/--set is bad input here too
    rows = [("key", "default", "allowed", "meaning"), *cfg.keys_table()]
    widths = [max(len(r[j]) for r in rows) for j in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
    return 0
