"""``--format list``: one line per VMA, the way reviewers wrote topologies in the seed thread.

::

    Process C:
      DST1 - AV1 (child of AV0)
      DST2..DST4 - AV0 (root)

A VMA's chain (its same_vma list, head first) is printed only when it is not simply the
anon_vma's lineage ``[own, parent, ..., root]``; a run of three or more consecutive VMAs with the
same anon_vma, chain and findings is written ``FIRST..LAST`` (and a note line says so).

The small text helpers here (anon_vma descriptions, findings, headings, wrapping) are shared by
``ascii.py`` so that the two plain-text formats describe the same snapshot in the same words.
"""
from __future__ import annotations

import itertools
import textwrap
from itertools import compress, islice, repeat
from operator import attrgetter, ne
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..errors import RenderError
from ..topology import (AnonVmaView, Finding, ProcessView, Replay, Topology, VmaView,
                        anon_vmas_by_name)
from . import RenderOptions

if TYPE_CHECKING:  # the differ is not needed to draw a run
    from ..diff import Comparison, SnapshotDiff

T = TypeVar("T")

#: Finding kinds that are kernel events (reported once) rather than invariants that can heal.
KERNEL_EVENTS = ("VM_WARN_ON", "VM_BUG_ON", "WARN_ON_ONCE", "CRASH")
#: Narrowest chart either plain-text format can lay out.
MIN_WIDTH = 30
ELIDE_MIN = 3      # shortest run written FIRST..LAST
ELISION_NOTE = ("note: FIRST..LAST (N) stands for N consecutive VMAs with the same "
                "anon_vma, chain and findings")


def _all_fit(lines: list[str], width: int) -> bool:
    """Does every one of *lines* (not empty) fit in *width* columns as :func:`wrap` leaves
    it: printable, no longer than *width*, no space at its end?  (Two C scans of the lines
    joined: "\\n" is no printable character, so once all are printable, " \\n" is a line
    ending in a space.)"""
    return max(map(len, lines)) <= width and " ".join(lines).isprintable() \
        and " \n" not in "\n".join(lines) + "\n"


# -- shared text helpers ----------------------------------------------------------------------

def check_width(opts: RenderOptions) -> None:
    if opts.width < MIN_WIDTH:
        raise RenderError(f"width {opts.width} is too small (at least {MIN_WIDTH} columns)")


_WRAP_WHITESPACE = frozenset("\t\n\x0b\x0c\r")


def wrap(text: str, width: int, indent: str = "", more: str = "    ",
         whole_words: bool = False) -> list[str]:
    """Wrap one logical line; continuation lines get ``indent + more``.  With ``whole_words``
    a word longer than the width gets a line of its own instead of being cut (a Message-ID must
    stay whole to be searched for)."""
    if text and len(indent) + len(text) <= width and (
            # printable: no whitespace but the space (the cheap test, one C loop)
            text[-1] != " " and text.isprintable()
            or not text[-1].isspace() and _WRAP_WHITESPACE.isdisjoint(text)):
        return [indent + text]      # what textwrap gives a line that fits, without its cost
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + more,
                         break_long_words=not whole_words, break_on_hyphens=False) \
        or [indent.rstrip()]


def runs(items: Sequence[T], key: Callable[[T], Hashable]) -> list[tuple[int, int]]:
    """Maximal runs ``[first, last]`` (inclusive indices) of consecutive items with equal keys."""
    out: list[tuple[int, int]] = []
    last: Hashable = None
    for i, item in enumerate(items):
        k = key(item)
        if out and last == k:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
        last = k
    return out


def policy_heading(replay: Replay, width: int) -> list[str]:
    return wrap(f"== {replay.policy}: {replay.policy_cite}", width, more="   ", whole_words=True)


def snapshot_heading(topo: Topology, width: int) -> list[str]:
    state = f"after step {topo.step}" + (", crashed" if topo.crashed else "")
    return wrap(f"-- {topo.scenario}: {topo.label} ({state})", width, more="   ")


def is_root(av: AnonVmaView) -> bool:
    return av.root == av.name


def has_parent(av: AnonVmaView) -> bool:
    return av.parent is not None and av.parent != av.name


def describe_av(topo: Topology, name: str) -> str:
    """``AV1 (child of AV0)``, ``AV0 (root)``, ``AV2 (freed!, child of AV1, root AV0)``."""
    return _describe(anon_vmas_by_name(topo), name)


