"""DOT source text, written the way the ``graphviz`` package (0.20, 0.21) writes it, for the
subset ``dot.py`` uses: a digraph with graph, node and edge defaults, nodes, edges, ``attr``
statements and nested subgraphs.  Byte for byte the same text (``tests/test_render_dot_source.py``
holds the two to it when the package is installed), without importing the package: that import
alone was a tenth of the start-up of ``anondiff run --format dot`` (issue 8), and images are
drawn by running the ``dot`` program (:func:`anondiff.render.dot.draw`), not through it.

Quoting (graphviz's ``quoting.quote``): an ID (``[a-zA-Z_][a-zA-Z0-9_]*`` or a numeral) that
is no DOT keyword is written as it is, an HTML-like label ``<...>`` too unless it is
:class:`NoHtml`; anything else in double quotes, each ``"`` (or ``\\"``) written ``\\"``.
Attributes given as keywords are written sorted by name, None values left out.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

_HTML = re.compile(r"<.*>$", re.DOTALL).match
_ID = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?))$").match
_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})
_QUOTES = re.compile(r'(?P<escaped_backslashes>(?:\\{2})*)\\?(?P<literal_quote>")').sub
_QUOTE_REPLACEMENT = r"\g<escaped_backslashes>\\\g<literal_quote>"


class NoHtml(str):
    """A string whose ``<...>`` is not an HTML-like label (graphviz's ``nohtml``)."""

    __slots__ = ()


def nohtml(text: str) -> NoHtml:
    return NoHtml(text)


def escape(text: str) -> NoHtml:
    """Backslashes and ``<...>`` taken literally (graphviz's ``escape``)."""
    return NoHtml(text.replace("\\", "\\\\"))


def quote(identifier: str) -> str:
    """``identifier`` as a DOT ID, quoted if it must be."""
    if _HTML(identifier) and not isinstance(identifier, NoHtml):
        return identifier
    if not _ID(identifier) or identifier.lower() in _KEYWORDS:
        return f'"{_QUOTES(_QUOTE_REPLACEMENT, identifier)}"'
    return identifier


def quote_edge(identifier: str) -> str:
    """An edge end ``node[:port[:compass]]``, node and port quoted."""
    node, _, rest = identifier.partition(":")
    parts = [quote(node)]
    if rest:
        port, _, compass = rest.partition(":")
        parts.append(quote(port))
        if compass:
            parts.append(compass)
    return ":".join(parts)


def a_list(label: str | None, attrs: Mapping[str, str | None]) -> str:
    """``label=... key=value ...``, the keys sorted."""
    out = [f"label={quote(label)}"] if label is not None else []
    out += [f"{quote(k)}={quote(v)}" for k, v in sorted(attrs.items()) if v is not None]
    return " ".join(out)


def attr_list(label: str | None, attrs: Mapping[str, str | None]) -> str:
    content = a_list(label, attrs)
    return f" [{content}]" if content else ""


class Digraph:
    """A directed graph (or a subgraph of one) being written: its statements in order."""

    def __init__(self, name: str | None = None, graph_attr: Mapping[str, str] | None = None,
                 node_attr: Mapping[str, str] | None = None,
                 edge_attr: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.defaults = (("graph", dict(graph_attr or {})), ("node", dict(node_attr or {})),
                         ("edge", dict(edge_attr or {})))
        self.body: list[str] = []

    def node(self, name: str, label: str | None = None, **attrs: str) -> None:
        self.body.append(f"\t{quote(name)}{attr_list(label, attrs)}\n")

    def edge(self, tail: str, head: str, label: str | None = None, **attrs: str) -> None:
        self.body.append(f"\t{quote_edge(tail)} -> {quote_edge(head)}{attr_list(label, attrs)}\n")

    def attr(self, **attrs: str) -> None:
        """A graph attribute statement (``key=value ...`` alone on its line)."""
        if attrs:
            self.body.append(f"\t{a_list(None, attrs)}\n")

    @contextmanager
    def subgraph(self, name: str | None = None) -> Iterator[Digraph]:
        """A subgraph, added to this graph's body when the ``with`` block ends."""
        sub = Digraph(name)
        yield sub
        self.body += [f"\t{line}" for line in sub.lines(subgraph=True)]

    def lines(self, subgraph: bool = False) -> Iterator[str]:
        name = quote(self.name) + " " if self.name else ""
        yield (f"subgraph {name}{{\n" if name else "{\n") if subgraph else f"digraph {name}{{\n"
        for kw, attrs in self.defaults:
            if attrs:
                yield f"\t{kw}{attr_list(None, attrs)}\n"
        yield from self.body
        yield "}\n"

    @property
    def source(self) -> str:
        return "".join(self.lines())
