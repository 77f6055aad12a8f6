"""The hot loops of a compiled tree's dup_mmap(): the child's VMAs, the parents' columns for
C, and the fork's records (split by kind into sections of bytes, glue.c: kt_fork_split())
applied to the model.

Compiled with mypyc with the kernel model (anondiff/_compiled.py: MODULES), so that these loops
set the model's native objects' fields directly; plain loops, the same code on the pure-Python
path (ANONDIFF_PURE=1). No ctypes here: :mod:`.binding` hands over lists and bytes.

VMAs and anon_vmas are known by small numbers in creation order (glue.c: kt_vma_id(),
kt_av_id()): each object keeps its own (``Vma.kt``, ``AnonVma.kt``) and the binding its objects
in lists indexed by them (``vma_at``, ``av_at``; a pointer to no slab object, numbered below
zero, and NULL, 0, in the dict ``av_odd``).  A number is trusted only when the list holds that
very object there: an object of another replay's binding is a new one to this one.
"""
from __future__ import annotations

from typing import Any, Callable

from ..kernel.objects import VM_DONTCOPY, VM_WIPEONFORK, AnonVma, AnonVmaChain, Mm, Vma
from ..kernel.state import Kernel

#: what ``next()`` gives once the names run out
_NO_NAME = ("", "")


def dup_vmas(parent: Mm, child: Mm, rename: dict[str, str]) -> tuple[
        list[Vma], list[Vma], list[bool], list[Vma], list[Vma]]:
    """The copies of dup_mmap()'s loop: the parent's VMAs but VM_DONTCOPY ones (``copies``),
    the vm_area_dup() of each into ``child`` under its child name with no anon_vma yet (what
    anon_vma_fork() leaves there is read back: ``tmps``), which of them VM_WIPEONFORK empties
    (``wipes``), and the pairs anon_vma_fork() is called for (``children``, ``parents``: the
    others)."""
    copies: list[Vma] = []
    tmps: list[Vma] = []
    wipes: list[bool] = []
    children: list[Vma] = []
    parents: list[Vma] = []
    # The child's names in the parent's order, as the engine builds ``rename``: each taken in
    # turn, looked up only where that order does not hold (as kernel.fork.dup_mmap() does: a
    # lookup in a large dict misses the cache, the next entry does not)
    names = iter(rename.items())
    for m in parent.vmas:
        flags = m.flags
        if VM_DONTCOPY in flags or VM_WIPEONFORK in flags:
            break
        old, name = next(names, _NO_NAME)
        if old is not m.name:
            name = rename[m.name]
        tmps.append(Vma(child, m.start, m.end, m.pgoff, m.prot, flags, m.file, name))
    else:
        # (the usual fork: every VMA copied, each one forked; one list does for four)
        copies = list(parent.vmas)
        return copies, tmps, [False] * len(tmps), tmps, copies
    tmps = []
    for m in parent.vmas:
        flags = m.flags
        if VM_DONTCOPY in flags:
            continue
        tmp = Vma(child, m.start, m.end, m.pgoff, m.prot, flags, m.file, rename[m.name])
        copies.append(m)
        tmps.append(tmp)
        wipe = VM_WIPEONFORK in flags
        wipes.append(wipe)
        if not wipe:
            children.append(tmp)
            parents.append(m)
    return copies, tmps, wipes, children, parents


def vma_number(vma: Vma, vma_at: list[Vma | None]) -> int:
    """The number C knows ``vma`` by, 0 for a VMA it has not seen."""
    n = vma.kt
    return n if 0 < n < len(vma_at) and vma_at[n] is vma else 0


def av_number(av: AnonVma, av_at: list[AnonVma | None], av_odd: dict[int, AnonVma]) -> int:
    """The number C knows ``av`` by, 0 for an anon_vma it has not seen."""
    n = av.kt
    if n > 0:
        return n if n < len(av_at) and av_at[n] is av else 0
    return n if n and av_odd.get(n) is av else 0


def av_get(n: int, av_at: list[AnonVma | None], av_odd: dict[int, AnonVma]) -> AnonVma | None:
    """The anon_vma numbered ``n`` if there is one yet."""
    if n > 0:
        return av_at[n] if n < len(av_at) else None
    return av_odd.get(n)


