"""The words the `cpi` commands print about context reliance: the reliance summary of a run
or a prediction (`reliance_lines`, shared by `cpi run` and `cpi theory`), `cpi theory`'s
report (`format_theory`), and the glossary of every term they print (`GLOSSARY`, shown by
`cpi theory --help`).

Imports nothing heavy: the CLI builds its parsers, glossary included, before any work."""

from __future__ import annotations

import textwrap

GLOSSARY = (
    ("M_C", "context reliance: the mean probability of the context's answer on the conflict test examples, "
            "fresh examples whose context contradicts a memorised fact."),
    ("step", "one gradient step; step 0 is the start, before any training."),
    ("initial", "M_C at step 0."),
    ("peak", "the highest M_C over every step, at its first step."),
    ("final", "M_C after the last step."),
    ("inversion", "yes when M_C rises above its start and later falls below a peak it reached (each by more "
                  "than the tolerance of the dtype: 1e-9 in float64, 8 machine epsilons in float32), whatever "
                  "happens afterwards; a recovery past that peak still counts."),
    ("first peak", "the peak that M_C first falls below (the inversion's peak); printed when it is not the "
                   "peak, or when M_C rises again after the fall."),
    ("falls to", "the lowest M_C from the first peak on, at its first step."),
    ("relation j", "with several relations, M_C on the conflict test examples of relation j alone."),
    ("closed forms", "the paper's formulas at step 0 (Lemmas 3-6), evaluated for this config's vocabulary, "
                     "knowledge strengths and offsets."),
    ("Z0", "the softmax mass of a value column off its own answer, (K_A - 1) e^o_c + R e^o_r + K_S (Lemma 3)."),
    ("m_C", "Lemma 4's margin of a context-critical (C) example: how hard it pulls attention towards the "
            "context at step 0 (positive: towards the context)."),
    ("m_CS", "Lemma 4's margin of a CS example (context agrees with the memorised fact); negative: it pulls "
             "attention towards the subject."),
    ("m_CF", "Lemma 4's margin of a counterfactual (CF) example (context contradicts the memorised fact and is "
             "the answer)."),
    ("rho", "the fraction of context-critical examples among the C and CS training examples after filtering."),
    ("rho*", "|m_CS| / (m_C + |m_CS|): below it context reliance does not rise at the start (C and CS examples)."),
    ("paper's assumptions", "delta_C > 3/(K_A - 1), delta_M > 2 delta_C and o_c >= o_r > 0."),
    ("Lemma 3", "the pretrained value table V: the value logits every token gives each output token, with "
                "strengths delta_C (context tokens) and delta_M (memorised subjects); W_V realises it."),
    ("Lemma 4", "the margins m of each kind of training example at step 0 (m_C, m_CS, m_CF below)."),
    ("Lemma 5", "m_C > 0 > m_CS: C examples pull towards the context, CS examples towards the subject."),
    ("Lemma 6", "|m_C| > |m_CS|; the paper's assumptions do not imply it (theory/NOTES.md)."),
    ("eta*", "the smallest step size lr at which one step already overshoots: the context direction's "
             "coefficient changes sign after the first step; 'none' when no step size does."),
    ("Proposition 1", "the paper's one-step result: above eta* the first step turns the context direction "
                      "around."),
    ("t", "gradient-flow time: t = lr x steps (the reduced steps are the flow sampled every lr)."),
    ("lr", "the step size train.lr."),
    ("regime", "the long-time regime: how the gradient flow (the lr -> 0 limit of the steps) behaves as "
               "t -> infinity, read from its turning points up to t = 1e8 and the long-time law's slope; one "
               "of the six below. It describes the flow over all time, not the steps asked for."),
    ("monotone rise", "regime: A(t) and so M_C rise for ever and never turn."),
    ("monotone fall", "regime: M_C falls from the start (rho < rho*) and never turns."),
    ("inversion without recovery", "regime: M_C rises, peaks, then falls for good: towards -infinity in A "
                                   "when n_C < n_CS, to a limit A_inf when n_C = n_CS."),
    ("inversion with slow recovery", "regime: M_C rises, peaks, dips, then rises again, like the long-time "
                                     "law's ln t when n_C > n_CS (the peak comes later the larger rho is), "
                                     "towards A_inf when n_C = n_CS."),
    ("fall then slow recovery", "regime: M_C falls first, then turns once and rises (only where Lemma 6 "
                                "fails)."),
    ("fall with transient rebound", "regime: M_C falls, rebounds a little, then falls for good (small rho)."),
    ("turning points", "the times t at which the flow's A(t) turns: max (a peak) or min (a trough); t = inf: "
                       "beyond t = 1e8, where the long-time law's sign says it must turn."),
    ("A(t)", "the test attention gap: the logit of attention to the context over the subject at a fresh "
             "conflict test example; M_C increases with A."),
    ("long-time law", "A(t) ~ slope ln t + constant as t -> infinity (matched asymptotics); with slope 0, "
                      "A(t) tends to the constant."),
    ("finite horizon", "the steps asked for (train.steps at train.lr), up to t = lr x steps: what `cpi run` "
                       "measures, where the regime is the t -> infinity behaviour."),
    ("exact reduced-dynamics prediction", "M_C of the steps computed from the reduced dynamics (one "
                                          "coefficient per group or per example); equal to `cpi run`'s up to "
                                          "round-off when W_V is frozen and training is full-batch gd."),
    ("group form", "the reduced dynamics with one coefficient per data group (the paper's embeddings)."),
    ("per-example form", "the reduced dynamics with one coefficient per training example (any embeddings)."),
    ("nearest exact prediction", "where no prediction is exact (adam, minibatches, momentum, weight decay, a "
                                 "W_V that trains): the prediction of full-batch gd at the same lr with W_V "
                                 "frozen and no weight decay, to compare with."),
    ("regime and horizon disagree", "the regime inverts and the steps asked for do not (or the reverse); the "
                                    "line says why: the flow's first peak comes after the horizon, or lr is "
                                    "too large (above eta*) for the steps to follow the flow."),
    ("W_V", "the value matrix: frozen at the Lemma 3 table (constructed) or learned in pretraining."),
    ("delta_c", "the achieved strength delta_C: mean probability of a context token's value on itself."),
    ("delta_m", "the achieved strength delta_M: mean probability of a memorised subject's value on its fact."),
    ("embeddings", "world.embeddings: the paper's token directions, or random Gaussian unit vectors in R^dim "
                   "(world.dim)."),
    ("value table", "Lemma 3's K x K table V of value logits; with random embeddings W_V realises it to within "
                    "max |Phi^T W_V Phi - V|."),
    ("margins", "m_C, m_CS, m_CF of this world's own embeddings: the mean over each group's examples."),
    ("dA/dt(0)", "the initial drift of the test gap A: positive when M_C starts to rise."),
)
"""(term, definition) for every term `reliance_lines` and `format_theory` print."""


