"""The two integrators of the reduced system (`cpi.theory.reduced_system`): gradient descent as a
compiled scan, gradient flow with an ODE solver. Both evaluate `state_metrics`, the one
definition of the recursion.

Precision: theory computes in float64. JAX's 64-bit mode is switched on by `float64()` for
the duration of each call (thread-local), never for the whole process, so that importing
theory leaves `jax_enable_x64` as the caller set it.

Descent records the metrics at steps 0, N, 2N, ... < steps and at the last step (stride N =
`record_every`), or none; it folds every step into the summary of the reliance curve and
the first non-finite step (`cpi.theory.summary` fold) inside the scan, so the summary is that of
the whole curve whatever is recorded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .reduced_system import ReducedSystem, state_metrics
from .summary import fold_finish, fold_init, fold_update, inversion_tol


def float64():
    """The context in which theory's JAX work runs: 64-bit mode for its duration."""
    return jax.enable_x64(True)


def recorded_steps(steps: int, record_every: int) -> np.ndarray:
    """The steps recorded with stride `record_every`: 0, N, 2N, ... < steps, and steps."""
    return np.append(np.arange(0, steps, record_every), steps)


SLICE_POINTS = 128
"""Descent runs a stack in slices of at most this many systems, each a compiled call whose
arrays stay in cache (faster per example than larger slices; the timings are in CHANGELOG.md)."""

SHARDED_SLICE_POINTS = 512
"""Systems per device in a slice split over several local devices: a split call costs more
to dispatch, so a sharded slice is larger than an unsharded one (the size that descended the
benchmark's 10^4 systems fastest on the 2-core CPU; the timings are in CHANGELOG.md)."""


WATCHED = ("alpha", "gaps", "drive", "A", "reliance")
"""The metrics whose first non-finite value the descent's summary reports: the state and
what moves it. Every other output (losses, accuracies, attentions, θ-components) is a
continuous function of these that is finite where they are, so the first step at which
any output turns non-finite is the same; and a summaries-only descent need not compute
the others (the compiled scan drops them)."""


def _metric_rows(metrics: dict, stack: int):
    """The WATCHED metrics of a step as one (number of values, stack) array."""
    return jnp.concatenate([jnp.reshape(metrics[key], (-1, stack)) for key in WATCHED])


_fold_update = jax.vmap(fold_update, in_axes=(0, 0, 1, None, None))


def _descend(system: ReducedSystem, steps: int, stride: int, record: bool, summarize: bool):
    """GD on a stack of systems (stacked last): (recorded metrics (T, ..., B) or None, summary
    fold (B, ...) or None)."""
    stack = system.step.shape[-1]
    alpha = jnp.zeros((system.gram.shape[0], stack), system.gram.dtype)
    fold = None
    if summarize:
        size = jax.eval_shape(lambda a: _metric_rows(state_metrics(system, a), stack), alpha).shape[0]
        fold = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (stack,) + x.shape), fold_init(size, alpha.dtype))

    def one(carry, _=None):
        alpha, fold, t = carry
        m = state_metrics(system, alpha)
        if summarize:  # relation 0's conflict reliance
            fold = _fold_update(fold, m["reliance"][0], _metric_rows(m, stack), t, inversion_tol(alpha.dtype))
        return (alpha + system.step * m["drive"], fold, t + 1), m

    def silent(carry, _):
        return one(carry)[0], None

    def block(length: int):
        """`length` steps, recording the first."""
        def body(carry, _):
            carry, m = one(carry)
            if length > 1:
                carry, _ = jax.lax.scan(silent, carry, None, length=length - 1)
            return carry, m
        return body

    # Steps 0..steps are measured (the update after the last one is never used).
    carry = (alpha, fold, jnp.zeros((), jnp.int32))
    if not record:
        carry, _ = jax.lax.scan(silent, carry, None, length=steps + 1)
        return None, carry[1]
    if stride == 1:
        carry, recorded = jax.lax.scan(one, carry, None, length=steps + 1)
        return recorded, carry[1]
    n_blocks, tail = divmod(steps, stride)
    pieces = []
    for length, count in ((stride, n_blocks), (tail, 1), (1, 1)):  # 0, N, ... < steps; steps
        if length and count:
            carry, rec = jax.lax.scan(block(length), carry, None, length=count)
            pieces.append(rec)
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *pieces), carry[1]


_descend_compiled = jax.jit(_descend, static_argnums=(1, 2, 3, 4))


def _slices(system: ReducedSystem, size: int):
    """Consecutive slices of `size` systems (the last padded with copies of its last system)."""
    for start in range(0, system.stack, size):
        def cut(x):
            part = x[..., start:start + size]
            missing = size - part.shape[-1]
            return part if not missing else np.concatenate([part, np.repeat(part[..., -1:], missing, axis=-1)], axis=-1)

        yield jax.tree_util.tree_map(cut, system)


def _place(part: ReducedSystem, devices: int):
    """A slice's leaves as NumPy arrays for one device, or, with several local devices (one
    per core on a CPU when the entry point sets that up), split along the systems (the last
    axis of every leaf) over them, so that every core descends its share of the slice."""
    if devices < 2:
        return jax.tree_util.tree_map(np.asarray, part)
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("systems",))

    def sharding(x):
        return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*([None] * (np.ndim(x) - 1)), "systems"))

    return jax.device_put(part, jax.tree_util.tree_map(sharding, part))


