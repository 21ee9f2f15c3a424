"""What a run of the walk skipped, and why: the summary ``make run`` prints at the end.

A notebook that cannot do part of its work (no BigGAN handle offline, no
Inception weights) calls :func:`note_skipped` and goes on; ``make run`` clears
the log first and lists every entry when the last notebook has finished.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from . import paths


def _log() -> Path:
    return paths.results_root() / "run_summary" / "skipped.jsonl"


def note_skipped(where: str, what: str, why: str, setting: str | None = None) -> str:
    """Record that ``what`` in ``where`` (a notebook / chapter) was skipped; return a message to show."""
    entry = {"where": where, "what": what, "why": why, "setting": setting, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    p = _log()
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    return format_entry(entry)


def format_entry(e: dict) -> str:
    msg = f"SKIPPED [{e['where']}] {e['what']}: {e['why']}"
    return msg + (f" (to enable it: {e['setting']})" if e.get("setting") else "")


def read_skipped() -> list[dict]:
    p = _log()
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def clear_skipped() -> None:
    p = _log()
    if p.exists():
        p.unlink()
