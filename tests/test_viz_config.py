import dataclasses
import json

import numpy as np
import pytest
import torch

from gankd_utils import config, experiments, viz


def test_image_grid_layout_and_range():
    x = torch.linspace(-1, 1, 5 * 1 * 4 * 4).reshape(5, 1, 4, 4)
    g = viz.image_grid(x, nrow=3, pad=1)
    assert g.dtype == np.uint8 and g.shape == (2 * 5 + 1, 3 * 5 + 1, 1)
    assert g[1, 1, 0] == 0 and g.max() == 255
    nhwc = np.zeros((2, 4, 4, 3), np.uint8)
    assert viz.image_grid(nhwc, nrow=2, pad=0).shape == (4, 8, 3)


def test_figures_are_saved_as_png_and_pdf(tmp_path):
    fig = viz.show_grids({"a": torch.zeros(4, 1, 8, 8), "b": torch.ones(4, 1, 8, 8)}, nrow=2,
                         path_stem=tmp_path / "grids")
    assert (tmp_path / "grids.png").stat().st_size > 0 and (tmp_path / "grids.pdf").stat().st_size > 0
    h = {"step": [1, 2, 3], "d_loss": [1.0, 0.5, float("nan")], "g_adv": [0.1, 0.2, 0.3]}
    viz.loss_curves({"run": h}, path_stem=tmp_path / "curves")
    viz.pareto_plot([{"name": "t", "params": 1e6, "fid": 5, "kind": "teacher"},
                     {"name": "s", "params": 1e4, "fid": 9, "kind": "kd"}], path_stem=tmp_path / "pareto")
    assert all((tmp_path / f"{s}.{e}").exists() for s in ("curves", "pareto") for e in ("png", "pdf"))
    del fig


def test_progress_gif(tmp_path):
    for e in range(3):
        viz.save_sample_sheet(torch.full((4, 1, 8, 8), e / 3), tmp_path / "s" / f"epoch_{e:03d}.png", nrow=2)
    gif = viz.progress_gif(tmp_path / "s", tmp_path / "p.gif")
    from PIL import Image

    assert Image.open(gif).n_frames == 3
    assert viz.progress_gif(tmp_path / "none", tmp_path / "q.gif") is None


def test_explorer_headless_default_renders_and_saves(tmp_path):
    calls = []

    def fn(n, cls, seed):
        calls.append((n, cls, seed))
        return torch.zeros(n, 1, 8, 8)

    viz.explorer({"m": fn}, class_names=list("abc"), n=4, seed=7, class_id=2, interactive=False,
                 path_stem=tmp_path / "exp")
    assert calls == [(4, 2, 7)] and (tmp_path / "exp.png").exists()


def test_profiles_are_small_diffs():
    smoke, full = config.get("train", "smoke"), config.get("train", "full")
    assert full == config.TrainConfig()
    changed = {f.name for f in dataclasses.fields(smoke) if getattr(smoke, f.name) != getattr(full, f.name)}
    assert changed and changed <= set(config.PROFILES["smoke"]["train"])
    with pytest.raises(ValueError, match="unknown profile"):
        config.get("train", "huge")
    with pytest.raises(TypeError, match="no setting"):
        config.get("train", "smoke", epoch=3)


def test_config_saved_as_json(tmp_path):
    cfg = config.get("train", "quick", name="x")
    config.save_json(cfg, tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["name"] == "x"


def test_tables(tmp_path):
    rows = [{"model": "a", "fid500_mnistcls": 1.23456, "acc": None}, {"model": "b", "fid500_mnistcls": 2.0, "acc": 0.5}]
    csv_path, md_path = experiments.write_table(rows, tmp_path / "t")
    assert csv_path.read_text().splitlines()[0] == "model,fid500_mnistcls,acc"
    md = md_path.read_text()
    assert "| a | 1.235 | n/a |" in md and "fid500_mnistcls" in md.splitlines()[0]


def test_mnist_zoo_is_consistent():
    zoo = experiments.mnist_zoo()
    assert len(zoo) == 8
    for name, spec in zoo.items():
        if spec.role == "kd":
            assert spec.teacher in zoo and zoo[spec.teacher].role == "teacher"
            assert spec.recipe.get("kd") in ("feature", "pixel")
        assert experiments.family_teacher(zoo, name) is not None


def test_kd_gap_closed():
    rows = [{"model": "t", "family": "f", "role": "teacher", "fid": 10.0},
            {"model": "a_scratch", "family": "f", "role": "scratch", "fid": 30.0},
            {"model": "a_kd", "family": "f", "role": "kd", "fid": 15.0, "compression_x": 12.0}]
    (g,) = experiments.kd_gap_closed(rows, "fid")
    assert g["gap_closed"] == pytest.approx(0.75) and g["student"] == "a_kd"


def test_cifar10_zoo_sizes():
    from gankd_utils.metrics import count_params

    zoo = experiments.cifar10_zoo()
    t = count_params(zoo["cgan_teacher"].make_g())
    assert 3.5e6 < t < 5e6
    assert t / count_params(zoo["cgan_student_xs_kd"].make_g()) >= 10
    assert zoo["cgan_student_s_kd"].recipe["kd"] == "blackbox" and zoo["cgan_student_s_kd"].teacher == "cgan_teacher"
    assert zoo["cgan_student_s_scratch"].recipe.get("kd", "none") == "none"


def test_speed_bars_log_and_linear(tmp_path):
    from gankd_utils import viz

    rows = [{"model": "a", "x": 10.0, "y": 3.0}, {"model": "b", "x": 1000.0, "y": None}]
    fig = viz.speed_bars(rows, keys=["x", "y"], path_stem=tmp_path / "log")
    assert fig.axes[0].get_xscale() == "log"
    fig = viz.speed_bars(rows, keys=["x"], path_stem=tmp_path / "lin", log=False, xlabel="kB")
    assert fig.axes[0].get_xscale() == "linear" and fig.axes[0].get_xlim()[0] <= 0
    assert all((tmp_path / f"{s}.{e}").exists() for s in ("log", "lin") for e in ("png", "pdf"))
