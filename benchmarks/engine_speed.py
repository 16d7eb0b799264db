"""Speed of the project's `cpi` commands next to a plain NumPy implementation of the same model.

The NumPy side is written here from theory/NOTES.md §0 and shares no code with `cpi.sims`, `cpi.theory` or
`tests`: W_V frozen, the Lemma 3 value-logit table V[a, y] built directly, attention of the
query r over the two visible keys (context, subject), cross-entropy, and full-batch gradient
descent with the analytic Lemma 1 gradient, in u = W_KQ φ(r) coordinates (W_KQ(t) = u(t) φ(r)ᵀ
exactly, since every gradient ends in φ(r)ᵀ), written once (`descend`). One step is loop-free
over the examples. Each job gives NumPy the job's own work: where the cpi command records every
metric at every step (run, sweep41, sweep328), `train_all` computes all of them and saves them,
and the benchmark checks every one against cpi's file; where it keeps summaries only (reduced,
large), `train` records reliance M_C on the conflict test examples and accuracy on the aligned
examples. The recording jobs also time `train` and print that ratio too: earlier versions
compared those jobs with it.

Jobs (each one: the cpi command as a whole process, wall clock, vs the same work in NumPy):
  run       `cpi run` (cold JAX compilation cache, then a second run reusing it) vs the NumPy
            script as a whole process and in-process; also a floor process (import jax, one op)
  sweep41   41 values of ρ, 2000 steps; NumPy point by point
  sweep328  41 ρ x 8 δ_M, 2000 steps, every metric; NumPy times 41 points, extrapolated
  reduced   `--engine reduced --summaries-only`, 101 x 100 points, 1000 steps; NumPy times 20
            points, extrapolated, and checks their peak/final reliance against summary.csv
  large     410 x 80 points (32 800), 2000 steps, summaries only, fast engine: the sweep to set a
            GPU's µs per point-step beside the CPU's; NumPy times 20 points, extrapolated
  memory    a 10^5-point summaries-only sweep: peak RSS of the cpi process
Each job also gives µs per point-step for both sides, against an arithmetic floor: one NumPy
softmax over a (1000, 40, 121) array (the 40 length-K softmaxes of one step, for 1000 points)
divided by 1000. A job whose cpi flags do not exist yet is reported as not available.
A sweep over ρ finer than 1/n_train has points whose worlds are equal (n_C = round(ρ·n_train));
`cpi sweep` trains each distinct world once, so those jobs also print the NumPy loop's time over
the distinct worlds alone and that ratio (engine for engine).

    .venv/bin/python benchmarks/engine_speed.py                 # all jobs
    .venv/bin/python benchmarks/engine_speed.py run sweep41     # some jobs
    .venv/bin/python benchmarks/engine_speed.py --numpy-only run

A benchmark: it prints numbers and never asserts them. Absolute times depend on the machine
(and on what else runs on it); the ratios are the point. The parent never imports jax.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
_VENV_CPI = Path(sys.executable).parent / "cpi"
CPI = str(_VENV_CPI) if _VENV_CPI.exists() else (shutil.which("cpi") or "cpi")
EXPECTED = (0.2899, 0.8992, 32, 0.5896)  # default run: initial, peak, peak step, final


# ---------------------------------------------------------------------------- plain NumPy model
def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def build(rho=0.5, delta_m=0.6, n_subjects=40, n_answers=80, delta_c=0.2, o_c=1.0, o_r=0.5,
          n_train=20, n_test=10, n_aligned=10):
    """Embeddings Φ (d, K), value table V (K, K), and the points in the order train | test |
    aligned: keys (P, 2) = (context, subject) tokens, answer (P,), memorised fact (P,)."""
    ks, ka = n_subjects, n_answers
    k, d = ks + ka + 1, ks + ka + 3  # tokens: subjects, answers, relation r = k - 1
    subj, ans, r = np.arange(ks), np.arange(ks, ks + ka), k - 1
    phi = np.zeros((d, k))  # basis: s̃ (ks), c̃ (ka), θ_S, θ_C, φ(r)
    phi[subj, subj] = phi[d - 3, subj] = np.sqrt(0.5)
    phi[ans, ans] = phi[d - 2, ans] = np.sqrt(0.5)
    phi[d - 1, r] = 1.0
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    log_z0 = np.log((ka - 1) * np.exp(o_c) + np.exp(o_r) + ks)
    table = np.zeros((k, k))  # V[a, y]: subject rows 0, answer rows o_c, relation row o_r
    table[ans, :], table[r, :] = o_c, o_r
    table[ans, ans] = logit(delta_c) + log_z0  # a context token predicts itself with prob δ_C
    n_c, n_tr = round(rho * n_train), n_train
    rows, next_answer = [], iter(ans.tolist())
    for s in range(n_train + n_test + n_aligned):  # point i takes subject i and fresh answers
        c = next(next_answer)  # context = answer; test examples memorised another answer, C none
        fact = -1 if s < n_c else next(next_answer) if n_tr <= s < n_tr + n_test else c
        if fact >= 0:  # memorised subject: softmax(v(s))_fact = δ_M
            table[fact, s] = logit(delta_m) + log_z0
        rows.append((c, s, c, fact))
    pts = np.array(rows)
    return phi, table, pts[:, :2], pts[:, 2], pts[:, 3]


def descend(world, lr=1.0, steps=300, n_train=20):
    """Full-batch GD on u: yields (σ, z, p, coef, u) at steps 0..steps, each before its update,
    with coef_iy = −∂ℓ_i/∂score_iy of the training examples."""
    phi, table, keys, answer, _ = world
    x = phi.T[keys]  # (P, 2, d) key embeddings φ(c), φ(s)
    vals = table.T[keys]  # (P, 2, K) value columns v(c), v(s)
    target = np.eye(table.shape[0])[answer[:n_train]]  # e_a of the training examples
    u = np.zeros(phi.shape[0])
    for t in range(steps + 1):
        sigma = softmax(x @ u)  # (P, 2) attention of the query r over (c, s)
        z = np.einsum("pk,pkj->pj", sigma, vals)
        p = softmax(z)  # (P, K)
        # Lemma 1: -dℓ/du = Σ_y φ(y) σ_y (g_y - Σ_y' σ_y' g_y'), g_y = v(y)ᵀ(e_a - p)
        s_tr = sigma[:n_train]
        g = np.einsum("nkj,nj->nk", vals[:n_train], target - p[:n_train])
        coef = s_tr * (g - (s_tr * g).sum(axis=1, keepdims=True))
        yield sigma, z, p, coef, u
        if t < steps:
            u += lr / n_train * np.einsum("nk,nkd->d", coef, x[:n_train])


def train(world, lr=1.0, steps=300, n_train=20, n_test=10):
    """`descend`, recording what a summary needs: {"reliance", "aligned_accuracy"} ->
    (steps + 1,) arrays."""
    answer, fact = world[3], world[4]
    te, al = np.arange(n_train, n_train + n_test), np.arange(n_train + n_test, len(answer))
    reliance, accuracy = np.empty(steps + 1), np.empty(steps + 1)
    for t, (_, _, p, _, _) in enumerate(descend(world, lr, steps, n_train)):
        p_c, p_a = p[te, answer[te]], p[te, fact[te]]
        reliance[t], accuracy[t] = np.mean(p_c / (p_c + p_a)), p[al, answer[al]].mean()
    return {"reliance": reliance, "aligned_accuracy": accuracy}


TIE = 1e-9  # float64 argmax rule: the target's logit must exceed every other token's by this
GROUPS = ("C", "CS", "CF", "S")  # the training groups whose metrics a run records
METRICS = ["reliance", "attention_context", "aligned_accuracy", "loss", "u_theta_c", "u_theta_s",
           "counterfactual_accuracy", "parametric_accuracy", "train_accuracy",
           *[f"{m}_{g}" for m in ("loss", "attention_context", "neg_grad_theta_c", "neg_grad_theta_s") for g in GROUPS]]


def train_all(world, lr=1.0, steps=300, n_train=20, n_test=10):
    """`descend`, recording every metric that `cpi run` and `cpi sweep` record (docs/guide.md
    defines them): name -> (steps + 1,) array. Group metrics are sums over a group's examples
    (one product with the group one-hot), NaN for an empty group; attention_context_S is not a
    metric (S examples have no context)."""
    phi, _, keys, answer, fact = world
    d = phi.shape[0]
    te, al = np.arange(n_train, n_train + n_test), np.arange(n_train + n_test, len(answer))
    tr = np.arange(n_train)
    onehot = np.zeros((n_train, len(GROUPS)))  # the world's training groups: C (no fact) and CS
    onehot[tr, np.where(fact[:n_train] < 0, 0, 1)] = 1.0
    count = onehot.sum(axis=0)
    scale = np.stack([count, count, np.full(4, n_train), np.full(4, n_train)], axis=1)
    scale = np.where(count[:, None] > 0, 1 / np.maximum(scale, 1), np.nan)  # (group, [loss, attention, θ pushes])
    thetas = phi.T[keys[:n_train]][:, :, [d - 2, d - 3]]  # θ_Cᵀφ(y), θ_Sᵀφ(y) of each key
    argmax_rows = np.concatenate([te, te, tr])  # counterfactual, parametric, train accuracy
    argmax_targets = np.concatenate([answer[te], fact[te], answer[:n_train]])
    argmax_groups = np.repeat(np.eye(3) / [n_test, n_test, n_train], [n_test, n_test, n_train], axis=0)
    rec = np.empty((steps + 1, len(METRICS)))
    for t, (sigma, z, p, coef, u) in enumerate(descend(world, lr, steps, n_train)):
        p_c, p_a = p[te, answer[te]], p[te, fact[te]]
        losses = -np.log(p[tr, answer[:n_train]])
        per_example = np.column_stack([losses, sigma[:n_train, 0], np.einsum("nk,nkc->nc", coef, thetas)])
        groups = onehot.T @ per_example * scale  # (group, metric)
        rec[t, :6] = (np.mean(p_c / (p_c + p_a)), sigma[te, 0].mean(), p[al, answer[al]].mean(), losses.mean(),
                      u[d - 2], u[d - 3])
        rec[t, 6:9] = chosen(z[argmax_rows], argmax_targets) @ argmax_groups
        rec[t, 9:] = groups.T.reshape(-1)
    out = {name: rec[:, j] for j, name in enumerate(METRICS)}
    del out["attention_context_S"]
    return out


def chosen(z, target):
    """1.0 where token `target` is the argmax of the logits z by more than TIE, else 0.0."""
    rows = np.arange(len(target))
    others = z.copy()
    others[rows, target] = -np.inf
    return (z[rows, target] - others.max(axis=1) > TIE).astype(float)


# ----------------------------------------------------------------------------- jobs and grids
def grid(start, stop, num):  # as `cpi sweep` expands start:stop:num (12 significant digits)
    return [float(f"{v:.12g}") for v in np.linspace(start, stop, num)]


JOBS = {  # job: (cpi sweep arguments or None, NumPy points (rho, delta_m), steps, points timed)
    "run": (None, [(0.5, 0.6)], 300, 1),
    "sweep41": (["--grid", "mixture.context_critical=0:1:41", "--set", "train.steps=2000"],
                [(r, 0.6) for r in grid(0, 1, 41)], 2000, 41),
    "sweep328": (["--grid", "mixture.context_critical=0:1:41", "--grid", "knowledge.delta_m=0.5:0.9:8",
                  "--set", "train.steps=2000"],
                 list(itertools.product(grid(0, 1, 41), grid(0.5, 0.9, 8))), 2000, 41),
    "reduced": (["--engine", "reduced", "--summaries-only", "--grid", "mixture.context_critical=0:1:101",
                 "--grid", "knowledge.delta_m=0.5:0.9:100", "--set", "train.steps=1000"],
                list(itertools.product(grid(0, 1, 101), grid(0.5, 0.9, 100))), 1000, 20),
    "large": (["--summaries-only", "--grid", "mixture.context_critical=0:1:410",
               "--grid", "knowledge.delta_m=0.5:0.9:80", "--set", "train.steps=2000"],
              list(itertools.product(grid(0, 1, 410), grid(0.5, 0.9, 80))), 2000, 20),
    "memory": (["--summaries-only", "--engine", "fast", "--grid", "mixture.context_critical=0:1:100",
                "--grid", "knowledge.delta_m=0.5:0.9:1000", "--set", "train.steps=20"], [], 20, 0),
}
TARGETS = {"sweep328": 20, "reduced": 300}  # numpy/cpi speedup to reach


def records(job):
    """Whether the job's cpi command records every metric at every step (else summaries only)."""
    args = JOBS[job][0]
    return args is None or "--summaries-only" not in args


