"""The renderers' own fast paths print what the general tools they replace printed: the table
columns as tabulate's "simple" format, a line that fits as textwrap."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from anondiff.render.table import _table

cell = st.text(alphabet="abAV0123 >!-_.,/=+()x", max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.lists(st.text(alphabet="abcdefgh ()", min_size=1, max_size=10), min_size=n, max_size=n),
    st.lists(st.lists(cell, min_size=n, max_size=n), min_size=1, max_size=6))))
def test_same_as_tabulate(table: tuple[list[str], list[list[str]]]) -> None:
    headers, rows = table
    want = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    want = "\n".join(line.rstrip() for line in want.splitlines())
    assert _table(rows, headers) == want


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab -.,!\t\n\u00a0", max_size=50), st.integers(30, 60),
       st.sampled_from(["", "  ", "    "]))
def test_wrap_same_as_textwrap(text: str, width: int, indent: str) -> None:
    import textwrap

    from anondiff.render.listing import wrap
    want = textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "    ",
                         break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]
    assert wrap(text, width, indent) == want
