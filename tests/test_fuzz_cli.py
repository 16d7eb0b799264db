"""A fuzz test of the command line: random keys, values, grid specs and flags given to
`cpi run`, `cpi sweep`, `cpi theory` and `cpi config`, and damaged result files given to the
readers (`cpi plot`, `cpi export`, `cpi compare`), all run in-process.

Every outcome must be one of
- exit 0, with a complete result directory that the readers load back;
- exit 2, with a one-line `cpi COMMAND: error: ...` message, and nothing written;
- exit 1 only for a run whose numbers became non-finite (a step size that diverges), with
  its message, and nothing written;
never an uncaught exception (what a user would see as a traceback) and never a half-written
directory.

The default suite tries `EXAMPLES` cases per test (`FUZZ_EXAMPLES` in all); the slow variant
(`pytest -m slow tests/test_fuzz_cli.py`) tries `SLOW_EXAMPLES` per test. Values are drawn
small enough that a valid config trains in well under a second: the fuzz is about input,
not about scale.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpi.cli import execute
from cpi.sims import config as cfg

EXAMPLES = 25
SLOW_EXAMPLES = 300
FUZZ_EXAMPLES = 5 * EXAMPLES
"""How many cases the default suite tries (five fuzz tests of `EXAMPLES` cases each)."""

BASE = ["--set", "train.steps=4", "--set", "mixture.n_test=3", "--set", "mixture.n_aligned=2"]
"""Set before the fuzzed overrides (a later --set wins), so that a valid config is cheap."""

KEYS = cfg.all_keys()


def _typo(key: str) -> str:
    return key[:-1] if len(key) > 3 else key + "x"


keys = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(KEYS).map(_typo),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz._=-", min_size=0, max_size=16),
)
values = st.one_of(
    st.integers(min_value=-3, max_value=60).map(str),
    st.floats(min_value=-50, max_value=50, allow_nan=False).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e3", "1e-300", "true", "false", '"gd"', '"sgd"', '"adam"', '"adamw"',
                     '"paper"', '"random"', '"learned"', '"float32"', '"float64"', "[1, 2]", "{a = 1}", '"', "",
                     "0", "1", "0.5", "2.0", "-0"]),
    st.text(max_size=6),
)


def plausible(key: str):
    """Values near what `key` allows: mostly allowed ones (its choices; numbers in its range,
    capped small so that a valid config stays cheap), else just outside (a bad choice, a
    number past an end)."""
    allowed = cfg.SCHEMA.keys[key].allowed
    if isinstance(allowed[0], str):
        return st.sampled_from([*allowed, *allowed, "other"]).map(lambda v: f'"{v}"')
    lo, hi, lo_in, hi_in = allowed
    if cfg.SCHEMA.field_type(key) is int:
        inside = st.integers(min_value=int(lo), max_value=int(min(hi, lo + 12)))
        outside = st.sampled_from([int(lo) - 1, *([int(hi) + 1] if hi < 60 else [])])
        return st.one_of(inside, inside, inside, outside).map(str)
    top = min(hi, lo + 3)
    inside = st.floats(min_value=lo, max_value=top, exclude_min=not lo_in, exclude_max=not hi_in and top == hi)
    outside = st.sampled_from([lo - 0.5, *([hi + 0.5] if hi < 60 else []), *([] if lo_in else [lo])])
    return st.one_of(inside, inside, inside, outside).map(repr)


@st.composite
def override(draw) -> str:
    """One `key=value`: most often a real key with a plausible value, else anything."""
    if draw(st.integers(min_value=0, max_value=3)):
        key = draw(st.sampled_from(KEYS))
        return f"{key}={draw(plausible(key))}"
    return f"{draw(keys)}={draw(values)}"


overrides = st.lists(override(), max_size=4)
numbers = st.one_of(st.integers(min_value=-2, max_value=4).map(str),
                    st.floats(min_value=-2, max_value=2, allow_nan=False).map(lambda x: f"{x:.3g}"),
                    st.sampled_from(["", "x", "nan", "1e9"]))


@st.composite
def spec(draw) -> str:
    """One --grid spec: most often a real key over plausible values (a list, or a range of
    at most 3 points), else anything."""
    if draw(st.integers(min_value=0, max_value=3)):
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()):
            return f"{key}={','.join(draw(st.lists(plausible(key), min_size=1, max_size=3)))}"
        lo, hi = draw(plausible(key)), draw(plausible(key))
        return f"{key}={lo}:{hi}:{draw(st.integers(min_value=0, max_value=3))}"
    return draw(st.one_of(
        st.builds(lambda k, a, b, n: f"{k}={a}:{b}:{n}", keys, numbers, numbers,
                  st.one_of(st.integers(min_value=-1, max_value=4).map(str), st.sampled_from(["", "2.5", "x", "1e6"]))),
        st.builds(lambda k, vs: f"{k}={','.join(vs)}", keys, st.lists(values, min_size=0, max_size=3)),
        st.text(max_size=12),
    ))


specs = spec()


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SLOW_FUZZ = settings(FUZZ, max_examples=SLOW_EXAMPLES)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one in-process command line; an exception other than
    argparse's SystemExit propagates (the test fails, as a user would see a traceback)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = execute(argv)
        except SystemExit as exit_:  # argparse's usage errors (exit 2) and --help (exit 0)
            status = exit_.code if isinstance(exit_.code, int) else 2
    return status, out.getvalue(), err.getvalue()


def check_outcome(argv, status, stdout, stderr, out: Path | None, complete: tuple[str, ...]) -> None:
    assert "Traceback" not in stdout + stderr, argv
    if status == 0:
        if out is not None:
            assert all((out / name).is_file() for name in complete), (argv, sorted(out.iterdir()))
            assert not list(out.glob(".*.tmp")) and not (out / ".cpi-lock").exists(), argv
            if (out / "summary.json").exists():  # a shard may leave the sweep to other shards
                assert execute(["export", str(out), "--out", str(out.parent / "check.csv")]) == 0
        return
    assert status in (1, 2), (argv, status, stderr)
    assert stderr.strip(), argv
    last = stderr.strip().splitlines()[-1]
    assert "error:" in last or last.startswith("usage:") or "error: " in stderr, (argv, stderr)
    if status == 1:
        assert "non-finite" in stderr or "not finite" in stderr, (argv, stderr)
    if out is not None:
        assert not out.exists(), (argv, status, stderr, sorted(out.iterdir()))


def _fuzz_command(command: list[str], sets: list[str], extra: list[str], complete: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        argv = [*command, *BASE, *(a for s in sets for a in ("--set", s)), *extra,
                *(["--out", str(out)] if complete else [])]
        status, stdout, stderr = run_cli(argv)
        check_outcome(argv, status, stdout, stderr, out if complete else None, complete)


RUN_FILES = ("config.toml", "metrics.npz", "summary.json")
SWEEP_FILES = ("config.toml", "sweep.npz", "summary.json", "summary.csv", "sweep.json")
record_every = st.one_of(st.none(), st.integers(min_value=-2, max_value=7))


def _record(n):
    return [] if n is None else ["--record-every", str(n)]


def _fuzz_run(sets, every):
    _fuzz_command(["run"], sets, _record(every), RUN_FILES)


SHARD_FILES = ("config.toml", "sweep.json")
"""What a shard that exits 0 leaves at least (the chunks, and the rest once every shard is done)."""


def _fuzz_sweep(sets, grid, seeds, every, summaries_only, engine, shard=None):
    extra = [a for spec in grid for a in ("--grid", spec)] + _record(every)
    extra += [] if seeds is None else ["--seeds", str(seeds)]
    extra += ["--summaries-only"] if summaries_only else []
    extra += [] if engine is None else ["--engine", engine]
    extra += [] if shard is None else [f"--shard={shard}"]
    _fuzz_command(["sweep"], sets, extra, SWEEP_FILES if shard is None else SHARD_FILES)


sweep_args = dict(sets=st.lists(override(), max_size=2), grid=st.lists(specs, max_size=2),
                  seeds=st.one_of(st.none(), st.integers(-1, 2)),
                  every=record_every, summaries_only=st.booleans(),
                  engine=st.one_of(st.none(), st.sampled_from(["full", "reduced", "fast", ""])),
                  shard=st.one_of(st.none(), st.sampled_from(["0/1", "0/2", "1/2", "2/2", "0/0", "-1/2", "x", "1",
                                                              "1/0", "0/3", " 1/2"])))


@FUZZ
@given(sets=overrides, every=record_every)
def test_fuzz_run(sets, every):
    _fuzz_run(sets, every)


@FUZZ
@given(**sweep_args)
def test_fuzz_sweep(sets, grid, seeds, every, summaries_only, engine, shard):
    _fuzz_sweep(sets, grid, seeds, every, summaries_only, engine, shard)


@FUZZ
@given(sets=overrides, as_json=st.booleans(), command=st.sampled_from(["theory", "config"]))
def test_fuzz_theory_and_config(sets, as_json, command):
    flag = (["--json"] if command == "theory" else ["--toml"]) if as_json else []
    _fuzz_command([command], sets, flag, ())


@pytest.mark.slow
@SLOW_FUZZ
@given(sets=overrides, every=record_every)
def test_fuzz_run_at_length(sets, every):
    _fuzz_run(sets, every)


@pytest.mark.slow
@SLOW_FUZZ
@given(**sweep_args)
def test_fuzz_sweep_at_length(sets, grid, seeds, every, summaries_only, engine, shard):
    _fuzz_sweep(sets, grid, seeds, every, summaries_only, engine, shard)


# ---------------------------------------------------------------------------- damaged files


@pytest.fixture(scope="module")
def saved_results(tmp_path_factory):
    """A toy run and a toy sweep (the two kinds cheap enough to make here), made once."""
    root = tmp_path_factory.mktemp("saved")
    assert execute(["run", *BASE, "--out", str(root / "run")]) == 0
    assert execute(["sweep", *BASE, "--grid", "mixture.context_critical=0.25,0.75", "--out", str(root / "sweep")]) == 0
    return root


DAMAGES = ("truncate", "empty", "random", "delete", "directory", "flip")


def damage(path: Path, how: str, data: bytes, at: float) -> None:
    """Damage one file: cut it at fraction `at`, empty it, replace it with `data`, remove it,
    put a directory in its place, or flip one byte at fraction `at`."""
    original = path.read_bytes()
    if how == "truncate":
        path.write_bytes(original[: int(at * len(original))])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(data)
    elif how == "delete":
        path.unlink()
    elif how == "directory":
        path.unlink()
        path.mkdir()
    else:
        i = min(int(at * len(original)), len(original) - 1)
        path.write_bytes(original[:i] + bytes([original[i] ^ 0xFF]) + original[i + 1:])


def _fuzz_reader(saved_results, kind, name, how, data, at, command):
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / kind
        shutil.copytree(saved_results / kind, source)
        if (source / name).exists():
            damage(source / name, how, data, at)
        before = sorted(p.relative_to(tmp) for p in Path(tmp).rglob("*"))
        target = Path(tmp) / {"plot": "figure.png", "explore": "page.html"}.get(command, "table.csv")
        argv = {"plot": ["plot", str(source), "--out", str(target)],
                "export": ["export", str(source), "--out", str(target)],
                "explore": ["explore", str(source), "--out", str(target)],
                "compare": ["compare", str(source), str(saved_results / "run")]}[command]
        status, stdout, stderr = run_cli(argv)
        assert "Traceback" not in stdout + stderr and "allow_pickle" not in stderr, (argv, stderr)
        assert status in (0, 2), (argv, status, stderr)
        if status == 2:
            assert str(source) in stderr and "error:" in stderr, (argv, stderr)
            assert sorted(p.relative_to(tmp) for p in Path(tmp).rglob("*")) == before  # nothing written


reader_args = dict(
    kind=st.sampled_from(["run", "sweep"]),
    name=st.sampled_from(["metrics.npz", "summary.json", "config.toml", "sweep.npz", "sweep.json", "summary.csv"]),
    how=st.sampled_from(DAMAGES), data=st.binary(max_size=64), at=st.floats(min_value=0, max_value=1),
    command=st.sampled_from(["plot", "export", "compare", "explore"]),
)


@FUZZ
@given(**reader_args)
def test_fuzz_readers_on_damaged_files(saved_results, kind, name, how, data, at, command):
    _fuzz_reader(saved_results, kind, name, how, data, at, command)


@pytest.mark.slow
@SLOW_FUZZ
@given(**reader_args)
def test_fuzz_readers_on_damaged_files_at_length(saved_results, kind, name, how, data, at, command):
    _fuzz_reader(saved_results, kind, name, how, data, at, command)


words = st.lists(st.one_of(st.sampled_from(["run", "sweep", "theory", "plot", "export", "compare", "config", "bridge",
                                            "--out", "--set", "--grid", "--force", "--json", "--seeds", "--engine",
                                            "--record-every", "--keys", "--shard", "0/2", "-h"]),
                           st.text(max_size=8)), max_size=5)


def _fuzz_words(argv):
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        if argv[:1] in (["run"], ["sweep"], ["bridge"]) and "--keys" not in argv:
            argv = [argv[0], *BASE, *argv[1:]] if argv[0] != "bridge" else ["bridge", "--keys"]
        status, stdout, stderr = run_cli(argv)
        assert "Traceback" not in stdout + stderr, argv
        assert status in (0, 1, 2), (argv, status)
        if status == 2:
            assert stderr.strip(), argv
        if status != 0:
            assert not any(Path(tmp).iterdir()), (argv, sorted(Path(tmp).iterdir()))


@FUZZ
@given(argv=words)
def test_fuzz_words(argv):
    """Any words at all: argparse's usage errors (exit 2) or a command's own outcome. Paths
    that would be written are under a fresh temporary directory (the working directory is)."""
    _fuzz_words(argv)


@pytest.mark.slow
@SLOW_FUZZ
@given(argv=words)
def test_fuzz_words_at_length(argv):
    _fuzz_words(argv)