def glossary_text(width: int = 100) -> str:
    """GLOSSARY as the epilog of `cpi theory --help`: one "  term: definition" entry per term."""
    lines = ["glossary (every term the report prints):"]
    for term, text in GLOSSARY:
        lines += textwrap.wrap(f"{term}: {text}", width, initial_indent="  ", subsequent_indent="      ",
                               break_on_hyphens=False)
    return "\n".join(lines)


def signed(x: float, fmt: str = ".4g") -> str:
    """`x` as a term after another, sign first: "+ 0.3", "- 0.2971"."""
    return f"{'-' if x < 0 else '+'} {format(abs(x), fmt)}"


def reliance_lines(summary: dict) -> list[str]:
    """The reliance summary in words, one string per line: initial -> peak -> final, whether
    M_C inverts, and, when it inverts and the first peak is not the peak or M_C rises again
    after the fall, the first peak and the lowest M_C after it (`cpi.theory.summary.summarize`'s
    first_peak_* and trough_*; a summary without trough_* prints the first peak alone)."""
    s = summary
    lines = [f"initial {s['initial_reliance']:.4f} -> peak {s['peak_reliance']:.4f} at step {s['peak_step']} "
             f"-> final {s['final_reliance']:.4f}",
             f"inversion (rise, then fall below an earlier peak): {'yes' if s['inversion'] else 'no'}"]
    if not s["inversion"]:
        return lines
    first, final = s["first_peak_reliance"], s["final_reliance"]
    trough = s.get("trough_reliance")
    other_peak = (first, s["first_peak_step"]) != (s["peak_reliance"], s["peak_step"])
    if not (other_peak or (trough is not None and trough != final)):
        return lines
    line = f"first peak {first:.4f} at step {s['first_peak_step']}"
    if trough is not None:
        line += f" -> falls to {trough:.4f} at step {s['trough_step']}"
        if trough != final:
            line += f" -> final {final:.4f}, " + ("above" if final > first else "below") + " the first peak"
    lines.append(line)
    return lines


