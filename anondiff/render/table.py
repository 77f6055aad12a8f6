"""``--format table`` (the default): per policy and snapshot, a table of VMAs per process, a
table of anon_vmas, then the findings.  Plain ASCII, no trailing spaces."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple, TypeVar, Union

from ..topology import AnonVmaView, Finding, PageView, Replay, Topology, VmaView
from . import RenderOptions

if TYPE_CHECKING:  # the differ is not needed to draw a run
    from ..diff import Comparison

K = TypeVar("K", bound=Hashable)


def _table(rows: list[list[object]], headers: list[str]) -> str:
    return "\n".join(_table_lines(rows, headers))


def _table_lines(rows: list[list[object]], headers: list[str]) -> list[str]:
    """What ``tabulate(rows, headers, tablefmt="simple", disable_numparse=True)`` prints, with
    trailing spaces stripped: every column left-aligned, as wide as its widest cell or its
    header plus two, columns two spaces apart, the header underlined with dashes.  Written out
    because tabulate's type inference of every cell costs more than the whole table here."""
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    return _columns_table([list(column) for column in zip(*cells)] if cells
                          else [[] for _ in headers], headers)


class _Clean(list):  # type: ignore[type-arg]
    """A column whose cells need no stripping (made by this module from parts without
    whitespace at either end, or stripped already), with the length of its widest cell when
    that is known without looking at every cell (None: look)."""

    def __init__(self, cells: Iterable[str], widest: int | None = None) -> None:
        super().__init__(cells)
        self.widest = widest


class _Same(NamedTuple):
    """A column whose every cell is ``cell`` (a VMA table of one anon_vma, one chain, one
    flags): written into the row's format once, not passed to it for every row."""

    cell: str


Column = Union[list[str], _Same]


def _same(column: list[K]) -> bool:
    """Are all the items of a list (not empty) the first one?  (A C loop; the items of a
    column that is one value are mostly one object.)"""
    return column.count(column[0]) == len(column)


def _columns_table(columns: list[Column], headers: list[str], rows: int | None = None) -> list[str]:
    """:func:`_table_lines` of the table whose columns (lists of str cells, of equal length
    ``rows``, which a table of :class:`_Same` columns alone needs) are given: a large table is
    made a column at a time.  A :class:`_Clean` column is not stripped again, nor measured if
    it says how wide it is; a :class:`_Same` one is a literal part of each row."""
    columns = [column if type(column) is _Clean
               else _Same(column.cell.strip()) if type(column) is _Same
               else list(map(str.strip, column)) for column in columns]
    varying = [column for column in columns if type(column) is not _Same]
    if rows is None:
        rows = len(varying[0]) if varying else 0
    widths = [len(h) + 2 for h in headers]
    for i, column in enumerate(columns):
        known = len(column.cell) if type(column) is _Same else getattr(column, "widest", None)
        widest = max(map(len, column), default=0) if known is None else known
        if widest > widths[i]:
            widths[i] = widest
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    if not columns or not rows:
        return lines
    # a row is its cells padded (as str.ljust, as tabulate pads: "%-*s") and joined, trailing
    # spaces cut: one format per row (a C loop over the rows, for tables of 65,000 rows), a
    # _Same column's cell written into it; the last cell is not padded, so only a row whose
    # last cell is empty can end in spaces
    last = len(columns) - 1
    row = "  ".join([(column.cell if i == last else column.cell.ljust(w)).replace("%", "%%")
                     if type(column) is _Same else "%s" if i == last else "%%-%ds" % w
                     for i, (column, w) in enumerate(zip(columns, widths))])
    made = map(row.__mod__, zip(*varying)) if varying else [row % ()] * rows
    end = columns[-1]
    lines += map(str.rstrip, made) if (not end.cell if type(end) is _Same else "" in end) \
        else made
    if not lines[-1]:
        lines.pop()     # a last row with nothing in it ends the text: splitlines() dropped it
    return lines


def _cached(make: Callable[[K], str], items: list[K]) -> Column:
    """``[make(x).strip() for x in items]``, made once per distinct x (few prots, flags,
    counters), as a :class:`_Clean` column that knows its widest cell, or a :class:`_Same`
    one."""
    made = {x: make(x).strip() for x in set(items)}
    if len(made) == 1:
        return _Same(*made.values())
    return _Clean(map(made.__getitem__, items), max(map(len, made.values()), default=0))


