"""``--format dot``: Graphviz source (built with the ``graphviz`` package), and images from it.

Building the DOT text is pure; only :func:`write_image` runs the ``dot`` program.

* One ``cluster_proc_<name>`` per process, its VMA nodes on one rank in address order (kept in
  order by invisible edges).  anon_vmas are shared between processes (a child VMA's chain points
  into its parent's anon_vmas), so their nodes are outside the process clusters.
* ``rankdir=BT``: anon_vmas above the VMAs, parents above children, as in the seed thread.
* Solid edge VMA -> its anon_vma; dashed edge anon_vma -> parent (before v3.19, which has no
  parent, a dashed ``root`` edge); with ``opts.chains`` a dotted edge, labelled with its position
  (0 = head), for every link of a VMA's chain.
* Freed anon_vmas still referenced: dashed grey node, "freed!" in the label.  VMAs named in a
  finding: red border; the findings are listed in a red note node.  In a comparison, VMAs that
  differ are filled.
* Node ids are built by :func:`node_id`, never contain ':' (DOT port syntax) and cannot collide.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import os
import shutil
import subprocess
from collections.abc import Sequence
from itertools import pairwise

import graphviz

from ..errors import RenderError
from ..topology import AnonVmaView, ProcessView, Replay, Topology, VmaView
from . import RenderOptions
from .listing import differing_refs, finding_kinds, has_parent, is_root, shown_anon_vmas

if TYPE_CHECKING:  # the differ is not needed to draw a run
    from ..diff import Comparison, SnapshotDiff

IMAGE_FORMATS = {".pdf": "pdf", ".png": "png", ".svg": "svg"}
DOT_TIMEOUT = 300   # seconds
FONT = "monospace"
DIFFERS_FILL = "#ffd966"


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
    text = sep.join(graphviz.escape(" ".join(line.splitlines())) for line in lines)
    return graphviz.nohtml(text + (sep if left else ""))


# -- one topology -----------------------------------------------------------------------------

class _Drawer:
    """Adds one topology to a (sub)graph; every node id starts with ``prefix``."""

    def __init__(self, topo: Topology, prefix: str, differs: frozenset[str],
                 opts: RenderOptions) -> None:
        self.topo, self.prefix, self.differs, self.opts = topo, prefix, differs, opts

    def vma_id(self, proc: ProcessView, vma: VmaView) -> str:
        return self.prefix + node_id("vma", proc.name, vma.name)

    def av_id(self, name: str) -> str:
        return self.prefix + node_id("av", name)

    def draw(self, g: graphviz.Digraph) -> None:
        for proc in self.topo.processes:
            self._process(g, proc)
        for av in shown_anon_vmas(self.topo):
            self._anon_vma(g, av)
        for proc in self.topo.processes:
            for vma in proc.vmas:
                self._vma_edges(g, proc, vma)
        self._findings(g)

    def _process(self, g: graphviz.Digraph, proc: ProcessView) -> None:
        with g.subgraph(name="cluster_" + self.prefix + node_id("proc", proc.name)) as c:
            c.attr(label=label(f"Process {proc.name}"), labelloc="t")  # under the VMAs
            with c.subgraph() as rank:
                rank.attr(rank="same")
                for vma in proc.vmas:
                    self._vma(rank, proc, vma)
            for left, right in pairwise(proc.vmas):
                c.edge(self.vma_id(proc, left), self.vma_id(proc, right), style="invis")

    def _vma(self, g: graphviz.Digraph, proc: ProcessView, vma: VmaView) -> None:
        lines = [vma.name, f"{vma.start:#x}-{vma.end:#x}"]
        if vma.flags:
            lines.append(" ".join(vma.flags))
        attrs: dict[str, str] = {}
        kinds = finding_kinds(self.topo, proc, vma)
        if kinds:
            lines.append("! " + " ".join(kinds))
            attrs.update(color="red", penwidth="2")
        if proc.ref(vma) in self.differs:
            lines.append("differs")
            attrs.update(style="filled", fillcolor=DIFFERS_FILL)
        g.node(self.vma_id(proc, vma), label(*lines), **attrs)

    def _anon_vma(self, g: graphviz.Digraph, av: AnonVmaView) -> None:
        lines = [av.name + (" freed!" if av.freed else "")]
        if is_root(av):
            lines.append("root")
        counters = [f"{k}={v}" for k, v in av.counters] + [f"refcount={av.refcount}"]
        lines.append(" ".join(counters))
        attrs = {"style": "rounded"}
        if av.freed:
            attrs = {"style": "rounded,dashed", "color": "grey50", "fontcolor": "grey40"}
        g.node(self.av_id(av.name), label(*lines), **attrs)
        if has_parent(av):
            g.edge(self.av_id(av.name), self.av_id(av.parent or ""), style="dashed")
        elif not is_root(av):
            g.edge(self.av_id(av.name), self.av_id(av.root), style="dashed", label="root")

    def _vma_edges(self, g: graphviz.Digraph, proc: ProcessView, vma: VmaView) -> None:
        if vma.anon_vma is not None:
            g.edge(self.vma_id(proc, vma), self.av_id(vma.anon_vma))
        if self.opts.chains:
            for pos, name in enumerate(vma.chain):
                g.edge(self.vma_id(proc, vma), self.av_id(name), style="dotted",
                       color="grey40", label=str(pos), constraint="false")

    def _findings(self, g: graphviz.Digraph) -> None:
        if not self.topo.findings:
            return
        lines = ["findings:"] + [f"{f.kind} {f.where}: {f.detail} (step {f.step})"
                                 for f in self.topo.findings]
        g.node(self.prefix + "findings", label(*lines, left=True), shape="note", color="red",
               fontcolor="red")


# -- graphs -----------------------------------------------------------------------------------

def _digraph(title: Sequence[str]) -> graphviz.Digraph:
    return graphviz.Digraph(
        "anondiff",
        graph_attr={"rankdir": "BT", "fontname": FONT, "labelloc": "t", "label": label(*title)},
        node_attr={"shape": "box", "fontname": FONT},
        edge_attr={"fontname": FONT})


def _title(replay: Replay, topo: Topology) -> list[str]:
    return [f"{replay.policy}: {replay.policy_cite}",
            f"{topo.scenario}: {topo.label} (after step {topo.step}"
            + (", crashed)" if topo.crashed else ")")]


def _cluster(g: graphviz.Digraph, name: str, title: Sequence[str], topo: Topology, prefix: str,
             differs: frozenset[str], opts: RenderOptions) -> None:
    with g.subgraph(name=name) as c:
        c.attr(label=label(*title), labelloc="b", style="rounded")  # "b" is the top under BT
        _Drawer(topo, prefix, differs, opts).draw(c)


def render_run(replays: Sequence[Replay], opts: RenderOptions) -> str:
    """One graph; several snapshots (or policies) become one top-level cluster each."""
    pairs = [(r, t) for r in replays for t in (r.snapshots if opts.snapshots else r.snapshots[-1:])]
    if len(pairs) == 1:
        replay, topo = pairs[0]
        g = _digraph(_title(replay, topo))
        _Drawer(topo, "", frozenset(), opts).draw(g)
        return g.source
    g = _digraph([replays[0].scenario] if replays else [])
    for i, (replay, topo) in enumerate(pairs):
        _cluster(g, f"cluster_s{i}", _title(replay, topo), topo, f"s{i}_", frozenset(), opts)
    return g.source


def _diff_note(g: graphviz.Digraph, cmp: Comparison, snap: SnapshotDiff, prefix: str) -> None:
    a, b = cmp.a.policy, cmp.b.policy
    if snap.same:
        lines = [f"{snap.label}: no differences"]
    else:
        lines = [f"{snap.label}: {a} vs {b} (filled VMAs differ)"]
        lines += [f"{d.ref} {d.field}: {d.a} vs {d.b}" for d in snap.vmas]
        lines += [f"{t.what}: {t.a} vs {t.b}" for t in snap.totals]
        lines += [f"only under {a}: {f}" for f in snap.findings_only_a]
        lines += [f"only under {b}: {f}" for f in snap.findings_only_b]
    g.node(prefix + "differences", label(*lines, left=True), shape="note")


def render_compare(cmp: Comparison, opts: RenderOptions) -> str:
    """The two topologies side by side, one top-level cluster per policy (and snapshot)."""
    snaps = cmp.snapshots if opts.snapshots else cmp.snapshots[-1:]
    g = _digraph([f"{cmp.a.scenario}: {cmp.a.policy} vs {cmp.b.policy}"])
    for i, snap in enumerate(snaps):
        base = f"s{i}" if len(snaps) > 1 else ""
        differs = differing_refs(snap)
        for side, replay, topo in (("a", cmp.a, snap.a), ("b", cmp.b, snap.b)):
            _cluster(g, f"cluster_{base}{side}", _title(replay, topo), topo, f"{base}{side}_",
                     differs, opts)
        _diff_note(g, cmp, snap, f"{base}_" if base else "")
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
