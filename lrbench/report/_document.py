"""The report's document model: headings, paragraphs, bullet lists, tables and figures, rendered
twice, as Markdown and as one self-contained HTML page (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

DPI = 110

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "line-height:1.45}"
    "table.tbl{border-collapse:collapse;margin:1em 0;font-size:.92em}"
    "table.tbl th,table.tbl td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "table.tbl th{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%}"
    "figcaption{color:#444;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}"
)


@dataclass
class Document:
    """Blocks in reading order; a figure is saved as `out/<name>` when added."""

    out: Path
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def figure(self, fig, name: str, caption: str) -> None:
        path = self.out / name
        fig.savefig(path, dpi=DPI)
        fig.clear()  # a report draws dozens of figures: free each once saved
        self.figures.append(path)
        self.blocks.append(("fig", (path, caption)))

    def markdown(self) -> str:
        parts = []
        for kind, x in self.blocks:
            if kind == "h":
                parts.append("#" * x[0] + " " + x[1])
            elif kind == "p":
                parts.append(x)
            elif kind == "ul":
                parts.append("\n".join(f"- {item}" for item in x))
            elif kind == "table":
                parts.append(markdown_table(x))
            elif kind == "fig":
                parts.append(f"![{x[0].stem}]({x[0].name})\n\n*{x[1]}*")
        return "\n\n".join(parts) + "\n"

    def html(self, title: str) -> str:
        body = []
        for kind, x in self.blocks:
            if kind == "h":
                body.append(f"<h{x[0]}>{_inline_html(x[1])}</h{x[0]}>")
            elif kind == "p":
                body.append(f"<p>{_inline_html(x)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in x) + "</ul>")
            elif kind == "table":
                body.append(
                    x.to_html(index=False, escape=True, border=0, na_rep="", classes="tbl")
                )
            elif kind == "fig":
                data = base64.b64encode(x[0].read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(x[1])}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{_inline_html(x[1])}</figcaption></figure>"
                )
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


def _inline_html(text: str) -> str:
    """Escape, then the two inline Markdown marks the report uses: `code` and **bold**."""
    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas' `to_markdown` needs `tabulate`, not a dependency)."""

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = [
        "| " + " | ".join(cell(v) for v in row) + " |"
        for row in df.itertuples(index=False, name=None)
    ]
    return "\n".join([head, sep, *rows])