def _describe(avs: Mapping[str, AnonVmaView], name: str) -> str:
    """:func:`describe_av`, the anon_vmas by name given."""
    av = avs.get(name)
    if av is None:
        return f"{name} (unknown!)"
    parent = av.parent
    if not av.freed and parent is not None and parent != name and parent == av.root:
        return f"{name} (child of {parent})"    # the common case below, without the list
    notes = ["freed!"] if av.freed else []
    if is_root(av):
        notes.append("root")
    elif has_parent(av):
        notes.append(f"child of {av.parent}")
        if av.parent != av.root:
            notes.append(f"root {av.root}")
    else:                       # before v3.19 there is no anon_vma->parent
        notes.append(f"root {av.root}")
    return f"{name} ({', '.join(notes)})"


def lineage(topo: Topology, name: str) -> tuple[str, ...]:
    """``(name, parent, grandparent, ..., root)``; without parents, ``(name, root)``."""
    return _lineage(anon_vmas_by_name(topo), name, len(topo.anon_vmas))


def _lineage(avs: Mapping[str, AnonVmaView], name: str, most: int) -> tuple[str, ...]:
    """:func:`lineage`, the anon_vmas by name given; ``most``: how many there are."""
    out = [name]
    while len(out) <= most:
        av = avs.get(out[-1])
        if av is None:
            break
        up = av.parent if has_parent(av) else (None if is_root(av) else av.root)
        if up is None or up in out:
            break
        out.append(up)
    return tuple(out)


class _Lineages(dict):  # type: ignore[type-arg]
    """:func:`_lineage` of each name asked for, made from its parent's (memoised): a VMA's
    lineage is found without walking up to the root again for each of 65,000 children."""

    def __init__(self, avs: Mapping[str, AnonVmaView], most: int) -> None:
        super().__init__()
        self.avs, self.most = avs, most

    def __missing__(self, name: str) -> tuple[str, ...]:
        av = self.avs.get(name)
        if av is None:
            out: tuple[str, ...] = (name,)
        else:
            up = av.parent if has_parent(av) else (None if is_root(av) else av.root)
            if up is None:
                out = (name,)
            else:
                # the walk from name is name, then the walk from up cut where it comes back
                # to name (no longer than _lineage's limit: the names the two walks find are
                # distinct anon_vmas, and an unknown one ends them)
                rest = self.get(up)
                if rest is None:    # walked, not asked for recursively (a deep lineage)
                    rest = self[up] = _lineage(self.avs, up, self.most)
                if name in rest:
                    rest = rest[:rest.index(name)]
                out = (name,) + rest
        self[name] = out
        return out


def referenced(topo: Topology) -> set[str]:
    """anon_vma names some VMA or page still points to."""
    names: set[str] = set()
    for proc in topo.processes:
        vmas = proc.vmas
        names.update(itertools.chain.from_iterable([v.chain for v in vmas]))
        pointers: set[str | None] = {p.mapping for v in vmas if v.pages for p in v.pages}
        pointers.update([v.anon_vma for v in vmas])
        pointers.discard(None)      # no mapping, no anon_vma
        pointers.discard("")
        names.update(pointers)      # type: ignore[arg-type]
    return names


def shown_anon_vmas(topo: Topology) -> list[AnonVmaView]:
    """Live anon_vmas, freed ones still referenced (a use-after-free) and the ancestors of
    those shown, in allocation order."""
    if not any([a.freed for a in topo.anon_vmas]):
        return list(topo.anon_vmas)         # every one is live, so every one is shown
    shown = {a.name for a in topo.anon_vmas if not a.freed} | referenced(topo)
    # and what they lead to: every anon_vma of a shown name brings its parent and root in
    todo = []
    for av in topo.anon_vmas:
        if av.name in shown:
            for x in (av.parent, av.root):
                if x is not None and x not in shown:
                    shown.add(x)
                    todo.append(x)
    if todo:        # names brought in whose anon_vmas came earlier in the list
        up: dict[str, list[str]] = {}
        for av in topo.anon_vmas:
            up.setdefault(av.name, []).extend(x for x in (av.parent, av.root) if x is not None)
        while todo:
            for x in up.get(todo.pop(), ()):
                if x not in shown:
                    shown.add(x)
                    todo.append(x)
    return [a for a in topo.anon_vmas if a.name in shown]


