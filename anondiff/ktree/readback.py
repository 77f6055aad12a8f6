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

from typing import Any, Callable, Final, cast

from ..kernel.objects import (VM_ACCOUNT, VM_DONTCOPY, VM_SHARED, VM_WIPEONFORK, AnonVma,
                              AnonVmaChain, Mm, Vma)
from ..kernel.state import Kernel

try:
    from mypy_extensions import i64
except ImportError:                  # no mypy (so nothing compiled): annotations only
    i64 = int  # type: ignore[misc,assignment]

#: the shim's vm_flags bits (ktshim.h: VMA_*_BIT), by the model's prot and flag names
FLAG_BITS: Final = {"read": 1, "write": 2, "exec": 4, VM_SHARED: 8, VM_DONTCOPY: 16,
                    VM_ACCOUNT: 32, VM_WIPEONFORK: 64}
#: the bits of those flags (a VMA's flags mostly hold no others)
SHARED_BIT: Final = 8
DONTCOPY_BIT: Final = 16
ACCOUNT_BIT: Final = 32
WIPEONFORK_BIT: Final = 64
_EMPTY: Final[frozenset[str]] = frozenset()
#: no file (a VMA's file may be None): the file the first VMA's is compared with
_NO_FILE: Final = object()
#: :func:`fork_columns`' five values
Columns = tuple[list[int], list[int], int, int, int]
#: what :func:`dup_fork` returns: :func:`dup_vmas`'s five lists, then the parents' columns
DupFork = tuple[list[Vma], list[Vma], list[bool], list[Vma], list[Vma], Columns]
_NO_COLUMNS: Final[Columns] = ([], [], 0, 0, 0)


def _renames(rename: dict[str, str] | None) -> tuple[list[str], list[str]]:
    """The child's names in the parent's order, as the engine builds ``rename``, for a loop
    that takes each in turn and looks up only where that order does not hold (as
    kernel.fork.dup_mmap() does: a lookup in a large dict misses the cache, the next entry
    does not): the keys and the names as lists, indexed (no tuple per item, no call of
    next()).  None: none (each copy keeps its parent's name)."""
    if rename is None:
        return [], []
    return list(rename), list(rename.values())


