"""The report's document model: headings, paragraphs, bullet lists, tables and figures, rendered
twice, as Markdown and as an HTML page. Both open with a table of contents linking every section
(level-2 headings, and the level-3 ones below a task); figures are the PNG files beside them
(a report of many tasks is a page of kilobytes, not a 4 MB one; a figure whose file is missing
is marked as such); wide tables scroll sideways in the HTML page instead of wrapping their cells."""

from __future__ import annotations

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
    ".scroll{overflow-x:auto;margin:1em 0}"
    "table.tbl{border-collapse:collapse;font-size:.92em}"
    "table.tbl th,table.tbl td{border:1px solid #ccc;padding:.25em .6em;text-align:left;"
    "white-space:nowrap}"
    "table.tbl th{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%}"
    "figcaption{color:#444;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}"
    "nav.toc{background:#fafafa;border:1px solid #ddd;padding:.5em 1.5em;margin:1em 0}"
    # A figure whose file is missing (the page was copied without its PNGs) says so.
    "img.missing{border:2px solid #c00;min-height:3em;padding:.5em}"
)
# The headings listed in the table of contents: sections, and a task's subsections.
TOC_LEVELS = (2, 3)


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

    def contents(self) -> list[tuple[int, str, str]]:
        """(level, text, anchor) of the headings the table of contents lists, in order."""
        return [
            (x[0], x[1], slug)
            for (kind, x), slug in zip(self.blocks, self._anchors())
            if kind == "h" and x[0] in TOC_LEVELS and slug is not None
        ]

    def _anchors(self) -> list[str | None]:
        """Each block's anchor: its heading's, None for other blocks; unique, by GitHub's rule
        (a repeated slug gets -1, -2 ...)."""
        seen: dict[str, int] = {}
        out: list[str | None] = []
        for kind, x in self.blocks:
            if kind != "h":
                out.append(None)
                continue
            slug = anchor(x[1])
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.append(slug if n == 0 else f"{slug}-{n}")
        return out

    def _toc_markdown(self) -> str:
        lines = ["**Contents**", ""]
        for level, text, slug in self.contents():
            lines.append("  " * (level - 2) + f"- [{_plain(text)}](#{slug})")
        return "\n".join(lines)

    def _toc_html(self) -> str:
        items, depth = [], 2
        for level, text, slug in self.contents():
            while depth < level:
                items.append("<ul>")
                depth += 1
            while depth > level:
                items.append("</ul>")
                depth -= 1
            items.append(f'<li><a href="#{slug}">{_inline_html(text)}</a></li>')
        items.extend("</ul>" for _ in range(depth - 2))
        return '<nav class="toc"><strong>Contents</strong><ul>' + "".join(items) + "</ul></nav>"

    def _toc_position(self) -> int:
        """The table of contents goes after the title and the introduction: before the first
        level-2 heading."""
        return next(
            (i for i, (kind, x) in enumerate(self.blocks) if kind == "h" and x[0] == 2),
            len(self.blocks),
        )

    def markdown(self) -> str:
        parts = []
        toc = self._toc_position()
        for i, (kind, x) in enumerate(self.blocks):
            if i == toc:
                parts.append(self._toc_markdown())
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
        toc = self._toc_position()
        for i, ((kind, x), slug) in enumerate(zip(self.blocks, self._anchors())):
            if i == toc:
                body.append(self._toc_html())
            if kind == "h":
                body.append(f'<h{x[0]} id="{slug}">{_inline_html(x[1])}</h{x[0]}>')
            elif kind == "p":
                body.append(f"<p>{_inline_html(x)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in x) + "</ul>")
            elif kind == "table":
                table = x.to_html(index=False, escape=True, border=0, na_rep="", classes="tbl")
                body.append(f'<div class="scroll">{table}</div>')
            elif kind == "fig":
                body.append(
                    f'<figure><img alt="{html.escape(x[1])}" src="{html.escape(x[0].name)}" '
                    "onerror=\"this.classList.add('missing')\">"
                    f"<figcaption>{_inline_html(x[1])}</figcaption></figure>"
                )
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


def anchor(text: str) -> str:
    """A heading's anchor as GitHub makes it for Markdown (lower case, punctuation dropped,
    spaces to hyphens), so that the Markdown's links work on GitHub and the HTML's alike."""
    s = _plain(text).strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _plain(text: str) -> str:
    """The text without the inline marks (`code`, **bold**)."""
    return text.replace("`", "").replace("**", "")


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