def anon_vma_lines(topo: Topology, width: int) -> list[str]:
    """``AV1 -> AV0 (parent), root AV0`` per anon_vma shown."""
    shown = shown_anon_vmas(topo)
    if not shown:
        return ["anon_vmas: none"]
    texts = [f"  {av.name} -> {parent} (parent), root {root}"
             if not av.freed and (parent := av.parent) is not None and parent != av.name
             and (root := av.root) != av.name else "  " + _av_text(av) for av in shown]
    if _all_fit(texts, width):
        return ["anon_vmas:", *texts]      # every line fits: wrap()'s first case
    lines = ["anon_vmas:"]
    for text in texts:
        lines += wrap(text[2:], width, "  ")
    return lines


def _av_text(av: AnonVmaView) -> str:
    name = av.name + (" (freed!)" if av.freed else "")
    if is_root(av):
        return f"{av.name} (root{', freed!' if av.freed else ''})"
    if has_parent(av):
        return f"{name} -> {av.parent} (parent), root {av.root}"
    return f"{name}, root {av.root}"


def marks_vma(finding: Finding) -> bool:
    return finding.active or finding.kind in KERNEL_EVENTS


def finding_kinds(topo: Topology, proc: ProcessView, vma: VmaView) -> tuple[str, ...]:
    """Kinds of the findings naming this VMA (``"C/SRC2"`` or ``"C/SRC1+SRC2"``), sorted."""
    prefix = f"{proc.name}/"
    kinds = {f.kind for f in topo.findings if marks_vma(f) and f.where.startswith(prefix)
             and vma.name in f.where[len(prefix):].split("+")}
    return tuple(sorted(kinds))


def _kinds_by_vma(topo: Topology) -> dict[tuple[str, str], tuple[str, ...]]:
    """:func:`finding_kinds` of every VMA some finding names, at once (process and VMA names
    never contain "/" or "+")."""
    found: dict[tuple[str, str], set[str]] = {}
    for f in topo.findings:
        if marks_vma(f):
            proc, slash, rest = f.where.partition("/")
            if slash:
                for name in rest.split("+"):
                    found.setdefault((proc, name), set()).add(f.kind)
    return {key: tuple(sorted(kinds)) for key, kinds in found.items()}


def finding_lines(topo: Topology, width: int) -> list[str]:
    if not topo.findings:
        return []
    lines = ["findings:"]
    for f in topo.findings:
        where = f"step {f.step}, line {f.line}" if f.step else "starting layout"
        # invariants ("I1".."I7") may stop holding; kernel events and notes are one-off
        healed = ", no longer true" if f.kind.startswith("I") and not f.active else ""
        lines += wrap(f"{f.kind} {f.where}: {f.detail} ({where}{healed})", width, "  ")
    return lines


# -- the list format --------------------------------------------------------------------------

def _vma_text(avs: Mapping[str, AnonVmaView], most: int, vma: VmaView) -> str:
    """What the list says of a VMA after its name (``avs``, ``most``: see :func:`_lineage`)."""
    if vma.anon_vma is None:
        text = "no anon_vma"
        expected: tuple[str, ...] = ()
    else:
        text = _describe(avs, vma.anon_vma)
        expected = _lineage(avs, vma.anon_vma, most)
    if vma.chain != expected:
        text += f", chain [{', '.join(vma.chain)}]"
    return text


class _Texts(dict):  # type: ignore[type-arg]
    """What :func:`_vma_text` says of a VMA, by its (anon_vma, chain), made once each (a large
    process has tens of thousands of VMAs, often as many anon_vmas; a fork child's, each its
    own anon_vma, the child of the parent's: written without the general walk)."""

    def __init__(self, avs: Mapping[str, AnonVmaView], lineages: Mapping[str, tuple[str, ...]],
                 most: int) -> None:
        super().__init__()
        self.avs, self.lineages, self.most = avs, lineages, most

    def __missing__(self, key: tuple[str | None, tuple[str, ...]]) -> str:
        name, chain = key
        if name is None:
            text = "no anon_vma" if not chain else f"no anon_vma, chain [{', '.join(chain)}]"
        else:
            av = self.avs.get(name)
            parent = av.parent if av is not None else None
            if av is not None and not av.freed and parent is not None and parent != name \
                    and parent == av.root and name not in (rest := self.lineages[parent]):
                # _describe's and _lineage's common case: a child of a root
                text = f"{name} (child of {parent})"
                expected = (name,) + rest
            else:
                text = _describe(self.avs, name)
                expected = self.lineages[name]
            if chain != expected:
                text += f", chain [{', '.join(chain)}]"
        self[key] = text
        return text

    def texts(self, keys: Iterable[tuple[str | None, tuple[str, ...]]]) -> list[str]:
        """``[self[key] for key in keys]``, the common keys' texts made in the loop (a child of
        a root, as :meth:`__missing__` makes it: a fork child's tens of thousands of VMAs, each
        with its own anon_vma, without a call each), a key like the one before given its
        text again (a run of VMAs with the same anon_vma, without a lookup)."""
        get, lineages = self.avs.get, self.lineages
        out: list[str] = []
        append = out.append
        last, text = None, ""
        for key in keys:
            if key != last:
                last = key
                name, chain = key
                av = get(name) if name is not None else None
                if av is not None and not av.freed and (parent := av.parent) is not None \
                        and parent != name and parent == av.root \
                        and name not in (rest := lineages[parent]):
                    text = f"{name} (child of {parent})" if chain == (name,) + rest \
                        else f"{name} (child of {parent}), chain [{', '.join(chain)}]"
                else:
                    text = self[key]
            append(text)
        return out