def descend(system: ReducedSystem, steps: int, record_every: int = 1, record: bool = True,
            summarize: bool = False):
    """Gradient descent α ← α + (η/n)h from α = 0 on every system of the stack.

    Returns (recorded, summary): recorded maps each `state_metrics` key to an array
    (B, len(recorded_steps), ...) (None when not `record`); summary is
    `cpi.theory.summary.fold_finish` of the folds (arrays over B: initial/peak/peak_step/final
    reliance M_C of relation 0's conflict example, inversion, nonfinite_step with −1 for none),
    taken over every step, when `summarize` (class forms only; None otherwise)."""
    if summarize and system.test_x1 is None:
        raise ValueError("only the class forms have a reliance curve to summarise")
    if steps < 0 or record_every < 1:
        raise ValueError(f"need steps >= 0 and record_every >= 1, got {steps} and {record_every}")
    stack = system.stack
    with float64():
        # NumPy leaves go to the compiled function as they are (jnp.asarray of each would run
        # one eager operation per leaf and slice, about a second for 10^4 examples).
        devices = len(jax.local_devices())
        per_device = SLICE_POINTS if devices < 2 else SHARDED_SLICE_POINTS
        size = devices * min(per_device, -(-stack // devices))  # a multiple of the devices
        parts = [_descend_compiled(_place(part, devices), int(steps), int(record_every), bool(record), bool(summarize))
                 for part in _slices(system, size)]
        recorded = summary = None
        if record:
            recorded = {key: np.moveaxis(np.concatenate([np.asarray(r[key]) for r, _ in parts], axis=-1)[..., :stack],
                                         -1, 0) for key in parts[0][0]}
        if summarize:
            folds = [jax.tree_util.tree_map(np.asarray, fold) for _, fold in parts]
            fold = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:stack], *folds)
            summary = fold_finish(fold)
    return recorded, summary


@jax.jit
def _rate(system, alpha):
    """dα/dt (U,) of a stack of one system whose step is 1/n (built with η = 1)."""
    return (system.step * state_metrics(system, alpha[:, None])["drive"])[:, 0]


_metrics_over_time = jax.jit(jax.vmap(state_metrics, in_axes=(None, 0)))
"""state_metrics at states α (T, U, 1): every value (T, ..., 1)."""


def solve_flow(rhs, y0, times, log_time: bool, rtol: float, atol: float, method: str = "DOP853"):
    """Integrate dy/dt = rhs(t, y) from t = 0 and return y at `times` (shape (len(times), dim)).

    log_time: integrate in τ = ln(1 + t) (dy/dτ = (1 + t)·rhs), which keeps the right-hand
    side O(1) when the drives decay like 1/t: the right choice for long horizons."""
    from scipy.integrate import solve_ivp  # here: its import costs a third of a second, and descent never needs it

    times = np.asarray(times, dtype=np.float64)
    if np.any(np.diff(times) < 0) or times[0] < 0:
        raise ValueError("times must be sorted and non-negative")
    if log_time:
        tau = np.log1p(times)

        def f(s, y):
            t = np.expm1(s)
            return (1.0 + t) * rhs(t, y)

        sol = solve_ivp(f, (0.0, tau[-1]), y0, t_eval=tau, rtol=rtol, atol=atol, method=method)
    else:
        sol = solve_ivp(rhs, (0.0, times[-1]), y0, t_eval=times, rtol=rtol, atol=atol, method=method)
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y.T


def _single(system: ReducedSystem) -> ReducedSystem:
    """A stack of one as JAX arrays (call inside `float64()`)."""
    if system.stack != 1:
        raise ValueError(f"the flow integrates one system, got a stack of {system.stack}")
    return jax.tree_util.tree_map(jnp.asarray, system)


def rate_function(system: ReducedSystem):
    """f(α) = dα/dt = h(Gram·α)/n of a stack of one built with η = 1, as a NumPy function
    (float64 on every call)."""
    with float64():
        one = _single(system)

    def f(alpha):
        with float64():
            return np.asarray(_rate(one, jnp.asarray(alpha, jnp.float64)))

    return f


def flow(system: ReducedSystem, times, log_time: bool = True, rtol: float = 1e-11, atol: float = 1e-12) -> dict:
    """Gradient flow dα/dt = h(Gram·α)/n of a stack of one system built with η = 1 (so that
    its step is 1/n), evaluated at `times` (t = η·steps of the descent). Returns the
    `state_metrics` keys as arrays (1, len(times), ...)."""
    with float64():
        one = _single(system)

        def rhs(t, alpha):
            return np.asarray(_rate(one, jnp.asarray(alpha)))

        alpha = solve_flow(rhs, np.zeros(one.gram.shape[0]), times, log_time, rtol, atol)
        raw = _metrics_over_time(one, jnp.asarray(alpha)[..., None])
        return {key: np.moveaxis(np.asarray(value), -1, 0) for key, value in raw.items()}
