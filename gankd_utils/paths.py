"""Where gankd reads data and writes results; every location is one setting.

| setting (environment variable) | default                    | holds |
|--------------------------------|----------------------------|-------|
| ``GANKD_DATA_ROOT``            | ``<repo>/data``            | MNIST/, cifar10/ or cifar-10-batches-py/, teachers/ |
| ``GANKD_RESULTS``              | ``<repo>/results``         | figures, tables, metrics.json, checkpoints, caches |
|                                |                            | (``smoke`` and ``quick`` write theirs under ``results/<profile>/``) |
| ``GANKD_TEACHERS``             | ``<data root>/teachers``   | teacher exports (shard folders) |
| ``GANKD_OFFLINE``              | unset                      | ``1``: never try a download, fail with a clear message |
| ``GANKD_INCEPTION_WEIGHTS``    | unset                      | a local pytorch-fid Inception weights file |
| ``TORCH_HOME``                 | torch's default            | where pytorch-fid's download is cached |

A folder setting that is empty or blank counts as unset (:func:`setting`), never as the current folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from .config import PROFILE_NAMES

REPO_ROOT = Path(__file__).resolve().parent.parent


def setting(var: str) -> str | None:
    """The folder the environment variable ``var`` names; None where it is unset, empty or blank (an empty
    ``GANKD_RESULTS=`` in a shell or a .env file would otherwise mean the current folder)."""
    value = os.environ.get(var, "").strip()
    return value or None


def _folder(var: str, default: Path) -> Path:
    return Path(setting(var) or default).expanduser()


def data_root() -> Path:
    """Root folder of the datasets (``GANKD_DATA_ROOT``, else ``<repo>/data``)."""
    return _folder("GANKD_DATA_ROOT", REPO_ROOT / "data")


def teachers_dir() -> Path:
    """Where teacher exports go (``GANKD_TEACHERS``, else ``<data root>/teachers``)."""
    return _folder("GANKD_TEACHERS", data_root() / "teachers")


def results_root() -> Path:
    """Root folder of everything the notebooks save (``GANKD_RESULTS``)."""
    return _folder("GANKD_RESULTS", REPO_ROOT / "results")


def results_dir(*parts: str) -> Path:
    """``results_root()/parts``, created if absent."""
    p = results_root().joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def profile_root(profile: str) -> Path:
    """Where a profile's chapter folders, executed notebooks and REPORT.md go.

    ``full`` writes to the results root itself: its files are the committed record of the walk. Every
    other profile writes to ``results/<profile>/`` (git-ignored), so a laptop walk or a smoke run never
    writes over the full run's tables, figures and report. Shared files stay at the root whatever the
    profile: the shipped weights, the evaluator classifiers, cached statistics, and the run folders
    (``results/<chapter>/runs/<profile>-seed<n>``, named by profile already).
    """
    if profile not in PROFILE_NAMES:  # before a folder is made for it (a typo would leave "results/fast/")
        raise ValueError(f"profile {profile!r} is not a profile name: choose one of {', '.join(PROFILE_NAMES)}")
    return results_root() if profile == "full" else results_root() / profile


def chapter_dir(chapter: str, profile: str, *parts: str) -> Path:
    """``profile_root(profile)/chapter/parts``, created if absent: where a notebook of ``profile`` saves."""
    p = profile_root(profile).joinpath(chapter, *parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def shown(path: str | Path) -> str:
    """``path`` as a message or a saved table names it: relative to the project where it lies in it
    (``results/weights``), else to the results root, else under the folder a setting names
    (``$GANKD_TEACHERS/cifar10_...``, ``$GANKD_DATA_ROOT/...``), else whole; so that saved files name no
    machine's folders."""
    path = Path(path)
    whole = path.resolve()
    bases: list[tuple[str | None, Path]] = [(None, REPO_ROOT), (None, results_root())]  # named by their path
    settings = (("GANKD_TEACHERS", teachers_dir), ("GANKD_DATA_ROOT", data_root))  # the folders they name
    bases += [(f"${var}", folder()) for var, folder in settings if setting(var)]
    for name, base in bases:
        try:
            rel = whole.relative_to(Path(base).resolve()).as_posix()
        except ValueError:
            continue
        if name is None:
            return rel
        return name if rel == "." else f"{name}/{rel}"
    return path.as_posix()


def offline() -> bool:
    """True when ``GANKD_OFFLINE`` asks never to touch the network."""
    return os.environ.get("GANKD_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
