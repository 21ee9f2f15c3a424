"""Execute the numbered notebooks (papermill), for ``make run`` and the notebook tests.

Each notebook's first code cell is tagged ``parameters``; papermill injects
PROFILE (and any other override) after it. Executed copies go to
``results/executed/`` in the ``full`` profile (the committed record of a full
run) and to ``results/<profile>/executed/`` in the others, beside that
profile's chapters; the source notebooks under ``notebooks/`` stay stripped of
outputs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import paths, runlog
from .config import default_profile

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
    _relative_paths(out)
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


def _relative_paths(executed: Path) -> None:
    """Papermill records the notebook's input and output paths: keep them relative to the project, so that an
    executed copy that is shared names no machine's folders."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            try:
                meta[key] = Path(meta[key]).resolve().relative_to(paths.REPO_ROOT.resolve()).as_posix()
            except ValueError:
                pass
    nbformat.write(nb, executed)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gankd_utils.nbrun", description=__doc__)
    ap.add_argument("--profile", default=None, help="smoke | quick | full (default: full with CUDA, else quick)")
    ap.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes (e.g. 03)")
    ap.add_argument("--out", default=None, help="folder for executed copies (default: results/executed for full, "
                                                "results/<profile>/executed for smoke and quick)")
    ap.add_argument("--keep-going", action="store_true", help="run the rest when one notebook fails")
    args = ap.parse_args(argv)
    profile = args.profile or os.environ.get("PROFILE") or default_profile()
    out_dir = Path(args.out) if args.out else paths.chapter_dir("executed", profile)
    runlog.clear_skipped()
    failures, times = [], {}
    for nb in notebooks(args.only):
        t0 = time.perf_counter()
        print(f"[gankd] running {nb.name} (profile {profile}) ...", flush=True)
        try:
            run_notebook(nb, out_dir / nb.name, {"PROFILE": profile})
            times[nb.name] = time.perf_counter() - t0
            print(f"[gankd]   done in {times[nb.name]:.0f} s -> {out_dir / nb.name}", flush=True)
        except Exception as e:  # papermill raises PapermillExecutionError with the failing cell
            times[nb.name] = time.perf_counter() - t0
            failures.append(nb.name)
            print(f"[gankd]   FAILED after {time.perf_counter() - t0:.0f} s: {e}", file=sys.stderr, flush=True)
            if not args.keep_going:
                break
    # once each: a chapter of two datasets (06, 07) notes the same skip for both
    skipped = list(dict.fromkeys(runlog.format_entry(e) for e in runlog.read_skipped()))
    print("\n[gankd] summary")
    print(f"  profile: {profile}; executed notebooks in {out_dir}; tables, figures and REPORT.md in "
          f"{paths.profile_root(profile)}")
    for name, sec in times.items():
        print(f"  {name}: {sec / 60:.1f} min" + (" (FAILED)" if name in failures else ""))
    print(f"  in all: {sum(times.values()) / 60:.1f} min")
    if skipped:
        print(f"  skipped ({len(skipped)}):")
        for e in skipped:
            print("   - " + e)
    else:
        print("  nothing was skipped")
    if failures:
        print(f"  FAILED: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