def bind_av(n: int, av: AnonVma, av_at: list[AnonVma | None], av_odd: dict[int, AnonVma]) -> None:
    """``av`` is the anon_vma numbered ``n`` from now on."""
    av.kt = n
    if n > 0:
        room(av_at, n)
        av_at[n] = av
    else:
        av_odd[n] = av


def bind_vma(n: int, vma: Vma, vma_at: list[Vma | None]) -> None:
    """``vma`` is the VMA numbered ``n`` from now on."""
    vma.kt = n
    room(vma_at, n)
    vma_at[n] = vma


def room(items: list[Any], n: int) -> None:
    """Make ``items[n]`` exist (None until set)."""
    if len(items) <= n:
        items.extend([None] * (n + 1 - len(items)))


#: kt_fork_all()'s columns, in order (glue.c: enum kt_fork_col)
FORK_COLUMNS = ("vma", "start", "pages", "pgoff", "flags", "file", "anon_vma")


def fork_columns(parents: list[Vma], vma_at: list[Vma | None],
                 flag_bits: dict[tuple[frozenset[str], frozenset[str]], int],
                 file_id: dict[object, int], av_at: list[AnonVma | None],
                 av_odd: dict[int, AnonVma]) -> list[list[int]]:
    """kt_fork_all()'s input: the parents' columns (:data:`FORK_COLUMNS`), each value written
    so that a run of neighbours gives small numbers, which Python does not allocate and C
    takes as bytes (glue.c: kt_fork_all() undoes it): the VMA's number and its anon_vma's as
    ``odd(number - the previous number given)`` (0: a VMA C has not seen, a NULL anon_vma),
    the start as the distance from the previous start, the end as the length, the pgoff as
    its distance from the start; the flag word and the file id as they are."""
    n = len(parents)
    nums, starts, pages, pgoffs = [0] * n, [0] * n, [0] * n, [0] * n
    flags, files, avs = [0] * n, [0] * n, [0] * n
    nvmas = len(vma_at)
    last_num = last_start = last_av = 0
    # the last (prot, flags) and file looked up, by identity: a run of equal neighbours shares
    # the model's objects, and costs no lookup
    last_prot: frozenset[str] | None = None
    last_flags: frozenset[str] | None = None
    bits = 0
    last_file: object = None
    fid = 0
    for i in range(n):
        vma = parents[i]
        num = vma.kt
        if 0 < num < nvmas and vma_at[num] is vma:
            nums[i] = 2 * (num - last_num) + 1
            last_num = num
        start = vma.start
        starts[i] = start - last_start
        last_start = start
        pages[i] = vma.end - start
        pgoffs[i] = vma.pgoff - start
        prot, vflags = vma.prot, vma.flags
        if prot is not last_prot or vflags is not last_flags:
            # (get(): the dict's own lookup; [] reaches the binding's __missing__ for a new one)
            key = (prot, vflags)
            bits = flag_bits.get(key, -1)
            if bits < 0:
                bits = flag_bits[key]
            last_prot, last_flags = prot, vflags
        flags[i] = bits
        file = vma.file
        if file is not last_file or not i:
            fid = file_id.get(file, -1)
            if fid < 0:
                fid = file_id[file]
            last_file = file
        files[i] = fid
        av = vma.anon_vma
        if av is not None:
            anum = av_number(av, av_at, av_odd)
            if anum:
                avs[i] = 2 * (anum - last_av) + 1
                last_av = anum
    return [nums, starts, pages, pgoffs, flags, files, avs]


class Values:
    """A section of kt_fork_fast_bytes() (glue.c: kt_put()): values each written as its
    difference from the previous one of its field; :meth:`value` reads the next."""

    def value(self, prev: int) -> int:
        """The next value, ``prev`` being its field's previous one (0 at first)."""
        raise NotImplementedError


class Varints(Values):
    """The section's bytes (zigzag, LEB128), read without an int object made for each value
    (a byte read is a small int): compiled, the cheaper way."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def value(self, prev: int) -> int:
        """The next value, ``prev`` being its field's previous one (0 at first)."""
        data = self.data
        at = self.at
        byte = data[at]
        zz = byte & 127
        shift = 7
        while byte & 128:
            at += 1
            byte = data[at]
            zz |= (byte & 127) << shift
            shift += 7
        self.at = at + 1
        return prev + ((zz >> 1) ^ -(zz & 1))


