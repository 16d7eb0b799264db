"""Training with W_V trained at several step sizes at once, with the value-logit table recorded
along the way: the simulation behind the value-training experiment.

`value_training_run` trains one world on the fast engine (`cpi.sims.engine`, W_V trained:
T(t) = Φᵀ W_V(t) Φ is part of its state), stacked over value_lr, and reads the table T
every `record_every` steps; `value_block_means` reduces each table to the blocks of
ΔV = T(t) − T(0) and the margins that the experiment plots.
"""

from __future__ import annotations

import jax
import numpy as np

from cpi.theory.groups import training_index

from . import engine, packing
from .config import Config
from .metrics import metric_names
from .precision import precision
from .world import World, build_world

VALUE_BLOCKS = ("C_cs", "C_cc", "CS_cs", "CS_cc", "test_cc", "test_ac", "test_cs", "test_as")
"""Mean ΔV[row, column] of `value_block_means`: for the C and CS training examples, the answer
row c on the subject column s (`_cs`) and on the context column c (`_cc`); for the conflict
test examples, the context row c and the memorised-fact row a on the columns c and s."""


def value_block_means(world: World, table: np.ndarray, table0: np.ndarray) -> dict:
    """Block means of ΔV = T − T(0) (T = Φᵀ W_V Φ, the value-logit table, (K, K)), the value
    margins V[c, c] − V[c, s] on the C and CS examples, and the probability a C example's subject
    gives its answer (Proposition 3)."""
    delta = table - table0
    train, test = world.train, world.test
    c, s = train.tokens[:, 0], train.tokens[:, 1]
    ct, st, at = test.tokens[:, 0], test.tokens[:, 1], test.fact
    out = {}
    for name in ("C", "CS"):
        sel = train.group == training_index(name)
        if not sel.any():
            for key in ("cs", "cc"):
                out[f"{name}_{key}"] = np.nan
            out[f"margin_{name}"] = np.nan
            continue
        out[f"{name}_cs"] = delta[c[sel], s[sel]].mean()
        out[f"{name}_cc"] = delta[c[sel], c[sel]].mean()
        out[f"margin_{name}"] = (table[c[sel], c[sel]] - table[c[sel], s[sel]]).mean()
    out["test_cc"], out["test_ac"] = delta[ct, ct].mean(), delta[at, ct].mean()
    out["test_cs"], out["test_as"] = delta[ct, st].mean(), delta[at, st].mean()
    sel = train.group == training_index("C")
    if sel.any():
        cols = table[:, s[sel]]
        log_p = cols - np.log(np.exp(cols - cols.max(axis=0)).sum(axis=0)) - cols.max(axis=0)
        out["C_subject_prob"] = np.exp(log_p[c[sel], np.arange(sel.sum())]).mean()
    else:
        out["C_subject_prob"] = np.nan
    return out


def value_training_run(config: Config, value_lrs, record_every: int = 10) -> dict:
    """Train `config`'s world with W_V trained at each step size in `value_lrs` (W_KQ at
    train.lr), as one stack on the fast engine. Returns every engine metric of a present group
    as (V, steps + 1) arrays, `step`, `value_lr`, and, every `record_every` steps
    (`checkpoint`), the `value_block_means` of the table as (V, checkpoints) arrays, the blocks
    under `dv_<block>`. value_lr = 0 examples get exactly-zero W_V updates (frozen)."""
    world = build_world(config)
    dtype = config.train.dtype
    lr, steps = config.train.lr, config.train.steps
    if steps % record_every:
        raise ValueError(f"train.steps = {steps} is not a multiple of record_every = {record_every}")
    value_lr = np.asarray(value_lrs, dtype=dtype)
    n = len(value_lr)
    segments = steps // record_every
    with precision(dtype):
        shared, one = packing.pack(world, dtype, frozen_values=False)
        names = metric_names(shared.relation_gram.shape[-1])
        examples = jax.tree_util.tree_map(lambda x: np.broadcast_to(x, (n, *np.shape(x))), one)
        table0 = np.asarray(one.table)
        blocks = [[value_block_means(world, table0, table0)] * n]
        carry, pieces = None, []
        for i in range(segments):
            carry, recorded = engine.advance_stack(
                shared, examples, np.full(n, lr, dtype), value_lr, carry, shared_axis=None, steps=record_every,
                stride=1, train_values=True, record=True, last=i == segments - 1,
            )
            pieces.append(engine.recorded_metrics(recorded, names, last=i == segments - 1))
            tables = np.asarray(carry[0].table)
            blocks.append([value_block_means(world, tables[j], table0) for j in range(n)])
    out = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}
    out = {k: v for k, v in out.items() if not np.all(np.isnan(v))}  # absent groups
    out["step"] = np.arange(steps + 1)
    out["checkpoint"] = np.arange(0, steps + 1, record_every)
    for key in blocks[0][0]:
        out[f"dv_{key}" if not key.startswith(("margin", "C_subject")) else key] = np.array(
            [[b[i][key] for b in blocks] for i in range(n)]
        )
    out["value_lr"] = value_lr
    return out
