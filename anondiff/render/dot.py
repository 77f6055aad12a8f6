"""``--format dot``: Graphviz source (written by :mod:`.dotsource`), and images drawn from it.

Building the DOT text is pure; only :func:`write_image` runs the ``dot`` program.  The drawing is
meant to be linked from a review, so it fits a page width and shows what anon_vma bugs are about:

* ``rankdir=LR``.  Each process is one table node (processes stacked in creation order, an empty
  one says so, a crashed one is marked), one row per VMA in address order: name, start as an
  offset from the lowest address drawn (the base is in the title) and size in pages, prot
  (``rw-``), the flags that not every VMA has (the common ones are in the title), and its
  anonymous pages as runs (consecutive pages with the same ``page->mapping`` state).
* anon_vmas are boxes to the right, each child to the left of its parent (the root rightmost).
  Freed anon_vmas that something still points to are red and dashed.
* Edges, each style in the legend drawn with the graph:
  solid black: ``vma->anon_vma``; dashed: ``anon_vma->parent`` (a dashed ``root`` edge before
  v3.19, which has no parent); grey: a run of pages whose ``page->mapping`` is another
  anon_vma of the VMA's chain (pages mapping the VMA's own anon_vma have no edge of their own);
  red dashed: pages whose anon_vma is not in the VMA's chain (rmap cannot find them); red bold:
  pages whose anon_vma is freed (use-after-free); with ``--chains`` one dotted, numbered edge
  per chain link (0 = head), in a colour of its own per VMA so each VMA's chain can be followed.
* VMAs named in a finding are red; the findings are listed in a red note.
* A comparison draws each process once, VMA by VMA aligned: one column per policy for the
  anon_vma and chain, the cells that differ filled; the first policy's anon_vmas to the left,
  the second's to the right.
* Node ids are built by :func:`node_id`, never contain ':' (DOT port syntax) and cannot collide.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import os
import textwrap
from collections.abc import Callable, Sequence

from ..errors import RenderError
from ..topology import AnonVmaView, PageView, ProcessView, Replay, Topology, VmaView
from . import RenderOptions
from .dotsource import Digraph, escape, nohtml
from .listing import (differing_refs, finding_kinds, has_parent, is_root, lineage, runs,
                      shown_anon_vmas)

if TYPE_CHECKING:  # the differ is not needed to draw a run
    from ..diff import Comparison, SnapshotDiff

IMAGE_FORMATS = {".pdf": "pdf", ".png": "png", ".svg": "svg"}
DOT_TIMEOUT = 300   # seconds
FONT = "monospace"
FONTSIZE = "10"
DIFFERS_FILL = "#ffd966"
HEAD_FILL = "#eeeeee"
TEXT_WIDTH = 60     # columns of the title and the notes
#: the widest drawing, in inches: wider ones are scaled down to it (letter landscape, or a
#: browser window); the shipped scenarios fit at a scale of 0.8 or more
PAGE_WIDTH = 11
PAGE = 4096
#: one colour per VMA for --chains edges (cycled), dark enough on white
CHAIN_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                 "#ff7f0e")
PROT = (("read", "r"), ("write", "w"), ("exec", "x"))


def mangle(text: str) -> str:
    """Keep ``[A-Za-z0-9]``, write every other character (``_`` too) as ``_hh``, ``_uhhhh`` or
    ``_Uhhhhhhhh`` (its code point), so a mangled name never contains ``__``."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        elif code < 0x100:
            out.append(f"_{code:02x}")
        elif code < 0x10000:
            out.append(f"_u{code:04x}")
        else:
            out.append(f"_U{code:08x}")
    return "".join(out)


def node_id(kind: str, *names: str) -> str:
    """``node_id("vma", "P", "SRC1") == "vma_P__SRC1"``: a plain DOT ID, distinct for distinct
    names (the ``__`` separator never occurs inside a mangled name)."""
    return f"{kind}_" + "__".join(mangle(n) for n in names)


def label(*lines: str, left: bool = False) -> str:
    r"""A label of literal lines (backslashes, quotes and ``<...>`` lose their DOT meaning),
    joined by ``\n`` (centred) or ``\l`` (left-justified)."""
    sep = "\\l" if left else "\\n"
    text = sep.join(escape(" ".join(line.splitlines())) for line in lines)
    return nohtml(text + (sep if left else ""))


