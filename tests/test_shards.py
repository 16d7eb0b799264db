"""Sweeps split over independent processes (`--shard I/N`, `cpi.core.shards`) and the sweep core
they share (`cpi.core.sweep_dir`): shards then assembly write what one process writes (to
1e-12 for the toy, byte for byte for the transformer), shards may run at the same time, a
shard of another sweep's directory is refused, bad --shard values exit 2, and an interrupted
bridge sweep says what it kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cpi.sims.chunks as chunks
from cpi.cli import execute as main
from cpi.core import sweep_dir
from cpi.core.errors import ConfigError
from cpi.core.shards import Shard, parse_shard

from .interrupt import interrupt_after
from .test_bridge_model import TINY as BRIDGE_TINY

ROOT = Path(__file__).resolve().parents[1]
TOY = ["--set", "train.steps=12", "--set", "world.n_subjects=12", "--set", "world.n_answers=14",
       "--set", "mixture.n_train=8", "--set", "mixture.n_test=2", "--set", "mixture.n_aligned=2"]
FIVE = [*TOY, "--grid", "train.lr=0.5:1.5:5"]
"""Five points of one bucket: three chunks when a chunk holds at most 2 points."""


def listing(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (but the lock) and its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != ".cpi-lock"}


def assert_same_sweep(mine: Path, theirs: Path, atol: float = 1e-12) -> None:
    """The two sweep directories hold the same chunks and the same results (numbers to atol)."""
    assert sorted(p.name for p in (mine / "groups").iterdir()) == sorted(p.name for p in (theirs / "groups").iterdir())
    for name in ("sweep.json", "config.toml"):
        assert (mine / name).read_bytes() == (theirs / name).read_bytes(), name
    with np.load(mine / "sweep.npz") as a, np.load(theirs / "sweep.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)
    rows, reference = (json.loads((d / "summary.json").read_text()) for d in (mine, theirs))
    assert rows.keys() == reference.keys() and len(rows["points"]) == len(reference["points"])
    for row, ref in zip(rows["points"], reference["points"]):
        for key, value in ref.items():
            if isinstance(value, float):
                assert abs(row[key] - value) <= atol, key
            else:
                assert row[key] == value, key
    assert (mine / "summary.csv").read_text().splitlines()[0] == (theirs / "summary.csv").read_text().splitlines()[0]


@pytest.fixture
def three_chunks(monkeypatch):
    monkeypatch.setattr(chunks, "MAX_CHUNK_POINTS", 2)


# ---------------------------------------------------------------------------- --shard values


@pytest.mark.parametrize("text", ["0/0", "3/2", "2/2", "-1/2", "x", "1", "1/2/3", "a/b", ""])
def test_bad_shard_values_exit_2_and_write_nothing(tmp_path, capsys, text):
    out = tmp_path / "sweep"
    assert main(["sweep", *TOY, f"--shard={text}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--shard {text!r}" in err and "0 <= I < N" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["bridge", "--grid", "mixture.context_critical=0.25,0.5", f"--shard={text}", "--out", str(out)]) == 2
    assert f"--shard {text!r}" in capsys.readouterr().err and not out.exists()


def test_a_negative_shard_without_equals_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", *TOY, "--shard", "-1/2", "--out", str(tmp_path / "sweep")])
    assert exit_.value.code == 2 and "--shard" in capsys.readouterr().err and not (tmp_path / "sweep").exists()


def test_a_shard_is_its_round_robin_share():
    assert parse_shard("1/3") == Shard(1, 3) and parse_shard(" 0 / 1 ") == Shard(0, 1) and parse_shard(None) is None
    shares = [Shard(i, 3).share(8) for i in range(3)]
    assert shares == [[0, 3, 6], [1, 4, 7], [2, 5]]


def test_shard_flags_that_cannot_go_together_exit_2(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", *TOY, "--shard", "0/2", "--force", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["sweep", *TOY, "--shard", "0/2", "--num-processes", "2", "--out", str(out)]) == 2
    assert "--num-processes" in capsys.readouterr().err
    assert main(["bridge", *[a for s in BRIDGE_TINY for a in ("--set", s)], "--shard", "0/2", "--out", str(out)]) == 2
    assert "needs --grid" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------------- the toy


def test_two_shards_then_assembly_equal_one_process(tmp_path, capsys, three_chunks):
    assert main(["sweep", *FIVE, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    out = tmp_path / "sharded"
    assert main(["sweep", *FIVE, "--shard", "0/2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "shard 0/2: computed 2 of its 2 chunks" in said
    assert f"2 of 3 chunks of this sweep are now saved under {out}/groups" in said
    assert "missing: the chunks of shard 1/2" in said
    assert not (out / "sweep.npz").exists() and not (out / "summary.json").exists()
    # the last shard finds every chunk saved and assembles
    assert main(["sweep", *FIVE, "--shard", "1/2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "this shard wrote the results" in said and "inversion at" in said
    assert_same_sweep(out, tmp_path / "one")
    # a plain run then finds it complete
    assert main(["sweep", *FIVE, "--out", str(out)]) == 0
    assert "already holds this sweep, complete" in capsys.readouterr().out


def test_a_plain_run_computes_what_the_shards_left_and_assembles(tmp_path, capsys, three_chunks):
    assert main(["sweep", *FIVE, "--out", str(tmp_path / "one")]) == 0
    out = tmp_path / "sharded"
    assert main(["sweep", *FIVE, "--shard", "1/2", "--out", str(out)]) == 0
    assert "missing: the chunks of shard 0/2" in capsys.readouterr().out
    assert main(["sweep", *FIVE, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1 of 3 chunk(s) of this sweep are already saved" in captured.err
    assert "(2 computed, 1 reused)" in captured.out
    assert_same_sweep(out, tmp_path / "one")


def test_a_shard_of_another_sweeps_directory_is_refused_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", *TOY, "--grid", "train.lr=0.5,1", "--shard", "0/2", "--out", str(out)]) == 0
    before = listing(out)
    capsys.readouterr()
    assert main(["sweep", *TOY, "--grid", "train.lr=0.5,2", "--shard", "1/2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds another sweep" in err and "--grid" in err and "Traceback" not in err
    assert listing(out) == before


def test_a_manifest_written_meanwhile_by_another_sweep_is_refused(tmp_path):
    """Shards write the manifest only when absent or identical: one written by another sweep
    between the check and the write is refused (exit 2), not replaced."""
    def write(path, data):
        path.write_bytes(data)

    sweep_dir.write_identity_files(tmp_path, {"sweep.json": b"{}", "config.toml": b"a"}, write, exclusive=False)
    sweep_dir.write_identity_files(tmp_path, {"sweep.json": b"{}", "config.toml": b"a"}, write, exclusive=False)
    with pytest.raises(ConfigError, match="config.toml names another sweep"):
        sweep_dir.write_identity_files(tmp_path, {"sweep.json": b"{}", "config.toml": b"b"}, write, exclusive=False)
    assert (tmp_path / "config.toml").read_bytes() == b"a"


def run_cli(*argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cpi", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_two_shard_processes_at_once_write_one_sweep(tmp_path, capsys):
    """Two shard processes started together into one directory (two buckets: one chunk
    each) both exit 0, neither waits for the other, and the results equal one process's."""
    argv = [*TOY, "--grid", "train.steps=10,12", "--summaries-only"]
    out = tmp_path / "sharded"
    shards = [run_cli("sweep", *argv, "--shard", f"{i}/2", "--out", str(out)) for i in range(2)]
    outputs = [p.communicate(timeout=120) for p in shards]
    for process, (stdout, stderr) in zip(shards, outputs):
        assert process.returncode == 0, stderr
    assert any("this shard wrote the results" in stdout or "every one is saved" in stdout for stdout, _ in outputs)
    if not (out / "summary.json").exists():  # both finished at once and each left it to the other: assemble
        assert main(["sweep", *argv, "--out", str(out)]) == 0
    assert main(["sweep", *argv, "--out", str(tmp_path / "one")]) == 0
    assert_same_sweep(out, tmp_path / "one")


