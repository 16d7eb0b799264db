"""Would the fast engine's segment of steps be faster with the points on the minor axis? An experiment,
not a target, on the 328-point sweep of `engine_speed.py sweep328` (41 ρ × 8 δ_M, 2000 steps,
every metric recorded at every step, W_V frozen, shared layout, plain GD).

It runs that sweep through the project once to capture the exact arrays its segment receives,
then times, in this one process and on the same arrays, two programs that compute the same
thing (the 24 metrics of every step, the training updates, the reliance summary):

  engine  `cpi.sims.engine`'s segment, the step written for one point and `jax.vmap`ped, so the
          points lie on the leading (major) axis of every array;
  minor   the same segment written by hand with the points on the last axis: every reduction
          over slots, keys, classes and groups is then an elementwise operation along the
          points, and no vmap is traced.

Each is lowered, compiled (in-memory caches cleared, the persistent cache off) and run twice;
the script prints the seconds of each and the largest difference between the two programs'
recorded metrics. The minor program here covers only this case (shared layout, W_V frozen,
plain GD, one relation, stride 1), and its summary fold keeps the initial and peak reliance,
the peak step and the first non-finite step (the engine's also keeps the first peak and the
inversion flag: a few more elementwise operations per step).

The layout's fixed arrays (the score and gradient maps, the key mask, the θ columns) are
arguments of both programs: as constants XLA would fold them into the program, which the
engine cannot do. Measured on the 2-core development CPU, idle, three runs (float64):

  engine  lower 0.17-0.20 s, compile 0.57-0.60 s, first run 0.67-0.73 s
  minor   lower 0.09-0.10 s, compile 0.42-0.45 s, first run 0.48-0.56 s
  the two programs' metrics agree to 1.4e-13, with NaN at the same places

(Earlier versions of the engine, measured the same way: engine lower 0.37-0.55 s, compile
1.84-2.50 s, first run 1.75-2.10 s; minor lower 0.13-0.26 s, compile 1.10-1.59 s, first run
1.55-1.87 s.)

(A first version of this script closed over those arrays as constants, and the minor program
then compiled in 0.99-1.17 s and ran in 1.32-1.47 s: part of its lead was the constants.)

What the layout is worth in the engine itself, measured: `cpi.sims.engine` rewritten with the
points on the last axis throughout (a single run as one point; sweeps of one layout natively,
the others as a vmap over single points; every engine, sweep and optimizer test passing,
against the generic model to 1e-12) compiled this segment in 1.6-1.8 s and ran it in 1.6-1.7 s
in-process, but whole `cpi sweep` processes of this sweep, alternated four times with the
engine as it is, took 5.6-7.6 s against 4.6-6.7 s. No gain shows through this machine's
noise, so the engine keeps `vmap`, and the layout is not the missing third of the CPU time
that the README's 20× target needs.

    .venv/bin/python benchmarks/step_layout.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CPI_COMPILATION_CACHE", "0")  # compile times, not cache loads

from cpi.cli import configure_process  # noqa: E402  (before JAX starts: devices, XLA flags)

configure_process()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as Spec  # noqa: E402

from cpi.sims import config as cfg  # noqa: E402
from cpi.sims import engine  # noqa: E402
from cpi.sims.model import tie_tolerance  # noqa: E402
from cpi.sims.precision import precision  # noqa: E402
from cpi.sims.sweep import run_sweep  # noqa: E402
from cpi.theory.groups import TRAINING_GROUPS, has_context  # noqa: E402

STEPS = 2000
GRID = ["mixture.context_critical=0:1:41", "knowledge.delta_m=0.5:0.9:8"]


def captured_arrays():
    """(shared, points, lr) of the sweep's one chunk (one segment of steps), as the project builds and places them."""
    seen = {}
    simulate = engine.simulate

    def capture(shared, points, lr, *args, **kwargs):
        seen.update(shared=shared, points=points, lr=lr)
        return simulate(shared, points, lr, *args, **kwargs)

    engine.simulate = capture
    try:
        with tempfile.TemporaryDirectory() as out:
            run_sweep(cfg.with_values(cfg.Config(), {"train.steps": STEPS}), GRID, out=out)
    finally:
        engine.simulate = simulate
    return seen["shared"], seen["points"], seen["lr"]