def numpy_job(job, every_metric=None):
    """Time the NumPy side of a job in-process: (seconds, points timed, total points, results)
    with results {(rho, delta_m): {metric: curve}}. `every_metric` (default: what the job's
    command records) computes every metric with `train_all` and saves them as one .npz, as the
    command does; else `train`'s two."""
    _, points, steps, n_timed = JOBS[job]
    every_metric = records(job) if every_metric is None else every_metric
    subset = [points[i] for i in np.linspace(0, len(points) - 1, n_timed).round().astype(int)]
    start, results = time.perf_counter(), {}
    for rho, delta_m in subset:
        results[(rho, delta_m)] = (train_all if every_metric else train)(build(rho, delta_m), steps=steps)
    if every_metric:
        with tempfile.TemporaryFile() as f:
            np.savez(f, **{k: np.stack([r[k] for r in results.values()]) for k in results[subset[0]]})
    return time.perf_counter() - start, len(subset), len(points), results


# ------------------------------------------------------------------------- child processes
def spawn(cmd, env=None, timeout=3600):
    """Run cmd to completion: wall seconds, exit status, output, peak RSS (bytes) of this child."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child alone
        wall = time.perf_counter() - start
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        return wall, proc.returncode, log.read(), usage.ru_maxrss * 1024


def cpi(args, cache_dir):
    env = dict(os.environ, CPI_COMPILATION_CACHE_DIR=str(cache_dir))
    wall, rc, out, rss = spawn([CPI, *args], env)
    if rc == 0:
        return wall, rss, None, out
    if "unrecognized arguments" in out:
        return wall, rss, "not yet available (cpi does not know these flags yet)", out
    return wall, rss, f"failed (exit {rc}): {out.strip().splitlines()[-1] if out.strip() else ''}", out


def compile_note(out):
    """What cpi itself says about its compile and run time, if anything (format not relied
    on): `cpi sweep` reports its compile+run time in-process."""
    lines = re.split(r"[\r\n]+", out)
    frags = [f.strip() for line in lines for f in re.split(r"[;,()]", line)
             if re.search(r"compil|lowering|stepping", f) and re.search(r"\d s\b", f)]
    return f" [cpi says: {'; '.join(frags[-4:])}]" if frags else ""


def per_step(seconds, points, steps):
    return 1e6 * seconds / (points * steps)


def read_summary(path):
    """summary.csv -> {(rho, delta_m): row}; delta_m defaults to 0.6 when not swept."""
    with open(path) as f:
        return {_key(float(r["mixture.context_critical"]), float(r.get("knowledge.delta_m", 0.6))): r
                for r in csv.DictReader(f)}


def _key(rho, delta_m):
    return round(rho, 9), round(delta_m, 9)


def compare_summaries(results, summary):
    """Max |Δ| of peak and final reliance (and peak step) of NumPy points vs cpi's summary.csv."""
    worst, steps, matched = 0.0, 0, 0
    for key, curves in results.items():
        rel, row = curves["reliance"], summary.get(_key(*key))
        if row is None or row["nonfinite_step"]:
            continue
        matched += 1
        worst = max(worst, abs(rel.max() - float(row["peak_reliance"])), abs(rel[-1] - float(row["final_reliance"])))
        steps = max(steps, abs(int(np.argmax(rel)) - int(row["peak_step"])))
    return f"{matched} points vs summary.csv: max |Δ| peak/final reliance {worst:.2e} " \
           f"(target 1e-4: {'pass' if matched and worst <= 1e-4 else 'FAIL'}), max |Δ| peak step {steps}"