def _prot(prot: tuple[str, ...]) -> str:
    return "".join(c[0] for c in prot) or "-"


def _flags(flags: tuple[str, ...]) -> str:
    return ",".join(flags) or "-"


def _pages(pages: tuple[PageView, ...]) -> str:
    if len(pages) == 1:
        pg = pages[0]
        return f"{pg.name}>{pg.mapping}{'' if pg.in_chain else '!'}"
    return (" ".join(f"{pg.name}>{pg.mapping}{'' if pg.in_chain else '!'}" for pg in pages[:4])
            + (f" +{len(pages) - 4}" if len(pages) > 4 else ""))


def _some(items: Sequence[str], most: int = 8) -> str:
    """A cell that stays narrow: tabulate pads every row to the widest cell of a column."""
    if not items:
        return "-"
    more = f" (+{len(items) - most} more)" if len(items) > most else ""
    return " ".join(items[:most]) + more


def _state(freed: bool) -> str:
    return "freed" if freed else "live"


def _counters(counters: tuple[tuple[str, int], ...]) -> str:
    return " ".join(f"{k}={v}" for k, v in counters) or "-"


def finding_line(f: Finding) -> str:
    where = f"step {f.step}" + (f" (line {f.line})" if f.line else "") if f.step else "layout"
    # invariant findings ("I1".."I7") may stop holding later; kernel events are one-off
    state = " (cleared)" if f.kind.startswith("I") and not f.active else ""
    return f"  {f.kind:<10} {f.where}: {f.detail} [{where}]{state}"


def topology(t: Topology) -> str:
    return "\n".join(topology_lines(t))


def topology_lines(t: Topology) -> Iterator[str]:
    """The lines of one snapshot, a process at a time."""
    return chain.from_iterable(topology_blocks(t))


def _fields(cls: type, *names: str) -> itemgetter:
    """An itemgetter of the named fields of a NamedTuple class (a C call per row, where an
    attribute is a property calling one)."""
    return itemgetter(*(cls._fields.index(n) for n in names))  # type: ignore[attr-defined]


_VMA_NAME, _VMA_START, _VMA_END, _VMA_PROT, _VMA_FLAGS, _VMA_ANON_VMA, _VMA_CHAIN = (
    _fields(VmaView, "name"), _fields(VmaView, "start"), _fields(VmaView, "end"),
    _fields(VmaView, "prot"), _fields(VmaView, "flags"), _fields(VmaView, "anon_vma"),
    _fields(VmaView, "chain"))
_AV_NAME, _AV_PARENT, _AV_ROOT, _AV_COUNTERS, _AV_REFCOUNT, _AV_USERS, _AV_FREED = (
    _fields(AnonVmaView, "name"), _fields(AnonVmaView, "parent"), _fields(AnonVmaView, "root"),
    _fields(AnonVmaView, "counters"), _fields(AnonVmaView, "refcount"),
    _fields(AnonVmaView, "users"), _fields(AnonVmaView, "freed"))