def minor_segment(shared, points, names):
    """The segment with the points on the last axis: a function of the per-example arrays."""
    n, m_test = points.group_onehot.shape[1], points.test_fact.shape[1]
    slots = points.tokens.shape[1]
    tolerance = tie_tolerance(np.float64)
    tr, te, al = slice(0, n), slice(n, n + m_test), slice(n + m_test, None)

    def chosen(z, target, log_mult):  # (k, C, P) each
        other = jnp.where((target > 0) | jnp.isneginf(log_mult), -jnp.inf, z)
        alone = jnp.sum(jnp.where(target > 0, log_mult, 0.0), axis=1) == 0
        return jnp.where(alone & (jnp.sum(z * target, axis=1) - jnp.max(other, axis=1) > tolerance), 1.0, 0.0)

    def segment(a):
        count = a["lr"].shape[0]
        score_map, grad_map, theta_map = a["score_map"], a["grad_map"], a["theta_map"]
        theta_c, theta_s, to_first, key_mask = a["theta_c"], a["theta_s"], a["to_first"], a["key_mask"]

        def body(carry, i):
            (kq, fold), buffer = carry
            scores = jnp.where(key_mask[:, :, None], (score_map.T @ kq).reshape(slots, 3, count), -jnp.inf)
            exps = jnp.exp(scores - jnp.max(scores, axis=1, keepdims=True))
            sigma = exps / jnp.sum(exps, axis=1, keepdims=True)  # (N, 3, P)
            z = jnp.sum(a["values"] * sigma[:, None], axis=2)  # (N, C, P)
            weighted = z + a["log_mult"]
            top = jnp.max(weighted, axis=1, keepdims=True)
            scaled = jnp.exp(weighted - top)
            total = jnp.sum(scaled, axis=1, keepdims=True)
            lse = (top + jnp.log(total))[:, 0]  # (N, P)
            z_answer = jnp.sum(z * a["answer"], axis=1)
            losses = lse - z_answer
            residual = (scaled / total)[tr] - a["answer"][tr]
            e = jnp.sum(a["values"][tr] * residual[:, :, None], axis=1)  # (n, 3, P)
            w = sigma[tr] * (e - jnp.sum(sigma[tr] * e, axis=1, keepdims=True))
            grad = grad_map.T @ w.reshape(3 * n, count) / n  # (m, P)
            push = [-jnp.sum(w * t[tr, :, None], axis=1) * to_first[tr, None] for t in (theta_c, theta_s)]
            u = theta_map @ kq
            p_answer = jnp.exp(z_answer - lse)
            p_fact = jnp.exp(jnp.sum(z[te] * a["fact"], axis=1) - lse[te])
            onehot = a["onehot"]
            size = onehot.sum(axis=0)  # (G, P)
            by_group = lambda v: jnp.sum(onehot * v[:, None], axis=0)
            out = {"reliance": jnp.mean(p_answer[te] / (p_answer[te] + p_fact), 0),
                   "attention_context": jnp.mean(sigma[te, 0], 0), "aligned_accuracy": jnp.mean(p_answer[al], 0),
                   "loss": jnp.mean(losses[tr], 0), "u_theta_c": u[0], "u_theta_s": u[1],
                   "counterfactual_accuracy": jnp.mean(chosen(z[te], a["answer"][te], a["log_mult"][te]), 0),
                   "parametric_accuracy": jnp.mean(chosen(z[te], a["fact"], a["log_mult"][te]), 0),
                   "train_accuracy": jnp.mean(chosen(z[tr], a["answer"][tr], a["log_mult"][tr]), 0)}
            loss_g, attention_g = by_group(losses[tr]) / size, by_group(sigma[tr, 0]) / size
            push_c, push_s = by_group(push[0]) / n, by_group(push[1]) / n
            for g, group in enumerate(TRAINING_GROUPS):
                out[f"loss_{group}"] = loss_g[g]
                if has_context(group):
                    out[f"attention_context_{group}"] = attention_g[g]
                out[f"neg_grad_theta_c_{group}"] = jnp.where(size[g] > 0, push_c[g], jnp.nan)
                out[f"neg_grad_theta_s_{group}"] = jnp.where(size[g] > 0, push_s[g], jnp.nan)
            row = jnp.stack([out[k] for k in names])  # (metrics, P)
            initial, peak, peak_step, finite_at_start, bad = fold
            first, finite, reliance = i == 0, jnp.isfinite(row), out["reliance"]
            finite_at_start = jnp.where(first, finite, finite_at_start)
            higher = first | (reliance > peak)
            fold = (jnp.where(first, reliance, initial), jnp.where(higher, reliance, peak),
                    jnp.where(higher, i, peak_step), finite_at_start,
                    jnp.where((bad < 0) & jnp.any(finite_at_start & ~finite, axis=0), i, bad))
            kq = jnp.where(i < STEPS, kq - a["lr"] * grad, kq)  # the last iteration only measures
            return ((kq, fold), jax.lax.dynamic_update_index_in_dim(buffer, row, i, axis=0)), None

        zero, never = jnp.zeros((count,)), jnp.full((count,), -1, jnp.int32)
        fold = (zero, zero, never, jnp.zeros((len(names), count), bool), never)
        carry = ((jnp.zeros((score_map.shape[0], count)), fold), jnp.zeros((STEPS + 1, len(names), count)))
        (_, buffer), _ = jax.lax.scan(body, carry, jnp.arange(STEPS + 1, dtype=jnp.int32))
        return buffer

    return segment


