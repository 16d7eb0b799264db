"""Compute (or reuse) every figure's data and write `<out>/<name>.png` and `.pdf` (the
`cpi figures` command, in `cpi.commands.figures`, calls `make_figures`).

Data come from the experiments (`cpi.experiments.cache.experiment_data`) and are saved as
`<data_dir>/<name>.npz` (default `<out>/data`), with the simulations they ran under
`<data_dir>/sims`; a second run with an unchanged config only re-plots. Beside each figure goes
its headline summary, `<out>/<name>.json` (`cpi.experiments.summaries`): the numbers the
results document quotes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt

from . import NAMES, plot

DPI = 150
PDF_METADATA = {"CreationDate": None}
"""No creation date in the PDFs, so unchanged figures give unchanged files."""


def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """Write `<out_dir>/<name>.png` (DPI dots per inch) and `<out_dir>/<name>.pdf`, the PDF
    with the layout the PNG's drawing computed (constrained layout, the larger part of drawing
    a figure, runs once)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
    fig.savefig(png, dpi=DPI)
    fig.set_layout_engine("none")
    fig.savefig(pdf, metadata=PDF_METADATA)
    return [png, pdf]


def make_figures(
    out_dir: str | Path = "figures",
    data_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    config=None,
    names=None,
) -> list[Path]:
    """Write every figure (or those in `names`) for `config` (default: the default config)
    as PNG and PDF under `out_dir`, with its headline summary as JSON; returns the paths written. Data are reused from
    `data_dir` (default `<out_dir>/data`) unless `force` or the config changed. One progress
    line per figure goes to stderr."""
    from cpi.experiments.cache import experiment_data, is_saved  # the experiment layer, only when data are needed
    from cpi.experiments.summaries import headline, save_summary

    out_dir = Path(out_dir)
    data_dir = Path(data_dir) if data_dir is not None else out_dir / "data"
    names = list(names) if names is not None else list(NAMES)
    written: list[Path] = []
    for i, name in enumerate(names, 1):
        start = time.perf_counter()
        reused = not force and is_saved(name, config, data_dir)
        data = experiment_data(name, config, data_dir, force)
        middle = time.perf_counter()
        fig = plot(name, data)
        paths = save_figure(fig, out_dir, name)
        plt.close(fig)  # pyplot keeps every figure it made open until closed
        paths.append(save_summary(out_dir / f"{name}.json", headline(name, data)))
        written += paths
        if progress:
            how = "data reused" if reused else f"data computed in {middle - start:.1f} s"
            print(
                f"figure {i}/{len(names)} {name}: {how}, plotted in {time.perf_counter() - middle:.1f} s"
                f" -> {paths[0]}, {paths[1].name}",
                file=sys.stderr, flush=True,
            )
    return written
