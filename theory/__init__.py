"""Pure mathematics of the one-layer toy model: closed forms, exact reduced dynamics,
asymptotics. Numbers and parameter records only; never imports `cpi.sims`.

Parameters: the named records of `params` (`Knowledge`, `GroupCounts`, the paper's defaults),
whose fields may be arrays that broadcast; the functions take them as `knowledge`, `counts`.
Modules: `pretrained` (Lemma 3 value table), `embeddings` (paper embeddings, token Gram),
`closed_forms` (t = 0 closed forms, Lemmas 4-6, Proposition 1, Theorem 1's first steps,
`paper_quantities`), `reduced` (exact α-dynamics: general and group forms, GD and flow),
built on `reduced_system` (the one representation of the reduced system), `integrate`
(its descent and flow, float64 per call) and `reduced_outputs` (the documented outputs),
`asymptotics` (ρ*, ln t law, A∞, `summarize`, `classify_regime`), `eta_star` (η*,
Theorem 1 check), `propositions` (Propositions 2 and 3), `relations` (several relations
with overlap γ: combined Gram, relation group form, first-step transfer), `mitigations`
(no-context-loss filtering, counterfactual augmentation). Derivations: NOTES.md.
No module switches JAX's 64-bit mode for the process.
"""
