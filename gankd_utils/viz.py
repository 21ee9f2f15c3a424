"""Pictures: sample grids, progress GIFs, loss curves, the Pareto plot and the explorer.

Every figure a notebook shows is also saved, as PNG (for the README) and PDF
(for the report), under a stable name (``save_figure``). Matplotlib runs on
the Agg backend when there is no display, so a headless run still saves.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch


def image_grid(images: torch.Tensor | np.ndarray, nrow: int = 10, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images into one uint8 array (H, W, C).

    ``images``: float (N, C, H, W) in [-1, 1], or uint8 (N, C, H, W) / (N, H, W, C).
    """
    from .data import to_uint8

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
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = image_grid(images, nrow=nrow)
    Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g).save(path)
    return path


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    if os.environ.get("GANKD_HEADLESS"):  # set by the notebook runner (papermill)
        return False
    try:
        from IPython import get_ipython

        if get_ipython() is not None:
            return True
    except ImportError:
        pass
    return bool(os.environ.get("DISPLAY"))


def save_figure(fig, path_stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf``; return both paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
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
               path_stem: str | Path | None = None, scale: float = 0.28):
    """Side-by-side image grids, one panel per name (e.g. teacher | scratch | KD on the same z)."""
    plt = _plt()
    arrays = {k: image_grid(v, nrow=nrow) for k, v in grids.items()}
    h, w = next(iter(arrays.values())).shape[:2]
    fig, axes = plt.subplots(1, len(arrays), figsize=(len(arrays) * w * scale / 10 + 0.5, h * scale / 10 + 0.8),
                             squeeze=False)
    for ax, (name, g) in zip(axes[0], arrays.items()):
        ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray" if g.shape[-1] == 1 else None,
                  interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path_stem)


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
                path_stem: str | Path | None = None, k: int = 25):
    """One panel per loss key, one line per run (smoothed over ``k`` steps)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, h in histories.items():
            if key in h and len(h[key]):
                ax.plot(h["step"], smooth(h[key], k), label=name, lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path_stem)


def progress_gif(sample_dir: str | Path, out: str | Path, duration_ms: int = 400) -> Path | None:
    """A GIF of the per-epoch sample sheets in ``sample_dir`` (training progress at a glance)."""
    from PIL import Image

    frames = sorted(Path(sample_dir).glob("epoch_*.png"))
    if not frames:
        return None
    imgs = [Image.open(f).convert("P") for f in frames]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imgs[0].save(out, save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0)
    return out


def pareto_plot(points: Sequence[Mapping], x: str = "params", y: str = "fid", label: str = "name",
                group: str = "kind", path_stem: str | Path | None = None, xlabel: str | None = None,
                ylabel: str | None = None):
    """Quality against size on a log size axis, one marker style per group (teacher / scratch / KD)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    markers = {"teacher": "s", "scratch": "o", "kd": "^"}
    for g in sorted({p.get(group, "") for p in points}):
        pts = [p for p in points if p.get(group, "") == g]
        ax.scatter([p[x] for p in pts], [p[y] for p in pts], marker=markers.get(g, "D"), s=50, label=g or None)
        for p in pts:
            ax.annotate(str(p[label]), (p[x], p[y]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path_stem)


def speed_bars(rows: Sequence[Mapping], keys: Sequence[str] = ("cpu_img_per_s",), label: str = "model",
               path_stem: str | Path | None = None, title: str | None = None, xlabel: str = "images per second",
               log: bool = True):
    """Horizontal bars of speed (or size) columns, one group per model; missing values are skipped.

    ``log``: a log axis (speeds spanning orders of magnitude); False for a linear axis from 0.
    """
    plt = _plt()
    names = [str(r[label]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(rows) * len(keys) + 1.2))
    h = 0.8 / len(keys)
    for j, k in enumerate(keys):
        vals = [r.get(k) for r in rows]
        ys = [i + j * h for i, v in enumerate(vals) if v]
        ax.barh(ys, [v for v in vals if v], height=h, label=k)
    ax.set_yticks([i + h * (len(keys) - 1) / 2 for i in range(len(rows))], names, fontsize=8)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10)
    if len(keys) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x", which="both")
    fig.tight_layout()
    return _finish(fig, path_stem)


def explorer(generators: Mapping[str, Callable[..., torch.Tensor]], class_names: Sequence[str] | None = None,
             n: int = 16, seed: int = 0, class_id: int = 0, interactive: bool | None = None,
             path_stem: str | Path | None = None, nrow: int = 8, truncation: float | None = None,
             class_ids: Sequence[int] | None = None):
    """Pick a model, a class and a noise seed (and a truncation); see ``n`` samples.

    ``generators`` maps a name to ``fn(n, class_id, seed) -> images (n, C, H, W) in [-1, 1]``,
    or, when ``truncation`` is given, ``fn(n, class_id, seed, truncation)``.
    ``class_ids``: the classes the picker offers (default: every class name's index).
    The call always renders (and, with ``path_stem``, saves) one grid for the
    given defaults, so a headless run shows a picture; with ipywidgets in a live
    kernel (``interactive`` None or True) it adds a model dropdown, a class
    picker and seed / count (/ truncation) sliders that redraw the grid.
    """
    _plt()  # Agg backend when headless
    names = list(generators)
    if not names:
        raise ValueError("explorer needs at least one generator")

    def render(model: str, cls: int, sd: int, count: int, trunc: float | None = None, save: bool = False):
        imgs = generators[model](count, cls, sd) if trunc is None else generators[model](count, cls, sd, trunc)
        cname = class_names[cls] if class_names and cls < len(class_names) else str(cls)
        extra = "" if trunc is None else f" | truncation {trunc:.2f}"
        # about 16 px of figure per image side at 28-32 px, less per pixel for larger images
        scale = min(0.5, 16.0 / max(int(imgs.shape[-1]), 16))
        fig = show_grids({f"{model} | class {cls} ({cname}) | seed {sd}{extra}": imgs}, nrow=nrow,
                         path_stem=path_stem if save else None, scale=scale)
        return fig

    fig = render(names[0], class_id, seed, n, truncation, save=True)
    if interactive is None:
        interactive = _has_display()
    if not interactive:
        return fig
    try:
        import ipywidgets as W
        from IPython.display import display
    except ImportError:
        return fig
    ids = list(class_ids) if class_ids is not None else list(range(len(class_names) if class_names else 1000))
    opts = [(f"{i}: {class_names[i]}" if class_names and i < len(class_names) else str(i), i) for i in ids]
    ui = dict(model=W.Dropdown(options=names, value=names[0], description="model"),
              cls=W.Dropdown(options=opts, value=class_id, description="class"),
              sd=W.IntSlider(value=seed, min=0, max=999, description="seed"),
              count=W.IntSlider(value=n, min=1, max=64, description="samples"))
    if truncation is not None:
        ui["trunc"] = W.FloatSlider(value=truncation, min=0.02, max=1.0, step=0.02, description="truncation")

    def _draw(model, cls, sd, count, trunc=None):
        display(render(model, cls, sd, count, trunc))

    out = W.interactive_output(_draw, ui)
    widgets = list(ui.values())
    display(W.VBox([W.HBox(widgets[:2]), W.HBox(widgets[2:]), out]))
    return None
