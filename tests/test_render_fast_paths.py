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


# -- ascii: the greedy split into parts, and drawing without a canvas -----------------------------

def _ascii_rows() -> st.SearchStrategy:
    from anondiff.render.ascii import Cell
    cells = st.one_of(st.none(), st.builds(
        lambda name, av, bang, marked: Cell(name, av, bang, marked, (av, bang, marked)),
        st.text(alphabet="ABv0.", min_size=1, max_size=14),
        st.sampled_from([None, "AV0", "AV1", "AV12 (freed!)", "AV_a_much_longer_name"]),
        st.booleans(), st.booleans()))
    return st.integers(1, 14).flatmap(lambda n: st.lists(
        st.lists(cells, min_size=n, max_size=n).map(tuple), min_size=1, max_size=4))


@settings(max_examples=400, deadline=None)
@given(_ascii_rows(), st.integers(20, 120))
def test_ascii_parts_as_the_greedy_definition(rows: list, width: int) -> None:
    """bands() grows each part a column at a time; the definition is _band_width() of every
    prefix of every part, as wide as fits, at least one column."""
    from anondiff.render.ascii import _band_width, bands
    ncols = len(rows[0])
    want = []
    start = 0
    while start < ncols:
        end = start + 1
        while end < ncols and _band_width(rows, range(start, end + 1)) <= width:
            end += 1
        want.append(range(start, end))
        start = end
    assert bands(rows, ncols, width) == want


@settings(max_examples=300, deadline=None)
@given(_ascii_rows(), st.data())
def test_ascii_plain_drawing_as_the_canvas(rows: list, data: st.DataObject) -> None:
    from anondiff.render.ascii import MARGIN, _draw_canvas, _draw_plain, geometry, segments
    ncols = len(rows[0])
    lo = data.draw(st.integers(0, ncols - 1))
    band = range(lo, data.draw(st.integers(lo + 1, ncols)))
    box, col = geometry(rows, band)
    left, x = {}, MARGIN
    for i in band:
        left[i] = x
        x += col[i]
    for row in rows:
        marked = any(row[i] is not None and row[i].marked for i in band)
        segs = segments(row, band)
        assert _draw_plain(row, band, box, col, left, x, marked, False, segs) == \
            _draw_canvas(row, band, box, col, left, x, marked, False, segs)


@settings(max_examples=300, deadline=None)
@given(_ascii_rows(), st.integers(20, 120))
def test_ascii_fits_as_one_part(rows: list, width: int) -> None:
    from anondiff.render.ascii import bands, fits
    assert fits(rows, len(rows[0]), width) == (len(bands(rows, len(rows[0]), width)) <= 1)


# -- list: lineages from the parent's ------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABCDEFG"), st.sampled_from("ABCDEFGX"),
                          st.one_of(st.none(), st.sampled_from("ABCDEFGX"))),
                max_size=7, unique_by=lambda t: t[0]),
       st.lists(st.sampled_from("ABCDEFGX"), max_size=8))
def test_lineages_as_the_walk(avs: list, asked: list) -> None:
    """_Lineages (each from its parent's) gives _lineage's walk for any anon_vmas, cycles and
    unknown names included, in any order of asking."""
    from anondiff.render.listing import _Lineages, _lineage
    from anondiff.topology import AnonVmaView
    by_name = {name: AnonVmaView(name, root, parent, 1, (), False, (), ())
               for name, root, parent in avs}
    memo = _Lineages(by_name, len(by_name))
    for name in asked + list(by_name):
        assert memo[name] == _lineage(by_name, name, len(by_name))