def timed(label, lower, run):
    """Lower, compile and run twice; print the seconds; return the last run's output."""
    jax.clear_caches()
    start = time.perf_counter()
    lowered = lower()
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    compiled_at = time.perf_counter()
    runs = []
    for _ in range(2):
        begin = time.perf_counter()
        out = jax.block_until_ready(run(compiled))
        runs.append(time.perf_counter() - begin)
    print(f"{label:6s}  lower {lowered_at - start:.2f} s, compile {compiled_at - lowered_at:.2f} s, "
          f"run {runs[0]:.2f} s then {runs[1]:.2f} s")
    return out


def main():
    with precision("float64"):
        shared, points, lr = captured_arrays()
        names = engine.metric_names(shared.relation_gram.shape[-1])
        count, classes = lr.shape[0], points.class_values.shape[2]
        assert shared.score_map is not None and points.class_values is not None, "expects the shared layout, W_V frozen"
        print(f"{count} points x {STEPS} steps, {len(names)} metrics, {points.tokens.shape[1]} slots, "
              f"{classes} output classes, float64, {len(jax.devices())} device(s)")
        zero = jnp.zeros_like(lr)
        segment = engine.segment_plan(STEPS, 1)[0]  # the engine's first segment, as simulate(stacked=True) runs it
        recorded = timed("engine",
                         lambda: engine.advance_stack.lower(shared, points, lr, zero, None, train_values=False,
                                                            shared_axis=None, hyper=None, record=True,
                                                            optimizer="gd", batch_size=0, **segment),
                         lambda c: c(shared, points, lr, zero, None, hyper=None)[1])

        mesh = Mesh(np.array(jax.devices()), ("points",))
        last = lambda x: jax.device_put(x, NamedSharding(mesh, Spec(*[None] * (x.ndim - 1), "points")))
        minor_last = lambda x: last(np.moveaxis(np.asarray(x), 0, -1))
        one_hot = lambda x: jax.nn.one_hot(x, classes, dtype=jnp.float64)
        arrays = {"values": minor_last(points.class_values), "log_mult": minor_last(points.class_log_mult),
                  "answer": minor_last(one_hot(points.answer_class)), "fact": minor_last(one_hot(points.fact_class)),
                  "onehot": minor_last(points.group_onehot), "lr": last(np.asarray(lr))}
        # The layout's arrays are arguments, as they are of the engine's program: as constants
        # XLA would fold them into the program, which the engine cannot do.
        tokens, relation = np.asarray(points.tokens)[0], np.asarray(points.relation)[0]  # one layout
        arrays.update(score_map=shared.score_map, grad_map=shared.grad_map, theta_map=shared.theta_map,
                      theta_c=np.asarray(shared.theta_c)[tokens], theta_s=np.asarray(shared.theta_s)[tokens],
                      to_first=np.asarray(shared.relation_gram)[relation, 0], key_mask=np.asarray(points.key_mask)[0])
        program = jax.jit(minor_segment(shared, points, names))
        buffer = np.asarray(timed("minor", lambda: program.lower(arrays), lambda c: c(arrays)))
        recorded = engine.recorded_metrics(recorded, names, last=segment["last"])
        pairs = [(recorded[k], buffer[:, j].T) for j, k in enumerate(names)]
        same_nan = all(np.array_equal(np.isnan(a), np.isnan(b)) for a, b in pairs)
        worst = max(float(np.max(np.abs(a - b)[~np.isnan(a)], initial=0.0)) for a, b in pairs)
        print(f"largest |engine - minor| over every metric, step and point: {worst:.1e} "
              f"(NaN at the same places: {same_nan})")


if __name__ == "__main__":
    main()