def topology_blocks(t: Topology) -> Iterator[list[str]]:
    """:func:`topology_lines` in lists of lines (a table is one list).  The columns of a table
    are made a column at a time by C loops (``map``) where they can be: 65,000-row tables."""
    by_name = dict(zip(map(_AV_NAME, t.anon_vmas), t.anon_vmas)).get

    for p in t.processes:
        vmas = p.vmas
        yield [f"process {p.name}"]
        if vmas:
            labels = list(map(_VMA_ANON_VMA, vmas))
            if _same(labels):           # one anon_vma: one parent and root too
                av = by_name(labels[0])     # None: no anon_vma (no label is None's)
                av_columns: list[Column] = [_Same(labels[0] or "-"),
                                            _Same((av.parent or "-") if av else "-"),
                                            _Same(av.root if av else "-")]
            else:
                avs = list(map(by_name, labels))
                parents = [(av.parent or "-") if av else "-" for av in avs]
                roots = [av.root if av else "-" for av in avs]
                av_columns = [[label or "-" for label in labels],
                              _Same(parents[0]) if _same(parents) else parents,
                              _Same(roots[0]) if _same(roots) else roots]
            chains = list(map(_VMA_CHAIN, vmas))
            yield _columns_table([
                list(map(_VMA_NAME, vmas)),
                # "%#x-%#x": hex() is that, without parsing a format per VMA
                _Clean(map("-".join, zip(map(hex, map(_VMA_START, vmas)),
                                         map(hex, map(_VMA_END, vmas))))),
                _cached(_prot, list(map(_VMA_PROT, vmas))),
                _cached(_flags, list(map(_VMA_FLAGS, vmas))),
                *av_columns,
                _Same(" ".join(chains[0]) or "-") if _same(chains)
                else [text or "-" for text in map(" ".join, chains)],
                # _pages(), the one-page VMA's inline (a call per VMA less)
                [(f"{pg.name}>{pg.mapping}" if pg.in_chain else f"{pg.name}>{pg.mapping}!")
                 if len(pages := v.pages) == 1 and (pg := pages[0])
                 else _pages(pages) if pages else "" for v in vmas],
            ], ["vma", "range", "prot", "flags", "anon_vma", "parent", "root",
                "chain (head first)", "pages"], len(vmas))
        else:
            yield ["  (no VMAs)"]
        yield [""]
    if t.anon_vmas:
        all_avs = t.anon_vmas
        parents = [parent or "-" for parent in map(_AV_PARENT, all_avs)]
        roots = list(map(_AV_ROOT, all_avs))
        yield _columns_table([
            list(map(_AV_NAME, all_avs)),
            _Same(parents[0]) if _same(parents) else parents,
            _Same(roots[0]) if _same(roots) else roots,
            _cached(_counters, list(map(_AV_COUNTERS, all_avs))),
            _cached(str, list(map(_AV_REFCOUNT, all_avs))),
            [" ".join(users) if 0 < len(users) <= 8 else _some(users)
             for users in map(_AV_USERS, all_avs)],       # _some(), the few users' inline
            _cached(_state, list(map(_AV_FREED, all_avs))),
        ], ["anon_vma", "parent", "root", "counters", "refcount", "used by", "state"],
            len(all_avs))
        yield [""]
    if t.findings:
        yield ["findings:"] + [finding_line(f) for f in t.findings]
    else:
        yield ["findings: none"]
    if t.crashed:
        yield ["the replay stopped: the kernel code of this version crashes here"]


def heading(r: Replay) -> str:
    return f"== {r.policy}: {r.policy_cite}"


#: lines per chunk
CHUNK_LINES = 4096


def render_run(replays: Sequence[Replay], opts: RenderOptions) -> Iterator[str]:
    """The text in chunks of at most :data:`CHUNK_LINES` lines (never one string)."""
    def blocks() -> Iterator[list[str]]:
        for r in replays:
            yield [heading(r)]
            snaps = r.snapshots if opts.snapshots else r.snapshots[-1:]
            for t in snaps:
                yield [f"-- {r.scenario}, {t.label} (after step {t.step})"]
                yield from topology_blocks(t)
                yield [""]
    # what "\n".join(lines).rstrip("\n") + "\n" gives: blank lines are held back until a
    # line with text follows them
    batch: list[str] = []
    blanks = 0
    for block in blocks():
        if "" not in block:
            if block:
                if blanks:
                    batch += [""] * blanks
                    blanks = 0
                batch += block
        else:
            for line in block:
                if not line:
                    blanks += 1
                    continue
                if blanks:
                    batch += [""] * blanks
                    blanks = 0
                batch.append(line)
        size = CHUNK_LINES
        if len(batch) >= size:
            full = len(batch) - len(batch) % size
            for i in range(0, full, size):
                yield "\n".join(batch[i:i + size]) + "\n"
            del batch[:full]
    yield "\n".join(batch) + "\n"


def render_compare(cmp: Comparison, opts: RenderOptions) -> str:
    a, b = cmp.a.policy, cmp.b.policy
    out = [f"--- {a}: {cmp.a.policy_cite}", f"+++ {b}: {cmp.b.policy_cite}"]
    for d in cmp.snapshots:
        if not opts.snapshots and d.label != "final":
            continue
        out.append(f"@@ {cmp.a.scenario}, {d.label} @@")
        if d.same:
            out.append("  same")
            continue
        if d.vmas:
            out.append(_table([[v.ref, v.field, v.a, v.b] for v in d.vmas], ["vma", "what", a, b]))
        if d.totals:
            out.append(_table([[t.what, str(t.a), str(t.b)] for t in d.totals], ["total", a, b]))
        for f in d.findings_only_a:
            out.append(f"  only {a}: {f}")
        for f in d.findings_only_b:
            out.append(f"  only {b}: {f}")
    out.append("same" if cmp.same else "different")
    return "\n".join(out) + "\n"
