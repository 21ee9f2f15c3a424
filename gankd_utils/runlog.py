"""What a run of the walk skipped, and why: the summary ``make run`` prints at the end.

A notebook that cannot do part of its work (no BigGAN handle offline, no
Inception weights) calls :func:`note_skipped` and goes on; ``make run`` clears
the log first and lists every entry when the last notebook has finished. Each
entry names the process that wrote it, so a chapter's ``metrics.json`` holds the
skips of its own run (``read_skipped(this_process=True)``), not those an earlier
run of the chapter left in the log (a notebook run by hand, another profile).
"""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from . import paths

_PROCESS = uuid.uuid4().hex  # this process's mark on its entries (a pid can come back; this cannot)


def _log() -> Path:
    return paths.results_root() / "run_summary" / "skipped.jsonl"


def note_skipped(where: str, what: str, why: str, setting: str | None = None) -> str:
    """Record that ``what`` in ``where`` (a notebook / chapter) was skipped; return a message to show."""
    entry = {"where": where, "what": what, "why": why, "setting": setting, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
             "process": _PROCESS}
    p = _log()
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    return format_entry(entry)


def format_entry(e: dict) -> str:
    msg = f"SKIPPED [{e['where']}] {e['what']}: {e['why']}"
    return msg + (f" (to enable it: {e['setting']})" if e.get("setting") else "")


def read_skipped(this_process: bool = False) -> list[dict]:
    """Every entry of the log (``make run``'s summary), or with ``this_process`` the entries this process wrote."""
    p = _log()
    if not p.exists():
        return []
    got = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [e for e in got if e.get("process") == _PROCESS] if this_process else got


def clear_skipped() -> None:
    p = _log()
    if p.exists():
        p.unlink()
