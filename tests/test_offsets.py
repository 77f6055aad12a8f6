"""File-backed VMAs at real file offsets (``offset:``); without it a file VMA is mapped at the
offset equal to its address, as before (the goldens did not change)."""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.errors import ScenarioError
from anondiff.scenario import loads
from anondiff.topology import Topology

EVERY = ("always-new", "degree", "v2", "split-counters", "v6.1", "clone-rework-2026")


def run(vmas: str, steps: str, policy: str) -> Topology:
    text = "description: x\nprocesses:\n  - name: P\n    vmas:\n" + (vmas or "      []\n")
    if not vmas:
        text = text.replace("    vmas:\n      []\n", "    vmas: []\n")
    return replay(loads(text + "steps:\n" + steps, "o.yaml"), policy).final


def layout(t: Topology) -> list[tuple[str, int, int, int]]:
    return [(v.name, v.start, v.end, v.pgoff) for v in t.process("P").vmas]


@pytest.mark.parametrize("policy", EVERY)
def test_offset_sets_pgoff_and_page_index(policy: str) -> None:
    t = run("      - {name: F, start: 0x100000, pages: 2, file: lib, offset: 0x3000, faulted: [1]}\n",
            "", policy)
    f = t.vma("P/F")
    assert f.pgoff == 3 and [(p.addr, p.index) for p in f.pages] == [(0x101000, 4)]


@pytest.mark.parametrize("policy", EVERY)
def test_adjacent_file_mappings_merge_only_when_offsets_are_linear(policy: str) -> None:
    """is_mergeable_vma() + pgoff linearity: the same file mapped at 0x2000 after a mapping of
    offset 0 (two pages) merges; at offset 0x5000 it does not."""
    vmas = "      - {name: F, start: 0x100000, pages: 2, file: lib, offset: 0}\n"
    t = run(vmas, "  - {mmap: P, name: G, start: 0x102000, pages: 1, file: lib, offset: 0x2000}\n",
            policy)
    assert layout(t) == [("F", 0x100000, 0x103000, 0)]
    t = run(vmas, "  - {mmap: P, name: G, start: 0x102000, pages: 1, file: lib, offset: 0x5000}\n",
            policy)
    assert layout(t) == [("F", 0x100000, 0x102000, 0), ("G", 0x102000, 0x103000, 5)]


@pytest.mark.parametrize("policy", EVERY)
def test_merge_c_handle_uprobe_upon_merged_vma(policy: str) -> None:
    """tools/testing/selftests/mm/merge.c handle_uprobe_upon_merged_vma, without the uprobe: a
    10-page PROT_EXEC private mapping of a file at offset 0; its first page mremap()ed (grown to
    two) over pages 5-6, then one page of that moved back to the start.  A file VMA keeps its
    pgoff when it moves, so the page moved back (offset 0) merges with the rest of the mapping
    (pages 1-4: offsets 1-4); the other moved page stays apart (offset 1 at page 6)."""
    p = 0x200000
    vmas = f"      - {{name: F, start: {p:#x}, pages: 10, prot: x, file: foo, offset: 0}}\n"
    steps = (f"  - {{mremap: P, start: {p:#x}, pages: 1, new_pages: 2, flags: [maymove, fixed], "
             f"to: {p + 0x5000:#x}, name: M}}\n"
             f"  - {{mremap: P, start: {p + 0x5000:#x}, pages: 1, flags: [maymove, fixed], "
             f"to: {p:#x}}}\n")
    t = run(vmas, steps, policy)
    assert layout(t) == [("F", p, p + 0x5000, 0), ("M", p + 0x6000, p + 0x7000, 1),
                         ("F.1", p + 0x7000, p + 0xa000, 7)]


@pytest.mark.parametrize("text,message", [
    ("      - {name: A, start: 0x10000, pages: 1, offset: 0}\n", "'offset' needs 'file'"),
    ("      - {name: A, start: 0x10000, pages: 1, file: f, offset: 0x123}\n", "not page aligned"),
    ("      - {name: A, start: 0x10000, pages: 1, file: f, offset: -4096}\n", "must be >= 0x0"),
])
def test_offset_errors(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + text, "o.yaml")
    assert str(e.value).startswith("o.yaml:5:") and message in str(e.value), str(e.value)