def wrapped(*lines: str, width: int = TEXT_WIDTH) -> list[str]:
    return [part for line in lines
            for part in (textwrap.wrap(line, width, subsequent_indent="  ",
                                       break_long_words=False, break_on_hyphens=False) or [""])]


def h(text: str) -> str:
    """Text for an HTML-like label: ``html.escape(text, quote=True)`` (without importing
    :mod:`html`, whose entity tables cost start-up time)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#x27;"))


def prot_text(vma: VmaView) -> str:
    return "".join(c if p in vma.prot else "-" for p, c in PROT)


def common_flags(topos: Sequence[Topology]) -> tuple[str, ...]:
    """Flags every VMA drawn has (VM_ACCOUNT on every private writable mapping): said once in
    the title instead of on every VMA."""
    sets = [set(v.flags) for t in topos for p in t.processes for v in p.vmas]
    return tuple(sorted(set.intersection(*sets))) if sets else ()


def base_address(topos: Sequence[Topology]) -> int:
    starts = [v.start for t in topos for p in t.processes for v in p.vmas]
    return min(starts) if starts else 0


def span_text(vma: VmaView, base: int) -> str:
    pages = (vma.end - vma.start) // PAGE
    return f"+{vma.start - base:#x} {pages}p"


def crashed_processes(topo: Topology) -> set[str]:
    return {f.where.split("/")[0] for f in topo.findings if f.kind == "CRASH"}


class PageRun:
    """Consecutive pages of one VMA with the same ``page->mapping`` state."""

    def __init__(self, pages: Sequence[PageView]) -> None:
        self.pages = tuple(pages)
        first = pages[0]
        self.mapping, self.in_chain, self.freed = first.mapping, first.in_chain, first.mapping_freed

    @property
    def text(self) -> str:
        if len(self.pages) == 1:
            return self.pages[0].name
        if len(self.pages) == 2:
            return f"{self.pages[0].name} {self.pages[1].name}"
        return f"{self.pages[0].name}..{self.pages[-1].name} ({len(self.pages)})"

    def trouble(self) -> str | None:
        if self.freed:
            return "freed"
        if not self.in_chain:
            return "miss"
        return None


def page_runs(vma: VmaView) -> list[PageRun]:
    pages = vma.pages
    return [PageRun(pages[a:b + 1]) for a, b in
            runs(pages, lambda p: (p.mapping, p.in_chain, p.mapping_freed))]


SIDE_COLOURS = {"a": "#1f4e99", "b": "#b35900"}
EDGE_STYLES: dict[str, dict[str, str]] = {
    "anon_vma": {},
    "a": {"color": SIDE_COLOURS["a"]},
    "b": {"color": SIDE_COLOURS["b"]},
    "parent": {"style": "dashed"},
    "root": {"style": "dashed", "label": "root"},
    "pages": {"color": "grey60", "penwidth": "0.7", "arrowhead": "vee"},
    "miss": {"color": "red", "style": "dashed", "arrowhead": "vee"},
    "freed": {"color": "red", "penwidth": "2.5", "arrowhead": "vee"},
    "chain": {"style": "dotted", "color": "grey40"},
}
LEGEND = {
    "anon_vma": "vma->anon_vma",
    "a": "vma->anon_vma, 1st policy",
    "b": "vma->anon_vma, 2nd policy",
    "parent": "anon_vma->parent",
    "root": "anon_vma->root (pre-v3.19)",
    "pages": "pages -> other anon_vma in chain",
    "miss": "pages -> anon_vma not in chain",
    "freed": "pages -> freed anon_vma (UAF)",
    "chain": "chain link n (0 = head)",
}


# -- one graph's bookkeeping ------------------------------------------------------------------

class _Edges:
    """Collects edges in one of the EDGE_STYLES, remembers which styles the drawing uses, and
    writes them after every node (:meth:`flush`): dot's first ordering of a rank follows the
    order in which nodes first appear, so clusters stay in source order."""

    def __init__(self, g: Digraph) -> None:
        self.g = g
        self.used: list[str] = []
        self.pending: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, tail: str, head: str, kind: str, **attrs: str) -> None:
        if kind not in self.used:
            self.used.append(kind)
        self.pending.append((tail, head, {**EDGE_STYLES[kind], **attrs}))

    def flush(self) -> None:
        for tail, head, attrs in self.pending:
            self.g.edge(tail, head, **attrs)
        self.pending = []


def _legend(g: Digraph, edges: _Edges, prefix: str = "") -> list[str]:
    """One sample edge per style used, its meaning to the left of it; returns the text nodes
    (to be kept under the drawing)."""
    ids: list[str] = []
    for n, kind in enumerate(k for k in EDGE_STYLES if k in edges.used):
        text, end = f"{prefix}legend{n}", f"{prefix}legend{n}_"
        g.node(text, label(("legend: " if n == 0 else "") + LEGEND[kind]), shape="plaintext")
        g.node(end, "", shape="point", width="0.05")
        attrs = dict(EDGE_STYLES[kind])
        if kind == "chain":
            attrs["label"] = "n"
        g.edge(text, end, **attrs)
        ids.append(text)
    return ids


def _findings(g: Digraph, topo: Topology, node: str) -> list[str]:
    if not topo.findings:
        return []
    lines = wrapped(*(f"{f.kind} {f.where}: {f.detail} (step {f.step})" for f in topo.findings))
    g.node(node, label("findings:", *lines, left=True), shape="note", color="red",
           fontcolor="red")
    return [node]


def _keep_order(g: Digraph, ids: Sequence[str], cluster: bool = False) -> None:
    """Nodes on one rank, top to bottom in this order.  (dot lays out LR graphs as TB ones
    turned; inside a cluster a flat edge comes out the other way up, hence ``cluster``.)"""
    if cluster:
        ids = list(reversed(ids))
    with g.subgraph() as r:
        r.attr(rank="same")
        for a, b in zip(ids, ids[1:]):
            r.edge(a, b, style="invis")


#: short names of the anon_vma counters in the boxes (spelled out in the title)
COUNTER_NAMES = {"num_children": "ch", "num_active_vmas": "act", "degree": "deg"}


#: anon_vma trees deeper than this are drawn in one column (parent edges then do not push
#: parents rightwards), so that a long chain keeps the drawing within the page width; a
#: comparison's table is wider
MAX_DEPTH = 5
MAX_DEPTH_COMPARE = 4


def _anon_vmas(c: Digraph, topo: Topology, edges: _Edges,
               av_id: Callable[[str], str], in_cluster: bool, max_depth: int = MAX_DEPTH) -> None:
    """The anon_vma boxes of one topology and their parent (or root) edges."""
    shown = shown_anon_vmas(topo)
    deep = max((len(lineage(topo, av.name)) for av in shown), default=0) > max_depth
    for av in shown:
        c.node(av_id(av.name), _av_label(av), **_av_attrs(av))
        extra = {"constraint": "false"} if deep else {}
        if has_parent(av):
            edges(av_id(av.name), av_id(av.parent or ""), "parent", **extra)
        elif not is_root(av):
            edges(av_id(av.name), av_id(av.root), "root", **extra)
    if deep:
        _keep_order(c, [av_id(av.name) for av in shown], cluster=in_cluster)


def _av_label(av: AnonVmaView) -> str:
    head = av.name + (" (root)" if is_root(av) else "") + (" freed!" if av.freed else "")
    counters = " ".join([f"{COUNTER_NAMES.get(k, k)}={v}" for k, v in av.counters]
                        + [f"ref={av.refcount}"])
    return label(head, counters)


def _av_attrs(av: AnonVmaView) -> dict[str, str]:
    if av.freed:
        return {"style": "rounded,dashed,bold", "color": "red", "fontcolor": "red"}
    return {"style": "rounded"}


# -- a run: one topology ----------------------------------------------------------------------

class _Run:
    """Adds one topology: one table node for its processes (stacked in creation order, a row
    per VMA in address order), a box per anon_vma shown."""

    def __init__(self, topo: Topology, prefix: str, opts: RenderOptions, base: int,
                 common: tuple[str, ...]) -> None:
        self.topo, self.prefix, self.opts, self.base, self.common = topo, prefix, opts, base, common
        self.crashed = crashed_processes(topo)
        self.show_flags = any(set(v.flags) - set(common)
                              for p in topo.processes for v in p.vmas)
        self.table = prefix + "vmas"

    def av_id(self, name: str) -> str:
        return self.prefix + node_id("av", name)

    def draw(self, c: Digraph, edges: _Edges) -> list[str]:
        """Returns the nodes of the left column, top to bottom."""
        c.node(self.table, self._table(), shape="plain")
        _anon_vmas(c, self.topo, edges, self.av_id, in_cluster=bool(self.prefix))
        colour = 0
        for k, proc in enumerate(self.topo.processes):
            for i, vma in enumerate(proc.vmas):
                port = f"{self.table}:p{k}v{i}:e"
                if vma.anon_vma is not None:
                    edges(port, self.av_id(vma.anon_vma), "anon_vma")
                for j, run in enumerate(self._other_runs(vma)):
                    if run.mapping is not None:
                        edges(f"{self.table}:p{k}v{i}r{j}:e", self.av_id(run.mapping),
                              run.trouble() or "pages")
                if self.opts.chains and vma.chain:
                    col = CHAIN_COLOURS[colour % len(CHAIN_COLOURS)]
                    colour += 1
                    for pos, name in enumerate(vma.chain):
                        edges(port, self.av_id(name), "chain", color=col, fontcolor=col,
                              label=str(pos), constraint="false")
        return [self.table] + _findings(c, self.topo, self.prefix + "findings")

    def _other_runs(self, vma: VmaView) -> list[PageRun]:
        """Runs of pages that get an edge: not mapping the VMA's own anon_vma, or in trouble."""
        return [r for r in page_runs(vma)
                if r.mapping != vma.anon_vma or r.trouble() is not None]

    def _table(self) -> str:
        ncols = 6 + self.show_flags
        rows = []
        for k, proc in enumerate(self.topo.processes):
            crashed = proc.name in self.crashed
            head = f"Process {proc.name}" + (" (crashed)" if crashed else "")
            colour = ' COLOR="red"' if crashed else ""
            rows.append(f'<TR><TD COLSPAN="{ncols}" BGCOLOR="{HEAD_FILL}" ALIGN="LEFT"{colour}>'
                        f"<B>{h(head)}</B></TD></TR>")
            if not proc.vmas:
                rows.append(f'<TR><TD COLSPAN="{ncols}"><I>no VMAs</I></TD></TR>')
            for i, vma in enumerate(proc.vmas):
                rows.append(self._row(proc, f"p{k}v{i}", vma))
        if not self.topo.processes:
            rows.append("<TR><TD><I>no processes</I></TD></TR>")
        return ('<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="2">'
                + "\n".join(rows) + "</TABLE>>")

    def _row(self, proc: ProcessView, port: str, vma: VmaView) -> str:
        kinds = finding_kinds(self.topo, proc, vma)
        name = f"<B>{h(vma.name)}</B>"
        if kinds:
            name = f'<FONT COLOR="red">{name} ! {h(" ".join(kinds))}</FONT>'
        cells = [f'<TD ALIGN="LEFT">{name}</TD>', f"<TD>{h(span_text(vma, self.base))}</TD>",
                 f"<TD>{prot_text(vma)}</TD>"]
        if self.show_flags:
            cells.append(f"<TD>{h(' '.join(f for f in vma.flags if f not in self.common))}</TD>")
        own = [r for r in page_runs(vma) if r.mapping == vma.anon_vma and r.trouble() is None]
        cells.append(f"<TD>{h(' '.join(r.text for r in own)) or '-'}</TD>")
        out = f'<TD PORT="{port}" ALIGN="LEFT">' + (
            f"<B>{h(vma.anon_vma)}</B>" if vma.anon_vma else "<I>none</I>") + "</TD>"
        others = []
        for j, run in enumerate(self._other_runs(vma)):
            fill = {"freed": ' BGCOLOR="#ffcccc"', "miss": ' BGCOLOR="#ffe5cc"'}.get(
                run.trouble() or "", "")
            others.append(f'<TR><TD PORT="{port}r{j}" ALIGN="LEFT"{fill}>{h(run.text)}</TD></TR>')
        if others:
            cells.append(out)
            cells.append('<TD><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
                         + "".join(others) + "</TABLE></TD>")
        else:
            cells.append(out.replace("<TD ", '<TD COLSPAN="2" ', 1))
        return "<TR>" + "".join(cells) + "</TR>"