def compare_metrics(curves, saved, index=None):
    """Max |Δ| over every metric and step of NumPy `curves` vs cpi's saved arrays (row `index`
    of a sweep's), and the metrics that disagree on being NaN: an empty group's metrics are NaN
    here, NaN in a sweep's file and left out of a run's."""
    worst, differ = 0.0, []
    for name, mine in curves.items():
        if name not in saved.files:
            if not np.isnan(mine).all():
                differ.append(name)
            continue
        theirs = saved[name] if index is None else saved[name][index]
        if not np.array_equal(np.isnan(mine), np.isnan(theirs)):
            differ.append(name)
        elif not np.isnan(mine).all():
            worst = max(worst, float(np.nanmax(np.abs(mine - theirs))))
    return worst, differ


def metrics_note(results, sweep_npz):
    """One line: every metric of the NumPy points against the same points of sweep.npz."""
    saved = np.load(sweep_npz)
    rho = saved["mixture.context_critical"]  # delta_m is 0.6 when not swept, as in read_summary
    delta_m = saved["knowledge.delta_m"] if "knowledge.delta_m" in saved.files else np.full(len(rho), 0.6)
    index = {_key(r, m): i for i, (r, m) in enumerate(zip(rho, delta_m))}
    worst, differ = 0.0, set()
    for key, curves in results.items():
        w, d = compare_metrics(curves, saved, index[_key(*key)])
        worst, differ = max(worst, w), differ | set(d)
    n_metrics = len(next(iter(results.values())))
    return f"{len(results)} points vs sweep.npz, all {n_metrics} metrics at every step: max |Δ| {worst:.2e}" \
           f"{f'; NaNs differ in {sorted(differ)}' if differ else ''}"


