"""The hot loops of a compiled tree's dup_mmap(): the child's VMAs, the parents' descriptors
for C, and the fork's records (split by kind, glue.c: kt_fork_split()) applied to the model.

Compiled with mypyc with the kernel model (anondiff/_compiled.py: MODULES), so that these loops
set the model's native objects' fields directly; plain loops, the same code on the pure-Python
path (ANONDIFF_PURE=1). No ctypes here: :mod:`.binding` hands over the records as a list.

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
    for m in parent.vmas:
        flags = m.flags
        if VM_DONTCOPY in flags or VM_WIPEONFORK in flags:
            break
        tmps.append(Vma(child, m.start, m.end, m.pgoff, m.prot, flags, m.file, rename[m.name]))
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


def fork_words(parents: list[Vma], pmm: int, cmm: int, vma_at: list[Vma | None],
               flag_bits: dict[tuple[frozenset[str], frozenset[str]], int],
               file_id: dict[object, int], av_at: list[AnonVma | None],
               av_odd: dict[int, AnonVma]) -> list[int]:
    """kt_fork_all()'s input: the number of pairs, the two mm ids, then the parents' columns
    (pointer, 0 for a VMA C has not seen; start; end; pgoff; flag word; file id; anon_vma)."""
    n = len(parents)
    words: list[int] = [0] * (3 + 7 * n)
    words[0], words[1], words[2] = n, pmm, cmm
    i = 3
    nvmas = len(vma_at)
    for vma in parents:
        num = vma.kt
        words[i] = num if 0 < num < nvmas and vma_at[num] is vma else 0
        words[i + n] = vma.start
        words[i + 2 * n] = vma.end
        words[i + 3 * n] = vma.pgoff
        # (get(): the dict's own lookup; [] reaches the binding's __missing__ for a new one)
        key = (vma.prot, vma.flags)
        bits = flag_bits.get(key, -1)
        words[i + 4 * n] = bits if bits >= 0 else flag_bits[key]
        fid = file_id.get(vma.file, -1)
        words[i + 5 * n] = fid if fid >= 0 else file_id[vma.file]
        av = vma.anon_vma
        words[i + 6 * n] = 0 if av is None else av_number(av, av_at, av_odd)
        i += 1
    return words


def apply_fork(k: Kernel, first_id: int, ins_av: list[int], ins_vma: list[int] | None,
               pairs: list[int], chain: list[int] | None, avs: list[int], allocs: list[int],
               new: list[int], children: list[Vma], parents: list[Vma],
               vma_at: list[Vma | None], av_at: list[AnonVma | None], av_odd: dict[int, AnonVma],
               avc_at: list[AnonVmaChain], allocated: set[int],
               new_av: Callable[[int], AnonVma] | None, split: bool) -> None:
    """Apply kt_fork_fast()'s sections to the model: the children's and new parents'
    pointers, the allocations, the insertions in order (an anon_vma named at its first, each
    chain numbered as inserted, ``first_id`` the first's number), the children's anon_vmas and
    chains (tail first), then the anon_vmas' state; what changed is noted in the Kernel's
    dirty sets. ``ins_vma`` and ``chain`` (the insertions' VMAs, the children's chains) are
    None when each child's chain is its own insertions, in order (KT_F_OWN): they are taken
    from there. ``new_av``: the binding's lookup of an anon_vma not seen before when one is
    waiting to be bound (Binding.bind_next), else None (a new AnonVma each).

    The anon_vmas first seen here are kept in a list, in order, beside their numbers: the
    children's anon_vmas and the anon_vmas' state name them mostly in that order, so each is
    found by comparing with the next one of that list before asking ``av_at`` (a miss asks
    ``av_at`` and keeps the place: never a search)."""
    # the children's numbers, then those of the parents C had not seen
    if pairs:
        room(vma_at, max(pairs[0::3]))
    if new:
        room(vma_at, max(new[1::2]))
    if allocs:
        room(av_at, max(allocs))
    j = 0
    for child in children:
        num = pairs[j]
        child.kt = num
        vma_at[num] = child
        j += 3
    for j in range(0, len(new), 2):
        vma = parents[new[j]]
        num = new[j + 1]
        vma.kt = num
        vma_at[num] = vma
    for num in allocs:
        allocated.add(num)
    dirty_vmas, dirty_avs = k.dirty_vmas, k.dirty_avs
    # the insertions: an anon_vma first seen here is named at its first insertion
    if ins_av:              # chains numbered in order from the next number
        assert first_id == len(avc_at), (first_id, len(avc_at))
    seq = k._avc_seq
    k._avc_seq = seq + len(ins_av)
    first = len(avc_at)
    pair = 0
    left: int = pairs[2] if pairs else 0     # insertions left to the current child
    fresh: list[AnonVma] = []               # the anon_vmas first seen here, in order
    fresh_ptrs: list[int] = []
    last_ptr = 0
    last: AnonVma | None = None
    nav = len(av_at)
    for j in range(len(ins_av)):
        ptr = ins_av[j]
        if last is not None and ptr == last_ptr:
            av = last
        else:
            got = av_at[ptr] if 0 < ptr < nav else av_get(ptr, av_at, av_odd)
            if got is None:
                av = _new(ptr, av_at, av_odd, new_av)
                fresh.append(av)
                fresh_ptrs.append(ptr)
            else:
                av = got
            last, last_ptr = av, ptr
        if av.seq == -1:                # not named yet (no name string made)
            k.name(av)
        if ins_vma is None:     # each insertion is the next one of the current child's
            while not left:
                pair += 1
                left = pairs[3 * pair + 2]
            vma = children[pair]
            left -= 1
        else:
            got_vma = vma_at[ins_vma[j]]
            assert got_vma is not None
            vma = got_vma
            dirty_vmas.add(vma)
        seq += 1
        avc = AnonVmaChain(vma, av, seq)
        avc_at.append(avc)
        av.tree[avc] = None
        dirty_avs.add(av)
    # the children's anon_vmas and chains, tail first: their own insertions, or looked up
    at = first if chain is None else 0
    nfresh = len(fresh)
    f = 0
    j = 0
    for child in children:
        ptr = pairs[j + 1]
        cnt: int = pairs[j + 2]
        j += 3
        if ptr:
            if f < nfresh and fresh_ptrs[f] == ptr:
                av = fresh[f]   # (anon_vma_fork()'s new anon_vma, in the order made)
                f += 1
            else:
                av = _known(ptr, av_at, av_odd, new_av)
            child.anon_vma = av
            dirty_avs.add(av)
        else:
            child.anon_vma = None
        if chain is None:
            child.avcs = avc_at[at:at + cnt]
        else:
            child.avcs = [avc_at[c] for c in chain[at:at + cnt]]
        at += cnt
        dirty_vmas.add(child)
    # the anon_vmas' state (KT_R_AV: pointer, refcount, root, parent, two counters); the
    # anon_vmas a fork makes share their root and parent: the last ones looked up are kept
    root_ptr = 0
    parent_ptr = 0
    root: AnonVma | None = None
    up: AnonVma | None = None
    f = 0
    for j in range(0, len(avs), 6):
        ptr = avs[j]
        if f < nfresh and fresh_ptrs[f] == ptr:
            av = fresh[f]
            f += 1
        else:
            av = _known(ptr, av_at, av_odd, new_av)
        ptr = avs[j + 2]
        if root is None or ptr != root_ptr:
            root, root_ptr = _known(ptr, av_at, av_odd, new_av), ptr
        av.root = root
        ptr = avs[j + 3]
        if up is None or ptr != parent_ptr:
            up, parent_ptr = _known(ptr, av_at, av_odd, new_av), ptr
        av.parent = up
        av.refcount = avs[j + 1]
        if split:
            av.num_children = avs[j + 4]
            av.num_active_vmas = avs[j + 5]
        else:
            av.degree = avs[j + 4]
        dirty_avs.add(av)


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