class Deltas(Values):
    """The section's differences, decoded by C (glue.c: kt_fork_deltas()): as Python, the
    cheaper way (a loop over the bytes in Python costs more than the list)."""

    def __init__(self, deltas: list[int]) -> None:
        self.deltas = deltas
        self.at = 0

    def value(self, prev: int) -> int:
        at = self.at
        self.at = at + 1
        return prev + self.deltas[at]


#: an insertion's anon_vma follows the previous one at its place in its pair's insertions, up
#: to this place (glue.c: KT_POS)
POS = 8


def apply_fork(k: Kernel, first_id: int, n_ins: int, ins_av: Values, ins_vma: Values | None,
               pairs: Values, chain: Values | None, n_avs: int, avs: Values, n_new: int,
               new: Values, children: list[Vma], parents: list[Vma],
               vma_at: list[Vma | None], av_at: list[AnonVma | None],
               av_odd: dict[int, AnonVma], avc_at: list[AnonVmaChain],
               new_av: Callable[[int], AnonVma] | None, split: bool) -> None:
    """Apply kt_fork_fast()'s sections (``vma_at`` and ``av_at`` long enough for the numbers
    they name) to the model: the new parents' and the children's numbers, the insertions in
    order (an anon_vma named at its first, each chain numbered as inserted, ``first_id`` the
    first's number), the children's anon_vmas and chains (tail first), then the anon_vmas'
    state. ``ins_vma`` and ``chain`` (the insertions' VMAs, the children's chains) are None
    when each child's chain is its own insertions, in order (KT_F_OWN): they are taken from
    there. ``new_av``: the binding's lookup of an anon_vma not seen before when one is waiting
    to be bound (Binding.bind_next), else None (a new AnonVma each).

    What changed is noted as the Python policies note it: every anon_vma of the state
    section (C's list of those the fork touched) in ``k.dirty_avs``, the VMAs given chains in
    ``k.dirty_vmas`` when their mm is known to the incremental checks (a fork's child mm is
    new to them, so checked whole: Mm.touch())."""
    if n_ins:
        assert first_id == len(avc_at), (first_id, len(avc_at))     # numbered in order
    # the parents C had not seen
    pair = num = 0
    for _ in range(n_new):
        pair = new.value(pair)
        num = new.value(num)
        vma = parents[pair]
        vma.kt = num
        vma_at[num] = vma
    seq = k._avc_seq
    k._avc_seq = seq + n_ins
    if ins_vma is not None:
        assert chain is not None
        _apply_lookup(k, seq, n_ins, ins_av, ins_vma, pairs, chain, children, vma_at, av_at,
                      av_odd, avc_at, new_av)
    else:
        dirty_vmas = k.dirty_vmas
        mark = bool(children) and children[0].mm.dirty is not None
        nav = len(av_at)
        last_ptr = 0
        last: AnonVma | None = None
        prev_av = [0] * POS
        num = ptr = cnt = nins = 0
        at = first_id               # the next insertion's chain number
        for p in range(len(children)):
            child = children[p]
            num = pairs.value(num)
            child.kt = num
            vma_at[num] = child
            ptr = pairs.value(ptr)
            cnt = pairs.value(cnt)
            nins = pairs.value(nins)
            # its insertions, in order: its chain, tail first
            for q in range(cnt):
                place = q if q < POS else POS - 1
                got_ptr = ins_av.value(prev_av[place])
                prev_av[place] = got_ptr
                if last is not None and got_ptr == last_ptr:
                    av = last
                else:
                    got = av_at[got_ptr] if 0 < got_ptr < nav else av_get(got_ptr, av_at, av_odd)
                    av = _new(got_ptr, av_at, av_odd, new_av) if got is None else got
                    last, last_ptr = av, got_ptr
                if av.seq == -1:                # not named yet (no name string made)
                    k.name(av)
                seq += 1
                avc = AnonVmaChain(child, av, seq)
                avc_at.append(avc)
                av.tree[avc] = None
            child.avcs = avc_at[at:at + cnt]
            at += cnt
            if not ptr:
                child.anon_vma = None
            elif last is not None and ptr == last_ptr:
                child.anon_vma = last           # (anon_vma_fork()'s new one: its head)
            else:
                child.anon_vma = _known(ptr, av_at, av_odd, new_av)
            if mark:
                dirty_vmas.add(child)
    # the anon_vmas' state (KT_R_AV: number, refcount, root, parent, two counters); the
    # anon_vmas a fork makes share their root and parent: the last ones looked up are kept
    dirty_avs = k.dirty_avs
    nav = len(av_at)
    ptr = refcount = root_ptr = parent_ptr = one = two = 0
    root: AnonVma | None = None
    up: AnonVma | None = None
    for _ in range(n_avs):
        ptr = avs.value(ptr)
        refcount = avs.value(refcount)
        got = av_at[ptr] if 0 < ptr < nav else None
        av = _known(ptr, av_at, av_odd, new_av) if got is None else got
        got_ptr = avs.value(root_ptr)
        if root is None or got_ptr != root_ptr:
            root, root_ptr = _known(got_ptr, av_at, av_odd, new_av), got_ptr
        av.root = root
        got_ptr = avs.value(parent_ptr)
        if up is None or got_ptr != parent_ptr:
            up, parent_ptr = _known(got_ptr, av_at, av_odd, new_av), got_ptr
        av.parent = up
        av.refcount = refcount
        one = avs.value(one)
        two = avs.value(two)
        if split:
            av.num_children = one
            av.num_active_vmas = two
        else:
            av.degree = one
        dirty_avs.add(av)


