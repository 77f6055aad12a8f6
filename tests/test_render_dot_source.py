"""anondiff.render.dotsource writes DOT text byte for byte as the graphviz package does (the
package is no longer imported by ``--format dot``; where it is installed, it is the reference)."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anondiff.render import dotsource

graphviz = pytest.importorskip("graphviz")

#: characters that matter to DOT quoting, and some that do not
TEXT = st.one_of(st.text(alphabet='aZ_09.-<>"\\ :\n\u2260', max_size=12),
                st.sampled_from(["node", "Edge", "subgraph", "-4.2", ".5", "<<B>x</B>>"]))


def _reference_quote(text: str, html: bool) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # graphviz warns of a final odd backslash
        return graphviz.quoting.quote(text if html else graphviz.nohtml(text))


@given(TEXT)
def test_quote(text: str) -> None:
    assert dotsource.quote(text) == _reference_quote(text, True)
    assert dotsource.quote(dotsource.nohtml(text)) == _reference_quote(text, False)
    assert dotsource.quote(dotsource.escape(text)) == _reference_quote(
        graphviz.escape(text), False)


@given(TEXT, TEXT, TEXT)
def test_quote_edge(node: str, port: str, compass: str) -> None:
    for end in (node, f"{node}:{port}", f"{node}:{port}:{compass}"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert dotsource.quote_edge(end) == graphviz.quoting.quote_edge(end)


ATTRS = st.dictionaries(st.sampled_from(["label", "color", "style", "shape", "width", "z"]),
                        st.one_of(st.none(), TEXT), max_size=4)


@given(st.lists(st.tuples(st.sampled_from(["node", "edge", "attr", "sub", "named"]), TEXT, TEXT,
                          st.one_of(st.none(), TEXT), ATTRS), max_size=8),
       st.one_of(st.none(), TEXT), ATTRS)
def test_graph(statements, name, defaults) -> None:  # type: ignore[no-untyped-def]
    """The same statements through both: the same source."""
    defaults = {k: v for k, v in defaults.items() if v is not None}
    ours = dotsource.Digraph(name, graph_attr=defaults, node_attr=defaults, edge_attr=defaults)
    theirs = graphviz.Digraph(name, graph_attr=defaults, node_attr=defaults, edge_attr=defaults)

    def add(o, t, depth: int) -> None:  # type: ignore[no-untyped-def]
        for kind, a, b, lab, attrs in statements:
            args = () if "label" in attrs else (lab,)   # a label given by keyword, or not
            if kind == "node":
                o.node(a, *args, **attrs)
                t.node(a, *args, **attrs)
            elif kind == "edge":
                o.edge(a, b, *args, **attrs)
                t.edge(a, b, *args, **attrs)
            elif kind == "attr":
                o.attr(**attrs)
                t.attr(**attrs)
            elif depth < 2:
                sub = a if kind == "named" else None
                with o.subgraph(name=sub) as os_, t.subgraph(name=sub) as ts:
                    add(os_, ts, depth + 1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        add(ours, theirs, 0)
        assert ours.source == theirs.source
