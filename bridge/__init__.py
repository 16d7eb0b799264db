"""The bridge: context-parametric inversion in a small decoder-only transformer that learns its
embeddings, its facts and its copying from a synthetic pretraining corpus (issue 11).

Modules: `config` (the [transformer], [pretrain], [mixture], [train] keys), `corpus` (tokens,
pretraining sequences, finetuning groups), `model` (the transformer, equinox), `pretrain`
(training and the checkpoint cache), `finetune` (the finetuning loop), `measure` (M_C,
attention, δ_C, δ_M, the Lemma 4 margins and ρ*), `run` (one run: `run(config)`), `sweep`
(grids over its keys and seeds: `run_configs`, `run_sweep`, one pretraining per digest,
vmapped finetuning).

`cpi.bridge` sits beside `cpi.sims`: it imports `cpi.theory` and a few helpers of `cpi.sims`; nothing in
`cpi.theory` or `cpi.sims` imports it; the bridge experiments (`cpi.experiments.bridge_*`) do.
"""