# -- graphs -----------------------------------------------------------------------------------

def _digraph(title: Sequence[str]) -> Digraph:
    return Digraph(
        "anondiff",
        graph_attr={"rankdir": "LR", "fontname": FONT, "fontsize": FONTSIZE, "labelloc": "t",
                    "labeljust": "l", "label": label(*wrapped(*title), left=True),
                    "nodesep": "0.15", "ranksep": "0.3", "newrank": "true",
                    "size": f"{PAGE_WIDTH},1000"},
        node_attr={"shape": "box", "fontname": FONT, "fontsize": FONTSIZE, "margin": "0.06,0.03",
                   "height": "0.3"},
        edge_attr={"fontname": FONT, "fontsize": FONTSIZE, "arrowsize": "0.7"})


def _addresses(topos: Sequence[Topology]) -> tuple[int, tuple[str, ...], str]:
    base, common = base_address(topos), common_flags(topos)
    note = f"addresses: +offset from {base:#x}, size in pages (p)"
    if common:
        note += f"; every VMA has {', '.join(common)}"
    keys = {k for t in topos for av in t.anon_vmas for k, _ in av.counters}
    named = [f"{COUNTER_NAMES[k]} = {k}" for k in ("degree", "num_children", "num_active_vmas")
             if k in keys]
    note += "; anon_vma counters: " + ", ".join(named + ["ref = refcount"])
    return base, common, note