def _process_lines(topo: Topology, proc: ProcessView, differs: frozenset[str],
                   width: int, avs: Mapping[str, AnonVmaView] | None = None,
                   lineages: Mapping[str, tuple[str, ...]] | None = None) -> tuple[list[str], bool]:
    """Lines for one process; the flag says whether a run was elided (``avs``: the anon_vmas by
    name, ``lineages``: a :class:`_Lineages` of them, if the caller has them).

    A VMA's line is ``  NAME - TEXT`` (``*`` for a VMA that differs, ``  ! KINDS`` after it for
    its findings); a run of :data:`ELIDE_MIN` or more VMAs with the same text, findings and mark
    is one line ``  FIRST..LAST (N) - TEXT``.  Made a column at a time (``map``), for processes
    of 65,000 VMAs."""
    lines = [f"Process {proc.name}:"]
    vmas = proc.vmas
    if not vmas:
        return lines + ["  (no VMAs)"], False
    if avs is None:
        avs = {a.name: a for a in topo.anon_vmas}
    most = len(topo.anon_vmas)
    if lineages is None:
        lineages = _Lineages(avs, most)
    n = len(vmas)
    names = list(map(_name, vmas))
    texts = _Texts(avs, lineages, most).texts(zip(map(_anon_vma, vmas), map(_chain, vmas)))
    all_kinds = _kinds_by_vma(topo) if topo.findings else {}
    pname = proc.name
    kinds = [all_kinds.get((pname, name), ()) for name in names] if all_kinds else None
    prefix = pname + "/"
    marked = [prefix + name in differs for name in names] if differs else None
    keys: Sequence[object] = texts if kinds is None and marked is None else list(zip(
        texts, kinds or repeat((), n), marked or repeat(False, n)))
    # runs of equal keys: where a key differs from the one before, a run starts
    starts = [0, *compress(range(1, n), map(ne, keys, islice(keys, 1, None)))]
    long = [(first, stop) for first, stop in zip(starts, starts[1:] + [n])
            if stop - first >= ELIDE_MIN]
    if long:
        entries: list[str] = []
        at: list[int] = []
        done = 0
        for first, stop in long:
            entries += names[done:first]
            at += range(done, first)
            # the count: splits keep their names (A, A2, ...), so FIRST..LAST alone hides how
            # many VMAs there are
            entries.append(f"{names[first]}..{names[stop - 1]} ({stop - first})")
            at.append(first)
            done = stop
        entries += names[done:]
        at += range(done, n)
    else:
        entries, at = names, range(n)
    if marked is None and kinds is None:        # (a run's: no marks, no findings)
        out = list(map("  %s - %s".__mod__, zip(entries, map(texts.__getitem__, at))))
    else:
        out = list(map("{}{} - {}{}".format,
                       repeat("  ") if marked is None
                       else ["* " if marked[i] else "  " for i in at],
                       entries, map(texts.__getitem__, at),
                       repeat("") if kinds is None
                       else [f"  ! {','.join(k)}" if (k := kinds[i]) else "" for i in at]))
    if _all_fit(out, width):
        lines += out        # every line fits: wrap()'s first case
    else:
        for text in out:
            if len(text) <= width and text[-1] != " " and text.isprintable():
                lines.append(text)
            else:
                lines += wrap(text, width, "", "      ")
    return lines, bool(long)


_name, _anon_vma, _chain = attrgetter("name"), attrgetter("anon_vma"), attrgetter("chain")