def verdict(ok):
    return "pass" if ok else "FAIL"


# ------------------------------------------------------------------------------- the jobs
def job_run(tmp):
    cache = Path(tempfile.mkdtemp(dir=tmp))
    cold, _, err, out = cpi(["run", "--out", str(tmp / "run1")], cache)
    second, _, err2, out2 = cpi(["run", "--out", str(tmp / "run2")], cache)
    floor, *_ = spawn([sys.executable, "-c", "import jax, jax.numpy as jnp; jnp.zeros(1).block_until_ready()"],
                      dict(os.environ, CPI_COMPILATION_CACHE_DIR=str(cache)))
    np_proc, rc, _, _ = spawn([sys.executable, __file__, "--numpy-only", "run"])
    np_in, _, _, results = numpy_job("run")
    curves = results[(0.5, 0.6)]
    rel = curves["reliance"]
    got = (rel[0], rel.max(), int(np.argmax(rel)), rel[-1])
    ok = all(abs(g - e) <= 1e-4 for g, e in zip(got, EXPECTED))
    print(f"  numpy self-check: initial {got[0]:.4f} -> peak {got[1]:.4f} at step {got[2]} -> final "
          f"{got[3]:.4f} (expected {EXPECTED[0]} -> {EXPECTED[1]} at {EXPECTED[2]} -> {EXPECTED[3]}): {verdict(ok)}")
    if err or err2:
        print(f"  run       cpi {err or err2}")
        return
    worst, differ = compare_metrics(curves, np.load(tmp / "run2" / "metrics.npz"))
    print(f"  max |Δ| vs cpi over all {len(curves)} metrics and 301 steps: {worst:.2e}"
          f"{f'; NaNs differ in {differ}' if differ else ''}")
    print(f"  run       cpi cold {cold:6.2f} s, second run {second:6.2f} s{compile_note(out2)}; "
          f"floor process (import jax, one op) {floor:5.2f} s")
    print(f"            numpy whole process {np_proc:5.2f} s (exit {rc}), in-process {np_in:6.3f} s")
    print(f"            cpi second/floor {second / floor:5.2f} (target <= 2: {verdict(second / floor <= 2)}); "
          f"cpi second/numpy whole process {second / np_proc:5.1f}, cpi second/numpy in-process {second / np_in:6.0f}")
    print(f"            µs per point-step: cpi second {per_step(second, 1, 300):8.1f}, "
          f"numpy {per_step(np_in, 1, 300):6.1f}")