def _apply_lookup(k: Kernel, seq: int, n_ins: int, ins_av: Values, ins_vma: Values,
                  pairs: Values, chain: Values, children: list[Vma],
                  vma_at: list[Vma | None], av_at: list[AnonVma | None],
                  av_odd: dict[int, AnonVma], avc_at: list[AnonVmaChain],
                  new_av: Callable[[int], AnonVma] | None) -> None:
    """:func:`apply_fork`'s children, insertions and chains when the chains are not each
    child's own insertions in order: each insertion's VMA and each chain looked up by
    number (the VMAs and anon_vmas marked for the incremental checks, as the record reader
    does)."""
    dirty_vmas, dirty_avs = k.dirty_vmas, k.dirty_avs
    avps: list[int] = []
    cnts: list[int] = []
    nins: list[int] = []
    num = ptr = cnt = n = 0
    for child in children:
        num = pairs.value(num)
        child.kt = num
        vma_at[num] = child
        ptr = pairs.value(ptr)
        cnt = pairs.value(cnt)
        n = pairs.value(n)
        avps.append(ptr)
        cnts.append(cnt)
        nins.append(n)
    prev_av = [0] * POS
    vnum = 0
    for n in nins:
        for q in range(n):
            place = q if q < POS else POS - 1
            ptr = ins_av.value(prev_av[place])
            prev_av[place] = ptr
            av = _known(ptr, av_at, av_odd, new_av)
            if av.seq == -1:                # not named yet
                k.name(av)
            vnum = ins_vma.value(vnum)
            got_vma = vma_at[vnum]
            assert got_vma is not None
            dirty_vmas.add(got_vma)
            seq += 1
            avc = AnonVmaChain(got_vma, av, seq)
            avc_at.append(avc)
            av.tree[avc] = None
            dirty_avs.add(av)
    assert sum(nins) == n_ins, (nins, n_ins)
    c = 0
    for p in range(len(children)):
        child = children[p]
        ptr = avps[p]
        child.anon_vma = _known(ptr, av_at, av_odd, new_av) if ptr else None
        chain_avcs: list[AnonVmaChain] = []
        for _ in range(cnts[p]):
            c = chain.value(c)
            chain_avcs.append(avc_at[c])
        child.avcs = chain_avcs
        dirty_vmas.add(child)


def _new(n: int, av_at: list[AnonVma | None], av_odd: dict[int, AnonVma],
         new_av: Callable[[int], AnonVma] | None) -> AnonVma:
    """The anon_vma numbered ``n``, which the binding does not hold yet."""
    if new_av is None:
        av = AnonVma()
        bind_av(n, av, av_at, av_odd)
        return av
    return new_av(n)


def _known(n: int, av_at: list[AnonVma | None], av_odd: dict[int, AnonVma],
           new_av: Callable[[int], AnonVma] | None) -> AnonVma:
    """The anon_vma C knows by ``n``: a new one at the first sight of it."""
    av = av_get(n, av_at, av_odd)
    if av is None:
        return _new(n, av_at, av_odd, new_av)
    return av
