"""``--format ascii``: box charts in the style of the seed thread (spec section 13).

Per process, VMAs are boxes on the lower row in address order; the anon_vmas they use are small
boxes above, and each VMA hangs off a horizontal arrow pointing left into its anon_vma::

    +-----+
    | AV0 |<--+---------+---------+
    +-----+   |         |         |
              |         |         |
       +------+  +------+  +------+
       |SRC1  |  |SRC2  |  |SRC3  |
       +------+  +------+  +------+

Layout decisions:

* Columns are the union of VMA start addresses over every process drawn together (both policies
  in a comparison), so a forked child's VMA sits under its parent's and a VMA missing from one
  process (``dontcopy``) leaves its column empty.  Each column is as wide as its widest content.
* VMAs using one anon_vma hang off one arrow; a VMA without an anon_vma has no arrow (an arrow
  may pass over it).  When the same anon_vma is used again after a VMA using another one, it gets
  a second box in the row: one arrow line per row keeps the chart readable in a mail.
* Too wide for ``opts.width``: first runs of columns that are identical in every process are
  elided (``SRC2..SRC9 (8)``), then the columns are wrapped into parts; each part repeats the process
  label and its own anon_vma row.  A note line says which happened.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from collections.abc import Hashable, Iterator, Sequence

from ..topology import ProcessView, Replay, Topology, VmaView
from . import RenderOptions
from .listing import (ELIDE_MIN, ELISION_NOTE, _kinds_by_vma, anon_vma_lines, check_width,
                      compare_heading, diff_lines, differing_refs, finding_kinds, finding_lines,
                      join_blocks, policy_heading, render_run as _render_headed, runs,
                      snapshot_heading, wrap)

if TYPE_CHECKING:  # the differ is not needed to draw a run
    from ..diff import Comparison

MARGIN = 2      # indent of a chart
GAP = 2         # blank columns before a box
ARROW = 4       # "<", at least two "-", the "+" the first VMA hangs off
MIN_INNER = 5   # narrowest VMA box interior

# '+' in unicode mode, by which neighbours it connects to: (up, down, left, right)
_JOINTS = {
    (False, True, False, True): "┌", (False, True, True, False): "┐",
    (True, False, False, True): "└", (True, False, True, False): "┘",
    (True, True, False, True): "├", (True, True, True, False): "┤",
    (False, True, True, True): "┬", (True, False, True, True): "┴",
    (True, True, True, True): "┼", (False, False, True, True): "─",
    (True, True, False, False): "│",
}
_UNICODE = {"-": "─", "|": "│", "<": "◀"}


class Cell(NamedTuple):
    """One VMA, or an elided run of identical VMAs, of one process in one column."""

    name: str                 # "SRC1", or "SRC2..SRC9" for an elided run
    anon_vma: str | None      # text of its anon_vma box: "AV1" or "AV1 (freed!)"
    bang: bool                # named in a finding
    marked: bool              # differs under the other policy
    key: Hashable             # what must be equal for cells to be elided together

    @property
    def label(self) -> str:
        return self.name + ("!" if self.bang else "")


Row = tuple["Cell | None", ...]     # one process: a cell (or nothing) per column


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(limit - 1, 1)] + "~"


def vma_limit(width: int) -> int:
    """Longest VMA label (with its "!") whose box fits in one part."""
    return width - MARGIN - GAP - 3


def av_limit(width: int) -> int:
    return width - MARGIN - GAP - 4 - ARROW


# -- from a topology to rows of cells -----------------------------------------------------------

def _cell(topo: Topology, proc: ProcessView, vma: VmaView, differs: frozenset[str],
          width: int) -> Cell:
    """The cell of one VMA (:func:`rows_of` makes them all at once, the same way)."""
    av = vma.anon_vma
    if av is not None:
        try:
            if topo.anon_vma(av).freed:
                av += " (freed!)"
        except KeyError:
            pass
    av = None if av is None else clip(av, av_limit(width))
    bang = bool(finding_kinds(topo, proc, vma))
    marked = proc.ref(vma) in differs
    name = clip(vma.name, vma_limit(width) - bang)
    return Cell(name, av, bang, marked, (vma.anon_vma, vma.chain, bang, marked))


def columns(topos: Sequence[Topology]) -> tuple[int, ...]:
    return tuple(sorted({v.start for t in topos for p in t.processes for v in p.vmas}))


def rows_of(topo: Topology, cols: Sequence[int], differs: frozenset[str],
            width: int) -> tuple[Row, ...]:
    """:func:`_cell` of every VMA in its column, with what it looks up done once per topology
    (a large process has tens of thousands of VMAs and few findings)."""
    index = {start: i for i, start in enumerate(cols)}
    freed = {a.name: a.freed for a in topo.anon_vmas}      # as topo.anon_vma() finds them
    banged = _kinds_by_vma(topo) if topo.findings else {}
    av_max, vma_max = av_limit(width), vma_limit(width)
    boxes: dict[str, str] = {}      # anon_vma name -> the text of its box
    new_cell = tuple.__new__        # Cell(...) without its argument handling
    out = []
    for proc in topo.processes:
        row: list[Cell | None] = [None] * len(cols)
        pname = proc.name
        prefix = pname + "/"
        for vma in proc.vmas:
            name = vma.name
            av = vma.anon_vma
            text = None
            if av is not None:
                text = boxes.get(av)
                if text is None:
                    text = boxes[av] = clip(av + " (freed!)" if freed.get(av) else av, av_max)
            bang = bool(banged) and (pname, name) in banged
            marked = bool(differs) and prefix + name in differs
            row[index[vma.start]] = new_cell(Cell, (
                name if len(name) <= vma_max - bang else clip(name, vma_max - bang), text,
                bang, marked, (av, vma.chain, bang, marked)))
        out.append(tuple(row))
    return tuple(out)


def elide(charts: Sequence[tuple[Row, ...]], width: int) -> list[tuple[Row, ...]]:
    """Collapse each run of columns that is identical in every row of every chart into one."""
    every = [row for rows in charts for row in rows]
    ncols = len(every[0]) if every else 0
    keys = list(zip(*[[_key(cell) for cell in row] for row in every])) if every else []

    spans: list[tuple[int, int]] = []
    for a, b in runs(range(ncols), keys.__getitem__):
        spans += [(a, b)] if b - a + 1 >= ELIDE_MIN else [(i, i) for i in range(a, b + 1)]
    if len(spans) == ncols:         # nothing to elide
        return [tuple(tuple(row) for row in rows) for rows in charts]
    return [tuple(tuple(_merge(row, a, b, width) for a, b in spans) for row in rows)
            for rows in charts]


def _key(cell: Cell | None) -> Hashable:
    return None if cell is None else cell.key


def _merge(row: Row, first: int, last: int, width: int) -> Cell | None:
    cell, end = row[first], row[last]
    if cell is None or end is None or first == last:
        return cell
    name = clip(f"{cell.name}..{end.name} ({last - first + 1})", vma_limit(width) - cell.bang)
    return cell._replace(name=name)


# -- geometry ---------------------------------------------------------------------------------

def segments(row: Row, band: range) -> list[tuple[str, list[int]]]:
    """(anon_vma box text, columns hanging off its arrow), left to right, within one band: the
    runs of VMAs (cells with an anon_vma) with the same box text, cells between without one
    left out."""
    out: list[tuple[str, list[int]]] = []
    last = None
    for i in band:
        cell = row[i]
        if cell is None:
            continue
        text = cell.anon_vma
        if text is None:
            continue
        if out and text == last:
            out[-1][1].append(i)
        else:
            out.append((text, [i]))
        last = text
    return out


def geometry(rows: Sequence[Row], band: range,
             segs: Sequence[list[tuple[str, list[int]]]] | None = None,
             ) -> tuple[dict[int, int], dict[int, int]]:
    """Box width and column width for each column of the band (shared by every row);
    ``segs``: the :func:`segments` of each row, if the caller has them."""
    box = dict.fromkeys(band, 0)
    col = dict.fromkeys(band, 0)
    for n, row in enumerate(rows):
        for i in band:
            cell = row[i]
            if cell is not None:
                b = len(cell.name) + cell.bang         # len(cell.label), without the property
                b = (b if b > MIN_INNER else MIN_INNER) + 3
                if b > box[i]:
                    box[i] = b
        for text, hung in (segments(row, band) if segs is None else segs[n]):
            c = GAP + len(text) + 4 + ARROW
            if c > col[hung[0]]:
                col[hung[0]] = c
    return box, {i: max(col[i], GAP + box[i]) for i in band}


def _band_width(rows: Sequence[Row], band: range) -> int:
    """The width of a part drawn with the columns of ``band`` (the definition :func:`bands`
    computes faster)."""
    return MARGIN + sum(geometry(rows, band)[1].values())


def bands(rows: Sequence[Row], ncols: int, width: int) -> list[range]:
    """Split the columns greedily into parts that fit ``width``: each part takes columns while
    its :func:`_band_width` stays within ``width`` (one at least).

    A column's width in a part depends only on the columns left of it in that part: the width
    of its VMA boxes, and the arrows that start in it (the first VMA of a row hanging off an
    anon_vma box in this part).  That is the case unless the VMA before it in its row (the
    nearest one with an anon_vma) hangs off the same box; that VMA may be in an earlier part,
    and then this column starts the arrow.  So a part grows a column at a time, and the whole
    split is linear in the number of columns (:func:`_band_width` of every prefix of every
    part is quadratic: minutes for a 65,000-VMA process)."""
    box = [0] * ncols
    fixed = [GAP] * ncols       # a column's width whatever part it is in (at least GAP)
    #: column -> (column of the VMA before it with the same anon_vma box, arrow width)
    joined: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        before, before_text = -1, None
        for i in range(ncols):
            cell = row[i]
            if cell is None:
                continue
            b = max(len(cell.name) + cell.bang, MIN_INNER) + 3      # len(cell.label)
            if b > box[i]:
                box[i] = b
            text = cell.anon_vma
            if text is None:
                continue
            arrow = GAP + len(text) + 4 + ARROW
            if before >= 0 and text == before_text:
                joined.setdefault(i, []).append((before, arrow))
            elif arrow > fixed[i]:
                fixed[i] = arrow
            before, before_text = i, text
    for i in range(ncols):
        fixed[i] = max(fixed[i], GAP + box[i])

    def column(i: int, start: int) -> int:
        w = fixed[i]
        for j, arrow in joined.get(i, ()):
            if j < start and arrow > w:
                w = arrow
        return w

    out: list[range] = []
    start = 0
    while start < ncols:
        used = MARGIN + column(start, start)
        end = start + 1
        while end < ncols:
            used += fixed[end] if end not in joined else column(end, start)
            if used > width:
                break
            end += 1
        out.append(range(start, end))
        start = end
    return out


def fits(rows: Sequence[Row], ncols: int, width: int) -> bool:
    """Whether :func:`bands` makes one part (or none) of the columns: their widths in a part
    that starts at the first, summed until they pass ``width`` (a large chart does at once)."""
    used = MARGIN
    last: list[str | None] = [None] * len(rows)     # each row's last anon_vma box so far
    for i in range(ncols):
        box, col = 0, GAP
        for r, row in enumerate(rows):
            cell = row[i]
            if cell is None:
                continue
            box = max(box, max(len(cell.label), MIN_INNER) + 3)
            text = cell.anon_vma
            if text is not None:
                if text != last[r]:
                    col = max(col, GAP + len(text) + 4 + ARROW)
                last[r] = text
        used += max(col, GAP + box)
        if used > width and i > 0:
            return False
    return True


# -- drawing ----------------------------------------------------------------------------------

class Canvas:
    """A grid of characters; line art is remembered so that unicode mode converts only it
    (only when ``track_art``: plain ASCII needs no such memory)."""

    def __init__(self, width: int, height: int, track_art: bool = True) -> None:
        self.grid = [[" "] * width for _ in range(height)]
        self.art: set[tuple[int, int]] = set()
        self.track_art = track_art

    def put(self, y: int, x: int, ch: str, art: bool = True) -> None:
        self.grid[y][x] = ch
        if self.track_art:
            (self.art.add if art else self.art.discard)((y, x))

    def text(self, y: int, x: int, text: str) -> None:
        self.grid[y][x:x + len(text)] = text
        if self.track_art:
            self.art.difference_update([(y, x + i) for i in range(len(text))])

    def hline(self, y: int, x0: int, x1: int, ch: str = "-") -> None:
        if x1 < x0:
            return
        self.grid[y][x0:x1 + 1] = ch * (x1 + 1 - x0)
        if self.track_art:
            self.art.update([(y, x) for x in range(x0, x1 + 1)])

    def box(self, y: int, x: int, width: int, label: str) -> None:
        for row in (y, y + 2):
            self.hline(row, x + 1, x + width - 2)
            self.put(row, x, "+")
            self.put(row, x + width - 1, "+")
        self.put(y + 1, x, "|")
        self.put(y + 1, x + width - 1, "|")
        self.text(y + 1, x + 1, label)

    def _links(self, y: int, x: int, chars: str) -> bool:
        inside = 0 <= y < len(self.grid) and 0 <= x < len(self.grid[y])
        return inside and (y, x) in self.art and self.grid[y][x] in chars

    def _unicode(self, y: int, x: int) -> str:
        ch = self.grid[y][x]
        if (y, x) not in self.art:
            return ch
        if ch != "+":
            return _UNICODE.get(ch, ch)
        where = (self._links(y - 1, x, "|+"), self._links(y + 1, x, "|+"),
                 self._links(y, x - 1, "-+"), self._links(y, x + 1, "-+"))
        return _JOINTS.get(where, "+")

    def lines(self, unicode: bool = False) -> list[str]:
        out = []
        for y, row in enumerate(self.grid):
            chars = [self._unicode(y, x) for x in range(len(row))] if unicode else row
            out.append("".join(chars).rstrip())
        return out


def draw(row: Row, band: range, rows: Sequence[Row], unicode: bool,
         geom: tuple[dict[int, int], dict[int, int]] | None = None,
         segs: list[tuple[str, list[int]]] | None = None) -> list[str]:
    """The chart of one process in one part: anon_vma row, arrows, VMA boxes, markers
    (``geom``: ``geometry(rows, band)``, ``segs``: ``segments(row, band)``, if the caller has
    them)."""
    box, col = geom or geometry(rows, band)
    left = {}
    x = MARGIN
    for i in band:
        left[i] = x
        x += col[i]
    marked = any([cell.marked for cell in map(row.__getitem__, band) if cell is not None])
    draw_with = _draw_canvas if unicode else _draw_plain
    return draw_with(row, band, box, col, left, x, marked, unicode,
                     segments(row, band) if segs is None else segs)


def _draw_canvas(row: Row, band: range, box: dict[int, int], col: dict[int, int],
                 left: dict[int, int], width: int, marked: bool, unicode: bool,
                 segs: list[tuple[str, list[int]]]) -> list[str]:
    """:func:`draw` on a :class:`Canvas` (unicode needs what it remembers of the line art)."""
    canvas = Canvas(width, 8 if marked else 7, track_art=unicode)
    for text, hung in segs:
        start = left[hung[0]] + GAP
        canvas.box(0, start, len(text) + 4, f" {text} ")
        joints = [left[i] + col[i] - 1 for i in hung]
        canvas.put(1, start + len(text) + 4, "<")
        canvas.hline(1, start + len(text) + 5, joints[-1])
        for j in joints:
            canvas.put(1, j, "+")
            canvas.hline(2, j, j, "|")
            canvas.hline(3, j, j, "|")
    for i in band:
        cell = row[i]
        if cell is None:
            continue
        bx = left[i] + col[i] - box[i]
        canvas.box(4, bx, box[i], cell.label)
        if cell.marked:
            canvas.text(7, bx, "^" * box[i])
    lines = canvas.lines(unicode)
    while lines and not lines[0]:       # no anon_vma row: the boxes come first
        lines.pop(0)
    return lines


def _draw_plain(row: Row, band: range, box: dict[int, int], col: dict[int, int],
                left: dict[int, int], width: int, marked: bool, unicode: bool,
                segs: list[tuple[str, list[int]]]) -> list[str]:
    """:func:`_draw_canvas` without unicode, each line written left to right as a string (a
    large run draws tens of thousands of parts).  Nothing overlaps: an anon_vma box and its
    arrow fit in the column of its first VMA (:func:`geometry`), a VMA's box and its joint in
    its column, and the line art of a box row comes after the arrows that end before it."""
    top: list[str] = []         # each line's pieces, and how far it reaches
    arrow: list[str] = []
    bottom: list[str] = []
    down: list[str] = []
    at_top = at_arrow = at_bottom = at_down = 0
    for text, hung in segs:
        start = left[hung[0]] + GAP
        edge = "+" + "-" * (len(text) + 2) + "+"
        top += (" " * (start - at_top), edge)
        bottom += (" " * (start - at_bottom), edge)
        arrow += (" " * (start - at_arrow), "| ", text, " |<")
        at_top = at_bottom = start + len(text) + 4
        at_arrow = at_top + 1
        for i in hung:
            j = left[i] + col[i] - 1
            arrow += ("-" * (j - at_arrow), "+")
            bottom += (" " * (j - at_bottom), "|")
            down += (" " * (j - at_down), "|")
            at_arrow = at_bottom = at_down = j + 1
    upper: list[str] = []
    label_row: list[str] = []
    marks: list[str] = []
    at_box = at_marks = 0
    for i in band:
        cell = row[i]
        if cell is None:
            continue
        w = box[i]
        bx = left[i] + col[i] - w
        pad = " " * (bx - at_box)
        upper += (pad, "+", "-" * (w - 2), "+")
        label_row += (pad, "|", cell.label.ljust(w - 2), "|")
        at_box = bx + w
        if cell.marked:
            marks += (" " * (bx - at_marks), "^" * w)
            at_marks = bx + w
    boxes = "".join(upper).rstrip()
    lines = ["".join(top).rstrip(), "".join(arrow).rstrip(), "".join(bottom).rstrip(),
             "".join(down).rstrip(), boxes, "".join(label_row).rstrip(), boxes]
    if marked:
        lines.append("".join(marks).rstrip())
    while lines and not lines[0]:       # no anon_vma row: the boxes come first
        lines.pop(0)
    return lines


# -- charts -----------------------------------------------------------------------------------

def layout(topos: Sequence[Topology], differs: frozenset[str],
           width: int) -> tuple[list[tuple[Row, ...]], list[range], list[str]]:
    """Rows for each topology, the parts, and the note lines saying what was done to fit."""
    cols = columns(topos)
    charts = [rows_of(t, cols, differs, width) for t in topos]
    every = [row for rows in charts for row in rows]
    # bands() of the columns as they are only to see if they fit in one part
    parts = [range(0, len(cols))] if cols else []
    notes: list[str] = []
    if not fits(every, len(cols), width):
        charts = elide(charts, width)
        every = [row for rows in charts for row in rows]
        ncols = len(every[0]) if every else 0
        if ncols < len(cols):
            notes += wrap(ELISION_NOTE + f" (elided to fit {width} columns)", width)
        parts = bands(every, ncols, width)
    if len(parts) > 1:
        notes += wrap(f"note: too wide for {width} columns, drawn in {len(parts)} parts, "
                      "each with its own anon_vma row", width)
    return charts, parts, notes


def chart_lines(topo: Topology, rows: tuple[Row, ...], every: Sequence[Row],
                parts: Sequence[range], notes: list[str], opts: RenderOptions) -> list[str]:
    """Processes (parent first, in creation order), notes, legend, anon_vmas, findings."""
    lines: list[str] = []
    for n, band in enumerate(parts, 1):
        part = f" (part {n}/{len(parts)})" if len(parts) > 1 else ""
        segs = [segments(row, band) for row in every]
        by_row = {id(row): got for row, got in zip(every, segs)}
        geom = geometry(every, band, segs)
        for proc, row in zip(topo.processes, rows, strict=True):
            if not any(map(row.__getitem__, band)):       # (a Cell is a non-empty tuple)
                where = " in this part" if proc.vmas else ""
                lines += [f"Process {proc.name}:{part} no VMAs{where}", ""]
            else:
                lines += [f"Process {proc.name}:{part}", ""]
                lines += draw(row, band, every, opts.unicode, geom, by_row.get(id(row))) + [""]
    if not topo.processes:
        lines += ["(no processes)", ""]
    for section in (notes + _legend(rows, opts.width), anon_vma_lines(topo, opts.width),
                    finding_lines(topo, opts.width)):
        lines += section + [""] if section else []
    return lines[:-1]


def _legend(rows: Sequence[Row], width: int) -> list[str]:
    cells = [c for row in rows for c in row if c is not None]
    out = []
    if any(c.bang for c in cells):
        out += wrap("NAME! = VMA named in a finding below", width)
    if any(c.marked for c in cells):
        out += wrap("^^^^ = VMA differs under the other policy", width)
    return out


def _single(topo: Topology, opts: RenderOptions) -> list[str]:
    charts, parts, notes = layout([topo], frozenset(), opts.width)
    return chart_lines(topo, charts[0], list(charts[0]), parts, notes, opts)


def render_run(replays: Sequence[Replay], opts: RenderOptions) -> Iterator[str]:
    return _render_headed(replays, opts, lambda topo, width: _single(topo, opts))


def render_compare(cmp: Comparison, opts: RenderOptions) -> str:
    check_width(opts)
    blocks = [compare_heading(cmp, opts.width)]
    for snap in cmp.snapshots if opts.snapshots else cmp.snapshots[-1:]:
        differs = differing_refs(snap)
        charts, parts, notes = layout([snap.a, snap.b], differs, opts.width)
        every = [row for rows in charts for row in rows]
        blocks.append(snapshot_heading(snap.a, opts.width))
        for replay, topo, rows in ((cmp.a, snap.a, charts[0]), (cmp.b, snap.b, charts[1])):
            blocks.append(policy_heading(replay, opts.width) + [""]
                          + chart_lines(topo, rows, every, parts, notes, opts))
        blocks.append(diff_lines(cmp, snap, opts.width))
    return join_blocks(blocks)