def _title(replay: Replay, topo: Topology) -> list[str]:
    return [f"{replay.policy}: {replay.policy_cite}",
            f"{topo.scenario}: {topo.label} (after step {topo.step}"
            + (", crashed)" if topo.crashed else ")")]


def render_run(replays: Sequence[Replay], opts: RenderOptions) -> str:
    """One graph; several snapshots (or policies) become one cluster each, stacked."""
    pairs = [(r, t) for r in replays for t in (r.snapshots if opts.snapshots else r.snapshots[-1:])]
    base, common, note = _addresses([t for _, t in pairs])
    if len(pairs) == 1:
        replay, topo = pairs[0]
        g = _digraph(_title(replay, topo) + [note])
        edges = _Edges(g)
        column = _Run(topo, "", opts, base, common).draw(g, edges)
        _keep_order(g, column + _legend(g, edges))
        edges.flush()
        return g.source
    g = _digraph(([replays[0].scenario] if replays else []) + [note])
    edges = _Edges(g)
    tables: list[str] = []
    # the snapshots in a borderless cluster of their own: that keeps them in source order,
    # top to bottom (at the top level dot orders clusters as it likes)
    with g.subgraph(name="cluster_snapshots") as every:
        every.attr(penwidth="0", label="")
        for i, (replay, topo) in enumerate(pairs):
            with every.subgraph(name=f"cluster_s{i}") as c:
                c.attr(label=label(*wrapped(*_title(replay, topo)), left=True), labeljust="l",
                       style="rounded", penwidth="1")
                column = _Run(topo, f"s{i}_", opts, base, common).draw(c, edges)
                _keep_order(c, column, cluster=True)
                tables.append(column[0])
        _keep_order(every, tables)
    _keep_order(g, _legend(g, edges))
    edges.flush()
    return g.source