def format_theory(report: dict, config) -> str:
    """The human-readable form of `cpi.sims.theory_report.theory_report(config)`."""
    from cpi.sims.theory_report import flow_time

    per_example = "pretraining" in report
    lines = _format_random(report) if per_example else _format_paper(report, flow_time)
    form = "per-example form, one alpha per example" if per_example else "group form"
    lr, steps = config.train.lr, config.train.steps
    horizon = f"finite horizon, {steps} steps at lr {lr:g} (t = {flow_time(lr * steps)})"
    if report["exact"]:
        lines.append(f"{horizon}: exact reduced-dynamics prediction ({form}):")
    else:
        lines += [
            "no exact prediction for this config: " + "; ".join(report["inexact_reasons"]) + ".",
            f"{horizon}: nearest exact prediction (full-batch gd, W_V frozen, no weight decay; {form}), "
            "to compare with:",
        ]
    lines += ["  " + line for line in reliance_lines(report)]
    for j in range(1, config.world.n_relations + 1 if config.world.n_relations > 1 else 1):
        lines.append(f"  relation {j}: final {report[f'final_reliance_r{j}']:.4f}")
    if report.get("horizon_note"):
        lines.append(f"  regime and horizon disagree: {report['horizon_note']}")
    return "\n".join(lines)


def _format_paper(report: dict, flow_time) -> list[str]:
    eta = report["eta_star"]
    lines = [
        f"closed forms (Lemmas 3-6): Z0 = {report['Z0']:.6g}, m_C = {report['m_C']:.6f}, "
        f"m_CS = {report['m_CS']:.6f}",
        f"  rho* = {report['rho_star']:.6f} (no initial rise of context reliance below it); "
        f"this mixture has rho = {report['rho']:.4g}",
        f"  paper's assumptions hold: {report['assumptions_hold']}; Lemma 5 (m_C > 0 > m_CS): "
        f"{report['lemma5_holds']}; Lemma 6 (|m_C| > |m_CS|): {report['lemma6_holds']}",
        f"  eta* (Proposition 1's sign flip at t = 1): {'none' if eta is None else f'{eta:.6g}'}",
    ]
    if report["regime"] is None:
        return lines + ["long-time regime of the gradient flow (t -> infinity): n/a (several relations)"]
    lines.append(f"long-time regime of the gradient flow (t -> infinity): {report['regime']}")
    turns = report.get("flow_turning_points") or []
    if turns:
        lines.append("  turning points of A(t): " + ", ".join(f"{kind} at t = {flow_time(t)}" for kind, t in turns))
    if "long_time_slope" in report:
        slope, constant = report["long_time_slope"], report["long_time_constant"]
        law = (f"A(t) -> {constant:.4g} (slope 0)" if slope == 0
               else f"A(t) ~ {slope:.4g} ln t {signed(constant)}")
        lines.append(f"  long-time law of the test attention gap: {law}  (t = lr x steps)")
    return lines


def _format_random(report: dict) -> list[str]:
    def num(x, fmt=".6f"):
        return "n/a" if x is None else format(x, fmt)

    if report.get("pretraining") == "learned":
        first = [f"{report['embeddings']} embeddings in R^{report['dim']}; W_V learned in pretraining "
                 f"(sims.pretraining): the prediction uses the learned value table, achieved delta_c "
                 f"{report['achieved_delta_c']:.4f}, delta_m {report['achieved_delta_m']:.4f}"]
    else:
        first = [f"random embeddings in R^{report['dim']}: the Lemma 3 value table is realised to within "
                 f"{report['value_table_error']:.3g} (max |Phi^T W_V Phi - V|)"]
    return first + [
        f"this world's own margins (Lemma 4, mean per group): m_C = {num(report['m_C'])}, "
        f"m_CS = {num(report['m_CS'])}, m_CF = {num(report['m_CF'])}",
        f"  initial drift of the test gap dA/dt(0) = {report['initial_drift']:.6g}: context reliance starts "
        f"to {report['initial_direction']}",
        f"  rho* = {num(report['rho_star'])} (from this world's pushes of C and CS examples); this mixture has "
        f"rho = {report['rho']:.4g}",
        "  (eta*, the regime and the long-time law are closed forms of the paper's embeddings and table: n/a)",
    ]
