"""The invariants of spec section 9, checked on the live objects after every step.

Each returns (kind, where, detail); the engine turns new ones into findings.
"""
from __future__ import annotations

from collections import Counter
from typing import Final, Iterator, Sequence

from .. import progress as _progress
from ..progress import EVERY, bar
from .counters import DegreeCounters, NoCounters, SplitCounters
from .objects import AnonVma, AnonVmaChain, Mm, Vma
from .rmap import avname
from .state import Kernel

Violation = tuple[str, str, str]


def check(k: Kernel) -> list[Violation]:
    out: list[Violation] = []
    users: Counter[AnonVma] = Counter()
    for mm in k.mms.values():
        sharing: dict[AnonVma, list[tuple[str, frozenset[AnonVma]]]] = {}
        for vma in mm.vmas:
            av = vma.anon_vma
            if av is not None:
                users[av] += 1
                sharing.setdefault(av, []).append(
                    (vma.name, frozenset(avc.anon_vma for avc in vma.avcs)))
            out.extend(vma_violations(vma))
        for av, group in sharing.items():
            first_name, first_set = group[0]
            for name, s in group[1:]:
                if s != first_set:
                    out.append(("I3", f"{mm.name}/{first_name}+{name}",
                                f"same anon_vma {avname(av)}, different chains"))
    out.extend(_counters(k, users))
    return out


def _counters(k: Kernel, users: Counter[AnonVma]) -> Iterator[Violation]:
    """I4 (counters against a recount) and I5 (refcounts) for every live anon_vma."""
    children: Counter[AnonVma] = Counter()
    descendants: Counter[AnonVma] = Counter()
    for av in k.live:
        if av.tree and av.parent is not None and av.parent is not av:
            children[av.parent] += 1
        if av.root is not av:
            descendants[av.root] += 1
    counters = k.counters
    for av in sorted(k.live, key=lambda a: a.seq):
        linked = bool(av.tree)
        want = counters.expected(users[av], children[av], linked and av.parent is av)
        have = counters.values(av)
        if have != want:
            got = ", ".join(f"{n} {v}" for n, v in have)
            exp = ", ".join(f"{n} {v}" for n, v in want)
            yield ("I4", avname(av), f"{got}; recount gives {exp}")
        refs = int(linked) + descendants[av]
        if av.refcount != refs:
            yield ("I5", avname(av), f"refcount {av.refcount}; expected {refs}")


# -- incremental ---------------------------------------------------------------------------------

#: Order of a violation in :func:`check`'s output, for the new ones of an incremental round:
#: per mm (in ``k.mms`` order) the VMA checks by address, then that mm's I3 groups by their
#: lowest member, each by member address; the counters last, by anon_vma naming order.
Key = tuple[int, int, int, int]
_COUNTERS: Final = 1 << 62


def vma_violations(vma: Vma) -> list[Violation]:
    """I1, I2, I6, I6-UAF and I7-UAF of one VMA, in :func:`check`'s order."""
    mm = vma.mm
    out: list[Violation] = []
    where = f"{mm.name}/{vma.name}"
    chain = [avc.anon_vma for avc in vma.same_vma()]
    in_chain = frozenset(chain)
    av = vma.anon_vma
    if av is not None:
        if av.freed:
            out.append(("I7-UAF", where, f"vma->anon_vma {avname(av)} is freed"))
        if av not in in_chain:
            out.append(("I2", where, f"anon_vma {avname(av)} not in own chain"))
    for c in chain:
        if c.freed:
            out.append(("I7-UAF", where, f"chain links freed {avname(c)}"))
    roots = sorted({avname(c.root) for c in chain})
    if len(roots) > 1:
        out.append(("I1", where, f"chain spans roots {', '.join(roots)}"))
    ptes = mm.ptes
    for p in mm.pages_in(vma.start, vma.end):
        page = ptes[p]
        m = page.mapping
        if m.freed:
            out.append(("I6-UAF", where, f"{page.name} mapped, its anon_vma {avname(m)} is freed"))
        elif m not in in_chain:
            out.append(("I6", where, f"{page.name} mapping {avname(m)} not in chain (rmap miss)"))
    return out


