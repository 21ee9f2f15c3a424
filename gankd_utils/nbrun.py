"""Execute the numbered notebooks (papermill), for ``make run`` and the notebook tests.

Each notebook's first code cell is tagged ``parameters``; papermill injects
PROFILE (and any other override) after it. Executed copies go to
``results/executed/`` in the ``full`` profile (the committed record of a full
run) and to ``results/<profile>/executed/`` in the others, beside that
profile's chapters; the source notebooks under ``notebooks/`` stay stripped of
outputs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import paths, runlog

NOTEBOOK_DIR = paths.REPO_ROOT / "notebooks"


def notebooks(only: Sequence[str] | None = None) -> list[Path]:
    """The numbered notebooks in order; ``only`` keeps those whose name starts with one of its prefixes."""
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.name.startswith(o) for o in only)]
    return found


def run_notebook(src: str | Path, out: str | Path, parameters: Mapping[str, Any] | None = None,
                 timeout: int | None = None, kernel_name: str = "python3") -> Path:
    """Run ``src`` top to bottom with ``parameters`` injected; write the executed copy to ``out``."""
    import papermill as pm

    src, out = Path(src), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # no live widgets under papermill: nbclient can stall on ipywidgets' output callbacks
    os.environ["GANKD_HEADLESS"] = "1"
    kernel, sockets = _local_kernel()
    try:
        pm.execute_notebook(str(src), str(out), parameters=dict(parameters or {}), cwd=str(src.parent),
                            kernel_name=kernel_name, progress_bar=False, execution_timeout=timeout,
                            log_output=False, **kernel)
    finally:
        if sockets:
            shutil.rmtree(sockets, ignore_errors=True)
    tidy_executed(out)
    return out


def _local_kernel() -> tuple[dict[str, Any], str | None]:
    """Papermill's kernel settings, and the folder to remove afterwards. On POSIX the kernel talks to the runner over
    IPC sockets in a private temporary folder (mode 0700, one per notebook, so that runs side by side never meet),
    rather than over unencrypted TCP ports on localhost, which ipykernel warns about at every start."""
    if os.name != "posix":
        return {}, None
    from traitlets.config import Config

    folder = tempfile.mkdtemp(prefix="gankd-kernel-")
    cfg = Config()
    cfg.KernelManager.transport = "ipc"
    cfg.KernelManager.ip = os.path.join(folder, "k")  # sockets k-1 ... k-5
    return {"config": cfg}, folder


def tidy_executed(executed: str | Path) -> None:
    """Make an executed copy read as Jupyter shows it, and name no machine's folders.

    Papermill records the notebook's input and output paths: they are kept relative to the project. A progress
    bar reaches the kernel as one stream message per refresh, each redrawing its line after a carriage return;
    Jupyter shows the last drawing of each line, and so does the executed copy (:func:`collapse_streams`), which
    would otherwise keep every refresh of every training's bar.
    """
    import nbformat

    executed = Path(executed)
    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            try:
                meta[key] = Path(meta[key]).resolve().relative_to(paths.REPO_ROOT.resolve()).as_posix()
            except ValueError:
                pass
    for cell in nb.cells:
        if cell.get("outputs"):
            cell.outputs = collapse_streams(cell.outputs)
    nbformat.write(nb, executed)


def collapse_streams(outputs: list) -> list:
    """``outputs`` with each run of adjacent stream outputs of one name (stdout, stderr) joined into one, and each
    line of their text cut to what follows its last carriage return: what a terminal or Jupyter leaves on screen
    once a progress bar has redrawn that line. Other outputs (figures, tables, errors) keep their places. The
    stream outputs kept are changed in place."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None and prev.get("output_type") == "stream"
                and prev.get("name") == out.get("name")):
            prev["text"] = _text(prev) + _text(out)
        else:
            merged.append(out)
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = "\n".join(_last_drawing(line) for line in _text(out).split("\n"))
    return merged


def _text(stream) -> str:
    text = stream.get("text", "")
    return text if isinstance(text, str) else "".join(text)


def _last_drawing(line: str) -> str:
    """The part of ``line`` after its last carriage return that has text after it (a bar's final drawing), without
    the blanks a bar pads it with (a bar that clears itself when done leaves an empty line)."""
    drawn = [part for part in line.split("\r") if part]
    return drawn[-1].rstrip(" ") if drawn else ""


def run_all(profile: str, only: Sequence[str] | None = None, out_dir: str | Path | None = None,
            keep_going: bool = False, say=print) -> dict[str, Any]:
    """Execute the numbered notebooks (those of ``only``) in ``profile``, in order, as ``make run`` does.

    ``out_dir``: the folder for the executed copies (default: :func:`paths.chapter_dir` ``("executed", profile)``).
    ``keep_going``: run the rest when one fails. ``say``: where the progress lines go.
    Returns ``{"out_dir", "minutes": {notebook: minutes}, "failed": [notebook...], "skipped": [line...]}``,
    the skips being what the chapters noted they left out (:mod:`gankd_utils.runlog`), each once.
    """
    out_dir = Path(out_dir) if out_dir else paths.chapter_dir("executed", profile)
    runlog.clear_skipped()
    failed, minutes = [], {}
    for nb in notebooks(only):
        t0 = time.perf_counter()
        say(f"[gankd] running {nb.name} (profile {profile}) ...")
        try:
            run_notebook(nb, out_dir / nb.name, {"PROFILE": profile})
            minutes[nb.name] = (time.perf_counter() - t0) / 60
            say(f"[gankd]   done in {minutes[nb.name] * 60:.0f} s -> {out_dir / nb.name}")
        except Exception as e:  # papermill raises PapermillExecutionError with the failing cell
            minutes[nb.name] = (time.perf_counter() - t0) / 60
            failed.append(nb.name)
            say(f"[gankd]   FAILED after {minutes[nb.name] * 60:.0f} s: {e}")
            if not keep_going:
                break
    # once each: a chapter of two datasets (06, 07) notes the same skip for both
    skipped = list(dict.fromkeys(runlog.format_entry(e) for e in runlog.read_skipped()))
    return {"out_dir": out_dir, "minutes": minutes, "failed": failed, "skipped": skipped}
