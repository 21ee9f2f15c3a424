"""Pictures: sample grids, progress GIFs, loss curves, the Pareto plot and the explorer.

Every figure a notebook shows is also saved, as PNG (for the README) and PDF
(for the report), under a stable name (``save_figure``). Matplotlib runs on
the Agg backend when there is no display, so a headless run still saves.
"""
from __future__ import annotations

import io
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from . import paths
from .data import to_uint8
from .zoo import is_kd_name


def image_grid(images: torch.Tensor | np.ndarray, nrow: int = 10, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images into one uint8 array (H, W, C).

    ``images``: float (N, C, H, W) in [-1, 1], or uint8 (N, C, H, W) / (N, H, W, C).
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if images.dtype != torch.uint8:
        images = to_uint8(images.cpu())
    if images.ndim != 4:
        raise ValueError(f"expected a batch (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        images = images.permute(0, 3, 1, 2)
    n, c, h, w = images.shape
    ncol = min(nrow, n) if n else 1
    nr = max(1, math.ceil(n / ncol))
    grid = np.full((nr * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = arr[i]
    return grid


def save_sample_sheet(images: torch.Tensor, path: str | Path, nrow: int = 10) -> Path:
    """Save a grid of ``images`` as a PNG (lossless)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = image_grid(images, nrow=nrow)
    PILImage.fromarray(g[..., 0] if g.shape[-1] == 1 else g).save(path)
    return path


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _figures_as_png()
    return plt


def _figures_as_png() -> None:
    """In an IPython kernel whose matplotlib backend is not the inline one (the notebook runner's Agg),
    ``display(fig)`` would print ``<Figure ...>``: register the PNG formatter the inline backend would have,
    so that executed notebooks keep their figures."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    import matplotlib

    ip = get_ipython()
    if ip is None or "inline" in matplotlib.get_backend() or getattr(ip, "_gankd_png_figures", False):
        return
    select_figure_formats(ip, {"png"}, bbox_inches="tight")
    ip._gankd_png_figures = True


def _has_display() -> bool:
    if os.environ.get("GANKD_HEADLESS"):  # set by the notebook runner (papermill)
        return False
    try:
        from IPython import get_ipython

        if get_ipython() is not None:
            return True
    except ImportError:
        pass
    return bool(os.environ.get("DISPLAY"))


# the line a figure of a profile other than full carries: its file has the name and title of the full run's
PROFILE_STAMPS = {"smoke": "smoke profile: a test run, not a result",
                  "quick": "quick profile: a short teaching run, not a result"}


def profile_of(path: str | Path) -> str | None:
    """The profile whose results folder holds ``path`` (``results/<profile>/...``, :func:`paths.profile_root`):
    "smoke" or "quick"; None for the full run's folders (the results root itself) and for paths elsewhere."""
    try:
        rel = Path(path).resolve().relative_to(paths.results_root().resolve())
    except ValueError:
        return None
    return rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in PROFILE_STAMPS else None


def save_figure(fig, path_stem: str | Path, profile: str | None = None) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf``; return both paths.

    A figure of a profile other than ``full`` (``profile``, else the one whose results folder holds the stem,
    :func:`profile_of`) gets a small grey line at its foot saying so (:data:`PROFILE_STAMPS`): its file bears the
    name and title of the full run's, and looks like a result.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    said = PROFILE_STAMPS.get(profile or profile_of(stem) or "")
    if said and not any(t.get_gid() == "gankd-profile-stamp" for t in fig.texts):
        fig.text(0.995, 0.005, said, ha="right", va="bottom", fontsize=7, color="0.35", gid="gankd-profile-stamp")
    out = []
    for ext in ("png", "pdf"):
        p = stem.with_suffix(f".{ext}")
        fig.savefig(p, dpi=150, bbox_inches="tight")
        out.append(p)
    return out


def _finish(fig, path_stem):
    # save, then detach from pyplot: the caller displays the returned figure once
    # (an inline backend would otherwise show it a second time at the end of the cell)
    if path_stem is not None:
        save_figure(fig, path_stem)
    _plt().close(fig)
    return fig


def show_grids(grids: Mapping[str, torch.Tensor | np.ndarray], nrow: int = 10, title: str | None = None,
               path_stem: str | Path | None = None, scale: float = 0.28, max_cols: int = 3):
    """Image grids side by side, one titled panel per name (e.g. teacher | scratch | KD on the same z).

    Panels are 2.5-5 inches wide (``scale`` inches per 10 pixels, clamped) and at most
    ``max_cols`` to a row, so titles stay readable however many panels there are.
    """
    plt = _plt()
    arrays = {k: image_grid(v, nrow=nrow) for k, v in grids.items()}
    h, w = next(iter(arrays.values())).shape[:2]
    panel_w = min(5.0, max(2.5, w * scale / 10))
    panel_h = panel_w * h / w
    ncols = min(len(arrays), max_cols)
    nrows = math.ceil(len(arrays) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * panel_w + 0.3, nrows * (panel_h + 0.45) + 0.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, g) in zip(axes.flat, arrays.items()):
        ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray" if g.shape[-1] == 1 else None,
                  interpolation="nearest")
        ax.set_title(name, fontsize=11)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return _finish(fig, path_stem)


def palette(names: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per name (matplotlib's tab10, then tab20), in the order given: pass the same names
    in the same order to every figure of a chapter and each model keeps its colour."""
    import matplotlib

    colors = list(matplotlib.colormaps["tab10"].colors) + list(matplotlib.colormaps["tab20"].colors[1::2])
    return {n: colors[i % len(colors)] for i, n in enumerate(dict.fromkeys(names))}


def smooth(values: Sequence[float], k: int = 25) -> np.ndarray:
    """Moving average over ``k`` steps (NaNs ignored) for readable loss curves."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return v
    k = max(1, min(k, len(v)))
    ok = ~np.isnan(v)
    num = np.convolve(np.where(ok, v, 0.0), np.ones(k), "same")
    den = np.convolve(ok.astype(float), np.ones(k), "same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def loss_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], keys: Sequence[str] = ("d_loss", "g_adv"),
                path_stem: str | Path | None = None, k: int = 25, colors: Mapping[str, tuple] | None = None,
                max_cols: int = 3):
    """One panel per loss key (at most ``max_cols`` to a row), one line per run (smoothed over ``k`` steps).

    Each run keeps one colour in every panel (``colors``, default :func:`palette` of the runs), and
    the legend, under the figure, lists every run.
    """
    plt = _plt()
    colors = dict(colors or palette(list(histories)))
    ncols = min(len(keys), max_cols)
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows + 0.4), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        for name, h in histories.items():
            if key in h and len(h[key]):
                ax.plot(h["step"], smooth(h[key], k), label=name, lw=1.2, color=colors.get(name))
        ax.set_title(key, fontsize=11)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colors.get(n), lw=2, label=n) for n in histories]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.06 + 0.04 * math.ceil(len(handles) / 3), 1, 1))
    return _finish(fig, path_stem)


def metric_curves(curves: Mapping[str, Sequence[Mapping[str, float]]], metrics_: Sequence[str],
                  colors: Mapping[str, tuple] | None = None, path_stem: str | Path | None = None,
                  labels: Mapping[str, str] | None = None):
    """One panel per metric, one line per model over training steps (``evaluation.learning_curves``'s result).

    KD students are drawn solid, the others dashed (:func:`zoo.is_kd_name`), each in its own colour.
    """
    plt = _plt()
    labels = dict(labels or {n: n for n in curves})
    colors = dict(colors or palette([labels[n] for n in curves]))
    fig, axes = plt.subplots(1, len(metrics_), figsize=(4.6 * len(metrics_), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics_):
        for name, pts in curves.items():
            xs = [p["step"] for p in pts if p.get(m) is not None]
            ys = [p[m] for p in pts if p.get(m) is not None]
            kd = is_kd_name(name)  # a student's later seed is keyed name@seed
            ax.plot(xs, ys, "o-" if kd else "o--", color=colors.get(labels[name]),
                    label=labels[name], lw=1.4, ms=4)
        ax.set_title(m, fontsize=11)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.05 * math.ceil(len(names) / 3), 1, 1))
    return _finish(fig, path_stem)


