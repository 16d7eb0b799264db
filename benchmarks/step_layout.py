"""Does the full engine's step run faster with the points on the minor axis? An exploration,
not a target: the core of the engine's step for W_V frozen on a shared layout (scores from A by
one product, the softmax over 3 keys, logits over 5 output classes, log-sum-exp, the training
gradient by one product, the reliance of the conflict test points), 2000 steps of a scan over
328 points with random arrays of the engine's shapes, written twice:

  major   the points on the leading axis, as `jax.vmap` lays them out (`sims.engine` today);
  minor   the points on the last axis, every reduction over slots, keys and classes then an
          elementwise operation along the points.

Both are sharded over the local devices along the points (one host device per core, as `cpi`
sets it up), compiled, then run twice; the script prints compile and run seconds and checks
that the two agree (they do, exactly). Measured on the 2-core development CPU, three runs:
major 0.56-0.57 s compile, 1.26-1.56 s run; minor 0.49-0.55 s compile, 1.03-1.13 s run (20-30%
less): a gain on the step, not a change of order (see the README's speed section).

    .venv/bin/python benchmarks/step_layout.py
"""

from __future__ import annotations

import os
import sys
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

jax.config.update("jax_enable_x64", True)

POINTS, SLOTS, TRAIN, TEST, CLASSES, PAIRS, STEPS = 328, 40, 20, 10, 5, 41, 2000
rng = np.random.default_rng(0)
score_map = rng.standard_normal((PAIRS, 3 * SLOTS)) * 0.1
grad_map = (rng.random((3 * TRAIN, PAIRS)) < 0.05).astype(float)
key_mask = np.ones((SLOTS, 3), bool)
key_mask[::4, 0] = False  # subject-only slots see no context
values = rng.standard_normal((POINTS, SLOTS, CLASSES, 3))
log_mult = np.zeros((POINTS, SLOTS, CLASSES))
log_mult[:, :, 3], log_mult[:, :, 4] = np.log(100.0), -np.inf  # a large class and a padding class
answer = np.zeros((POINTS, SLOTS, CLASSES))
answer[:, :, 0] = 1
fact = np.zeros((POINTS, TEST, CLASSES))
fact[:, :, 1] = 1
TE = slice(TRAIN, TRAIN + TEST)


def step_major(a, values, log_mult, answer, fact):
    """a (P, m); values (P, N, C, 3); log_mult, answer (P, N, C); fact (P, m_test, C)."""
    scores = (a @ score_map).reshape(POINTS, SLOTS, 3)
    sigma = jax.nn.softmax(jnp.where(key_mask, scores, -jnp.inf), axis=-1)
    z = jnp.sum(values * sigma[:, :, None, :], axis=-1)
    weighted = z + log_mult
    top = jnp.max(weighted, axis=-1, keepdims=True)
    scaled = jnp.exp(weighted - top)
    total = jnp.sum(scaled, -1, keepdims=True)
    lse = (top + jnp.log(total))[..., 0]
    residual = (scaled / total)[:, :TRAIN] - answer[:, :TRAIN]
    e = jnp.sum(values[:, :TRAIN] * residual[..., None], axis=2)
    w = sigma[:, :TRAIN] * (e - jnp.sum(sigma[:, :TRAIN] * e, -1, keepdims=True))
    grad = w.reshape(POINTS, 3 * TRAIN) @ grad_map / TRAIN
    p_c = jnp.exp(jnp.sum(z * answer, -1)[:, TE] - lse[:, TE])
    p_a = jnp.exp(jnp.sum(z[:, TE] * fact, -1) - lse[:, TE])
    return a - grad, jnp.mean(p_c / (p_c + p_a), -1)


def step_minor(a, values, log_mult, answer, fact):
    """The same with the points last: a (m, P); values (N, C, 3, P); ... fact (m_test, C, P)."""
    scores = jnp.where(key_mask[:, :, None], (score_map.T @ a).reshape(SLOTS, 3, POINTS), -jnp.inf)
    exps = jnp.exp(scores - jnp.max(scores, axis=1, keepdims=True))
    sigma = exps / jnp.sum(exps, 1, keepdims=True)
    z = jnp.sum(values * sigma[:, None, :, :], axis=2)
    weighted = z + log_mult
    top = jnp.max(weighted, axis=1, keepdims=True)
    scaled = jnp.exp(weighted - top)
    total = jnp.sum(scaled, 1, keepdims=True)
    lse = (top + jnp.log(total))[:, 0]
    residual = (scaled / total)[:TRAIN] - answer[:TRAIN]
    e = jnp.sum(values[:TRAIN] * residual[:, :, None, :], axis=1)
    w = sigma[:TRAIN] * (e - jnp.sum(sigma[:TRAIN] * e, 1, keepdims=True))
    grad = grad_map.T @ w.reshape(3 * TRAIN, POINTS) / TRAIN
    p_c = jnp.exp(jnp.sum(z * answer, 1)[TE] - lse[TE])
    p_a = jnp.exp(jnp.sum(z[TE] * fact, 1) - lse[TE])
    return a - grad, jnp.mean(p_c / (p_c + p_a), 0)


def timed(label, step, arrays, points_axis):
    """Compile and run STEPS steps of `step` on arrays sharded along `points_axis`."""
    mesh = Mesh(np.array(jax.devices()), ("points",))
    place = lambda x: jax.device_put(x, NamedSharding(
        mesh, Spec(*[("points" if i == (points_axis % x.ndim) else None) for i in range(x.ndim)])))
    arrays = [place(x) for x in arrays]
    scan = jax.jit(lambda a, *rest: jax.lax.scan(lambda a, _: step(a, *rest), a, None, length=STEPS))
    start = time.perf_counter()
    compiled = scan.lower(*arrays).compile()
    compile_s = time.perf_counter() - start
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*arrays))
        runs.append(time.perf_counter() - start)
    print(f"{label}: compile {compile_s:.2f} s, run {runs[0]:.2f} s then {runs[1]:.2f} s "
          f"({1e6 * min(runs) / (POINTS * STEPS):.2f} µs per point-step on {len(jax.devices())} device(s))")
    return out


def main():
    print(f"{POINTS} points x {STEPS} steps, float64, {jax.devices()}")
    major = timed("major", step_major, [np.zeros((POINTS, PAIRS)), values, log_mult, answer, fact], 0)
    last = lambda x: np.moveaxis(x, 0, -1)
    minor = timed("minor", step_minor, [np.zeros((PAIRS, POINTS)), last(values), last(log_mult), last(answer),
                                        last(fact)], -1)
    print(f"max |Δ| reliance over every step: {np.max(np.abs(np.asarray(major[1]) - np.asarray(minor[1]))):.1e}")


if __name__ == "__main__":
    main()
