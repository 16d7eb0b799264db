"""`cpi figures`: compute (or reuse) every figure's data and write them as PNG and PDF."""

from __future__ import annotations

from ..arguments import add_config_arguments, check_out_dir, load_config

DEFAULT_OUT = "results/figures"
"""Generated figures go to an untracked folder by default; the committed images (README.md,
docs/results.md) are refreshed with `cpi figures --out figures`."""


def add_parser(subparsers):
    from cpi.figures import NAMES

    parser = subparsers.add_parser(
        "figures",
        help="regenerate every figure (PNG and PDF) from saved or freshly computed data",
        description=(
            "Compute the data of every figure (simulations and theory) for a config, or reuse "
            "the data saved by an earlier run with the same config, and write OUT/<name>.png "
            f"and OUT/<name>.pdf (default OUT: {DEFAULT_OUT}; `--out figures` refreshes the committed "
            "images) for: " + ", ".join(NAMES) + "."
        ),
    )
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--data", metavar="DIR", help="where the figures' data are saved (default OUT/data)")
    parser.add_argument("--force", action="store_true", help="recompute the data even where saved data match")
    parser.add_argument("--only", metavar="NAME,...", help="only these figures (comma-separated names)")
    parser.add_argument(
        "--docs", action="store_true",
        help="compute nothing: render docs/results.md from docs/templates/results.md, the committed "
             "summaries figures/*.json and docs/paper.toml (run from the repository root; refresh the "
             "summaries first with `cpi figures --out figures`)",
    )
    add_config_arguments(parser, "the base config of every figure")
    parser.set_defaults(func=cmd_figures)
    return parser


def _names(text: str | None):
    from cpi.figures import NAMES
    from cpi.core.errors import ConfigError

    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise ConfigError(f"--only {text!r}: unknown figure(s) {', '.join(unknown) or '(none given)'}; "
                          f"expected names from: {', '.join(NAMES)}")
    return names


def cmd_docs() -> int:
    """Render docs/results.md from the committed summaries (paths relative to the working
    directory, the repository root)."""
    from cpi.core.errors import ConfigError
    from cpi.figures import document

    for path in (document.TEMPLATE, document.PAPER, document.SUMMARIES):
        if not path.exists():
            raise ConfigError(f"--docs: {path} not found; run `cpi figures --docs` from the repository root")
    try:
        text = document.render_document()
    except (document.RenderError, ValueError, OSError) as exc:
        raise ConfigError(f"--docs: {exc}") from None
    document.DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {document.DOCUMENT}")
    return 0


def cmd_figures(args) -> int:
    import cpi.figures.make

    if args.docs:
        return cmd_docs()
    config = load_config(args)
    names = _names(args.only)
    check_out_dir(args.out)
    if args.data is not None:
        check_out_dir(args.data, flag="--data")
    kwargs = {"data_dir": args.data, "force": args.force, "config": config}
    if names is not None:
        kwargs["names"] = names
    cpi.figures.make.make_figures(args.out, **kwargs)
    return 0
