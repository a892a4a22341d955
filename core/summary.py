"""The HTML summaries Jupyter shows for Satchel's objects (`_repr_html_`), and their short plain forms.

Every text goes through `html.escape` unless it is `Html`, a fragment built here from escaped parts, so
a docstring, a package name or a parameter read from a store cannot inject markup. Standard library only.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

#: Items a list shows as is; a longer one is a collapsed <details> (its count in the summary line).
OPEN_ITEMS = 8


class Html(str):
    """Markup that is already safe (built by this module from escaped text)."""


Content = str | None  # text (escaped when shown) or Html


def escape(value: object) -> Html:
    """`value` as HTML: `Html` as is, anything else as escaped text."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def code(value: object) -> Html:
    return Html(f"<code>{escape(value)}</code>")


def shorten(text: str, limit: int = 80) -> str:
    """The first line of `text`, at most `limit` characters (… where cut)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def items(values: Sequence[Content], *, what: str = "items", open_items: int = OPEN_ITEMS) -> Html:
    """A list: inline when it is short, else collapsed in <details> whose summary says how many."""
    if not values:
        return Html("<i>none</i>")
    listed = "".join(f"<li>{escape(v)}</li>" for v in values)
    if len(values) <= open_items:
        return Html(f'<ul style="margin:0;padding-left:1.2em">{listed}</ul>')
    return Html(
        f"<details><summary>{len(values)} {escape(what)}</summary>"
        f'<ul style="margin:0;padding-left:1.2em">{listed}</ul></details>'
    )


def table(rows: Iterable[tuple[str, Content]]) -> Html:
    """Label / value rows; a row whose value is None is left out."""
    body = "".join(
        f'<tr><th style="text-align:left;vertical-align:top;padding-right:1em">{escape(label)}</th>'
        f'<td style="text-align:left">{escape(value)}</td></tr>'
        for label, value in rows
        if value is not None
    )
    return Html(f"<table>{body}</table>")


def card(kind: str, title: Content, rows: Iterable[tuple[str, Content]], *, doc: str | None = None) -> Html:
    """The whole summary: what it is (`kind`), its title, its docstring, then its rows."""
    doc_html = (
        f'<pre style="white-space:pre-wrap;margin:0.3em 0">{escape(doc.strip())}</pre>'
        if doc and doc.strip()
        else ""
    )
    return Html(
        f'<div class="satchel-summary"><div><span style="opacity:0.6">{escape(kind)}</span> '
        f"<strong>{escape(title)}</strong></div>{doc_html}{table(rows)}</div>"
    )