# ---------------------------------------------------------------------------- the transformer


BRIDGE_SETS = [a for s in BRIDGE_TINY for a in ("--set", s)]
BRIDGE_GRID = [*BRIDGE_SETS, "--grid", "mixture.context_critical=0.25,0.5", "--seeds", "2"]
"""Four points, two pretrained models (one per seed), so two chunks of two points."""


def test_two_bridge_shards_then_assembly_equal_one_process_exactly(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["bridge", *BRIDGE_GRID, "--out", str(tmp_path / "one"), "--cache", str(cache)]) == 0
    out = tmp_path / "sharded"
    assert main(["bridge", *BRIDGE_GRID, "--shard", "1/2", "--out", str(out), "--cache", str(cache)]) == 0
    said = capsys.readouterr().out
    assert "shard 1/2: computed 1 of its 1 chunks" in said and "1 of 2 chunks of this sweep are now saved" in said
    assert "missing: the chunks of shard 0/2" in said
    assert len(list((out / "runs").iterdir())) == 2 and not (out / "sweep.npz").exists()
    assert main(["bridge", *BRIDGE_GRID, "--shard", "0/2", "--out", str(out), "--cache", str(cache)]) == 0
    assert "this shard wrote the results" in capsys.readouterr().out
    one, sharded = listing(tmp_path / "one"), listing(out)
    assert one.keys() == sharded.keys() and len([k for k in one if k.startswith("runs/")]) == 4 * 3
    for name in one:
        assert sharded[name] == one[name], name
    # a shard of another sweep's directory: exit 2, nothing written
    assert main(["bridge", *BRIDGE_SETS, "--grid", "mixture.context_critical=0.25,0.75", "--shard", "0/2",
                 "--out", str(out), "--cache", str(cache)]) == 2
    assert "holds another sweep" in capsys.readouterr().err
    assert listing(out) == sharded


def test_an_interrupted_bridge_sweep_says_what_it_kept(tmp_path):
    """Ctrl-C during a bridge sweep (the second point pretrains for ever): exit 130 at once, no
    traceback, the finished point saved under runs/ and said so; a rerun would compute the rest."""
    out = tmp_path / "sweep"
    argv = ["bridge", *BRIDGE_SETS, "--grid", "pretrain.steps=20,100000000", "--out", str(out),
            "--cache", str(tmp_path / "cache")]
    status, _, stderr, waited = interrupt_after(argv, out, "runs/*/summary.json", settle=0.5)
    assert status == 130, stderr
    assert waited < 5, waited
    assert "Traceback" not in stderr
    assert f"1 of 2 point(s) of this sweep are saved under {out}/runs" in stderr and "rerun the same command" in stderr
    assert not (out / "summary.json").exists()
