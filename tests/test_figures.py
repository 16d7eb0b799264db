"""Figures: each plotting function shows exactly the arrays it is given, data are saved and
reused, `make_figures` writes PNG and PDF, and the presentation layer never imports the
simulator."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.collections import PathCollection

import figures
import figures.make
from figures import PLOTS
from figures.make import add_figures_parser, make_figures
from figures.style import artist
from sims import config as cfg
from sims import figure_data as fd


# ---------------------------------------------------------------------------- tiny data dicts


def tiny_inversion() -> dict:
    step = np.arange(6)
    reliance = np.array([0.3, 0.6, 0.8, 0.7, 0.6, 0.55])
    return dict(
        step=step, sim_reliance=reliance, theory_reliance=reliance + 1e-3,
        sim_attention=np.linspace(0.5, 0.7, 6), theory_attention=np.linspace(0.5, 0.71, 6),
        sim_aligned=np.array([0.4, 0.3, 0.25, 0.3, 0.32, 0.33]), theory_aligned=np.array([0.4, 0.3, 0.25, 0.3, 0.32, 0.34]),
        sim_peak=0.8, sim_peak_step=2, theory_peak=0.801, theory_peak_step=2, rho=0.5, rho_star=0.27, lr=1.0,
        values_frozen=True,
    )


def tiny_tug_of_war() -> dict:
    step = np.arange(5)
    c, cs = np.array([0.3, 0.2, 0.1, 0.08, 0.07]), np.array([-0.1, -0.1, -0.09, -0.1, -0.11])
    return dict(
        step=step, lr=1.0, sim_C=c, sim_CS=cs, sim_sum=c + cs, sim_total=c + cs, theory_C=c * 1.01,
        theory_CS=cs * 1.01, theory_sum=(c + cs) * 1.01, theory_total=(c + cs) * 1.01, sim_sign_change=3,
        theory_sign_change=3, sim_peak_step=3, theory_peak_step=3, other_groups=False,
    )


def tiny_phase_diagram() -> dict:
    rng = np.random.default_rng(0)
    return dict(
        rho_star=0.27, m_C=3.0, m_CS=-1.1, n_train=4, lr=1.0, step=np.arange(5),
        theory_rho=np.array([0.0, 0.5, 1.0]), theory_reliance=rng.uniform(size=(3, 5)),
        theory_peak_step=np.array([0, 2, 4]),
        theory_rho_lines=np.linspace(0, 1, 4), theory_initial=np.full(4, 0.3),
        theory_peak=np.array([0.3, 0.5, 0.8, 0.9]), theory_final=np.array([0.1, 0.2, 0.5, 0.9]),
        theory_drop=np.array([0.2, 0.3, 0.3, 0.0]), theory_lines_peak_step=np.array([0, 1, 3, 4]),
        sim_rho=np.array([0.0, 0.5, 0.75]), sim_initial=np.full(3, 0.3), sim_peak=np.array([0.3, 0.6, 0.85]),
        sim_final=np.array([0.1, 0.3, 0.6]), sim_drop=np.array([0.2, 0.3, 0.25]), sim_peak_step=np.array([0, 2, 3]),
        sim_inversion=np.array([False, True, True]), sim_configs=np.array(["a", "b", "c"]),
        flow_time=np.geomspace(1e-2, 1e4, 6), flow_rho=np.array([0.25, 0.75]),
        flow_A=np.array([[0, 0.1, 0, -1, -2, -3.0], [0, 0.2, 1, 2, 2.5, 3.0]]),
        flow_slope=np.array([-0.4, 0.4]), flow_constant=np.array([1.0, np.nan]),
        flow_consistent=np.array([True, False]),
    )


def tiny_three_steps() -> dict:
    eta = np.geomspace(0.1, 100, 7)
    reliance = np.stack([np.full(7, 0.29), np.linspace(0.3, 0.95, 7), np.linspace(0.31, 0.94, 7)], axis=1)
    return dict(
        eta_star=12.8, rho=0.5, rho_star=0.27, theory_eta=eta, theory_reliance=reliance,
        theory_theta_c=np.linspace(0.16, -1e-3, 7), sim_eta=np.array([1.0, 10.0]),
        sim_reliance=np.array([[0.29, 0.4, 0.5], [0.29, 0.92, 0.927]]), sim_theta_c=np.array([0.15, 0.01]),
        sim_configs=np.array(["a", "b"]),
    )


def tiny_knowledge_strength() -> dict:
    data = dict(steps=4, theory_rho=np.array([0.0, 0.5, 1.0]), n_answers=80, delta_c=0.2, delta_m=0.6)
    for short, values in (("dm", np.array([0.3, 0.6, 0.9])), ("dc", np.array([0.05, 0.1, 0.2]))):
        data.update({
            f"theory_{short}": values,
            f"theory_{short}_depth": np.arange(9.0).reshape(3, 3) / 10,
            f"theory_{short}_peak_step": np.array([[0, 2, 4]] * 3),
            f"theory_{short}_kind": np.array([[1, 0, 2]] * 3),
            f"rho_star_{short}_x": np.linspace(values[0], values[-1], 5),
            f"rho_star_{short}": np.array([0.2, 0.3, 0.4, 0.55, 0.6]),
            f"sim_{short}": np.array([values[0], values[1], values[2]]),
            f"sim_{short}_rho": np.array([0.25, 0.5, 0.75]),
            f"sim_{short}_depth": np.array([0.1, 0.2, 0.0]),
            f"sim_{short}_peak_step": np.array([1, 2, 4]),
            f"sim_{short}_kind": np.array([0, 0, 2]),
            f"sim_{short}_configs": np.array(["a", "b", "c"]),
        })
    return data


TINY = {
    "inversion": tiny_inversion,
    "tug_of_war": tiny_tug_of_war,
    "phase_diagram": tiny_phase_diagram,
    "three_steps": tiny_three_steps,
    "knowledge_strength": tiny_knowledge_strength,
}


def assert_line(fig, gid, x, y):
    line = artist(fig, gid)
    np.testing.assert_array_equal(line.get_xdata(), x)
    np.testing.assert_array_equal(line.get_ydata(), y)


def assert_offsets(fig, gid, x, y, values=None):
    points = artist(fig, gid)
    assert isinstance(points, PathCollection)
    np.testing.assert_array_equal(points.get_offsets(), np.column_stack([x, y]).reshape(-1, 2))
    if values is not None:
        np.testing.assert_array_equal(np.asarray(points.get_array()), values)


def mesh_values(fig, gid, shape):
    return np.ma.asarray(artist(fig, gid).get_array()).reshape(shape)


# ---------------------------------------------------------------------------- plotting functions


def test_every_figure_has_a_plot_and_a_data_function():
    assert list(PLOTS) == list(fd.FIGURES) == list(fd.COMPUTE) == list(fd.PARAMS)
    assert list(TINY) == list(PLOTS)


def test_inversion_plots_its_arrays():
    d = tiny_inversion()
    fig = figures.plot_inversion(d)
    for key in ("sim_reliance", "theory_reliance", "sim_attention", "theory_attention", "sim_aligned", "theory_aligned"):
        assert_line(fig, key, d["step"], d[key])
    assert_line(fig, "sim_peak", [2], [0.8])
    assert "0.800" in fig._suptitle.get_text() and "step 2" in fig._suptitle.get_text()
    labels = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert any("simulation (markers)" in s for s in labels) and any("theory (line)" in s for s in labels)


def test_tug_of_war_plots_its_arrays_and_marks_the_sign_change():
    d = tiny_tug_of_war()
    fig = figures.plot_tug_of_war(d)
    for suffix in ("", "_log"):
        for key in ("sim_C", "sim_CS", "sim_sum", "theory_C", "theory_CS", "theory_sum"):
            assert_line(fig, key + suffix, d["step"], d[key])
    assert any("t = 3" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert "step 3" in fig._suptitle.get_text()


def test_phase_diagram_plots_its_arrays():
    d = tiny_phase_diagram()
    fig = figures.plot_phase_diagram(d)
    np.testing.assert_array_equal(mesh_values(fig, "theory_reliance", (5, 3)), d["theory_reliance"].T)
    for key in ("initial", "peak", "final", "drop"):
        assert_line(fig, f"theory_{key}", d["theory_rho_lines"], d[f"theory_{key}"])
    for key in ("peak", "final", "drop"):
        assert_line(fig, f"sim_{key}", d["sim_rho"], d[f"sim_{key}"])
    inside = np.array([False, True, True, False])  # 0 < peak step < last step
    assert_line(fig, "theory_lines_peak_step", np.where(inside, d["theory_rho_lines"], np.nan),
                np.where(inside, d["theory_lines_peak_step"], np.nan))
    assert_line(fig, "sim_peak_step", d["sim_rho"][1:], d["sim_peak_step"][1:])
    for i in range(2):
        assert_line(fig, f"flow_A_{i}", d["flow_time"], d["flow_A"][i])
    law = artist(fig, "flow_law_0")
    np.testing.assert_allclose(law.get_ydata(), -0.4 * np.log(law.get_xdata()) + 1.0)
    with pytest.raises(KeyError):  # no constant, no asymptote
        artist(fig, "flow_law_1")


def test_three_steps_plots_its_arrays():
    d = tiny_three_steps()
    fig = figures.plot_three_steps(d)
    for t in range(3):
        assert_line(fig, f"theory_reliance_{t}", d["theory_eta"], d["theory_reliance"][:, t])
        assert_line(fig, f"sim_reliance_{t}", d["sim_eta"], d["sim_reliance"][:, t])
    assert_line(fig, "theory_gap", d["theory_eta"], d["theory_reliance"][:, 2] - d["theory_reliance"][:, 1])
    assert_line(fig, "sim_gap", d["sim_eta"], d["sim_reliance"][:, 2] - d["sim_reliance"][:, 1])
    assert_line(fig, "theory_theta_c", d["theory_eta"], d["theory_theta_c"])
    assert_line(fig, "sim_theta_c", d["sim_eta"], d["sim_theta_c"])
    assert "12.80" in fig._suptitle.get_text()


def test_knowledge_strength_plots_its_arrays():
    d = tiny_knowledge_strength()
    fig = figures.plot_knowledge_strength(d)
    for short in ("dm", "dc"):
        shown = mesh_values(fig, f"theory_{short}_depth", (3, 3))
        expected = np.ma.masked_where(d[f"theory_{short}_kind"] != 0, d[f"theory_{short}_depth"]).T
        np.testing.assert_array_equal(shown.mask, expected.mask)
        np.testing.assert_array_equal(shown.compressed(), expected.compressed())
        assert_line(fig, f"rho_star_{short}", d[f"rho_star_{short}_x"], d[f"rho_star_{short}"])
        inv = d[f"sim_{short}_kind"] == 0
        assert_offsets(fig, f"sim_{short}_inversion", d[f"sim_{short}"][inv], d[f"sim_{short}_rho"][inv],
                       d[f"sim_{short}_depth"][inv])
        assert_offsets(fig, f"sim_{short}_none", d[f"sim_{short}"][~inv], d[f"sim_{short}_rho"][~inv])


def test_first_peak_kinds():
    r = np.array([
        [0.3, 0.5, 0.9, 0.6, 0.7, 0.95],  # rises, falls to 0.6, recovers above the peak
        [0.3, 0.2, 0.1, 0.15, 0.1, 0.05],  # falls from step 0
        [0.3, 0.4, 0.5, 0.6, 0.7, 0.8],  # still rising
    ])
    out = fd.first_peak(r)
    np.testing.assert_array_equal(out["kind"], [fd.INVERSION, fd.NO_RISE, fd.NO_PEAK])
    np.testing.assert_array_equal(out["peak_step"], [2, 0, 5])
    np.testing.assert_allclose(out["depth"], [0.3, 0.3 - 0.05, 0.0])


# ---------------------------------------------------------------------------- data: save and reuse


def tiny_base() -> cfg.Config:
    return cfg.with_values(
        cfg.Config(),
        {"world.n_subjects": 8, "world.n_answers": 16, "mixture.n_train": 4, "mixture.n_test": 2,
         "mixture.n_aligned": 2, "train.steps": 6},
    )


def test_inversion_data_is_saved_and_reused(tmp_path, monkeypatch):
    base = tiny_base()
    first = fd.inversion_data(base, data_dir=tmp_path)
    # simulation and exact reduced theory agree (the figure's premise)
    np.testing.assert_allclose(first["sim_reliance"], first["theory_reliance"], atol=1e-10)
    np.testing.assert_allclose(first["sim_aligned"], first["theory_aligned"], atol=1e-10)
    assert cfg.load_text(first["config"]) == base
    saved = tmp_path / "inversion.npz"
    assert saved.exists()
    before = saved.read_bytes()

    def boom(*args, **kwargs):
        raise AssertionError("recomputed although the saved data match")

    monkeypatch.setitem(fd.COMPUTE, "inversion", boom)
    again = fd.inversion_data(base, data_dir=tmp_path)
    assert again.keys() == first.keys()
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
    assert saved.read_bytes() == before
    assert fd.is_saved("inversion", base, tmp_path)
    # a changed base config or force recomputes
    changed = cfg.with_values(base, {"train.lr": 0.5})
    assert not fd.is_saved("inversion", changed, tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):
        fd.inversion_data(changed, data_dir=tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):
        fd.inversion_data(base, data_dir=tmp_path, force=True)


def test_parameters_enter_the_inputs_hash(tmp_path, monkeypatch):
    calls = []

    def fake(base, work, **params):
        calls.append(params)
        return tiny_three_steps()

    monkeypatch.setitem(fd.COMPUTE, "three_steps", fake)
    fd.three_steps_data(data_dir=tmp_path)
    fd.three_steps_data(data_dir=tmp_path)
    assert len(calls) == 1 and calls[0] == fd.PARAMS["three_steps"]
    fd.three_steps_data(data_dir=tmp_path, n_eta=5)
    assert len(calls) == 2 and calls[1]["n_eta"] == 5
    with pytest.raises(TypeError, match="no parameter"):
        fd.three_steps_data(data_dir=tmp_path, bogus=1)


def test_saved_data_have_deterministic_bytes():
    d = tiny_phase_diagram()
    assert fd.data_bytes(d) == fd.data_bytes(dict(reversed(list(d.items()))))


# ---------------------------------------------------------------------------- make step and CLI


@pytest.fixture
def fake_data(monkeypatch):
    """Every figure's computation replaced by its tiny data dict."""
    for name, make in TINY.items():
        monkeypatch.setitem(fd.COMPUTE, name, lambda base, work, _make=make, **params: _make())