# -- a comparison: both policies aligned VMA by VMA -------------------------------------------

class _Aligned:
    """One snapshot of a comparison: one table with a row per VMA of either policy, in address
    order, whose last cell holds both policies' anon_vma (the first policy above, the second
    below, each in its colour), filled where they differ; each policy's anon_vmas in a box of
    their own to the right."""

    def __init__(self, cmp: Comparison, snap: SnapshotDiff, prefix: str, base: int,
                 common: tuple[str, ...]) -> None:
        self.cmp, self.snap, self.prefix, self.base, self.common = cmp, snap, prefix, base, common
        self.fields: dict[str, set[str]] = {}
        for d in snap.vmas:
            self.fields.setdefault(d.ref, set()).add(d.field)
        self.sides = (snap.a, snap.b)
        self.show_flags = any(set(v.flags) - set(common) for t in self.sides
                              for p in t.processes for v in p.vmas)
        self.chains = any(d.field == "chain" for d in snap.vmas)
        self.table = prefix + "vmas"

    def av_id(self, side: str, name: str) -> str:
        return f"{self.prefix}{side}_" + node_id("av", name)

    def processes(self) -> list[str]:
        names = [p.name for p in self.snap.a.processes]
        return names + [p.name for p in self.snap.b.processes if p.name not in names]

    def rows(self, proc: str) -> list[tuple[VmaView | None, VmaView | None]]:
        sides = []
        for t in self.sides:
            try:
                sides.append({v.name: v for v in t.process(proc).vmas})
            except KeyError:
                sides.append({})
        a, b = sides
        names = sorted(set(a) | set(b),
                       key=lambda n: ((a.get(n) or b.get(n)).start, n))  # type: ignore[union-attr]
        return [(a.get(n), b.get(n)) for n in names]

    def draw(self, c: Digraph, edges: _Edges) -> list[str]:
        """Returns the nodes of the left column, top to bottom."""
        c.node(self.table, self._table(), shape="plain")
        for side, topo, policy in (("a", self.snap.a, self.cmp.a.policy),
                                   ("b", self.snap.b, self.cmp.b.policy)):
            with c.subgraph(name=f"cluster_{self.prefix}{side}") as s:
                s.attr(label=label(f"anon_vmas under {policy}"), style="rounded",
                       color=SIDE_COLOURS[side], fontcolor=SIDE_COLOURS[side])
                _anon_vmas(s, topo, edges, lambda name, side=side: self.av_id(side, name),
                           in_cluster=True, max_depth=MAX_DEPTH_COMPARE)
        for k, name in enumerate(self.processes()):
            for i, pair in enumerate(self.rows(name)):
                for side, vma in zip("ab", pair):
                    if vma is not None and vma.anon_vma is not None:
                        edges(f"{self.table}:p{k}{side}{i}:e", self.av_id(side, vma.anon_vma),
                              side)
        return [self.table, self._note(c)]

    def _table(self) -> str:
        a, b = self.cmp.a.policy, self.cmp.b.policy
        ncols = 4 + self.show_flags
        what = "anon_vma" + (" [chain]" if self.chains else "")
        rows = [f'<TR><TD COLSPAN="{ncols - 1}"><I>VMA</I></TD><TD ALIGN="LEFT"><I>{what}:</I>'
                f'<BR ALIGN="LEFT"/><FONT COLOR="{SIDE_COLOURS["a"]}">{h(a)}</FONT>'
                f'<BR ALIGN="LEFT"/><FONT COLOR="{SIDE_COLOURS["b"]}">{h(b)}</FONT>'
                '<BR ALIGN="LEFT"/></TD></TR>']
        for k, proc in enumerate(self.processes()):
            rows.append(f'<TR><TD COLSPAN="{ncols}" BGCOLOR="{HEAD_FILL}" ALIGN="LEFT">'
                        f"<B>{h('Process ' + proc)}</B></TD></TR>")
            aligned = self.rows(proc)
            if not aligned:
                rows.append(f'<TR><TD COLSPAN="{ncols}"><I>no VMAs</I></TD></TR>')
            for i, (va, vb) in enumerate(aligned):
                rows.append(self._row(proc, k, i, va, vb))
        return ('<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="2">'
                + "\n".join(rows) + "</TABLE>>")

    def _row(self, proc: str, k: int, i: int, va: VmaView | None, vb: VmaView | None) -> str:
        v = va or vb
        assert v is not None
        fields = self.fields.get(f"{proc}/{v.name}", set())
        fill = f' BGCOLOR="{DIFFERS_FILL}"' if fields else ""
        mark = " &#8800;" if fields else ""     # "not equal"

        def value(side: str, x: VmaView | None) -> str:
            if x is None:
                text = "<I>absent</I>"
            else:
                text = f"<B>{h(x.anon_vma)}</B>" if x.anon_vma else "<I>none</I>"
                if self.chains:
                    text += " " + h("[" + ",".join(x.chain) + "]")
            return (f'<TR><TD PORT="p{k}{side}{i}" ALIGN="LEFT"{fill}>'
                    f'<FONT COLOR="{SIDE_COLOURS[side]}">{text}</FONT></TD></TR>')

        cells = [f'<TD ALIGN="LEFT"{fill}><B>{h(v.name)}</B>{mark}</TD>',
                 f"<TD>{h(span_text(v, self.base))}</TD>", f"<TD>{prot_text(v)}</TD>"]
        if self.show_flags:
            cells.append(f"<TD>{h(' '.join(f for f in v.flags if f not in self.common))}</TD>")
        cells.append('<TD><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
                     + value("a", va) + value("b", vb) + "</TABLE></TD>")
        return "<TR>" + "".join(cells) + "</TR>"

    def _note(self, c: Digraph) -> str:
        a, b = self.cmp.a.policy, self.cmp.b.policy
        snap = self.snap
        if snap.same:
            lines = [f"{snap.label}: no differences"]
        else:
            lines = [f"{snap.label}: {a} vs {b} (filled rows, \u2260, differ)"]
            lines += [f"{d.ref} {d.field}: {d.a} vs {d.b}" for d in snap.vmas]
            lines += [f"{t.what}: {t.a} vs {t.b}" for t in snap.totals]
            lines += [f"only under {a}: {f}" for f in snap.findings_only_a]
            lines += [f"only under {b}: {f}" for f in snap.findings_only_b]
        node = self.prefix + "differences"
        c.node(node, label(*wrapped(*lines), left=True), shape="note")
        return node


