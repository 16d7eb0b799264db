"""`cpi run | theory | sweep | figures`: the sims-level commands plus `figures`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from figures.make import add_figures_parser
    from sims.cli import main as sims_main

    return sims_main(argv, extra=(add_figures_parser,))


if __name__ == "__main__":
    sys.exit(main())
