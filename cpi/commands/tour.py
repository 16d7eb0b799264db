"""`cpi tour`: open the live tour, the marimo notebook `notebooks/tour.py`, in the browser
(`marimo run`; `--edit`: `marimo edit`). The notebook lives in the repository beside the package
(an editable install, `pip install -e '.[tour]'`, finds it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "tour.py"
"""The tour, in the repository's notebooks/ folder."""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "tour", help="open the live tour of the paper's story (a marimo notebook) in the browser",
        description=(
            "Open notebooks/tour.py, a marimo notebook that tells the paper's story in order (the model and "
            "its two pathways, the data groups' pulls, rho*, the rise and fall, the phase diagram, filtering "
            "and counterfactual augmentation) with sliders for rho, delta_C, delta_M, eta, n and the horizon, "
            "each move recomputed by the exact reduced dynamics, the full simulation a button away. Runs "
            "`marimo run` (or `marimo edit` with --edit), which serves it on localhost and opens the browser. "
            "Needs marimo: pip install 'cpi-sim[tour]'. `python notebooks/tour.py` runs it headless."
        ),
    )
    parser.add_argument("--edit", action="store_true", help="open it in marimo's editor (marimo edit)")
    parser.add_argument("--path", action="store_true", help="print the notebook's path and exit")
    parser.set_defaults(func=cmd_tour)
    return parser


def cmd_tour(args) -> int:
    from cpi.core.errors import ConfigError
    from cpi.sims.analysis import require

    if not NOTEBOOK.is_file():
        raise ConfigError(f"the tour is the repository's notebooks/tour.py, not found at {str(NOTEBOOK)!r}: run "
                          "cpi tour from a clone installed with pip install -e '.[tour]'")
    if args.path:
        print(NOTEBOOK)
        return 0
    require("marimo", "cpi tour", extra="tour")
    return subprocess.call([sys.executable, "-m", "marimo", "edit" if args.edit else "run", str(NOTEBOOK)])