def render_compare(cmp: Comparison, opts: RenderOptions) -> str:
    """Both policies in one drawing per snapshot, VMA by VMA aligned, differences filled."""
    snaps = cmp.snapshots if opts.snapshots else cmp.snapshots[-1:]
    base, common, note = _addresses([t for s in snaps for t in (s.a, s.b)])
    title = [f"{cmp.a.scenario}: {cmp.a.policy} vs {cmp.b.policy}",
             f"{cmp.a.policy}: {cmp.a.policy_cite}", f"{cmp.b.policy}: {cmp.b.policy_cite}", note]
    g = _digraph(title)
    edges = _Edges(g)
    tables: list[str] = []
    with g.subgraph(name="cluster_snapshots") as every:   # in order: see render_run
        every.attr(penwidth="0", label="")
        for i, snap in enumerate(snaps):
            prefix = f"s{i}_" if len(snaps) > 1 else ""
            with every.subgraph(name=f"cluster_{prefix}snapshot") as c:
                c.attr(label=label(f"{snap.label} (after step {snap.a.step})"), labeljust="l",
                       style="rounded", penwidth="1")
                column = _Aligned(cmp, snap, prefix, base, common).draw(c, edges)
                _keep_order(c, column, cluster=True)
                tables.append(column[0])
        _keep_order(every, tables)
    _keep_order(g, _legend(g, edges))
    edges.flush()
    return g.source


