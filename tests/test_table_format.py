"""The table renderer's own column formatter prints what tabulate's "simple" format printed."""
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