def _vma_ok(vma: Vma, chain: tuple[AnonVma, ...]) -> bool:
    """The common case first: nothing for :func:`vma_violations` to report."""
    av = vma.anon_vma
    if av is not None and (av.freed or not _linked(chain, av)):
        return False
    if chain:
        root = chain[0].root
        for c in chain:
            if c.freed or c.root is not root:
                return False
    ptes = vma.mm.ptes
    if ptes:
        # (a page mapping the VMA's own anon_vma, the usual case, passed the test above)
        start, end = vma.start, vma.end
        # a look-up of one page boxes its number and hashes it: about twice the cost of a
        # step through the page table, so the VMA's range is walked only when that is shorter
        if 2 * (end - start) <= len(ptes):
            for p in range(start, end):
                page = ptes.get(p)
                if page is not None:
                    m = page.mapping
                    if m is not av and (m.freed or not _linked(chain, m)):
                        return False
        else:
            for p, page in ptes.items():
                if start <= p < end:
                    m = page.mapping
                    if m is not av and (m.freed or not _linked(chain, m)):
                        return False
    return True


def _linked(chain: tuple[AnonVma, ...], av: AnonVma) -> bool:
    """``av in chain`` by identity (the compiled ``in`` goes through the object protocol)."""
    for c in chain:
        if c is av:
            return True
    return False


class _Group:
    """The VMAs of one mm using one anon_vma (an I3 group) and, once it has two or more,
    I3 as last checked: its lowest member (None: not checked as a group), that member's name,
    start and chain, and the violation of each member whose chain differs."""

    __slots__ = ("mm", "av", "members", "first", "first_name", "first_start", "first_set",
                 "out", "mark", "changed")

    def __init__(self, mm: Mm, av: AnonVma) -> None:
        self.mm = mm
        self.av = av
        self.members: set[Vma] = set()
        self.first: Vma | None = None
        self.first_name = ""
        self.first_start = 0
        self.first_set = _NO_AVS
        self.out = _NO_OUT
        #: the round of :meth:`IncrementalChecks.update` that last touched it, and the members
        #: that came, went or changed in it (None: look at every member)
        self.mark = 0
        self.changed: set[Vma] | None = None


#: a group's ``first_set`` and ``out`` until it is checked as one (shared, never added to:
#: _group() gives a group it checks an ``out`` of its own)
_NO_AVS: Final[frozenset[AnonVma]] = frozenset()
_NO_OUT: Final[dict[Vma, Violation]] = {}


def _chain_set(vma: Vma) -> frozenset[AnonVma]:
    """The chain of a VMA the checks have seen, as a set (what I3 compares)."""
    chain = vma.chk_chain
    assert chain is not None
    return frozenset(chain)


def _touch(touched: list[_Group], group: _Group, vma: Vma | None, mark: int) -> None:
    """``vma`` came to, left or changed in ``group`` this round (the round ``mark``; None:
    something every member's finding depends on changed).  A group never checked as one is
    looked at whole, so only a checked one collects the members; and one with fewer than two
    members has nothing to look at (whoever joins it later this round touches it again)."""
    if group.first is None and len(group.members) < 2:
        return
    if group.mark != mark:
        group.mark = mark
        touched.append(group)
        group.changed = {vma} if vma is not None and group.first is not None else None
    elif group.changed is not None:
        if vma is None:
            group.changed = None
        else:
            group.changed.add(vma)


def _same_chain(avcs: list[AnonVmaChain], seen: tuple[AnonVma, ...]) -> bool:
    """Is the same_vma list ``avcs`` (tail first) the chain ``seen`` (head first)?  (The
    comparison of the chain's tuple with ``seen`` without building the tuple.)"""
    n = len(avcs)
    if n != len(seen):
        return False
    for i in range(n):
        if avcs[n - 1 - i].anon_vma is not seen[i]:
            return False
    return True