# -- images -----------------------------------------------------------------------------------

def write_image(source: str, path: str) -> list[str]:
    """Render DOT ``source`` to ``path`` (SVG, PNG or PDF by its suffix) with the ``dot``
    program, and return dot's warnings (one line each) for the caller to pass on.  The image is
    written like any other output (:func:`anondiff.output.write_file`): a regular file appears
    complete or not at all, a device or FIFO is written into, never replaced."""
    from ..output import write_file

    suffix = os.path.splitext(path)[1]
    fmt = IMAGE_FORMATS.get(suffix.lower())
    if fmt is None:
        raise RenderError(f"unknown output format: {suffix!r} "
                          f"(must be one of {sorted(IMAGE_FORMATS)})")
    data, warnings = draw(source, fmt, path)
    write_file(path, data)
    return warnings


def draw(source: str, fmt: str, path: str) -> tuple[bytes, list[str]]:
    """``dot -T<fmt>``: the image's bytes and dot's warnings.  *path* only names the target in
    messages."""
    import shutil
    import subprocess
    program = shutil.which("dot")
    if program is None:
        raise RenderError(f"cannot write {path}: the Graphviz 'dot' program is not installed "
                          "(Debian package graphviz: apt-get install graphviz); "
                          "--format dot prints the DOT source without it")
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=source.encode("utf-8"),
                              capture_output=True, timeout=DOT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"cannot write {path}: dot ran for more than {DOT_TIMEOUT}s") from None
    except OSError as e:
        raise RenderError(f"cannot write {path}: cannot run dot: {e.strerror}") from None
    messages = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines()
                if line.strip()]
    if done.returncode != 0 or not done.stdout:
        # the error, not a warning printed before it
        errors = [m for m in messages if m.lower().startswith("error")] or messages
        raise RenderError(f"cannot write {path}: dot failed: "
                          f"{errors[0] if errors else f'exit status {done.returncode}'}")
    return done.stdout, messages