def dup_vmas(parent: Mm, child: Mm, rename: dict[str, str] | None) -> tuple[
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
    olds, names = _renames(rename)
    nnames = len(olds)
    j = 0
    for m in parent.vmas:
        flags = m.flags
        if VM_DONTCOPY in flags or VM_WIPEONFORK in flags:
            break
        name = m.name
        if j < nnames and olds[j] is name:
            name = names[j]
        elif rename is not None:
            name = rename[name]
        j += 1
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
        tmp = Vma(child, m.start, m.end, m.pgoff, m.prot, flags, m.file,
                  m.name if rename is None else rename[m.name])
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


#: kt_fork_all()'s fields of a parent, in order, a byte each (glue.c: enum kt_fork_col)
FORK_COLUMNS: Final = ("vma", "start", "pages", "pgoff", "flags", "file", "anon_vma")
#: a field's byte that says: the value is the next one of the wide values (glue.c: KT_WIDE)
WIDE: Final = 255


def _field(v: int, shift: int, wide: list[int]) -> int:
    """A parent's field ``v`` as its byte of the word at ``shift``: the value itself where it
    is one below :data:`WIDE`, else WIDE, the value going to ``wide``."""
    if 0 <= v < WIDE:
        return v << shift
    wide.append(v)
    return WIDE << shift


def _word(d_num: i64, d_start: i64, pages: i64, d_pgoff: i64, bits: i64, fid: i64, d_av: i64,
          wide: list[int]) -> i64:
    """A parent's word for kt_fork_all() from its fields, a byte each from the lowest
    (:data:`FORK_COLUMNS`), each as :func:`_field` writes it.  (Every field a byte below
    WIDE, the usual case, tested first: no call a field.)"""
    if (0 <= d_num < WIDE and 0 <= d_start < WIDE and 0 <= pages < WIDE
            and 0 <= d_pgoff < WIDE and 0 <= bits < WIDE and 0 <= fid < WIDE
            and 0 <= d_av < WIDE):
        return (d_num | d_start << 8 | pages << 16 | d_pgoff << 24 | bits << 32 | fid << 40
                | d_av << 48)
    return (_field(d_num, 0, wide) | _field(d_start, 8, wide) | _field(pages, 16, wide)
            | _field(d_pgoff, 24, wide) | _field(bits, 32, wide) | _field(fid, 40, wide)
            | _field(d_av, 48, wide))


class _Words:
    """The parents' words for kt_fork_all() as :func:`fork_columns` describes them, one parent
    after the other (:meth:`word`): the VMA's number and its anon_vma's against the previous
    ones given, the start against the previous start, what the first parent's are written
    against (``base_num``, ``base_start``, ``base_av``: its own).  The one encoder of
    :func:`fork_columns` and :func:`dup_fork`; the file and anon_vma of the last parent are
    kept by identity (a run of neighbours costs no lookup)."""

    def __init__(self, first: Vma, vma_at: list[Vma | None], file_id: dict[object, int],
                 av_at: list[AnonVma | None], av_odd: dict[int, AnonVma]) -> None:
        self.vma_at = vma_at
        self.nvmas: i64 = len(vma_at)
        self.file_id = file_id
        self.av_at = av_at
        self.av_odd = av_odd
        self.wide: list[int] = []
        base_av: i64 = 0
        if first.anon_vma is not None:
            base_av = av_number(first.anon_vma, av_at, av_odd)
        self.base_num: i64 = vma_number(first, vma_at)
        self.base_start: i64 = first.start
        self.base_av: i64 = base_av
        # (the arithmetic in machine words, compiled: values of page numbers, far below 2^63)
        self.last_num: i64 = self.base_num
        self.last_start: i64 = self.base_start
        self.last_av: i64 = base_av
        self.last_file: object = _NO_FILE
        self.fid: i64 = 0
        self.last_anon: AnonVma | None = None
        self.anum: i64 = 0

    def word(self, m: Vma, bits: i64) -> i64:
        """The word of parent ``m``, the next one, whose flag word is ``bits``."""
        start: i64 = m.start
        num: i64 = m.kt
        d_num: i64 = 0
        if 0 < num < self.nvmas and self.vma_at[num] is m:
            d_num = 2 * (num - self.last_num) + 1
            self.last_num = num
        d_start: i64 = start - self.last_start
        self.last_start = start
        file = m.file
        if file is not self.last_file:
            fid = self.file_id.get(file, -1)
            if fid < 0:
                fid = self.file_id[file]
            self.fid = fid
            self.last_file = file
        d_av: i64 = 0
        av = m.anon_vma
        if av is not None:
            if av is not self.last_anon:
                self.anum = av_number(av, self.av_at, self.av_odd)
                self.last_anon = av
            anum = self.anum
            if anum:
                d_av = 2 * (anum - self.last_av) + 1
                self.last_av = anum
        return _word(d_num, d_start, m.end - start, m.pgoff - start, bits, self.fid, d_av,
                     self.wide)

    def columns(self, words: list[Any]) -> Columns:
        return words, self.wide, self.base_num, self.base_start, self.base_av


def fork_columns(parents: list[Vma], vma_at: list[Vma | None],
                 flag_bits: dict[tuple[frozenset[str], frozenset[str]], int],
                 file_id: dict[object, int], av_at: list[AnonVma | None],
                 av_odd: dict[int, AnonVma]) -> Columns:
    """kt_fork_all()'s input (``parents`` not empty): a word per parent, its fields
    (:data:`FORK_COLUMNS`) a byte each from the lowest, each written so that a run of
    neighbours gives small numbers (glue.c: kt_fork_all() undoes it): the VMA's number and its
    anon_vma's as ``odd(number - the previous number given)`` (0: a VMA C has not seen, a
    NULL anon_vma), the start as the distance from the previous start, the end as the length,
    the pgoff as its distance from the start; the flag word and the file id as they are. A
    value that is no byte below :data:`WIDE` is that byte, the value going to the wide values
    (the second list), in order. Then what the first parent's number, start and anon_vma are
    written against: its own (a fork's words then fit their bytes from the first)."""
    n = len(parents)
    words = [0] * n
    enc = _Words(parents[0], vma_at, file_id, av_at, av_odd)
    # the last two (prot, flags) looked up by identity (the flags, each VMA of a starting
    # layout its own set, by equality): a run of neighbours (alternating protections) costs no
    # lookup
    prot1: frozenset[str] | None = None
    flags1: frozenset[str] | None = None
    prot2: frozenset[str] | None = None
    flags2: frozenset[str] | None = None
    bits1 = bits2 = 0
    for i in range(n):
        vma = parents[i]
        prot, vflags = vma.prot, vma.flags
        if prot is prot1 and (vflags is flags1 or vflags == flags1):
            bits = bits1
        elif prot is prot2 and (vflags is flags2 or vflags == flags2):
            bits = bits2
        else:
            # (get(): the dict's own lookup; [] reaches the binding's __missing__ for a new one)
            key = (prot, vflags)
            bits = flag_bits.get(key, -1)
            if bits < 0:
                bits = flag_bits[key]
            prot2, flags2, bits2 = prot1, flags1, bits1
            prot1, flags1, bits1 = prot, vflags, bits
        words[i] = enc.word(vma, bits)
    return enc.columns(words)


def dup_fork(parent: Mm, child: Mm, rename: dict[str, str] | None, vma_at: list[Vma | None],
             flag_bits: dict[tuple[frozenset[str], frozenset[str]], int],
             file_id: dict[object, int], av_at: list[AnonVma | None],
             av_odd: dict[int, AnonVma]) -> DupFork:
    """:func:`dup_vmas` and :func:`fork_columns` of its parents in one pass over the parent's
    VMAs (each VMA's fields read once), for the usual fork: every VMA copied and forked (the
    first VM_DONTCOPY or VM_WIPEONFORK VMA sends the fork to the two functions). A VMA's flag
    word is made from its prot (the last two looked up by identity) and membership tests of
    the flags the shim knows (each VMA of a starting layout has a set of its own: a test
    costs less than comparing two sets), ``flag_bits`` asked only for flags it does not.
    ``rename`` None: each copy keeps its parent's name."""
    vmas = parent.vmas
    n = len(vmas)
    if not n:
        return [], [], [], [], [], _NO_COLUMNS
    olds, names = _renames(rename)
    nnames = len(olds)
    # (the copies' list at its length: appended to, a list of 65,000 grows in steps, copied)
    tmps = cast(list[Vma], [None] * n)
    # (each word boxed once: the last two words' int objects are stored again where a word
    # repeats, as a run of like neighbours' words do)
    words: list[Any] = [None] * n
    enc = _Words(vmas[0], vma_at, file_id, av_at, av_odd)
    word1: i64 = -1
    word2: i64 = -1
    box1: Any = None
    box2: Any = None
    prot1: frozenset[str] | None = None
    prot2: frozenset[str] | None = None
    pbits1 = pbits2 = 0
    for i in range(n):
        m = vmas[i]
        prot, flags = m.prot, m.flags
        nflags = len(flags)
        fbits: i64 = 0
        if nflags:
            hit = 0
            if VM_ACCOUNT in flags:
                fbits = ACCOUNT_BIT
                hit = 1
            if hit < nflags:
                if VM_SHARED in flags:
                    fbits |= SHARED_BIT
                    hit += 1
                if hit < nflags and VM_DONTCOPY in flags:
                    fbits |= DONTCOPY_BIT
                    hit += 1
                if hit < nflags and VM_WIPEONFORK in flags:
                    fbits |= WIPEONFORK_BIT
                    hit += 1
                if hit < nflags:    # another flag: as the binding's table says
                    key = (_EMPTY, flags)
                    fbits = flag_bits.get(key, -1)
                    if fbits < 0:
                        fbits = flag_bits[key]
            if fbits & (DONTCOPY_BIT | WIPEONFORK_BIT):
                copies, tmps, wipes, children, parents = dup_vmas(parent, child, rename)
                # (the copies made so far are dropped)
                if not parents:
                    return copies, tmps, wipes, children, parents, _NO_COLUMNS
                return (copies, tmps, wipes, children, parents,
                        fork_columns(parents, vma_at, flag_bits, file_id, av_at, av_odd))
        if prot is prot1:
            pbits = pbits1
        elif prot is prot2:
            pbits = pbits2
        else:
            key = (prot, _EMPTY)
            pbits = flag_bits.get(key, -1)
            if pbits < 0:
                pbits = flag_bits[key]
            prot2, pbits2 = prot1, pbits1
            prot1, pbits1 = prot, pbits
        name = m.name
        if i < nnames and olds[i] is name:
            name = names[i]
        elif rename is not None:
            name = rename[name]
        tmps[i] = Vma(child, m.start, m.end, m.pgoff, prot, flags, m.file, name)
        word = enc.word(m, pbits | fbits)   # the parent's word (fork_columns())
        if word == word1:
            words[i] = box1
            continue
        if word == word2:
            words[i] = box2
            continue
        box: Any = word
        words[i] = box
        word2, box2 = word1, box1
        word1, box1 = word, box
    # (every VMA copied, each one forked: one list does for four)
    copies = list(vmas)
    return copies, tmps, [False] * n, tmps, copies, enc.columns(words)


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
POS: Final = 8


def apply_fork(k: Kernel, first_id: int, n_ins: int, runs: Values | None, ins_av: Values,
               ins_vma: Values, pairs: Values, chain: Values, n_avs: int, avs: Values,
               n_new: int, new: Values, children: list[Vma], parents: list[Vma],
               vma_at: list[Vma | None], av_at: list[AnonVma | None],
               av_odd: dict[int, AnonVma], avc_at: list[AnonVmaChain],
               new_av: Callable[[int], AnonVma] | None, split: bool) -> None:
    """Apply kt_fork_fast()'s sections (``vma_at`` and ``av_at`` long enough for the numbers
    they name) to the model: the new parents' and the children's numbers, the insertions in
    order (an anon_vma named at its first, each chain numbered as inserted, ``first_id`` the
    first's number), the children's anon_vmas and chains (tail first), then the anon_vmas'
    state. ``runs``: the pairs as runs of like vectors (glue.c: kt_fork_split(), KT_F_OWN),
    each child's chain its own insertions in order; None when C did not write them: then
    ``ins_av``, ``ins_vma``, ``pairs`` and ``chain`` hold the insertions' anon_vmas and VMAs,
    the pairs and the children's chains, looked up. ``new_av``: the binding's lookup of an
    anon_vma not seen before when one is waiting to be bound (Binding.bind_next), else None
    (a new AnonVma each).

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
    # (an anon_vma named from here on is in k.dirty_avs already: Kernel.name() and name_many()
    # put it there)
    named = len(k.anon_vmas)
    if runs is None:
        _apply_lookup(k, seq, n_ins, ins_av, ins_vma, pairs, chain, children, vma_at, av_at,
                      av_odd, avc_at, new_av)
    else:
        _apply_runs(k, seq, runs, children, vma_at, av_at, av_odd, avc_at, new_av)
    # the anon_vmas' state (KT_R_AV: number, refcount, root, parent, two counters), in runs
    # of like vectors: the anon_vmas a fork makes follow each other and share their root and
    # parent, which are looked up once a run
    dirty_avs = k.dirty_avs
    nav = len(av_at)
    ptr = refcount = root_ptr = parent_ptr = one = two = 0
    done = 0
    while done < n_avs:
        count = avs.value(0)
        ptr = avs.value(ptr)
        refcount = avs.value(refcount)
        root_ptr = avs.value(root_ptr)
        parent_ptr = avs.value(parent_ptr)
        one = avs.value(one)
        two = avs.value(two)
        d_ptr = d_refcount = d_root = d_parent = d_one = d_two = 0
        if count > 1:
            d_ptr = avs.value(0)
            d_refcount = avs.value(0)
            d_root = avs.value(0)
            d_parent = avs.value(0)
            d_one = avs.value(0)
            d_two = avs.value(0)
        root = _known(root_ptr, av_at, av_odd, new_av)
        up = _known(parent_ptr, av_at, av_odd, new_av)
        # (the values of the run's first vector stay the fields' last written ones)
        a_ptr, a_refcount, a_root, a_parent, a_one, a_two = \
            ptr, refcount, root_ptr, parent_ptr, one, two
        for r in range(count):
            if r:
                a_ptr += d_ptr
                a_refcount += d_refcount
                a_one += d_one
                a_two += d_two
                if d_root:
                    a_root += d_root
                    root = _known(a_root, av_at, av_odd, new_av)
                if d_parent:
                    a_parent += d_parent
                    up = _known(a_parent, av_at, av_odd, new_av)
            got = av_at[a_ptr] if 0 < a_ptr < nav else None
            av = _known(a_ptr, av_at, av_odd, new_av) if got is None else got
            av.root = root
            av.parent = up
            av.refcount = a_refcount
            if split:
                av.num_children = a_one
                av.num_active_vmas = a_two
            else:
                av.degree = a_one
            if av.seq < named:
                dirty_avs.add(av)
        done += count


def _apply_runs(k: Kernel, seq: int, runs: Values, children: list[Vma],
                vma_at: list[Vma | None], av_at: list[AnonVma | None],
                av_odd: dict[int, AnonVma], avc_at: list[AnonVmaChain],
                new_av: Callable[[int], AnonVma] | None) -> None:
    """:func:`apply_fork`'s children and insertions when each child's chain is its own
    insertions in order, read as runs of pairs (glue.c: kt_flush_pairs()): a pair is the
    child's number, its anon_vma and the anon_vma of each insertion; a run, pairs whose
    vectors each differ from the one before by the same differences, so that an anon_vma
    at a place that does not move (the parent's, shared) is looked up once a run, and one
    that moves (the new one) is made without a lookup in a dict."""
    dirty_vmas = k.dirty_vmas
    mark = bool(children) and children[0].mm.dirty is not None
    nav = len(av_at)
    prev_av = [0] * POS
    num = ptr = 0
    p = 0
    n = len(children)
    # the anon_vmas made here, in the order of their first insertion: named together
    # (Kernel.name_many()) before any other is named, so that naming order stays insertion order
    fresh: list[AnonVma] = []
    while p < n:
        count = runs.value(0)
        cnt = runs.value(0)
        num = runs.value(num)
        ptr = runs.value(ptr)
        ptrs = [0] * cnt
        for q in range(cnt):
            place = q if q < POS else POS - 1
            got_ptr = runs.value(prev_av[place])
            prev_av[place] = got_ptr
            ptrs[q] = got_ptr
        d_num = d_ptr = 0
        steps = [0] * cnt
        if count > 1:
            d_num = runs.value(0)
            d_ptr = runs.value(0)
            for q in range(cnt):
                steps[q] = runs.value(0)
        # the anon_vmas at the places that do not move, looked up once (named at their first
        # insertion, in the loop: naming order is insertion order; and not while an anon_vma
        # waits to be bound, which the first one C allocated takes, in insertion order)
        fixed: list[AnonVma | None] = [None] * cnt
        head: AnonVma | None = None
        if new_av is None:
            for q in range(cnt):
                if not steps[q]:
                    fixed[q] = _known(ptrs[q], av_at, av_odd, None)
            if not d_ptr and ptr:
                head = _known(ptr, av_at, av_odd, None)
        # (the r-th pair's values are the first vector's plus r steps: computed, not kept in
        # lists, whose every new int would be an object)
        for r in range(count):
            child = children[p]
            p += 1
            c_num = num + r * d_num
            child.kt = c_num
            vma_at[c_num] = child
            # its insertions, in order: its chain, tail first (pushed at the head: appended to
            # the new VMA's empty list)
            avcs = child.avcs
            if avcs:
                avcs = child.avcs = []
            for q in range(cnt):
                av = fixed[q]
                made = False
                if av is None:
                    got_ptr = ptrs[q] + r * steps[q]
                    got = av_at[got_ptr] if 0 < got_ptr < nav else None
                    if got is not None:
                        av = got
                    elif new_av is None and 0 < got_ptr < nav:
                        av = AnonVma()          # a new one (bind_av(), its room made)
                        av.kt = got_ptr
                        av_at[got_ptr] = av
                        fresh.append(av)
                        made = True
                    else:
                        av = _known(got_ptr, av_at, av_odd, new_av)
                if not made and av.seq == -1:   # not named yet (no name string made)
                    if fresh:                   # (those first: inserted before it)
                        k.name_many(fresh)
                        fresh.clear()
                    if av.seq == -1:
                        k.name(av)
                seq += 1
                avc = AnonVmaChain(child, av, seq)
                avc_at.append(avc)
                avcs.append(avc)
                av.tree[avc] = None
            if head is not None:
                child.anon_vma = head
            else:
                c_ptr = ptr + r * d_ptr
                if not c_ptr:
                    child.anon_vma = None
                else:
                    got = av_at[c_ptr] if 0 < c_ptr < nav else None
                    child.anon_vma = _known(c_ptr, av_at, av_odd, new_av) if got is None else got
            if mark:
                dirty_vmas.add(child)
    k.name_many(fresh)


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