def test_make_figures_writes_png_and_pdf(tmp_path, fake_data, capsys, monkeypatch):
    monkeypatch.setattr(figures.make, "DPI", 40)  # small PNGs: the test is about what is written
    paths = make_figures(tmp_path / "out")
    expected = [tmp_path / "out" / f"{name}.{ext}" for name in PLOTS for ext in ("png", "pdf")]
    assert paths == expected
    for path in paths:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF")
    assert all((tmp_path / "out" / "data" / f"{name}.npz").exists() for name in PLOTS)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(PLOTS) and all("data computed" in line for line in err)
    pdf = (tmp_path / "out" / "inversion.pdf").read_bytes()
    make_figures(tmp_path / "out", names=["inversion"])
    assert "data reused" in capsys.readouterr().err
    assert (tmp_path / "out" / "inversion.pdf").read_bytes() == pdf  # no timestamps


def test_figures_subcommand(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(figures.make, "make_figures", lambda *a, **k: calls.append((a, k)))
    parser = argparse.ArgumentParser(prog="cpi")
    add_figures_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["figures", "--out", str(tmp_path / "f"), "--force", "--set", "train.lr=0.5"])
    assert args.func(args) == 0
    (a, k), = calls
    assert a == (str(tmp_path / "f"),) and k["force"] and k["data_dir"] is None
    assert k["config"] == cfg.with_values(cfg.Config(), {"train.lr": 0.5})
    defaults = parser.parse_args(["figures"])
    assert defaults.out == "figures" and not defaults.force


def test_presentation_layer_does_not_import_the_simulator():
    code = (
        "import sys, figures, figures.make\n"
        "bad = [m for m in ('jax', 'sims', 'sims.train', 'sims.figure_data') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
