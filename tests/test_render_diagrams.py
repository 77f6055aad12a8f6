"""Diagram renderers (ascii, list, dot) on topologies built by hand.

The charts are read back the way a reader's eye does: follow each VMA's line up to the anon_vma
box it ends in (``read_chart``), so the tests check what is drawn, not how the code draws it.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import threading
from pathlib import Path

import pytest

from anondiff.diff import Comparison, SnapshotDiff, TotalDiff, VmaDiff
from anondiff.errors import AnondiffError, RenderError
from anondiff.render import RenderOptions, dot, text
from anondiff.render import ascii as _ascii, listing as _listing
from anondiff.topology import (AnonVmaView, Finding, PageView, ProcessView, Replay, Topology,
                               VmaView)

DEGREE_CITE = 'commit 7a3ef208e662 ("mm: prevent endless growth of anon_vma hierarchy")'
WEI_CITE = 'commit 4e4a9eb92133 ("mm/rmap.c: reuse mergeable anon_vma as parent when fork")'


class _Joined:
    """A format module whose render functions give the whole text (they stream chunks)."""

    def __init__(self, module: object) -> None:
        self.module = module

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.module, name)
        if name.startswith("render_"):
            return lambda *args, **kwargs: text(attr(*args, **kwargs))
        return attr


ascii, listing = _Joined(_ascii), _Joined(_listing)
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz 'dot' not installed (apt-get install graphviz)")


# -- fixtures ---------------------------------------------------------------------------------

def av(name: str, parent: str | None = None, root: str | None = None,
       freed: bool = False) -> AnonVmaView:
    root = root or parent or name
    return AnonVmaView(name, root, parent or name, 1, (("degree", 2),), freed, (), ())


def proc(name: str, vmas: list[tuple[str, str | None, tuple[str, ...]]],
         skip: tuple[int, ...] = ()) -> ProcessView:
    """VMAs 64 KiB apart (the i-th at 0x10000 * (i + 1)); indices in ``skip`` are left out."""
    out = []
    for i, (vname, anon, chain) in enumerate(vmas):
        if i in skip:
            continue
        start = 0x10000 * (i + 1)
        pages = (PageView(f"pg{i}", start, start // 4096, anon, True, False),) if anon else ()
        out.append(VmaView(vname, start, start + 0x4000, start // 4096, ("read", "write"), (),
                           anon, chain, pages))
    return ProcessView(name, tuple(out))


def topo(processes: tuple[ProcessView, ...], avs: tuple[AnonVmaView, ...],
         findings: tuple[Finding, ...] = (), policy: str = "degree", label: str = "final",
         step: int = 1) -> Topology:
    return Topology("fork", policy, label, step, processes, avs, findings)


def fork_topo(policy: str = "degree", dst_av: str = "AV0", child_skip: tuple[int, ...] = (),
              av1_freed: bool = False, findings: tuple[Finding, ...] = ()) -> Topology:
    """Parent P: SRC1..SRC4 share AV0.  Child C: DST1 has AV1 (child of AV0), DST2..DST4 use
    ``dst_av`` (AV0 under ``degree``, AV1 under ``wei-4e4a9eb92133``)."""
    parent = proc("P", [(f"SRC{i}", "AV0", ("AV0",)) for i in range(1, 5)])
    dst_chain = ("AV0",) if dst_av == "AV0" else ("AV1", "AV0")
    child = proc("C", [("DST1", "AV1", ("AV1", "AV0"))]
                 + [(f"DST{i}", dst_av, dst_chain) for i in range(2, 5)], skip=child_skip)
    avs = (av("AV0"), av("AV1", "AV0", freed=av1_freed), av("AV9", "AV0", freed=True))
    return topo((parent, child), avs, findings, policy)


def many_topo(n: int, distinct: bool = False) -> Topology:
    """n VMAs per process; with ``distinct`` every VMA of P has an anon_vma of its own."""
    if distinct:
        avs = (av("AV0"),) + tuple(av(f"AV{i}", "AV0") for i in range(1, n))
        p = proc("P", [(f"SRC{i + 1}", f"AV{i}", (f"AV{i}", "AV0") if i else ("AV0",))
                       for i in range(n)])
        c = proc("C", [(f"DST{i + 1}", f"AV{i}", (f"AV{i}", "AV0") if i else ("AV0",))
                       for i in range(n)])
        return topo((p, c), avs)
    p_vmas = [(f"SRC{i}", "AV0", ("AV0",)) for i in range(1, n + 1)]
    c_vmas = [(f"DST{i}", "AV0", ("AV0",)) for i in range(1, n + 1)]
    c_vmas[0] = ("DST1", "AV1", ("AV1", "AV0"))
    c_vmas[n // 2] = ("ODD", "AV2", ("AV2", "AV0"))
    p_vmas[n // 3] = c_vmas[n // 3] = ("ANON", None, ())
    return topo((proc("P", p_vmas), proc("C", c_vmas)),
                (av("AV0"), av("AV1", "AV0"), av("AV2", "AV0")))


def replay(t: Topology, cite: str = DEGREE_CITE, *earlier: Topology) -> Replay:
    return Replay(t.scenario, t.policy, cite, (*earlier, t))


def comparison() -> Comparison:
    a, b = fork_topo("degree", "AV0"), fork_topo("wei-4e4a9eb92133", "AV1")
    diffs = tuple(VmaDiff(f"C/DST{i}", "anon_vma", "AV0", "AV1") for i in (2, 3, 4))
    snap = SnapshotDiff("final", a, b, diffs, (TotalDiff("chain links", 8, 11),), (), ())
    return Comparison(replay(a), replay(b, WEI_CITE), (snap,))


# -- reading an ASCII chart back ----------------------------------------------------------------

BOX_LABEL = re.compile(r"\|([^|<]+?)\s*\|")


def process_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(heading, chart rows) for every ``Process X:`` chart in the output."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("Process ") and "no VMAs" not in line:
            rows = []
            for row in lines[i + 2:]:
                if not row:
                    break
                rows.append(row)
            out.append((line, rows))
    return out


def read_chart(rows: list[str]) -> dict[str, tuple[str | None, int | None]]:
    """VMA label -> (anon_vma box it hangs off, column of that arrow's '<'), read from the art:
    the VMA box's top right corner, up the '|' to the arrow row, left along it to '<'."""
    grid = [r.ljust(200) for r in rows]
    found: dict[str, tuple[str | None, int | None]] = {}
    for m in BOX_LABEL.finditer(grid[5]):
        name, corner = m.group(1).strip(), m.end() - 1
        assert grid[4][corner] == "+" and grid[6][corner] == "+", rows
        if grid[3][corner] != "|":
            found[name] = (None, None)
            continue
        assert grid[2][corner] == "|" and grid[1][corner] == "+", rows
        x = corner
        while grid[1][x] != "<":
            assert grid[1][x] in "-+", (name, rows)
            x -= 1
        label = re.findall(r"\| ([^|]+?) \|$", grid[1][:x])
        assert label, (name, grid[1][:x])
        found[name] = (label[0], x)
    return found


def hung(text: str, heading: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for head, rows in process_blocks(text):
        if head.startswith(heading):
            out.update({k: v[0] for k, v in read_chart(rows).items()})
    return out


def assert_plain(text: str, width: int, unicode: bool = False) -> None:
    for line in text.splitlines():
        assert len(line) <= width, f"{len(line)} > {width}: {line!r}"
        assert line == line.rstrip(), f"trailing space: {line!r}"
        assert "\t" not in line
        if not unicode:
            assert line.isascii(), line


# -- ascii ------------------------------------------------------------------------------------

def test_ascii_sharing_is_drawn_as_in_the_thread() -> None:
    out = ascii.render_run([replay(fork_topo())], RenderOptions())
    parent = read_chart(process_blocks(out)[0][1])
    child = read_chart(process_blocks(out)[1][1])
    assert {k: v[0] for k, v in parent.items()} == {f"SRC{i}": "AV0" for i in range(1, 5)}
    assert {k: v[0] for k, v in child.items()} == {
        "DST1": "AV1", "DST2": "AV0", "DST3": "AV0", "DST4": "AV0"}
    # VMAs sharing an anon_vma hang off one arrow; DST1's arrow is another one
    assert len({parent[f"SRC{i}"][1] for i in range(1, 5)}) == 1
    assert len({child[f"DST{i}"][1] for i in range(2, 5)}) == 1
    assert child["DST1"][1] != child["DST2"][1]


def test_ascii_parent_first_headings_and_listing() -> None:
    out = ascii.render_run([replay(fork_topo())], RenderOptions())
    lines = out.splitlines()
    assert lines[0].startswith("== degree: commit 7a3ef208e662 (")
    assert "-- fork: final (after step 1)" in lines
    assert lines.index("Process P:") < lines.index("Process C:")
    assert "  AV0 (root)" in lines
    assert "  AV1 -> AV0 (parent), root AV0" in lines
    assert "AV9" not in out            # freed and referenced by nothing: not worth a line
    assert_plain(out, 72)


def test_ascii_columns_line_up_between_processes() -> None:
    out = ascii.render_run([replay(fork_topo(child_skip=(1,)))], RenderOptions())
    (_, prow), (_, crow) = process_blocks(out)
    for src, dst in (("SRC1", "DST1"), ("SRC3", "DST3"), ("SRC4", "DST4")):
        assert prow[5].index(f"|{src}") == crow[5].index(f"|{dst}")
    assert "DST2" not in out           # a VMA missing in the child leaves its column empty
    assert hung(out, "Process C") == {"DST1": "AV1", "DST3": "AV0", "DST4": "AV0"}


def test_ascii_vma_without_anon_vma_has_no_arrow() -> None:
    t = topo((proc("P", [("A", "AV0", ("AV0",)), ("X", None, ()), ("B", "AV0", ("AV0",))]),),
             (av("AV0"),))
    out = ascii.render_run([replay(t)], RenderOptions())
    chart = read_chart(process_blocks(out)[0][1])
    assert chart["X"] == (None, None)
    assert chart["A"] == chart["B"]     # the arrow passes over X


def test_ascii_marks_freed_anon_vma_and_lists_findings() -> None:
    found = Finding("I6-UAF", "C/DST1", "vma->anon_vma AV1 is freed", 2, 14, True)
    out = ascii.render_run([replay(fork_topo(av1_freed=True, findings=(found,)))],
                           RenderOptions())
    assert hung(out, "Process C")["DST1!"] == "AV1 (freed!)"
    assert "  AV1 (freed!) -> AV0 (parent), root AV0" in out.splitlines()
    tail = out[out.index("findings:"):]
    assert "I6-UAF C/DST1: vma->anon_vma AV1 is freed (step 2, line 14)" in tail
    assert_plain(out, 72)


def test_ascii_interleaved_sharing_repeats_the_anon_vma_box() -> None:
    t = topo((proc("P", [("A", "AV0", ("AV0",)), ("B", "AV1", ("AV1", "AV0")),
                         ("C", "AV0", ("AV0",))]), ProcessView("G", ())),
             (av("AV0"), av("AV1", "AV0")))
    out = ascii.render_run([replay(t)], RenderOptions())
    chart = read_chart(process_blocks(out)[0][1])
    assert {k: v[0] for k, v in chart.items()} == {"A": "AV0", "B": "AV1", "C": "AV0"}
    assert len({v[1] for v in chart.values()}) == 3
    assert "Process G: no VMAs" in out.splitlines()


@pytest.mark.parametrize("width", [72, 40])
@pytest.mark.parametrize("distinct", [False, True])
def test_ascii_fits_width(width: int, distinct: bool) -> None:
    t = many_topo(30, distinct)
    out = ascii.render_run([replay(t)], RenderOptions(width=width))
    assert_plain(out, width)
    assert "note: too wide for" in out
    seen = hung(out, "Process P") | hung(out, "Process C")
    if distinct:                # nothing to elide: every VMA is drawn, on its own anon_vma
        assert seen == {f"{s}{i + 1}": f"AV{i}" for s in ("SRC", "DST") for i in range(30)}
    else:
        assert "note: FIRST..LAST (N) stands for N" in out
        assert seen["DST1"] == "AV1" and seen["ODD"] == "AV2" and seen["ANON"] is None
        assert any(".." in name and seen[name] == "AV0" for name in seen)


def test_ascii_no_wrapping_when_it_fits() -> None:
    out = ascii.render_run([replay(many_topo(5, distinct=True))], RenderOptions(width=200))
    assert "note:" not in out and "part" not in out
    assert_plain(out, 200)


def test_ascii_unicode() -> None:
    out = ascii.render_run([replay(many_topo(30))], RenderOptions(width=40, unicode=True))
    assert_plain(out, 40, unicode=True)
    assert "┌" in out and "◀" in out
    charts = "\n".join("\n".join(rows) for _, rows in process_blocks(out))
    assert "+" not in charts and "-" not in charts.replace("..", "")


def test_ascii_long_names_are_clipped_to_width() -> None:
    name = "a_really_long_vma_name_" * 4
    t = topo((proc("P", [(name, "AV_" + name, ("AV_" + name,))]),), (av("AV_" + name),))
    out = ascii.render_run([replay(t)], RenderOptions(width=40))
    assert_plain(out, 40)


def test_ascii_snapshots_option() -> None:
    early = topo(fork_topo().processes[:1], (av("AV0"),), label="before-fork", step=0)
    r = replay(fork_topo(), DEGREE_CITE, early)
    both = ascii.render_run([r], RenderOptions())
    final = ascii.render_run([r], RenderOptions(snapshots=False))
    assert "-- fork: before-fork (after step 0)" in both and "-- fork: final" in both
    assert "before-fork" not in final and "-- fork: final" in final


def test_ascii_is_deterministic() -> None:
    opts = RenderOptions(width=40)
    assert ascii.render_run([replay(many_topo(20))], opts) == \
        ascii.render_run([replay(many_topo(20))], opts)


def test_too_narrow_is_an_error() -> None:
    with pytest.raises(RenderError, match="too small"):
        ascii.render_run([replay(fork_topo())], RenderOptions(width=10))


def marked_boxes(rows: list[str]) -> set[str]:
    if len(rows) < 8:
        return set()
    return {m.group(1).strip() for m in BOX_LABEL.finditer(rows[5])
            if rows[7][m.start():m.end()].strip("^") == "" and len(rows[7]) >= m.end()}


def test_ascii_compare_marks_exactly_the_differing_vmas() -> None:
    out = ascii.render_compare(comparison(), RenderOptions())
    assert_plain(out, 72)
    assert "== degree: commit 7a3ef208e662" in out
    assert "== wei-4e4a9eb92133: commit 4e4a9eb92133" in out
    blocks = process_blocks(out)
    assert [h for h, _ in blocks] == ["Process P:", "Process C:"] * 2
    assert [marked_boxes(rows) for _, rows in blocks] == [
        set(), {"DST2", "DST3", "DST4"}, set(), {"DST2", "DST3", "DST4"}]
    assert read_chart(blocks[1][1])["DST2"][0] == "AV0"
    assert read_chart(blocks[3][1])["DST2"][0] == "AV1"
    assert "  C/DST2 anon_vma: AV0 vs AV1" in out.splitlines()
    assert "  chain links: 8 vs 11" in out.splitlines()


def test_ascii_compare_narrow_keeps_marks_apart() -> None:
    out = ascii.render_compare(comparison(), RenderOptions(width=30))
    assert_plain(out, 30)
    marked = set().union(*(marked_boxes(rows) for _, rows in process_blocks(out)))
    assert marked == {"DST2", "DST3", "DST4"} or marked == {"DST2..DST4 (3)"}


# -- list -------------------------------------------------------------------------------------

def test_list_one_line_per_vma_with_runs_elided() -> None:
    out = listing.render_run([replay(fork_topo())], RenderOptions())
    lines = out.splitlines()
    assert lines.index("Process P:") < lines.index("Process C:")
    i = lines.index("Process P:")
    assert lines[i:i + 5] == ["Process P:", "  SRC1..SRC4 (4) - AV0 (root)", "Process C:",
                              "  DST1 - AV1 (child of AV0)", "  DST2..DST4 (3) - AV0 (root)"]
    assert any(line.startswith("note: FIRST..LAST") for line in lines)
    assert_plain(out, 72)


def test_list_marks_findings_and_freed() -> None:
    found = Finding("I6-UAF", "C/DST1+DST2", "freed", 2, 14, True)
    healed = Finding("I3", "C/DST3", "was different", 1, 12, False)
    out = listing.render_run([replay(fork_topo(av1_freed=True, findings=(found, healed)))],
                             RenderOptions())
    lines = out.splitlines()
    assert "  DST1 - AV1 (freed!, child of AV0)  ! I6-UAF" in lines
    assert "  DST2 - AV0 (root)  ! I6-UAF" in lines
    assert "  DST3..DST4 - AV0 (root)" not in lines            # runs of two are not elided
    assert "  DST3 - AV0 (root)" in lines                     # a healed finding marks nothing
    assert "  I3 C/DST3: was different (step 1, line 12, no longer true)" in lines


def test_freed_parent_of_a_shown_anon_vma_is_listed() -> None:
    t = topo((proc("P", [("A", "AV1", ("AV1",))]),),
             (av("AV0", freed=True), av("AV1", "AV0")))
    for fmt in (ascii, listing):
        out = fmt.render_run([replay(t)], RenderOptions())
        assert "  AV0 (root, freed!)" in out.splitlines()
    assert "av_AV0 [" in dot.render_run([replay(t)], RenderOptions())


def test_list_chain_shown_only_when_not_the_lineage() -> None:
    t = topo((proc("P", [("A", "AV1", ("AV1", "AV0")), ("B", "AV0", ("AV1", "AV0")),
                         ("X", None, ())]),),
             (av("AV0"), av("AV1", "AV0")))
    lines = listing.render_run([replay(t)], RenderOptions()).splitlines()
    assert "  A - AV1 (child of AV0)" in lines
    assert "  B - AV0 (root), chain [AV1, AV0]" in lines
    assert "  X - no anon_vma" in lines
    assert not any(line.startswith("note:") for line in lines)


def test_list_compare_stars_the_differing_vmas() -> None:
    out = listing.render_compare(comparison(), RenderOptions())
    starred = [line for line in out.splitlines() if line.startswith("* ")]
    assert starred == ["* DST2..DST4 (3) - AV0 (root)", "* = differs under the other policy",
                       "* DST2..DST4 (3) - AV1 (child of AV0)", "* = differs under the other policy"]
    assert "  DST1 - AV1 (child of AV0)" in out.splitlines()


@pytest.mark.parametrize("width", [72, 40])
def test_list_fits_width(width: int) -> None:
    out = listing.render_run([replay(many_topo(30, distinct=True))], RenderOptions(width=width))
    assert_plain(out, width)


# -- dot --------------------------------------------------------------------------------------

NODE = re.compile(r"^\s*([^\s\[{}]+) \[", re.M)
EDGE = re.compile(r"^\s*(\S+) -> (\S+)(?: \[(.*)\])?$", re.M)


def edges(source: str) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for tail, head, attrs in EDGE.findall(source):
        out.setdefault((tail, head), []).append(attrs)
    return out


def table_rows(source: str, node: str = "vmas") -> list[str]:
    """The rows of an HTML table node, as plain text (tags dropped), top to bottom; the rows
    of a table nested in a cell belong to the outer row."""
    m = re.search(rf"^\s*{re.escape(node)} \[label=<(.*?)> shape=plain\]$", source, re.M | re.S)
    assert m, node
    text = re.sub(r'<TABLE BORDER="0" CELLBORDER="0".*?</TABLE>',
                  lambda n: re.sub(r"</?TR>", " ", n.group(0)), m.group(1).replace("\n", ""))
    rows = re.findall(r"<TR>(.*?)</TR>", text)
    return [" ".join(t for t in re.sub(r"<[^>]+>", " ", r).split()) for r in rows]


def test_dot_structure() -> None:
    src = dot.render_run([replay(fork_topo())], RenderOptions())
    rows = table_rows(src)
    # processes in creation order, VMAs in address order, prot, offset and size, anon_vma
    assert rows[0] == "Process P" and rows[5] == "Process C"
    assert rows[1] == "SRC1 +0x0 4p rw- pg0 AV0"
    assert rows[6] == "DST1 +0x0 4p rw- pg0 AV1"
    assert [r.split()[0] for r in rows[1:5]] == ["SRC1", "SRC2", "SRC3", "SRC4"]
    e = edges(src)
    for i in range(4):
        assert e[(f"vmas:p0v{i}:e", "av_AV0")] == [""]
    assert e[("vmas:p1v0:e", "av_AV1")] == [""]
    assert e[("av_AV1", "av_AV0")] == ["style=dashed"]
    assert "av_AV9" not in src                  # freed and unreferenced: not drawn
    assert not any("dotted" in a for attrs in e.values() for a in attrs)
    legend = re.findall(r'label="(?:legend: )?([^"]*)" shape=plaintext', src)
    assert legend == ["vma->anon_vma", "anon_vma->parent"]
    assert "addresses: +offset from 0x10000" in src


def test_dot_pages_to_a_freed_anon_vma_are_red_and_named_in_the_legend() -> None:
    found = Finding("I6-UAF", "C/DST1", "pg0 mapped, its anon_vma AV5 is freed", 2, 14, True)
    t = fork_topo(findings=(found,))
    dst1 = t.processes[1].vmas[0]
    freed_page = PageView("pg9", dst1.start, dst1.pgoff, "AV5", False, True)
    child = t.processes[1]._replace(vmas=(dst1._replace(pages=(freed_page,)),)
                                    + t.processes[1].vmas[1:])
    t = t._replace(processes=(t.processes[0], child),
                   anon_vmas=t.anon_vmas + (av("AV5", "AV0", freed=True),))
    src = dot.render_run([replay(t)], RenderOptions())
    e = edges(src)
    assert e[("vmas:p1v0r0:e", "av_AV5")] == ["arrowhead=vee color=red penwidth=2.5"]
    assert re.search(r'av_AV5 \[label="AV5 freed!.*color=red.*style="rounded,dashed,bold"', src)
    assert "pages -> freed anon_vma (UAF)" in src
    assert "DST1 ! I6-UAF" in table_rows(src)[6]
    assert re.search(r"findings \[.*I6-UAF C/DST1.*shape=note", src)


def test_dot_chains_can_be_followed() -> None:
    src = dot.render_run([replay(fork_topo())], RenderOptions(chains=True))
    e = edges(src)
    dst1 = [a for a in e[("vmas:p1v0:e", "av_AV1")] if "dotted" in a]
    assert len(dst1) == 1 and "label=0" in dst1[0] and "constraint=false" in dst1[0]
    assert any("label=1" in a for a in e[("vmas:p1v0:e", "av_AV0")] if "dotted" in a)
    colours = {re.search(r"color=\"?(#[0-9a-f]{6})", a).group(1)  # type: ignore[union-attr]
               for (tail, _), attrs in e.items() for a in attrs if "dotted" in a
               and tail.startswith("vmas:")}
    assert len(colours) == len(dot.CHAIN_COLOURS)    # 8 VMAs: every colour once
    assert "chain link n (0 = head)" in src


def test_dot_empty_and_crashed_processes_are_shown() -> None:
    crash = Finding("CRASH", "C/DST2", "NULL pointer dereference", 3, 20, False)
    t = fork_topo(findings=(crash,))
    t = t._replace(processes=t.processes + (ProcessView("E", ()),), crashed=True)
    src = dot.render_run([replay(t)], RenderOptions())
    rows = table_rows(src)
    assert "Process C (crashed)" in rows
    assert rows[-2:] == ["Process E", "no VMAs"]
    assert "crashed)" in src.split("\n", 3)[1]          # in the title too


def test_dot_flags_only_where_they_matter() -> None:
    t = fork_topo()
    def flag(v: VmaView, extra: tuple[str, ...]) -> VmaView:
        return v._replace(flags=tuple(sorted(("account",) + extra)))
    p, c = t.processes
    p = p._replace(vmas=(flag(p.vmas[0], ("dontcopy",)),) + tuple(flag(v, ()) for v in p.vmas[1:]))
    c = c._replace(vmas=tuple(flag(v, ()) for v in c.vmas))
    src = dot.render_run([replay(t._replace(processes=(p, c)))], RenderOptions())
    rows = table_rows(src)
    assert "every VMA has account" in src.replace("\\l  ", " ")
    assert "dontcopy" in rows[1] and not any("account" in r for r in rows)


def test_dot_ids_have_no_colon_and_do_not_collide() -> None:
    names = ["a:b", "a b", "a_b", "a__b", "x:y", 'q"uote\\', "<html>", "ü"]
    t = topo((proc("P:1", [(n, "AV:0", ("AV:0",)) for n in names]),
              proc("P", [("1__a", None, ())])), (av("AV:0"), av("AV_3a0")))
    src = dot.render_run([replay(t)], RenderOptions(chains=True))
    ids = set(NODE.findall(src)) | {x.split(":")[0] for pair in edges(src) for x in pair}
    assert ids and not any('"' in i for i in ids)
    assert {"av_AV_3a0", "av_AV_5f3a0"} <= ids
    assert "&lt;html&gt;" in src and "q&quot;uote" in src
    assert dot.node_id("vma", "a_", "b") != dot.node_id("vma", "a", "_b")
    assert dot.node_id("vma", "P", "SRC1") == "vma_P__SRC1"


def test_dot_is_deterministic() -> None:
    opts = RenderOptions(chains=True)
    first = dot.render_run([replay(many_topo(12))], opts)
    assert first == dot.render_run([replay(many_topo(12))], opts)
    assert dot.render_compare(comparison(), opts) == dot.render_compare(comparison(), opts)


def test_dot_several_snapshots_get_their_own_clusters_in_order() -> None:
    early = topo(fork_topo().processes[:1], (av("AV0"),), label="before-fork", step=0)
    src = dot.render_run([replay(fork_topo(), DEGREE_CITE, early)], RenderOptions())
    assert src.index("subgraph cluster_s0 {") < src.index("subgraph cluster_s1 {")
    assert "subgraph cluster_snapshots {" in src
    assert "s0_vmas [" in src and "s1_vmas [" in src
    assert ("s1_vmas:p1v0:e", "s1_av_AV1") in edges(src)
    # every node comes before the first edge: dot keeps the clusters in this order
    first_edge = re.search(r"^\s*\S+ -> \S+ \[(?!style=invis)", src, re.M)
    assert first_edge and first_edge.start() > src.index("s1_vmas [")


def test_dot_compare_aligns_vmas_and_marks_the_differences() -> None:
    src = dot.render_compare(comparison(), RenderOptions())
    filled = [r for r in re.findall(r"<TR>(.*?)</TR>", src) if "#ffd966" in r]
    names = {re.search(r"<B>([^<]+)</B> &#8800;", r).group(1)  # type: ignore[union-attr]
             for r in filled if "&#8800;" in r}
    assert names == {"DST2", "DST3", "DST4"}
    e = edges(src)
    assert ("vmas:p1a1:e", "a_av_AV0") in e and ("vmas:p1b1:e", "b_av_AV1") in e
    assert ("vmas:p0a0:e", "a_av_AV0") in e and ("vmas:p0b0:e", "b_av_AV0") in e
    assert "subgraph cluster_a {" in src and "subgraph cluster_b {" in src
    assert "chain links: 8 vs 11" in src
    legend = re.findall(r'label="(?:legend: )?([^"]*)" shape=plaintext', src)
    assert legend[:2] == ["vma->anon_vma, 1st policy", "vma->anon_vma, 2nd policy"]


def test_dot_compare_shows_a_vma_present_under_one_policy_only() -> None:
    base = comparison()
    snap = base.snapshots[0]
    b = fork_topo("wei-4e4a9eb92133", "AV1", child_skip=(3,))
    diff = SnapshotDiff("final", snap.a, b, (VmaDiff("C/DST4", "present", "yes", "no"),), (),
                        (), ())
    src = dot.render_compare(Comparison(base.a, replay(b, WEI_CITE), (diff,)), RenderOptions())
    row = src[src.index(">DST4<"):]
    row = row[:row.index("</TABLE>")]
    assert "absent" in row and "#ffd966" in row


# -- images -----------------------------------------------------------------------------------

def test_write_image_unknown_suffix(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(RenderError) as err:
        dot.write_image("digraph {}", os.path.join(tmp_path, "out.xyz"))
    assert str(err.value) == ("unknown output format: '.xyz' "
                              "(must be one of ['.pdf', '.png', '.svg'])")


def test_write_image_without_dot(tmp_path: os.PathLike[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    target = os.path.join(tmp_path, "out.svg")
    with pytest.raises(RenderError) as err:
        dot.write_image("digraph {}", target)
    message = str(err.value)
    assert "\n" not in message
    assert "apt-get install graphviz" in message and "--format dot" in message
    assert os.listdir(tmp_path) == []


@needs_dot
@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                          (".pdf", b"%PDF")])
def test_write_image_formats(tmp_path: os.PathLike[str], suffix: str, magic: bytes) -> None:
    target = os.path.join(tmp_path, "chart" + suffix)
    dot.write_image(dot.render_compare(comparison(), RenderOptions(chains=True)), target)
    with open(target, "rb") as f:
        assert f.read().startswith(magic)
    assert os.listdir(tmp_path) == ["chart" + suffix]


@needs_dot
def test_write_image_accepts_awkward_names(tmp_path: os.PathLike[str]) -> None:
    t = topo((proc("P:1", [('q"uote\\', "AV:0", ("AV:0",)), ("<b>x</b>", None, ())]),),
             (av("AV:0"),))
    target = os.path.join(tmp_path, "odd.svg")
    dot.write_image(dot.render_run([replay(t)], RenderOptions()), target)
    with open(target, encoding="utf-8") as f:
        svg = f.read()
    assert "q&quot;uote\\" in svg and "&lt;b&gt;x&lt;/b&gt;" in svg


@needs_dot
def test_write_image_failure_leaves_no_partial_file(tmp_path: os.PathLike[str]) -> None:
    target = os.path.join(tmp_path, "out.svg")
    with open(target, "w") as f:
        f.write("old")
    with pytest.raises(RenderError, match="dot failed"):
        dot.write_image("digraph { this is not dot", target)
    assert os.listdir(tmp_path) == ["out.svg"]
    with open(target) as f:
        assert f.read() == "old"


@needs_dot
def test_write_image_missing_directory_or_taken_name(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(AnondiffError, match="cannot write"):
        dot.write_image("digraph {}", os.path.join(tmp_path, "nope", "out.svg"))
    target = os.path.join(tmp_path, "taken.svg")
    os.mkdir(target)
    with pytest.raises(AnondiffError, match="cannot write: Is a directory"):
        dot.write_image("digraph {}", target)
    assert os.listdir(tmp_path) == ["taken.svg"]


@needs_dot
def test_write_image_into_a_device_or_through_a_symlink(tmp_path: os.PathLike[str]) -> None:
    real = os.path.join(tmp_path, "real.svg")
    link = os.path.join(tmp_path, "link.svg")
    os.symlink("real.svg", link)
    dot.write_image("digraph { a -> b }", link)
    assert os.path.islink(link)
    with open(real, "rb") as f:
        assert f.read().startswith(b"<?xml")
    fifo = os.path.join(tmp_path, "fifo.png")
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    dot.write_image("digraph { a -> b }", fifo)
    reader.join(timeout=30)
    assert got[0].startswith(b"\x89PNG") and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["fifo.png", "link.svg", "real.svg"]


@needs_dot
def test_write_image_passes_dot_warnings_on_and_reports_the_real_error(
        tmp_path: os.PathLike[str]) -> None:
    target = os.path.join(tmp_path, "w.svg")
    warnings = dot.write_image("digraph { a [shape=nosuchshape] }", target)
    assert any("nosuchshape" in w for w in warnings)
    full = os.path.join(tmp_path, "full.png")
    try:
        os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("mknod needs root")
    with pytest.raises(AnondiffError) as err:
        dot.write_image("digraph { a -> b }", full)
    assert str(err.value) == f"{full}: cannot write: No space left on device"


# -- issue 13: counts of elided runs, no blank lines before boxes, whole Message-IDs ----------

def test_list_counts_the_vmas_of_an_unfaulted_run() -> None:
    # an unfaulted mapping split three ways keeps names that hide the middle piece
    t = topo((proc("P", [("A", None, ()), ("A2", None, ()), ("C", None, ())]),), ())
    lines = listing.render_run([replay(t)], RenderOptions()).splitlines()
    assert "  A..C (3) - no anon_vma" in lines


def test_ascii_without_anon_vmas_starts_with_the_boxes() -> None:
    t = topo((proc("P", [("A", None, ()), ("B", None, ())]),), ())
    lines = ascii.render_run([replay(t)], RenderOptions()).splitlines()
    i = lines.index("Process P:")
    assert lines[i + 1] == "" and lines[i + 2].strip().startswith("+--")
    assert "|A" in lines[i + 3]


@pytest.mark.parametrize("fmt", [ascii, listing])
def test_narrow_output_keeps_a_message_id_whole(fmt) -> None:  # type: ignore[no-untyped-def]
    from anondiff.policies.kk_v2 import KkV2
    msgid = KkV2.cite[KkV2.cite.index("<"):KkV2.cite.index(">") + 1]
    t = fork_topo("v2")
    out = fmt.render_run([replay(t, KkV2.cite)], RenderOptions(width=40))
    assert any(msgid in line for line in out.splitlines())
    base = comparison()
    cmp = Comparison(replay(base.a.final, KkV2.cite), base.b, base.snapshots)
    assert any(msgid in line for line in fmt.render_compare(cmp, RenderOptions(width=40)).splitlines())


# -- the shipped scenarios, drawn -------------------------------------------------------------

SHIPPED = sorted((Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml"))


def shipped_replays(path: Path) -> list[Replay]:
    from anondiff.engine import replay as run
    from anondiff.policies import POLICIES
    from anondiff.scenario import load
    sc = load(str(path))
    return [run(sc, cls()) for cls in POLICIES]


def svg_size(source: str) -> tuple[float, float]:
    """(width in pt, scale dot applied to fit the page width) of the rendered SVG."""
    import subprocess
    svg = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True,
                         check=True).stdout.decode()
    width = float(re.search(r'<svg width="([0-9.]+)pt"', svg).group(1))  # type: ignore[union-attr]
    scale = re.search(r'transform="scale\(([0-9.]+)', svg)
    return width, float(scale.group(1)) if scale else 1.0


@needs_dot
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_images_fit_a_page_width(path: Path) -> None:
    """Every policy's final image, and each snapshot's (--snapshot), is at most 11 inches
    (792pt) wide without shrinking the text below 80%: a reviewer can link or print it."""
    from anondiff.diff import compare
    replays = shipped_replays(path)
    for r in replays:
        for topo in r.snapshots:
            one = Replay(r.scenario, r.policy, r.policy_cite, (topo,))
            width, scale = svg_size(dot.render_run([one], RenderOptions()))
            assert width <= dot.PAGE_WIDTH * 72 and scale >= 0.8, (r.policy, topo.label, scale)
    by_name = {r.policy: r for r in replays}
    cmp = compare(by_name["degree"], by_name["split-counters"])
    width, scale = svg_size(dot.render_compare(cmp, RenderOptions(snapshots=False)))
    assert width <= dot.PAGE_WIDTH * 72 and scale >= 0.8, scale


def test_shipped_seed_thread_draws_the_childs_pages_into_the_parents_anon_vma() -> None:
    seed = [p for p in SHIPPED if p.stem == "seed-thread"][0]
    degree = [r for r in shipped_replays(seed) if r.policy == "degree"][0]
    e = edges(dot.render_run([degree], RenderOptions()))
    # DST1 uses AV1, its page (copied at fork) still maps AV0: a grey edge of its own
    assert e[("vmas:p1v0:e", "av_AV1")] == [""]
    assert e[("vmas:p1v0r0:e", "av_AV0")] == ["arrowhead=vee color=grey60 penwidth=0.7"]