def snapshot_lines(topo: Topology, width: int, differs: frozenset[str] = frozenset()) -> list[str]:
    """The list for one snapshot, without headings."""
    lines: list[str] = []
    elided = False
    # looked up here, not in Topology's cache: that would keep a large topology alive until the
    # interpreter's exit, whose last collection then walks all of it
    avs = {a.name: a for a in topo.anon_vmas}
    lineages = _Lineages(avs, len(topo.anon_vmas))
    for proc in topo.processes:
        more, was_elided = _process_lines(topo, proc, differs, width, avs, lineages)
        lines += more
        elided |= was_elided
    if not topo.processes:
        lines.append("(no processes)")
    if elided:
        lines += wrap(ELISION_NOTE, width)
    if differs:
        lines += wrap("* = differs under the other policy", width)
    for section in (anon_vma_lines(topo, width), finding_lines(topo, width)):
        lines += [""] + section if section else []
    return lines


def _chosen(items: Sequence[T], opts: RenderOptions) -> Sequence[T]:
    return items if opts.snapshots else items[-1:]


def render_run(replays: Sequence[Replay], opts: RenderOptions,
               body: Callable[[Topology, int], list[str]] | None = None) -> Iterator[str]:
    """Headings per policy and snapshot around ``body`` (default: the list of one snapshot),
    in chunks (one snapshot at a time: a large run is never one string)."""
    check_width(opts)
    draw = body or (lambda topo, width: snapshot_lines(topo, width))

    def blocks() -> Iterator[list[str]]:
        for replay in replays:
            yield policy_heading(replay, opts.width)
            for topo in _chosen(replay.snapshots, opts):
                yield snapshot_heading(topo, opts.width) + [""] + draw(topo, opts.width)
    return stream_blocks(blocks())


def join_blocks(blocks: Sequence[list[str]]) -> str:
    return "".join(stream_blocks(blocks))


#: lines per chunk when a block is long
CHUNK_LINES = 4096


def stream_blocks(blocks: Iterable[list[str]]) -> Iterator[str]:
    """The blocks (lists of lines), a blank line between two, a newline at the end, in chunks
    of at most :data:`CHUNK_LINES` lines."""
    first = True
    for b in blocks:
        if not b:
            continue
        if not first:
            yield "\n"
        first = False
        for i in range(0, len(b), CHUNK_LINES):
            yield "\n".join(b[i:i + CHUNK_LINES]) + "\n"


def diff_lines(cmp: Comparison, snap: SnapshotDiff, width: int) -> list[str]:
    """What differs in one snapshot, in words: VMAs, totals, findings."""
    a, b = cmp.a.policy, cmp.b.policy
    if snap.same:
        return [f"no differences between {a} and {b} in this snapshot"]
    lines: list[str] = []
    if snap.vmas:
        lines += wrap(f"VMAs that differ ({a} vs {b}):", width)
        lines += [ln for d in snap.vmas for ln in wrap(f"{d.ref} {d.field}: {d.a} vs {d.b}",
                                                       width, "  ")]
    if snap.totals:
        lines += wrap(f"totals that differ ({a} vs {b}):", width)
        lines += [ln for t in snap.totals for ln in wrap(f"{t.what}: {t.a} vs {t.b}", width, "  ")]
    for policy, only in ((a, snap.findings_only_a), (b, snap.findings_only_b)):
        if only:
            lines += wrap(f"findings only under {policy}:", width)
            lines += [ln for f in only for ln in wrap(f, width, "  ")]
    return lines


def differing_refs(snap: SnapshotDiff) -> frozenset[str]:
    return frozenset(d.ref for d in snap.vmas)


def compare_heading(cmp: Comparison, width: int) -> list[str]:
    return wrap(f"== compare {cmp.a.scenario}: {cmp.a.policy} vs {cmp.b.policy}", width,
                more="   ")


def render_compare(cmp: Comparison, opts: RenderOptions) -> str:
    check_width(opts)
    blocks = [compare_heading(cmp, opts.width)]
    for snap in _chosen(cmp.snapshots, opts):
        differs = differing_refs(snap)
        blocks.append(snapshot_heading(snap.a, opts.width))
        for replay, topo in ((cmp.a, snap.a), (cmp.b, snap.b)):
            blocks.append(policy_heading(replay, opts.width) + [""]
                          + snapshot_lines(topo, opts.width, differs))
        blocks.append(diff_lines(cmp, snap, opts.width))
    return join_blocks(blocks)
