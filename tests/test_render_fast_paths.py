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


# -- list: a process's lines made a column at a time ----------------------------------------------

def _reference_process_lines(topo, proc, differs, width):  # type: ignore[no-untyped-def]
    """The list's lines of one process, a VMA at a time, by the definitions (finding_kinds,
    _vma_text, wrap): what listing._process_lines is held to."""
    from anondiff.render.listing import ELIDE_MIN, _vma_text, finding_kinds, runs, wrap
    lines = [f"Process {proc.name}:"]
    if not proc.vmas:
        return lines + ["  (no VMAs)"], False
    avs = {a.name: a for a in topo.anon_vmas}
    keys = [(_vma_text(avs, len(topo.anon_vmas), v), finding_kinds(topo, proc, v),
             f"{proc.name}/{v.name}" in differs) for v in proc.vmas]
    elided = False
    for first, last in runs(keys, lambda k: k):
        if last - first + 1 >= ELIDE_MIN:
            entries = [(f"{proc.vmas[first].name}..{proc.vmas[last].name} "
                        f"({last - first + 1})", first)]
            elided = True
        else:
            entries = [(proc.vmas[i].name, i) for i in range(first, last + 1)]
        for name, i in entries:
            text, kinds, differ = keys[i]
            lines += wrap(f"{'*' if differ else ' '} {name} - {text}"
                          + (f"  ! {','.join(kinds)}" if kinds else ""), width, "", "      ")
    return lines, elided


def _topologies() -> st.SearchStrategy:
    from anondiff.topology import AnonVmaView, Finding, ProcessView, Topology, VmaView
    names = st.sampled_from(["AV0", "AV1", "AV2", "AV3", "AVX", "AV_a_much_longer_name"])
    avs = st.lists(st.tuples(names, names, st.one_of(st.none(), names), st.booleans()),
                   max_size=5, unique_by=lambda t: t[0]).map(
        lambda rows: tuple(AnonVmaView(n, r, p, 1, (), f, (), ()) for n, r, p, f in rows))
    vma = st.tuples(st.one_of(st.none(), names), st.lists(names, max_size=3).map(tuple))
    vmas = st.lists(vma, max_size=12).map(lambda rows: tuple(
        VmaView(f"v{i}", 4096 * i, 4096 * (i + 1), 0, ("read",), (), av, chain, ())
        for i, (av, chain) in enumerate(rows)))
    findings = st.lists(st.builds(
        lambda kind, where, active: Finding(kind, where, "d", 1, 1, active),
        st.sampled_from(["I1", "I3", "VM_BUG_ON", "NOTE"]),
        st.sampled_from(["P/v0", "P/v1", "P/v1+v2", "P/v3", "Q/v0", "AV1"]), st.booleans()),
        max_size=3).map(tuple)
    return st.builds(lambda a, v, f: Topology("s", "p", "final", 1, (ProcessView("P", v),),
                                              a, f, False, 0), avs, vmas, findings)


@settings(max_examples=500, deadline=None)
@given(_topologies(), st.sets(st.sampled_from(["P/v0", "P/v1", "P/v2", "P/v5", "Q/v1"])),
       st.integers(30, 50))
def test_process_lines_as_a_vma_at_a_time(topo, differs, width) -> None:  # type: ignore[no-untyped-def]
    from anondiff.render.listing import _process_lines
    proc = topo.processes[0]
    assert _process_lines(topo, proc, frozenset(differs), width) \
        == _reference_process_lines(topo, proc, frozenset(differs), width)


@settings(max_examples=300, deadline=None)
@given(_topologies(), st.integers(30, 50))
def test_anon_vma_lines_as_wrapped(topo, width) -> None:  # type: ignore[no-untyped-def]
    from anondiff.render.listing import _av_text, anon_vma_lines, shown_anon_vmas, wrap
    shown = shown_anon_vmas(topo)
    want = ["anon_vmas:"] + [ln for av in shown for ln in wrap(_av_text(av), width, "  ")] \
        if shown else ["anon_vmas: none"]
    assert anon_vma_lines(topo, width) == want