class IncrementalChecks:
    """The invariants of :func:`check`, re-checked only where a step changed something.

    The model notes what it touches (``Kernel.dirty_vmas``/``dirty_avs``, ``Mm.dirty`` and
    ``Mm.dirty_ranges``); each :meth:`update` re-checks those VMAs, the I3 groups (VMAs of one
    mm sharing an anon_vma) they left or joined, and the counters of the anon_vmas involved
    (their chains', old and new) and of their parents and roots; a VMA with a finding is looked
    at again whenever an anon_vma is named or freed (its text or its truth may depend on it).
    The current set of violations always equals :func:`check`'s
    (tests/test_incremental_checks.py holds it to that), and new ones come out in
    :func:`check`'s order, so findings are the same byte for byte.
    """

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: violation -> how many sources (a VMA, an I3 group, an anon_vma) report it now
        self.count: dict[Violation, int] = {}
        self.mm_list: list[Mm] = []
        self.order: dict[Mm, int] = {}
        self.by_mm: dict[Mm, set[Vma]] = {}
        self.sick: set[Vma] = set()                 # VMAs with a violation
        #: per mm, anon_vma -> the VMAs using it (I3 groups); the groups checked as such
        self.users: dict[Mm, dict[AnonVma, _Group]] = {}
        self.groups: dict[_Group, None] = {}
        # per VMA: its chk_* fields; per anon_vma: its chk_* fields (VMAs using it in every mm,
        # linked live children with parent != self, live anon_vmas with it as root not self,
        # where it counts in those, its I4/I5 violations)
        self._before: dict[Violation, bool] = {}
        self._keys: dict[Violation, Key] = {}
        self.kind = _counters_kind(k.counters)
        #: rounds of :meth:`update` that looked at something, and the anon_vmas whose counters
        #: the current one looks at (``AnonVma.chk_mark`` is the round that queued it last)
        self.round = 0
        self.queue: list[AnonVma] = []
        self.touched: list[_Group] = []
        self.fresh: list[Mm] = []
        # (read once: bar() is Python, and so is reading its module's threshold)
        self.threshold = _progress.THRESHOLD

    def current(self) -> set[Violation]:
        return set(self.count)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _drop(self, out: Sequence[Violation]) -> None:
        count, before = self.count, self._before
        for v in out:
            if v not in before:
                before[v] = True
            n = count[v] - 1
            if n:
                count[v] = n
            else:
                del count[v]

    def _add(self, out: Sequence[Violation], key: tuple[int, int, int], at: int = 0) -> None:
        count, before, keys = self.count, self._before, self._keys
        for i, v in enumerate(out, at):
            if v not in before:
                before[v] = v in count
            count[v] = count.get(v, 0) + 1
            kv = key + (i,)
            old = keys.get(v)
            if old is None or kv < old:
                keys[v] = kv

    def _mms_changed(self, mms: list[Mm], mark: int) -> None:
        """Forget the mms that exited, take on new ones (``fresh``: every VMA of theirs is
        looked at)."""
        dirty = self.k.dirty_vmas
        for mm in [mm for mm in self.by_mm if mm not in mms]:        # exited
            for vma in self.by_mm.pop(mm):
                dirty.add(vma)
            # every group of it is looked at again (and dropped), so its VMAs need not leave
            # them one by one
            for group in self.users.pop(mm).values():
                _touch(self.touched, group, None, mark)
            mm.dirty = None
        for mm in mms:
            if mm not in self.by_mm:                                  # new: checked whole
                self.by_mm[mm] = set()
                self.users[mm] = {}
                mm.dirty = dirty
                mm.dirty_ranges.clear()
                self.fresh.append(mm)
        self.mm_list = mms
        self.order = {mm: i for i, mm in enumerate(mms)}

    # -- one round -----------------------------------------------------------------------------
    def update(self) -> tuple[list[Violation], list[Violation]]:
        """Re-check what changed; return (violations now true that were not, in :func:`check`'s
        order; violations no longer true)."""
        k = self.k
        dirty = k.dirty_vmas
        avs = k.dirty_avs
        touched = self.touched
        self.round = mark = self.round + 1
        mms = list(k.mms.values())
        if mms != self.mm_list:
            self._mms_changed(mms, mark)
        for mm in self.mm_list:
            if mm.dirty_ranges:
                for start, end in mm.dirty_ranges:
                    dirty.update(mm.overlapping(start, end))
                mm.dirty_ranges.clear()
        if k.freed_any or k.named_any:
            dirty.update(self.sick)
            # the text of an I3 group's findings names its anon_vma (a group without findings
            # has nothing a name or a free could change: I3 compares chains alone)
            for group in self.groups:
                if group.out and group.av in avs:
                    _touch(touched, group, None, mark)
            k.freed_any = k.named_any = False
        fresh = self.fresh
        if not dirty and not avs and not touched and not fresh:
            return [], []

        # the anon_vmas whose counters to look at (the chains' of the VMAs looked at, and those
        # named or freed), each queued once: chk_mark says it was this round
        queue = self.queue
        if avs:
            for a in avs:
                a.chk_mark = mark
                queue.append(a)
            avs.clear()
        # (bar() itself says None below its threshold, but it is Python: a call from the
        # compiled model into the interpreter, after every step of every small replay)
        total = len(dirty)
        for mm in fresh:
            total += len(mm.vmas)
        progress = bar("checking the invariants", total) if total >= self.threshold else None
        # (nothing below marks a VMA dirty: the set is walked as it is, and emptied after)
        for i, vma in enumerate(dirty):
            if progress and not i % EVERY:
                progress.update(i)
            mm = vma.mm
            # an mm the checks know holds their dirty set (given when taken on, taken back
            # when it exits): a field load where ``mm in order`` hashes
            self._look(vma, mm, mm.dirty is dirty and mm.contains(vma), mark)
        # the VMAs of the new mms (those the model marked were looked at above)
        i = len(dirty)
        for mm in fresh:
            for vma in mm.vmas:
                if progress and not i % EVERY:
                    progress.update(i)
                i += 1
                if vma not in dirty:
                    self._look(vma, mm, True, mark)
        fresh.clear()
        dirty.clear()

        if progress:
            progress.close()
        for group in touched:
            if group.first is not None or len(group.members) > 1:
                self._group(group)
        touched.clear()
        self._counters(queue, mark)
        queue.clear()

        before, keys, count = self._before, self._keys, self.count
        if not before:
            return [], []
        new = sorted((v for v, was in before.items() if not was and v in count),
                     key=keys.__getitem__)
        gone = [v for v, was in before.items() if was and v not in count]
        before.clear()
        keys.clear()
        return new, gone

    def _look(self, vma: Vma, mm: Mm, inside: bool, mark: int) -> None:
        """Look at a VMA again: ``inside`` its mm (one the checks know), or gone from it."""
        av: AnonVma | None              # (declared for mypyc: a VMA's may be NULL)
        by_av: dict[AnonVma, _Group] | None
        group: _Group | None
        queue = self.queue
        seen = vma.chk_chain
        if seen is not None and inside and vma.chk_anon_vma is vma.anon_vma \
                and _same_chain(vma.avcs, seen):
            # the same anon_vma and chain (a write to a faulted VMA, a VMA cut shorter or
            # renamed): its counts and I3 membership stand; its own checks, its group (the
            # lowest member's name and start) and its anon_vmas' counters (a policy's hook may
            # have changed them) are looked at again
            self._recheck(vma, seen)
            av = vma.chk_anon_vma
            if av is not None:
                if av.chk_mark != mark:
                    av.chk_mark = mark
                    queue.append(av)
                group = self.users[mm].get(av)
                if group is not None:
                    _touch(self.touched, group, vma, mark)
            for c in seen:
                if c.chk_mark != mark:
                    c.chk_mark = mark
                    queue.append(c)
            return
        if seen is not None:
            vma.chk_chain = None            # forgotten (the other chk_* fields mean nothing now)
            if vma.chk_out:
                self._drop(vma.chk_out)
                self.sick.discard(vma)
            av = vma.chk_anon_vma
            if av is not None:
                av.chk_vmas -= 1
                if av.chk_mark != mark:
                    av.chk_mark = mark
                    queue.append(av)
                by_av = self.users.get(mm)
                if by_av is not None:
                    group = by_av.get(av)
                    if group is not None:
                        group.members.discard(vma)
                        if not group.members:
                            del by_av[av]
                        _touch(self.touched, group, vma, mark)
            for c in seen:
                if c.chk_mark != mark:
                    c.chk_mark = mark
                    queue.append(c)
            by_mm = self.by_mm.get(mm)
            if by_mm is not None:
                by_mm.discard(vma)
        if inside:
            self._register(vma, mm, mark)

    def _register(self, vma: Vma, mm: Mm, mark: int) -> None:
        """Check a VMA of ``mm`` the checks do not know (new, or just forgotten) and count it
        in: its violations, its anon_vma's users and I3 group, its chain's counters."""
        chain = tuple([avc.anon_vma for avc in reversed(vma.avcs)])
        out = () if _vma_ok(vma, chain) else tuple(vma_violations(vma))
        av = vma.anon_vma
        vma.chk_chain, vma.chk_anon_vma, vma.chk_out = chain, av, out
        self.by_mm[mm].add(vma)
        if out:
            self.sick.add(vma)
            self._add(out, (self.order[mm], 0, vma.start))
        queue = self.queue
        if av is not None:
            av.chk_vmas += 1
            if av.chk_mark != mark:
                av.chk_mark = mark
                queue.append(av)
            by_av = self.users[mm]
            group = by_av.get(av)
            if group is None:
                group = by_av[av] = _Group(mm, av)
            group.members.add(vma)
            _touch(self.touched, group, vma, mark)
        for c in chain:
            if c.chk_mark != mark:
                c.chk_mark = mark
                queue.append(c)

    def _recheck(self, vma: Vma, chain: tuple[AnonVma, ...]) -> None:
        """The VMA checks of a VMA whose anon_vma and chain did not change."""
        out = () if _vma_ok(vma, chain) else tuple(vma_violations(vma))
        if not out and not vma.chk_out or out == vma.chk_out:
            return
        if vma.chk_out:
            self._drop(vma.chk_out)
            self.sick.discard(vma)
        if out:
            self.sick.add(vma)
            self._add(out, (self.order[vma.mm], 0, vma.start))
        vma.chk_out = out

    def _group(self, group: _Group) -> None:
        """I3 for the VMAs of one mm using one anon_vma: every member whose chain differs from
        the lowest member's.  With ``group.changed`` (the members that came, went or changed)
        and the lowest member untouched, only those are looked at again; else the whole
        group."""
        mm, av, members, changed = group.mm, group.av, group.members, group.changed
        group.changed = None
        first = group.first
        if len(members) < 2 or mm.dirty is not self.k.dirty_vmas:   # (or its mm exited)
            if first is not None:
                self._drop(list(group.out.values()))
                group.out = _NO_OUT
                group.first = None
                del self.groups[group]
            return
        if first is not None and changed is not None:
            # the lowest member stays the lowest (no member that changed is below it)...
            lowest = first in members
            if lowest:
                for v in changed:
                    if v.start < first.start and v in members:
                        lowest = False
                        break
            # ... and, if it changed itself, not in its name, start or chain
            if lowest and (first not in changed or (first.name == group.first_name
                                                    and first.start <= group.first_start
                                                    and _chain_set(first) == group.first_set)):
                out = group.out
                for v in changed:
                    old = out.pop(v, None)
                    if old is not None:
                        self._drop([old])
                    if v in members and v is not first \
                            and _chain_set(v) != group.first_set:
                        out[v] = v3 = self._i3(mm, first, v, av)
                        self._add([v3], (self.order[mm], 1, first.start), v.start)
                return
        if first is not None:
            self._drop(list(group.out.values()))
        group.out = {}
        low: Vma | None = None
        for v in members:
            if low is None or v.start < low.start:
                low = v
        assert low is not None
        first = low
        group.first, group.first_name, group.first_start = first, first.name, first.start
        group.first_set = _chain_set(first)
        self.groups[group] = None
        for v in members:
            if v is not first and _chain_set(v) != group.first_set:
                group.out[v] = v3 = self._i3(mm, first, v, av)
                self._add([v3], (self.order[mm], 1, first.start), v.start)

    @staticmethod
    def _i3(mm: Mm, first: Vma, v: Vma, av: AnonVma) -> Violation:
        return ("I3", f"{mm.name}/{first.name}+{v.name}", f"same anon_vma {avname(av)}, different chains")

    def _counters(self, queue: list[AnonVma], mark: int) -> None:
        """I4 and I5 of the anon_vmas in ``queue`` (each marked ``mark``), their parents and
        roots, after bringing each one's share in its parent's children and its root's
        descendants up to date.  The parents and roots join the queue, marked, after the
        anon_vmas that were in it."""
        if not queue:
            return
        live = self.k.live
        for i in range(len(queue)):
            av = queue[i]
            parent, root = av.parent, av.root
            alive = av in live
            # where av counts now: its parent's linked children, its root's descendants
            now_parent = parent if alive and av.tree and parent is not None and parent is not av \
                else None
            now_root = root if alive and root is not av else None
            old = av.chk_parent
            if old is not now_parent:
                if old is not None:
                    old.chk_children -= 1
                    if old.chk_mark != mark:
                        old.chk_mark = mark
                        queue.append(old)
                if now_parent is not None:
                    now_parent.chk_children += 1
                av.chk_parent = now_parent
            old = av.chk_root
            if old is not now_root:
                if old is not None:
                    old.chk_descendants -= 1
                    if old.chk_mark != mark:
                        old.chk_mark = mark
                        queue.append(old)
                if now_root is not None:
                    now_root.chk_descendants += 1
                av.chk_root = now_root
            if parent is not None and parent.chk_mark != mark:
                parent.chk_mark = mark
                queue.append(parent)
            if root.chk_mark != mark:
                root.chk_mark = mark
                queue.append(root)
        counters = self.k.counters
        kind = self.kind
        for av in queue:
            old_out = av.chk_out
            if old_out is not None:
                av.chk_out = None
                if old_out:
                    self._drop(old_out)
            if av not in live:
                continue
            linked = bool(av.tree)
            vmas, kids = av.chk_vmas, av.chk_children
            root_linked = linked and av.parent is av
            if av.refcount == int(linked) + av.chk_descendants:
                # counters.values(av) == counters.expected(...) without building the tuples for
                # the built-in eras (the common case: they agree)
                if kind == _SPLIT:
                    if av.num_children == kids + int(root_linked) and av.num_active_vmas == vmas:
                        continue
                elif kind == _DEGREE:
                    if av.degree == vmas + kids + int(root_linked):
                        continue
                elif kind == _NONE or \
                        counters.values(av) == counters.expected(vmas, kids, root_linked):
                    continue
            out = []
            have = counters.values(av)
            want = counters.expected(vmas, kids, root_linked)
            if have != want:
                got = ", ".join(f"{n} {v}" for n, v in have)
                exp = ", ".join(f"{n} {v}" for n, v in want)
                out.append(("I4", avname(av), f"{got}; recount gives {exp}"))
            refs = int(linked) + av.chk_descendants
            if av.refcount != refs:
                out.append(("I5", avname(av), f"refcount {av.refcount}; expected {refs}"))
            av.chk_out = out
            self._add(out, (_COUNTERS, av.seq, 0))


#: The counters of the built-in eras, checked inline (:meth:`IncrementalChecks._counters`); a
#: policy's own counters class, even a subclass, is compared the long way.
_OTHER: Final = 0
_NONE: Final = 1
_DEGREE: Final = 2
_SPLIT: Final = 3


def _counters_kind(counters: NoCounters) -> int:
    kinds = {NoCounters: _NONE, DegreeCounters: _DEGREE, SplitCounters: _SPLIT}
    return kinds.get(type(counters), _OTHER)