def progress_gif(sample_dir: str | Path, out: str | Path, duration_ms: int = 400) -> Path | None:
    """A GIF of the per-epoch sample sheets in ``sample_dir`` (training progress at a glance)."""
    frames = sorted(Path(sample_dir).glob("epoch_*.png"))
    if not frames:
        return None
    imgs = [PILImage.open(f).convert("P") for f in frames]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imgs[0].save(out, save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0)
    return out


def pareto_plot(points: Sequence[Mapping], x: str = "params", y: str = "fid", label: str = "name",
                group: str = "kind", path_stem: str | Path | None = None, xlabel: str | None = None,
                ylabel: str | None = None, lower_is_better: bool = True):
    """Quality against size on a log size axis, one marker style per group (teacher / scratch / KD).

    The quality axis says which way is better (``lower_is_better``: an FID; False for an accuracy)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    markers = {"teacher": "s", "scratch": "o", "kd": "^"}
    for g in sorted({p.get(group, "") for p in points}):
        pts = [p for p in points if p.get(group, "") == g]
        ax.scatter([p[x] for p in pts], [p[y] for p in pts], marker=markers.get(g, "D"), s=50, label=g or None)
    for p, dy in zip(points, label_offsets(points, x, y)):
        ax.annotate(str(p[label]), (p[x], p[y]), fontsize=7, xytext=(4, dy), textcoords="offset points")
    ax.set_xscale("log")
    _round_size_ticks(ax, [float(p[x]) for p in points])
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(f"{ylabel or y} ({'lower' if lower_is_better else 'higher'} is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path_stem)


def _round_size_ticks(ax, values: Sequence[float]) -> None:
    """Name round sizes on a log axis (1-2-5 per decade, or only the powers of ten over more than three decades) as
    50k, 1M, 2M: matplotlib's own labels, over less than a decade, name every minor tick (6x10^5 ... 4x10^6) and run
    into each other."""
    from matplotlib.ticker import EngFormatter, FixedLocator, NullFormatter

    vals = [v for v in values if v > 0 and math.isfinite(v)]
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1,) if last - first > 3 else (1, 2, 5)
    ticks = [m * 10.0 ** e for e in range(first, last + 1) for m in steps if lo / 1.6 <= m * 10.0 ** e <= hi * 1.6]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())


def label_offsets(points: Sequence[Mapping], x: str, y: str, near_decades: float = 0.12,
                  near_share: float = 0.04, step: float = 9.0) -> list[float]:
    """Vertical label offsets (points) for a log-x scatter: a point that sits on an earlier one (within
    ``near_decades`` of x and ``near_share`` of the y range) gets its label a line lower, so that twins of one size
    and nearly one score (a KD student and its scratch twin) keep both names readable."""
    ys = [float(p[y]) for p in points]
    span = (max(ys) - min(ys)) if ys else 0.0
    span = span or 1.0
    out: list[float] = []
    for i, p in enumerate(points):
        lx = math.log10(max(float(p[x]), 1e-12))
        near = sum(1 for q in points[:i] if abs(math.log10(max(float(q[x]), 1e-12)) - lx) < near_decades
                   and abs(float(q[y]) - float(p[y])) < near_share * span)
        out.append(3.0 - step * near)
    return out


def speed_bars(rows: Sequence[Mapping], keys: Sequence[str] = ("cpu_img_per_s",), label: str = "model",
               path_stem: str | Path | None = None, title: str | None = None, xlabel: str = "images per second",
               log: bool = True):
    """Horizontal bars of speed (or size) columns, one group per model; missing values are skipped.

    ``log``: a log axis (speeds spanning orders of magnitude); False for a linear axis from 0. Values spanning
    less than a decade get the linear axis whatever ``log`` says: on a log axis 13,790 would look a quarter of
    28,273, and its tick labels would run into each other.
    """
    plt = _plt()
    names = [str(r[label]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(rows) * len(keys) + 1.2))
    h = 0.8 / len(keys)
    shown: list[float] = []
    for j, k in enumerate(keys):
        kept = [(i, float(r[k])) for i, r in enumerate(rows) if r.get(k)]  # a missing (or zero) value gets no bar
        vals = [v for _, v in kept]
        bars = ax.barh([i + j * h for i, _ in kept], vals, height=h, label=k)
        ax.bar_label(bars, labels=[_bar_value(v) for v in vals], padding=2, fontsize=7)  # the value itself
        shown += vals
    ax.set_yticks([i + h * (len(keys) - 1) / 2 for i in range(len(rows))], names, fontsize=8)
    ax.invert_yaxis()
    if log and shown and max(shown) / min(shown) < 10:
        log = False
    if log:
        ax.set_xscale("log")
        if shown:  # every bar starts at one power of ten below the smallest, and its label fits on the right
            ax.set_xlim(10.0 ** math.floor(math.log10(min(shown))), max(shown) * 3)
    elif shown:
        ax.set_xlim(0, max(shown) * 1.18)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10)
    if len(keys) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x", which="both")
    fig.tight_layout()
    return _finish(fig, path_stem)


def _bar_value(v: float) -> str:
    """A bar's value as its label: 1,178 / 30 / 3.5 / 0.46."""
    v = float(v)
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:.2g}"


