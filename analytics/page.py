"""The report's page: sections as escaped HTML, tables, embedded PNGs and the inline style.

Images are embedded as base64 PNG, styles are inline, there is no script and no
external URL, so the file can be mailed or archived and still open as written.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MAX_TABLE_ROWS = 50

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #3b7dd8;padding-bottom:.2rem;margin-top:2.2rem}
.meta{color:#666;margin-top:0}table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f2f5fa}
td:first-child,th:first-child{text-align:left;white-space:nowrap}img{max-width:100%;height:auto;display:block;margin:.6rem 0}
.wide{overflow-x:auto}.note{color:#555;font-size:.85rem}pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap}
"""


@dataclass(frozen=True)
class Section:
    """An optional report section: markdown text, a table and PNG plots, each optional."""

    title: str
    text: str = ""
    table: pd.DataFrame | pd.Series | dict | None = None
    images: tuple[str | Path, ...] = ()
    extra: tuple[Section, ...] = ()  # subsections (h3), after the table and before the images

    @classmethod
    def from_folder(cls, title: str, folder: str | Path, *, text_file: str = "model_card.md") -> Section:
        """Read a model's output folder: ``text_file`` (markdown) and the PNGs in it and in ``plots/``."""
        folder = Path(folder)
        text = (folder / text_file).read_text() if (folder / text_file).exists() else ""
        return cls(title=title, text=text, images=pngs(folder))


def pngs(folder: Path) -> tuple[Path, ...]:
    """A model folder's plots: ``*.png`` beside the card and in ``plots/`` (where train-churn writes them)."""
    return tuple(sorted(folder.glob("*.png"))) + tuple(sorted((folder / "plots").glob("*.png")))


def dash(v, fmt) -> str:
    """``fmt(v)``, or a dash where the value is missing."""
    return "–" if pd.isna(v) else fmt(float(v))


def page_head(title: str) -> str:
    """The document's start up to its ``<h1>``: the title and the inline style."""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>\n"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
    )


def img_html(png: bytes, alt: str) -> str:
    """A PNG embedded in the page, so the file needs nothing beside it."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(name, v) -> str:
    """Rates as percentages, whole numbers with separators, other numbers to 2 decimals."""
    if isinstance(v, (float, np.floating)):
        if pd.isna(v):
            return "–"
        if str(name).endswith("_rate"):
            return f"{v:.1%}"
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"
    return str(v)


def table_html(frame: pd.DataFrame | pd.Series | dict, *, index: bool = True) -> str:
    """An escaped HTML table; long tables are cut with a note, wide ones scroll."""
    if isinstance(frame, dict):
        frame = pd.Series(frame, name="value")
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    note = ""
    if len(frame) > MAX_TABLE_ROWS:
        note = f'<p class="note">first {MAX_TABLE_ROWS} of {len(frame):,} rows</p>'
        frame = frame.head(MAX_TABLE_ROWS)
    shown = frame.astype(object).copy()
    by_row = list(frame.columns) == ["value"]  # a metric-per-row table: the row names the metric
    for j, col in enumerate(frame.columns):
        names = frame.index if by_row else [col] * len(frame)
        shown.iloc[:, j] = [_fmt(n, v) for n, v in zip(names, frame.iloc[:, j], strict=True)]
    shown.columns = [str(c).replace("_", " ") for c in shown.columns]  # headers may wrap
    if by_row:
        shown.index = [str(i).replace("_", " ") for i in shown.index]
    if index and shown.index.name is not None:  # the index's name heads its column, not a row of its own
        shown = shown.reset_index()
        shown.columns = [str(c).replace("_", " ") for c in shown.columns]
        index = False
    body = shown.to_html(index=index, border=0, na_rep="–", escape=True)
    return f'<div class="wide">{body}</div>{note}'


def _markdown(text: str) -> str:
    """Markdown to HTML with raw HTML disabled; plain <pre> if markdown-it is unavailable."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - markdown-it comes with rich
        return f"<pre>{html.escape(text)}</pre>"
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def section_html(section: Section, level: int = 2) -> str:
    """A section as HTML: its heading at ``level``, text, table, subsections one level down, then its plots."""
    parts = [f"<h{level}>{html.escape(section.title)}</h{level}>"]
    if section.text:  # the card's own headings sit below the section's
        parts.append(
            _markdown(
                re.sub(r"^(#{1,4}) ", lambda m: "#" * min(len(m.group(1)) + level, 6) + " ", section.text, flags=re.M)
            )
        )
    if section.table is not None:
        table = section.table
        named = isinstance(table, pd.DataFrame) and table.index.name is not None
        parts.append(table_html(table, index=not isinstance(table, pd.DataFrame) or named))
    parts.extend(section_html(sub, level + 1) for sub in section.extra)
    for path in section.images:
        path = Path(path)
        parts.append(f"<h3>{html.escape(path.stem.replace('_', ' '))}</h3>" + img_html(path.read_bytes(), path.stem))
    return "\n".join(parts)
