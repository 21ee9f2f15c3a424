"""Result tables: CSV + Markdown, a narrow one that leads with what a report needs and the full one beside it.

A chapter's table has about twenty columns (sizes in three precisions, every
protocol of every evaluator, speeds): too wide to read on a screen.
:func:`write_table` saves ``stem.csv`` / ``stem.md`` with the lead columns
(:func:`lead_columns`: model, parameters, compression, then quality, then CPU
latency) and ``stem_full.csv`` / ``stem_full.md`` with every column.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .io import atomic_write_text

# the columns a report leads with, in order: exact names, or patterns of protocol names; "seeds": how many seeds a
# row's scores are the mean of (evaluation.mean_over_seeds), and "note" what a row's numbers leave out
LEAD = ("model", "seeds", "student", "step", "params", "compression_x", r"fid\d+\w*", r"kid\d+\w*", r"acc\d+\w*",
        r"precision\d+\w*", r"recall\d+\w*", r"is\d+\w*", "fid", "fid_change_pct", "cpu_latency_ms_b1", "ms_b1",
        "gap_closed", "note")

TEXT = ("note",)  # columns of words that some rows leave out (e.g. evaluation.kd_gap_closed's): blank, not "n/a"


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of ``rows``, in order of first appearance (rows may differ, e.g. class accuracy)."""
    return list(dict.fromkeys(k for r in rows for k in r))


def lead_columns(rows: Sequence[Mapping[str, Any]], lead: Sequence[str] = LEAD) -> list[str]:
    """The columns of ``rows`` that match ``lead`` (names or regular expressions), in ``lead``'s order."""
    cols = columns_of(rows)
    out: list[str] = []
    for pat in lead:
        out += [c for c in cols if c not in out and re.fullmatch(pat, c)]
    return out


def markdown_table(rows: Sequence[Mapping[str, Any]], floatfmt: str = "{:.4g}", columns: Sequence[str] | None = None) -> str:
    """``rows`` (dicts with the same keys) as a Markdown table; ``columns`` picks and orders them."""
    if not rows:
        return "(no rows)\n"
    cols = list(columns) if columns is not None else columns_of(rows)

    def fmt(v, col):
        if v is None or v == "":
            return "" if col in TEXT else "n/a"  # a note left out says nothing; a number left out is missing
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c), c) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _write(rows: Sequence[Mapping[str, Any]], stem: Path, cols: Sequence[str], floatfmt: str) -> tuple[Path, Path]:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols))
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in cols})
    return (atomic_write_text(stem.with_suffix(".csv"), buf.getvalue()),
            atomic_write_text(stem.with_suffix(".md"), markdown_table(rows, floatfmt, cols)))


def write_table(rows: Sequence[Mapping[str, Any]], stem: str | Path, floatfmt: str = "{:.4g}",
                lead: Sequence[str] | None = LEAD) -> tuple[Path, Path]:
    """Write ``stem.csv`` + ``stem.md`` (the lead columns) and, when that drops columns, ``stem_full.*``.

    ``lead=None`` writes every column into ``stem.*``. Returns the lead table's paths.
    """
    stem = Path(stem)
    cols = columns_of(rows)
    short = lead_columns(rows, lead) if lead is not None else cols
    if not short or len(short) == len(cols):
        return _write(rows, stem, cols, floatfmt)
    _write(rows, stem.with_name(stem.name + "_full"), cols, floatfmt)
    return _write(rows, stem, short, floatfmt)
