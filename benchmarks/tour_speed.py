"""How long the tour (`notebooks/tour.py`) takes to answer a slider move, next to the full
simulation of the same config.

One slider change recomputes the exact reduced dynamics of the sliders' config at the default
horizon (300 steps): `reduced_trajectory(config)` after `cpi.load_config`. The whole notebook
then also redraws the remedies (3 more trajectories) and the phase diagram (11 × 9 more), so the
time of everything one move recomputes is printed too (without drawing). The full simulation is
`cpi.run(config)` (the fast exact engine): its first call in a process compiles, the later ones
reuse the compiled program while the array shapes stay (a move of ρ), and a move of n changes
them, so the simulation compiles again (from the persistent compilation cache when it holds the
program: `CPI_COMPILATION_CACHE=0` measures the cold case). Each time is the median over
`--repeats` moves through different values of ρ (or of n).

    CPI_COMPILATION_CACHE=0 python benchmarks/tour_speed.py [--repeats 11]
"""

from __future__ import annotations

import argparse
import statistics
import time

from cpi.cli import configure_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    configure_process()

    import numpy as np

    import cpi
    from cpi.sims.theory_inputs import reduced_trajectory
    from cpi.theory.summary import summarize

    rhos = np.round(np.linspace(0.3, 0.7, args.repeats), 3)

    def config(rho, **extra):
        values = {"mixture.context_critical": rho, **extra}
        n = values.get("mixture.n_train", 20)
        values["world.n_subjects"] = max(40, n + 20)  # as the tour: a vocabulary that fits n examples
        values["world.n_answers"] = max(80, 2 * n + 30)
        return cpi.load_config(overrides=[f"{k}={v}" for k, v in values.items()])

    def one_move(rho):
        return reduced_trajectory(config(rho))

    def whole_move(rho):
        one_move(rho)
        for extra in ({"mixture.filter": 0.5}, {"mixture.counterfactual": 0.2}):
            reduced_trajectory(config(rho, **extra))
        for d in np.linspace(0.3, 0.9, 9):
            for r in np.linspace(0.0, 1.0, 11):
                summarize(np.asarray(reduced_trajectory(config(round(float(r), 6), **{
                    "knowledge.delta_m": round(float(d), 6)}))["reliance"]))

    def median_time(fn, values=rhos):
        times = []
        for value in values:
            start = time.perf_counter()
            fn(value)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    start = time.perf_counter()
    cpi.run(config(0.5))
    first_run = time.perf_counter() - start
    one_move(0.5)  # imports and first-call work, as the notebook's first cell has done
    reduced = median_time(one_move)
    whole = median_time(whole_move)
    simulation = median_time(lambda rho: cpi.run(config(rho)))
    sizes = 22 + 2 * np.arange(args.repeats)  # each n a new shape for the simulation
    reduced_n = median_time(lambda n: reduced_trajectory(config(0.5, **{"mixture.n_train": n})), sizes)
    simulation_n = median_time(lambda n: cpi.run(config(0.5, **{"mixture.n_train": n})), sizes)
    steps = cpi.load_config().train.steps
    print(f"default horizon: {steps} steps; median over {args.repeats} values of rho")
    print(f"{'one slider change (exact reduced dynamics)':<58} {reduced * 1e3:9.1f} ms")
    print(f"{'everything one move recomputes (1 + 3 + 99 trajectories)':<58} {whole * 1e3:9.1f} ms")
    print(f"{'full simulation, cpi.run (compiled)':<58} {simulation * 1e3:9.1f} ms")
    print(f"{'full simulation, cpi.run (first call: compiles)':<58} {first_run * 1e3:9.1f} ms")
    print(f"{'a move of n: exact reduced dynamics':<58} {reduced_n * 1e3:9.1f} ms")
    print(f"{'a move of n: full simulation (new shapes: compiles)':<58} {simulation_n * 1e3:9.1f} ms")
    print(f"ratio simulation / reduced: {simulation / reduced:.1f}x (a move of rho), "
          f"{simulation_n / reduced_n:.0f}x (a move of n), {first_run / reduced:.0f}x (first call)")


if __name__ == "__main__":
    main()