def test_texts_of_a_parent_cycle_as_the_walk() -> None:
    """AV1's parent and root AV2, whose parent is AV1 (no kernel makes it; a snapshot may say
    so): the lineage stops where it comes back, as _lineage's walk does."""
    from anondiff.render.listing import _Lineages, _Texts, _vma_text
    from anondiff.topology import AnonVmaView, VmaView
    avs = {"AV1": AnonVmaView("AV1", "AV2", "AV2", 1, (), False, (), ()),
           "AV2": AnonVmaView("AV2", "AV1", "AV1", 1, (), False, (), ())}
    texts = _Texts(avs, _Lineages(avs, 2), 2)
    for chain in [("AV1", "AV2"), ("AV1", "AV2", "AV1"), ("AV1",)]:
        vma = VmaView("v", 0, 4096, 0, (), (), "AV1", chain, ())
        assert texts["AV1", chain] == _vma_text(avs, 2, vma)


def _reference_topology_lines(t) -> list[str]:  # type: ignore[no-untyped-def]
    """The tables of one snapshot made a row at a time, by tabulate."""
    from anondiff.render.table import _pages, _some, finding_line

    def table(rows: list[list[str]], headers: list[str]) -> list[str]:
        text = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
        return [line.rstrip() for line in text.splitlines()]

    avs = {a.name: a for a in t.anon_vmas}
    out: list[str] = []
    for p in t.processes:
        out.append(f"process {p.name}")
        if p.vmas:
            rows = []
            for v in p.vmas:
                av = avs.get(v.anon_vma) if v.anon_vma is not None else None
                rows.append([v.name, f"{v.start:#x}-{v.end:#x}",
                             "".join(c[0] for c in v.prot) or "-", ",".join(v.flags) or "-",
                             v.anon_vma or "-", (av.parent or "-") if av else "-",
                             av.root if av else "-", " ".join(v.chain) or "-",
                             _pages(v.pages) if v.pages else ""])
            out += table(rows, ["vma", "range", "prot", "flags", "anon_vma", "parent", "root",
                                "chain (head first)", "pages"])
        else:
            out.append("  (no VMAs)")
        out.append("")
    if t.anon_vmas:
        out += table([[a.name, a.parent or "-", a.root,
                       " ".join(f"{k}={v}" for k, v in a.counters) or "-", str(a.refcount),
                       _some(a.users), "freed" if a.freed else "live"] for a in t.anon_vmas],
                     ["anon_vma", "parent", "root", "counters", "refcount", "used by", "state"])
        out.append("")
    out += ["findings:"] + [finding_line(f) for f in t.findings] if t.findings \
        else ["findings: none"]
    return out


@settings(max_examples=300, deadline=None)
@given(_topologies(), st.data())
def test_topology_tables_as_tabulate(topo, data) -> None:  # type: ignore[no-untyped-def]
    """The tables made a column at a time (cells made once per distinct value, columns known
    to need no stripping left as they are) print what tabulate prints of the rows."""
    from anondiff.render.table import topology_lines
    from anondiff.topology import PageView
    vary = st.tuples(st.sampled_from([(), ("read",), ("read", "write"), ("read", "write", "exec")]),
                     st.sampled_from([(), ("account",), ("dontcopy", "wipeonfork"), ("x%s",)]),
                     st.lists(st.builds(PageView, st.sampled_from(["pg0", "pg12"]), st.just(0),
                                        st.just(0), st.sampled_from(["AV0", "AV10"]),
                                        st.booleans(), st.booleans()), max_size=6).map(tuple))
    vmas = tuple(v._replace(prot=prot, flags=flags, pages=pages, start=v.start * 4096,
                            end=v.end * 4096 + 4096 * 0x10000 * (i % 2))
                 for i, (v, (prot, flags, pages)) in enumerate(zip(
                     topo.processes[0].vmas,
                     data.draw(st.lists(vary, min_size=len(topo.processes[0].vmas),
                                        max_size=len(topo.processes[0].vmas))))))
    avs = tuple(a._replace(refcount=data.draw(st.integers(0, 12)),
                           counters=data.draw(st.sampled_from(
                               [(), (("degree", 3),),
                                (("num_children", 1), ("num_active_vmas", 10))])),
                           users=data.draw(st.lists(st.sampled_from(["P/v0", "P/v10"]),
                                                    max_size=10).map(tuple)))
                for a in topo.anon_vmas)
    topo = topo._replace(processes=(topo.processes[0]._replace(vmas=vmas),), anon_vmas=avs)
    assert list(topology_lines(topo)) == _reference_topology_lines(topo)