def job_sweep(job, tmp):
    args, points, steps, _ = JOBS[job]
    wall, rss, err, out = cpi(["sweep", *args, "--out", str(tmp / job)], Path(tempfile.mkdtemp(dir=tmp)))
    if job == "memory":  # cpi side only: 100 x 1000 points
        print(f"  {job:9s} cpi {err or f'{wall:.2f} s for 100000 points x {steps} steps'}")
        if not err:
            print(f"            peak RSS of the cpi process {rss / 2**30:.2f} GiB (target < 2 GiB: "
                  f"{verdict(rss < 2 * 2**30)}); µs per point-step {per_step(wall, 100_000, steps):.3f}")
        return
    print(f"  {job:9s} cpi {err or f'{wall:.2f} s (whole process, fresh compilation cache)'}{compile_note(out)}")
    np_s, n_timed, n_total, results = numpy_job(job)
    np_total = np_s * n_total / n_timed
    extrapolated = f" (timed {n_timed} of {n_total} points, {np_s:.2f} s, scaled x{n_total / n_timed:.1f})"
    what = "every metric, saved" if records(job) else "reliance and aligned accuracy, as a summary needs"
    print(f"            numpy ({what}) {np_total:.2f} s{extrapolated if n_timed < n_total else ''}, "
          f"in-process, {per_step(np_s, n_timed, steps):.2f} µs per point-step")
    if records(job):  # the loop that earlier versions compared with: two metrics of the job's
        np2_s, *_ = numpy_job(job, every_metric=False)
        print(f"            numpy (reliance and aligned accuracy only) {np2_s * n_total / n_timed:.2f} s, "
              f"{per_step(np2_s, n_timed, steps):.2f} µs per point-step"
              + ("" if err else f": numpy-two-metrics/cpi {np2_s * n_total / n_timed / wall:.1f}"))
    if err:
        return
    target = TARGETS.get(job)
    speedup = np_total / wall
    print(f"            numpy/cpi {speedup:.1f} " + (f"(target >= {target}: {verdict(speedup >= target)})" if target
                                                     else "(no target)")
          + f"; cpi {per_step(wall, n_total, steps):.3f} µs per point-step, peak RSS {rss / 2**30:.2f} GiB")
    distinct = len({(round(rho * 20), delta_m) for rho, delta_m in points})  # build() reads ρ as round(ρ·n_train)
    if distinct < n_total:  # cpi trains each distinct world once; so could a NumPy loop
        np_distinct = np_s * distinct / n_timed
        print(f"            {distinct} of the {n_total} points have distinct worlds (n_C = round(ρ·20)); numpy over "
              f"those only {np_distinct:.2f} s: numpy-distinct/cpi {np_distinct / wall:.1f} (engine for engine); "
              f"cpi {per_step(wall, distinct, steps):.3f} µs per distinct point-step")
    print(f"            {compare_summaries(results, read_summary(tmp / job / 'summary.csv'))}")
    if records(job):
        print(f"            {metrics_note(results, tmp / job / 'sweep.npz')}")


