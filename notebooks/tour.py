"""A live tour of context-parametric inversion (a marimo notebook): `cpi tour` opens it in the
browser (`marimo run notebooks/tour.py`; `cpi tour --edit` to change it). Every slider move
recomputes the exact reduced dynamics (`cpi.sims.theory_inputs.reduced_trajectory`:
W_V frozen, full-batch gradient descent, the paper's embeddings); the full simulation
(`cpi.run`) is one button away. `python notebooks/tour.py` runs it headless."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="cpi: a tour of context-parametric inversion")


@app.cell
def _():
    import marimo as mo
    import matplotlib.pyplot as plt
    import numpy as np

    import cpi
    from cpi.core.errors import ConfigError
    from cpi.sims.theory_inputs import knowledge_of, reduced_trajectory
    from cpi.theory.closed_forms import paper_quantities
    from cpi.theory.summary import summarize

    return ConfigError, cpi, knowledge_of, mo, np, paper_quantities, plt, reduced_trajectory, summarize


@app.cell
def _(mo):
    mo.md(r"""
    # Context-parametric inversion, live

    Goyal et al. (ICLR 2025) finetune a model on data where the context matters, and find that its
    reliance on the context first **rises**, then **falls**: the model ends up trusting what it
    memorised over what it is told. This tour walks through their one-layer attention model of it.
    Every slider below recomputes the model's *exact* reduced dynamics (milliseconds: W_V frozen,
    full-batch gradient descent); the full simulation of the same config is a button away.
    """)
    return


@app.cell
def _(mo):
    rho = mo.ui.slider(0.0, 1.0, step=0.025, value=0.5, label="ρ: share of context-critical (C) examples")
    delta_c = mo.ui.slider(0.05, 0.95, step=0.05, value=0.2, label="δ_C: how strongly a context token predicts itself")
    delta_m = mo.ui.slider(0.05, 0.95, step=0.05, value=0.6, label="δ_M: how strongly a subject gives its fact")
    lr = mo.ui.slider(0.1, 10.0, step=0.1, value=1.0, label="η: step size")
    n_train = mo.ui.slider(4, 200, step=2, value=20, label="n: training examples")
    steps = mo.ui.slider(10, 2000, step=10, value=300, label="horizon: training steps")
    mo.vstack([rho, delta_c, delta_m, lr, n_train, steps])
    return delta_c, delta_m, lr, n_train, rho, steps


@app.cell
def _(ConfigError, cpi, delta_c, delta_m, lr, mo, n_train, rho, steps):
    def config_of(**extra):
        """The config of the sliders (and `extra` keys, "section__key": value)."""
        values = {"mixture.context_critical": rho.value, "knowledge.delta_c": delta_c.value,
                  "knowledge.delta_m": delta_m.value, "train.lr": lr.value, "mixture.n_train": n_train.value,
                  "train.steps": steps.value}
        values.update({k.replace("__", "."): v for k, v in extra.items()})
        # every training and held-out example has its own subject (20 held out at the defaults) and
        # needs answer tokens of its own (two per counterfactual or conflict example): the vocabulary
        # grows with n past the defaults' 40 subjects and 80 answers, which moves Z0 with it
        values["world.n_subjects"] = max(40, n_train.value + 20)
        values["world.n_answers"] = max(80, 2 * n_train.value + 30)
        return cpi.load_config(overrides=[f"{k}={v}" for k, v in values.items()])

    try:
        config = config_of()
        problem = None
    except ConfigError as err:
        config, problem = None, str(err)
    mo.stop(config is None, mo.callout(mo.md(f"These values are not a valid config: {problem}"), kind="warn"))
    return config, config_of


@app.cell
def _(mo):
    mo.md(r"""
    ## 1. The model and its two pathways

    An example is three tokens, a context $c$, a subject $s$ and a relation $r$; the answer is read
    off through attention with the relation as the query. Two pathways compete: attending to the
    **context** $c$ (its value vector points at the context's answer) or to the **subject** $s$ (its
    value vector, $W_V$, holds the fact memorised in pretraining). Finetuning trains only the
    attention $W_{KQ}$, so the whole story is one number per example: how much attention goes to the
    context, $\sigma(A)$. The *reliance* $M_C$ is the probability of the context's answer on conflict
    test examples, where context and memory disagree.
    """)
    return


@app.cell
def _(config, knowledge_of, mo, paper_quantities):
    closed = paper_quantities(knowledge_of(config))
    mo.md(f"""
    At these knowledge strengths the pretrained model starts with $Z_0$ = {closed['Z0']:.4g} and
    reliance $M_C(0)$ = {closed['initial_reliance']:.3f}. The first-step margins (Lemma 4) are
    $m_C$ = {closed['m_C']:.3f} for a context-critical example and $m_{{CS}}$ = {closed['m_CS']:.3f}
    for one whose context and memorised fact agree.
    """)
    return (closed,)


@app.cell
def _(config, reduced_trajectory):
    trajectory = reduced_trajectory(config)
    return (trajectory,)


@app.cell
def _(mo):
    mo.md(r"""
    ## 2. The three data groups pull on the attention

    Each group of training examples pushes the context direction $\theta_C$ of the attention one way:
    **C** examples (only the context knows the answer) pull towards the context; **CS** examples
    (context and memory agree) pull *away* from it once the memory is strong, since the subject
    already answers them; **CF** examples (counterfactual context) pull towards it hard. The curves are
    each group's push, $-\partial L/\partial\theta_C$, over training.
    """)
    return


@app.cell
def _(np, plt, trajectory):
    def _pulls():
        fig, ax = plt.subplots(figsize=(7, 3.2))
        step = np.asarray(trajectory["step"])
        for group, color in (("C", "tab:blue"), ("CS", "tab:orange"), ("CF", "tab:red")):
            values = np.asarray(trajectory[f"neg_grad_theta_c_{group}"])
            if np.any(values != 0):
                ax.plot(step, values, color=color, label=f"{group} (theory, exact)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="training step", ylabel=r"push on $\theta_C$")
        ax.legend(frameon=False)
        fig.tight_layout()
        return fig

    _pulls()
    return


@app.cell
def _(closed, mo, rho):
    _side = "above" if rho.value > closed["rho_star"] else "below"
    mo.md(f"""
    ## 3. ρ*: where the pulls balance

    At the start the C and CS pulls cancel when the share of C examples is
    $\\rho^* = -m_{{CS}} / (m_C - m_{{CS}})$ = **{closed['rho_star']:.3f}** (at these strengths).
    Above it, reliance on the context first rises; below it, it falls from the first step.
    Your ρ = {rho.value:.3f} is **{_side}** ρ*.
    """)
    return


@app.cell
def _(config, mo, np, plt, summarize, trajectory):
    def _rise_and_fall():
        reliance = np.asarray(trajectory["reliance"])
        summary = summarize(reliance)
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.plot(trajectory["step"], reliance, color="tab:blue", label=r"$M_C$ (theory, exact reduced dynamics)")
        ax.plot([summary["peak_step"]], [summary["peak_reliance"]], "o", color="tab:blue")
        ax.set(xlabel="training step", ylabel=r"reliance $M_C$", ylim=(0, 1))
        ax.legend(frameon=False, loc="lower right")
        fig.tight_layout()
        text = mo.md(
            f"Peak $M_C$ = {summary['peak_reliance']:.3f} at step {summary['peak_step']}, final "
            f"{summary['final_reliance']:.3f} after {config.train.steps} steps: "
            + ("**an inversion** (the reliance rose, then fell)." if summary["inversion"] else "no inversion."))
        return mo.vstack([fig, text])

    mo.vstack([mo.md("## 4. The rise and the fall"), _rise_and_fall()])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 5. The phase diagram

    Over ρ and δ_M (the other sliders held), where does reliance rise then fall (**inversion**), only
    rise, or only fall? Each cell is one exact reduced trajectory over your horizon: the drop from the
    peak to the end, $M_C^{peak} - M_C^{final}$ (0 where there is no inversion).
    """)
    return