def explorer(generators: Mapping[str, Callable[..., torch.Tensor]], class_names: Sequence[str] | None = None,
             n: int = 16, seed: int = 0, class_id: int = 0, interactive: bool | None = None,
             path_stem: str | Path | None = None, nrow: int = 8, truncation: float | None = None,
             class_ids: Sequence[int] | None = None, conditional: Mapping[str, bool] | None = None,
             scale: float | None = None) -> None:
    """Pick a model, a class and a noise seed (and a truncation); see ``n`` samples. For any generator.

    ``generators`` maps a name to ``fn(n, class_id, seed) -> images (n, C, H, W) in [-1, 1]``,
    or, when ``truncation`` is given, ``fn(n, class_id, seed, truncation)`` (BigGAN, TinyGAN).
    ``conditional[name]``: whether that model takes a class (default: every model does when
    ``class_names`` is given); the class picker shows only for conditional models, with
    ``"id: name"`` options over ``class_ids`` (default: every class), and a search box when
    there are more than 20. The first model is the default.

    Every call first shows the grid of the given defaults as an ordinary image output (and
    saves it with ``path_stem``), so the picture is there headless and after the notebook is
    reopened; in a live kernel with ipywidgets (``interactive`` None or True, and
    ``GANKD_HEADLESS`` unset) the controls follow in a box of CSS class ``gankd-explorer``,
    redrawing the grid in an output area of class ``gankd-explorer-view``: once per pick (a search that changes
    the class, a slider let go), starting from the default grid already drawn. Defaults the controls could not
    show (a ``class_id`` not in ``class_ids``, a truncation outside (0, 1], n < 1, a negative seed) are refused
    before anything is drawn; the seed and sample sliders reach the defaults given.
    """
    try:
        from IPython.display import Image, display
    except ImportError:  # no IPython (a plain script): the default grid is saved, and nothing is shown
        Image = display = None
    names = list(generators)
    if not names:
        raise ValueError("explorer needs at least one generator")
    cond = {m: bool(class_names) if conditional is None else bool(conditional.get(m, False)) for m in names}
    ids = list(class_ids) if class_ids is not None else list(range(len(class_names) if class_names else 0))
    _check_explorer_defaults(n, seed, class_id, ids if any(cond.values()) else [], truncation)

    def caption(model: str, cls: int, sd: int, trunc: float | None) -> str:
        parts = [model]
        if cond[model]:
            cname = class_names[cls] if class_names and cls < len(class_names) else str(cls)
            parts.append(f"class {cls} ({cname})")
        parts.append(f"seed {sd}")
        if trunc is not None:
            parts.append(f"truncation {trunc:.2f}")
        return " | ".join(parts)

    def render(model: str, cls: int, sd: int, count: int, trunc: float | None, save: bool = False) -> bytes:
        fn = generators[model]
        imgs = fn(count, cls, sd) if trunc is None else fn(count, cls, sd, trunc)
        side = int(imgs.shape[-1])
        fig = show_grids({caption(model, cls, sd, trunc): imgs}, nrow=nrow,
                         path_stem=path_stem if save else None,
                         scale=scale if scale is not None else min(0.5, 16.0 / max(side, 16)))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()

    first = render(names[0], class_id, seed, n, truncation, save=True)
    if display is None:
        return None
    display(Image(data=first))
    if interactive is None:
        interactive = _has_display()
    if not interactive:
        return None
    try:
        import ipywidgets as W
    except ImportError:
        return None
    opts = [(f"{i}: {class_names[i]}" if class_names and i < len(class_names) else str(i), i) for i in ids]
    model_w = W.Dropdown(options=names, value=names[0], description="model")
    cls_w = W.Dropdown(options=opts, value=class_id if class_id in ids else (ids[0] if ids else None),
                       description="class")
    search_w = W.Text(value="", placeholder="type to search, e.g. retriever", description="search")
    # a redraw when a slider is let go, not at each step of a drag: a BigGAN grid takes seconds on a CPU, and
    # the redraws of a drag would queue up behind each other; the ranges hold the defaults asked for
    seed_w = W.IntSlider(value=seed, min=0, max=max(999, seed), description="seed", continuous_update=False)
    count_w = W.IntSlider(value=n, min=1, max=max(64, n), description="samples", continuous_update=False)
    trunc_w = W.FloatSlider(value=truncation or 1.0, min=min(0.02, truncation or 1.0), max=1.0, step=0.02,
                            description="truncation", continuous_update=False)
    view = W.Output()
    view.add_class("gankd-explorer-view")
    class_row = W.HBox([search_w, cls_w] if len(opts) > 20 else [cls_w])
    muted = [False]  # set while the search swaps the class list: its steps are no picks of their own

    def show(png: bytes) -> None:
        class_row.layout.display = None if cond[model_w.value] and opts else "none"
        with view:
            view.clear_output(wait=True)
            display(Image(data=png))

    def redraw(_=None) -> None:
        if muted[0]:
            return
        show(render(model_w.value, cls_w.value if cls_w.value is not None else 0, seed_w.value, count_w.value,
                    trunc_w.value if truncation is not None else None))

    def on_search(change) -> None:
        q = change["new"].strip().lower()
        hits = [o for o in opts if q in o[0].lower()] if q else opts
        if not hits:  # keep the last pick while the query matches nothing
            return
        before = cls_w.value
        muted[0] = True
        try:
            cls_w.options = hits  # this alone sets the first hit, a pick the next line may undo
            cls_w.value = before if any(v == before for _, v in hits) else hits[0][1]
        finally:
            muted[0] = False
        if cls_w.value != before:  # one redraw per keystroke, and none where the class stays
            redraw()

    search_w.observe(on_search, names="value")
    controls = [model_w, cls_w, seed_w, count_w] + ([trunc_w] if truncation is not None else [])
    for w in controls:
        w.observe(redraw, names="value")
    box = W.VBox([W.HBox([model_w] if len(names) > 1 else []), class_row,
                  W.HBox([seed_w, count_w] + ([trunc_w] if truncation is not None else [])), view])
    box.add_class("gankd-explorer")
    show(first)  # the defaults' grid, drawn once above: the live view starts from it
    display(box)
    return None


def _check_explorer_defaults(n: int, seed: int, class_id: int, ids: Sequence[int], truncation: float | None) -> None:
    """Refuse defaults the explorer's controls could not show: the picture saved and the controls would disagree."""
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"explorer: n={n!r} samples; give a whole number of at least 1")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"explorer: seed={seed!r}; give a whole number of at least 0")
    if ids and class_id not in ids:
        shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
        raise ValueError(f"explorer: class_id={class_id!r} is not one of the classes offered (class_ids: {shown}); "
                         "pick one of them, or add it to class_ids")
    if truncation is not None and not 0 < truncation <= 1:
        raise ValueError(f"explorer: truncation={truncation!r}; give a value in (0, 1] (1 = no truncation)")