def softmax_floor(points=1000, repeats=5):
    """µs per point-step of the unavoidable arithmetic: one softmax over (points, 40, K)."""
    z = np.random.default_rng(0).standard_normal((points, 20 + 10 + 10, 121))
    best = min(_timed(softmax, z) for _ in range(repeats))
    return 1e6 * best / points


def _timed(f, *a):
    start = time.perf_counter()
    f(*a)
    return time.perf_counter() - start


def header():
    jax = subprocess.run([sys.executable, "-c", "import jax; print(jax.__version__, jax.devices())"],
                         capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, numpy {np.__version__}, jax {jax or '(not importable)'}")
    print(f"cpi: {CPI}")
    print(f"arithmetic floor: {softmax_floor():.2f} µs per point-step (best of 5 NumPy softmaxes over a "
          "(1000, 40, 121) float64 array, divided by 1000 points)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*", metavar="JOB", help=f"any of {', '.join(JOBS)} (default all)")
    parser.add_argument("--numpy-only", metavar="JOB", choices=list(JOBS), help="run only the NumPy side of JOB")
    args = parser.parse_args(argv)
    if set(args.jobs) - set(JOBS):
        parser.error(f"unknown job(s) {sorted(set(args.jobs) - set(JOBS))}; choose from {', '.join(JOBS)}")
    if args.numpy_only:
        seconds, n_timed, n_total, _ = numpy_job(args.numpy_only)
        print(f"numpy {args.numpy_only}: {seconds:.3f} s in-process for {n_timed} of {n_total} points")
        return
    header()
    with tempfile.TemporaryDirectory(prefix="engine_speed_") as tmp:
        for job in args.jobs or list(JOBS):
            print(f"{job}:", flush=True)
            job_run(Path(tmp)) if job == "run" else job_sweep(job, Path(tmp))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
