"""A sweep's metrics gathered from its chunks (`cpi.sims.sweep_results.Gathered`) and written
member by member (`cpi.sims.results.write_npz` with `Deferred` arrays): checked against a
plain assembly written here, row by row."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from cpi.sims.engine import recorded_steps
from cpi.sims.results import Deferred, npz_bytes, write_npz
from cpi.sims.sweep_results import Gathered

STEPS, N = 6, 7  # recorded steps 0..6 at stride 1; seven points


def _pieces(rng):
    """Two computed chunks in shuffled order, one of them copied into two more points, one chunk
    lacking `only_a` and recording fewer steps of `short`: (points, values, rows) as
    `cpi.sims.sweep._write_results` builds them."""
    a = {"reliance": rng.normal(size=(3, STEPS + 1)), "only_a": rng.normal(size=(3, STEPS + 1)),
         "short": rng.normal(size=(3, STEPS + 1))}
    b = {"reliance": rng.normal(size=(2, STEPS + 1)), "short": rng.normal(size=(2, 3))}
    return [([4, 0, 2], a, None), ([5, 1], b, None), ([3, 6], a, [2, 0])]


def _plain(pieces):
    """The same assembly, point by point."""
    names = sorted({k for _, values, _ in pieces for k in values})
    out = {k: np.full((N, STEPS + 1), np.nan) for k in names}
    for points, values, rows in pieces:
        for r, point in enumerate(points):
            row = r if rows is None else rows[r]
            for k, v in values.items():
                out[k][point, : v.shape[1]] = v[row]
    return out


def test_gathered_metrics_equal_a_plain_assembly_with_copies_and_nan_padding():
    pieces = _pieces(np.random.default_rng(0))
    expected = _plain(pieces)
    gathered = Gathered(N, recorded_steps(STEPS, 1), [(np.array(p), v, np.arange(len(p)) if r is None else np.array(r))
                                                       for p, v, r in pieces])
    assert list(gathered) == [*sorted(expected), "step"]
    np.testing.assert_array_equal(gathered["step"], np.arange(STEPS + 1))
    for name, want in expected.items():
        np.testing.assert_array_equal(gathered[name], want)  # NaN where a chunk lacks the metric or its steps
        garbage = np.full((N, STEPS + 1), 7.0)  # a reused buffer: every entry is overwritten
        np.testing.assert_array_equal(gathered.fill(name, garbage), want)
    with pytest.raises(KeyError):
        gathered["absent"]


def test_deferred_and_strided_members_write_the_bytes_of_their_arrays():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(4, 3, 5))
    plain = {"a": np.ascontiguousarray(base[:, 0, :]), "b": np.ascontiguousarray(base[:, 2, :]),
             "c": np.arange(4), "d": np.ascontiguousarray(base[:, 1, :])}
    mixed = {"a": base[:, 0, :],  # a strided view
             "b": Deferred((4, 5), np.float64, lambda out: np.copyto(out, base[:, 2, :])),
             "c": np.arange(4),
             "d": Deferred((4, 5), np.float64, lambda out: np.copyto(out, base[:, 1, :]))}  # the buffer "b" used
    stream = io.BytesIO()
    write_npz(stream, mixed)
    assert stream.getvalue() == npz_bytes(plain)
    with np.load(io.BytesIO(stream.getvalue())) as archive:
        for name, array in plain.items():
            np.testing.assert_array_equal(archive[name], array)
    with zipfile.ZipFile(io.BytesIO(stream.getvalue())) as archive:
        assert archive.testzip() is None  # every member's CRC holds
        for name, array in plain.items():  # each member is what NumPy's own writer writes
            npy = io.BytesIO()
            np.lib.format.write_array(npy, array, allow_pickle=False)
            assert archive.read(f"{name}.npy") == npy.getvalue()
