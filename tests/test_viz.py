"""Figures (gankd_utils.viz): grids, curves, bars, GIFs, one explorer for every generator."""
import numpy as np
import pytest
import torch
from PIL import Image

from gankd_utils import viz


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


def test_panels_are_laid_out_in_rows():
    grids = {f"model {i}": torch.zeros(4, 1, 8, 8) for i in range(5)}
    fig = viz.show_grids(grids, nrow=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(shown) == 5  # 3 to a row: 2 rows, the sixth panel left blank
    assert [ax.get_title() for ax in shown] == list(grids)
    assert len({round(ax.get_position().y0, 3) for ax in shown}) == 2
    one = viz.show_grids({"only": torch.zeros(4, 1, 8, 8)})
    assert len(one.axes) == 1
    h = {"step": [1, 2], **{k: [1.0, 2.0] for k in ("a", "b", "c", "d")}}
    fig = viz.loss_curves({"r1": h, "r2": h}, keys=["a", "b", "c", "d"], max_cols=2)
    assert len(fig.axes) == 4 and [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d"]
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == ["r1", "r2"]


def test_palette_keeps_each_name_its_colour():
    p = viz.palette(["teacher", "scratch", "kd", "teacher"])
    assert list(p) == ["teacher", "scratch", "kd"] and len(set(p.values())) == 3
    assert viz.palette(["teacher", "scratch", "kd", "x"])["kd"] == p["kd"]
    many = viz.palette([str(i) for i in range(25)])
    assert len(many) == 25 and len(set(many.values())) == 20  # tab10 then 10 of tab20, then around again
    h = {"step": [1, 2], "d_loss": [1.0, 2.0]}
    fig = viz.loss_curves({"a": h, "b": h}, keys=["d_loss"], colors={"a": (1, 0, 0), "b": (0, 0, 1)})
    assert [tuple(line.get_color()) for line in fig.axes[0].lines] == [(1, 0, 0), (0, 0, 1)]


def test_progress_gif(tmp_path):
    for e in range(3):
        viz.save_sample_sheet(torch.full((4, 1, 8, 8), e / 3), tmp_path / "s" / f"epoch_{e:03d}.png", nrow=2)
    gif = viz.progress_gif(tmp_path / "s", tmp_path / "p.gif")
    assert Image.open(gif).n_frames == 3
    assert viz.progress_gif(tmp_path / "none", tmp_path / "q.gif") is None


def test_explorer_headless_default_renders_and_saves(tmp_path, capsys):
    calls = []

    def fn(n, cls, seed):
        calls.append((n, cls, seed))
        return torch.zeros(n, 1, 8, 8)

    assert viz.explorer({"m": fn}, class_names=list("abc"), n=4, seed=7, class_id=2, interactive=False,
                        path_stem=tmp_path / "exp") is None
    assert calls == [(4, 2, 7)] and (tmp_path / "exp.png").exists() and (tmp_path / "exp.pdf").exists()
    try:
        import IPython  # noqa: F401
    except ImportError:  # a plain script without IPython: saved, nothing shown
        return
    assert "Image" in capsys.readouterr().out  # shown as an ordinary image output


def test_explorer_truncation_and_unconditional_models(tmp_path):
    calls = []

    def biggan_like(n, cls, seed, trunc):  # BigGAN.sampler() and TinyGAN take a truncation
        calls.append(("t", n, cls, seed, trunc))
        return torch.zeros(n, 3, 16, 16)

    def uncond(n, cls, seed):
        calls.append(("u", n, cls, seed))
        return torch.zeros(n, 1, 8, 8)

    viz.explorer({"big": biggan_like}, class_names=["x"] * 30, class_ids=[5, 7], class_id=7, n=2, seed=1,
                 truncation=0.4, interactive=False)
    viz.explorer({"u": uncond, "big": biggan_like}, conditional={"u": False}, n=3, interactive=False,
                 path_stem=tmp_path / "u")
    assert calls == [("t", 2, 7, 1, 0.4), ("u", 3, 0, 0)]  # the first model is the default
    with pytest.raises(ValueError, match="at least one generator"):
        viz.explorer({}, interactive=False)


def test_explorer_builds_its_controls(tmp_path, monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.delenv("GANKD_HEADLESS", raising=False)
    calls = []

    def fn(n, cls, seed):
        calls.append((n, cls, seed))
        return torch.zeros(n, 1, 8, 8)

    assert viz.explorer({"a": fn, "b": fn}, class_names=[str(i) for i in range(10)], n=2, interactive=True) is None
    assert calls == [(2, 0, 0)]  # the saved default, drawn once: the live view starts from it


def _live_explorer(monkeypatch, **kw):
    """An explorer in a live kernel: the render calls and its controls, by description."""
    W = pytest.importorskip("ipywidgets")
    import IPython.display

    monkeypatch.delenv("GANKD_HEADLESS", raising=False)
    shown, calls = [], []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **_: shown.extend(objs))

    def fn(n, cls, seed, trunc=None):
        calls.append((n, cls, seed) if trunc is None else (n, cls, seed, trunc))
        return torch.zeros(n, 1, 8, 8)

    viz.explorer({"m": fn}, interactive=True, **kw)

    def leaves(box):
        return [w for c in box.children for w in (leaves(c) if isinstance(c, W.Box) else [c])]
    box = next(o for o in shown if isinstance(o, W.VBox))
    return calls, {getattr(w, "description", ""): w for w in leaves(box)}


def test_explorer_redraws_once_per_pick_and_only_when_a_slider_is_let_go(monkeypatch):
    names = [f"dog {i}" for i in range(25)] + ["retriever", "golden retriever"]
    calls, ws = _live_explorer(monkeypatch, class_names=names, class_id=3, n=4, truncation=0.4)
    assert len(calls) == 1  # the default grid, saved and shown in the live view alike
    assert not any(ws[k].continuous_update for k in ("seed", "samples", "truncation"))
    for q, picked in (("r", 25), ("re", 25), ("retriever", 25), ("golden", 26), ("zzz", 26), ("", 26)):
        before = len(calls)
        ws["search"].value = q
        assert ws["class"].value == picked, q
        # one redraw where the search changed the class, none where it kept it
        assert len(calls) - before == (1 if q in ("r", "golden") else 0), q
    ws["seed"].value = 5
    assert calls[-1] == (4, 26, 5, 0.4)


def test_explorer_controls_hold_the_defaults_asked_for(monkeypatch):
    calls, ws = _live_explorer(monkeypatch, class_names=list("abcdefghij"), class_ids=[5, 6, 7], class_id=6,
                               n=100, seed=2024, truncation=0.01)
    assert calls == [(100, 6, 2024, 0.01)]
    assert (ws["seed"].value, ws["samples"].value, ws["class"].value) == (2024, 100, 6)
    assert ws["truncation"].value == 0.01 and ws["seed"].max >= 2024 and ws["samples"].max >= 100
    for bad, match in (({"class_id": 0, "class_ids": [5, 6, 7]}, "class_id=0 is not one of the classes offered"),
                       ({"truncation": 0.0}, r"truncation=0.0; give a value in \(0, 1\]"),
                       ({"truncation": 1.5}, "truncation=1.5"), ({"seed": -1}, "seed=-1"), ({"n": 0}, "n=0")):
        with pytest.raises(ValueError, match=match):
            viz.explorer({"m": lambda n, c, s, t=None: torch.zeros(n, 1, 8, 8)}, class_names=list("abcdefghij"),
                         interactive=False, **bad)


def test_speed_bars_log_and_linear(tmp_path):
    rows = [{"model": "a", "x": 10.0, "y": 3.0}, {"model": "b", "x": 1000.0, "y": None}]
    fig = viz.speed_bars(rows, keys=["x", "y"], path_stem=tmp_path / "log")
    assert fig.axes[0].get_xscale() == "log"
    fig = viz.speed_bars(rows, keys=["x"], path_stem=tmp_path / "lin", log=False, xlabel="kB")
    assert fig.axes[0].get_xscale() == "linear" and fig.axes[0].get_xlim()[0] <= 0
    assert all((tmp_path / f"{s}.{e}").exists() for s in ("log", "lin") for e in ("png", "pdf"))


def test_metric_curves_one_panel_per_metric_kd_solid(tmp_path):
    curves = {"a_kd": [{"step": 1, "fid": 3.0}, {"step": 2, "fid": 2.0}],
              "a_scratch": [{"step": 1, "fid": 3.5, "acc": 0.2}, {"step": 2, "fid": 3.0, "acc": 0.3}],
              "a_distill@1": [{"step": 1, "fid": 2.5}]}
    fig = viz.metric_curves(curves, ["fid", "acc"], path_stem=tmp_path / "c")
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["fid", "acc"]
    fid_lines = {ln.get_label(): ln for ln in axes[0].get_lines()}
    assert fid_lines["a_kd"].get_linestyle() == "-" and fid_lines["a_scratch"].get_linestyle() == "--"
    assert fid_lines["a_distill@1"].get_linestyle() == "-"  # a KD student too, a later seed
    assert [ln.get_label() for ln in axes[1].get_lines()] == ["a_kd", "a_scratch", "a_distill@1"] and \
        len(axes[1].get_lines()[0].get_xdata()) == 0  # no accuracy for the KD run: an empty line, not a crash
    assert (tmp_path / "c.png").exists() and (tmp_path / "c.pdf").exists()


def test_twins_of_one_size_and_score_keep_both_labels_readable():
    pts = [{"params": 771968, "fid": 29.19}, {"params": 771968, "fid": 29.39}, {"params": 1.9e6, "fid": 14.4},
           {"params": 67196, "fid": 60.0}, {"params": 67196, "fid": 33.9}]
    offs = viz.label_offsets(pts, "params", "fid")
    assert offs[0] != offs[1]  # the IITGN twins: one label a line below the other
    assert offs[2] == offs[3] == offs[4] == offs[0]  # apart in size or in score: no shift
    assert viz.label_offsets([], "params", "fid") == []


@pytest.mark.parametrize("sizes", [(487_619, 4_304_387), (67_196, 155_896, 771_968, 3_655_616), (1e4, 1e6)])
def test_pareto_size_axis_labels_are_readable(sizes):
    """The size axis names round sizes (1-2-5: 500k, 1M, 2M) that never overlap, also when the models span less
    than a decade (log axes then label every minor tick: '3x10^6' ran into '4x10^6')."""
    fig = viz.pareto_plot([{"name": f"m{i}", "params": p, "fid": 10 + i, "kind": "kd"} for i, p in enumerate(sizes)])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the returned figure is detached from pyplot: draw it on its own canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    shown = [t for t in ax.xaxis.get_major_ticks() + ax.xaxis.get_minor_ticks()
             if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi]
    boxes = sorted((t.label1.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
    assert len(boxes) >= 2  # at least two sizes named
    assert all(a.x1 + 4 <= b.x0 for a, b in zip(boxes, boxes[1:]))  # a gap between neighbours: none runs into the next
    texts = [t.label1.get_text() for t in shown]
    assert all(any(c.isdigit() for c in s) and "times" not in s and "^" not in s for s in texts), texts


def test_speed_bars_name_each_value_and_start_at_one_baseline():
    """On a log axis a bar's length says little: each bar carries its value, and all start at one power of ten."""
    rows = [{"model": "teacher", "cpu_img_per_s": 30.4}, {"model": "student", "cpu_img_per_s": 1178.2},
            {"model": "untimed", "cpu_img_per_s": None}]
    fig = viz.speed_bars(rows)
    ax = fig.axes[0]
    assert {t.get_text() for t in ax.texts} == {"30", "1,178"}  # the untimed model gets no bar and no label
    lo, hi = ax.get_xlim()
    assert lo == 10 and hi >= 3 * 1178  # a common baseline below the slowest, room for the fastest's label
    lin = viz.speed_bars([{"step": "fp32", "file_kb": 271.3}, {"step": "fp16", "file_kb": 3.5}], keys=["file_kb"],
                         label="step", log=False)
    assert {t.get_text() for t in lin.axes[0].texts} == {"271", "3.5"} and lin.axes[0].get_xlim()[0] == 0


def test_speed_bars_within_a_decade_use_a_linear_axis_from_zero():
    """On a log axis 13,790 would look a quarter of 28,273: bars within a decade are drawn to scale."""
    fig = viz.speed_bars([{"model": "int8", "cpu_img_per_s": 13790.0}, {"model": "fp32", "cpu_img_per_s": 28273.0}])
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0 and ax.get_xlim()[1] > 28273
    wide = viz.speed_bars([{"model": "a", "cpu_img_per_s": 30.0}, {"model": "b", "cpu_img_per_s": 3000.0}])
    assert wide.axes[0].get_xscale() == "log"


def test_figures_of_smoke_and_quick_say_they_are_no_result(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "r"))
    stamps = {}
    for where in ("smoke/03_mnist", "quick/03_mnist", "03_mnist", "../elsewhere"):
        fig = viz.speed_bars([{"model": "a", "cpu_img_per_s": 3.0}], path_stem=tmp_path / "r" / where / "speed")
        stamps[where] = [t.get_text() for t in fig.texts if t.get_gid() == "gankd-profile-stamp"]
        assert (tmp_path / "r" / where / "speed.png").exists()
    assert stamps == {"smoke/03_mnist": ["smoke profile: a test run, not a result"],
                      "quick/03_mnist": ["quick profile: a short teaching run, not a result"],
                      "03_mnist": [], "../elsewhere": []}  # the full run's folders, and any other: no stamp
    fig = viz.speed_bars([{"model": "a", "cpu_img_per_s": 3.0}])
    viz.save_figure(fig, tmp_path / "x", profile="smoke")
    viz.save_figure(fig, tmp_path / "x", profile="smoke")  # saved again: still one line
    assert [t.get_text() for t in fig.texts] == ["smoke profile: a test run, not a result"]


def test_pareto_quality_axis_says_which_way_is_better():
    pts = [{"name": "a", "params": 1e5, "fid": 3.0, "kind": "kd"}, {"name": "b", "params": 1e6, "fid": 1.0,
                                                                     "kind": "teacher"}]
    assert viz.pareto_plot(pts, ylabel="fid10k_mnistcls").axes[0].get_ylabel() == "fid10k_mnistcls (lower is better)"
    acc = viz.pareto_plot([{**p, "acc": 0.9} for p in pts], y="acc", lower_is_better=False)
    assert acc.axes[0].get_ylabel() == "acc (higher is better)"