@app.cell
def _(ConfigError, config_of, np, plt, reduced_trajectory, summarize):
    def _phase(n_rho=11, n_delta=9):
        rhos = np.linspace(0.0, 1.0, n_rho)
        deltas = np.linspace(0.3, 0.9, n_delta)
        drop = np.full((n_delta, n_rho), np.nan)
        for i, d in enumerate(deltas):
            for j, r in enumerate(rhos):
                try:
                    c = config_of(mixture__context_critical=round(float(r), 6), knowledge__delta_m=round(float(d), 6))
                except ConfigError:
                    continue
                s = summarize(np.asarray(reduced_trajectory(c)["reliance"]))
                drop[i, j] = s["peak_reliance"] - s["final_reliance"] if s["inversion"] else 0.0
        fig, ax = plt.subplots(figsize=(6, 3.6))
        image = ax.pcolormesh(rhos, deltas, drop, shading="nearest", cmap="magma_r")
        fig.colorbar(image, ax=ax, label=r"$M_C$ peak − final (theory)")
        ax.set(xlabel=r"$\rho$ (share of C examples)", ylabel=r"$\delta_M$")
        fig.tight_layout()
        return fig

    _phase()
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 6. Two remedies: filtering and counterfactual augmentation

    **Filtering** drops the context-bearing examples the pretrained model already answers without the
    context (the CS examples whose pull turns against the context). **Counterfactual augmentation**
    adds CF examples, whose context contradicts memory, so that only the context answers them.
    """)
    return


@app.cell
def _(config_of, np, plt, reduced_trajectory):
    def _remedies():
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for label, extra, color in (("as is", {}, "tab:blue"),
                                    ("filter 50% of context-bearing examples", {"mixture__filter": 0.5}, "tab:green"),
                                    ("20% counterfactual examples", {"mixture__counterfactual": 0.2}, "tab:red")):
            t = reduced_trajectory(config_of(**extra))
            ax.plot(t["step"], np.asarray(t["reliance"]), color=color, label=f"{label} (theory)")
        ax.set(xlabel="training step", ylabel=r"reliance $M_C$", ylim=(0, 1))
        ax.legend(frameon=False, loc="lower right")
        fig.tight_layout()
        return fig

    _remedies()
    return


@app.cell
def _(mo):
    simulate = mo.ui.run_button(label="Run the full simulation of this config")
    mo.vstack([mo.md("## 7. The full simulation\n\nThe theory above is exact for this model: the trained "
                     "model itself (`cpi.run`, the fast exact engine) draws the same curve."), simulate])
    return (simulate,)


@app.cell
def _(config, cpi, mo, np, plt, simulate, trajectory):
    mo.stop(not simulate.value, mo.md("*(press the button to train the model: seconds)*"))
    result = cpi.run(config)

    def _compare():
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.plot(trajectory["step"], trajectory["reliance"], color="black", ls="--", lw=2,
                label="theory: exact reduced dynamics")
        ax.plot(result.metrics["step"], result.metrics["reliance"], color="tab:blue", lw=1,
                label="simulation: cpi.run")
        ax.set(xlabel="training step", ylabel=r"reliance $M_C$", ylim=(0, 1))
        ax.legend(frameon=False, loc="lower right")
        fig.tight_layout()
        return fig

    gap = float(np.max(np.abs(np.asarray(result.metrics["reliance"]) - np.asarray(trajectory["reliance"]))))
    mo.vstack([_compare(), mo.md(f"Largest difference between simulation and theory: {gap:.1e}.")])
    return


if __name__ == "__main__":
    app.run()
