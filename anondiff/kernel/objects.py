"""The kernel objects, mutable and compared by identity like kernel pointers."""
from __future__ import annotations

import enum
from typing import Final, Iterator

#: vm_flags that matter for anon_vma decisions (compared by anon_vma_compatible() and
#: vma_merge(); VM_READ/VM_WRITE/VM_EXEC are ``Vma.prot``).
VM_DONTCOPY: Final = "dontcopy"
VM_WIPEONFORK: Final = "wipeonfork"
VM_SHARED: Final = "shared"
#: VM_ACCOUNT: set on a private mapping mapped writable (accountable_mapping() at mmap) or made
#: writable (mprotect_fixup()); since v6.7 mprotect_fixup() clears it again when an anonymous VMA
#: that has no anon_vma yet is made non-writable (see anondiff.kernel.mm.mprotect_flags).
#: anon_vma_compatible() and vma_merge() compare it, so a VMA without it neither merges with nor
#: shares an anon_vma with one that has it.
VM_ACCOUNT: Final = "account"
#: VM_SOFTDIRTY, VM_MAYBE_GUARD (2026 tree) and "has vm_ops->close" (not a vm_flag): what
#: is_mergeable_vma() and anon_vma_compatible() never compare (VM_SOFTDIRTY since commit
#: 34228d473efe ("mm: ignore VM_SOFTDIRTY on VMA merging"), VMA_IGNORE_MERGE_FLAGS in
#: include/linux/mm.h@7.2.13; vm_ops are not flags at all).  See anondiff.kernel.merge.
VM_SOFTDIRTY: Final = "softdirty"
VM_MAYBE_GUARD: Final = "guard"
VM_CLOSE: Final = "close"
MERGE_IGNORED: Final = frozenset({VM_SOFTDIRTY, VM_MAYBE_GUARD, VM_CLOSE})


#: One frozenset for each set of vm_flags ever given to a :class:`Vma` (see :func:`vm_flags`).
_VM_FLAGS: Final[dict[frozenset[str], frozenset[str]]] = {}


def vm_flags(flags: frozenset[str]) -> frozenset[str]:
    """The one frozenset equal to ``flags`` that every VMA with those flags holds.  (A layout
    builds a set of flags for each VMA; a fork that copies 65,000 of them would otherwise read
    and take a reference on 65,000 frozensets scattered over the heap, a cache miss each, where
    a few shared ones stay in the cache.)"""
    return _VM_FLAGS.setdefault(flags, flags)


def flags_match(a: frozenset[str], b: frozenset[str]) -> bool:
    """vm_flags equal as vma_merge() and anon_vma_compatible() compare them."""
    return a == b or not ((a ^ b) - MERGE_IGNORED)


def bisect_left(a: list[int], x: int) -> int:
    """bisect.bisect_left() on a list of ints (``Mm.starts``): the first i with a[i] >= x.
    (The bisect module's would be a call from the compiled model into the interpreter, which
    boxes ``x`` and compares through the object protocol at each probe; this loop compiles to
    machine integers.  A few VMAs or 65,000, the same O(log n).)"""
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def bisect_right(a: list[int], x: int) -> int:
    """bisect.bisect_right() likewise: the first i with a[i] > x."""
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


class ShmemFile:
    """The shmem file a MAP_SHARED|MAP_ANONYMOUS mapping gets of its own (shmem_zero_setup()
    at mmap): two such mappings never have the same vm_file, so vma_merge() never joins them,
    while the pieces of one mapping (and its copies in fork children) share it and merge back.
    Seen on the live 6.18 kernel by ``anondiff live``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:  # pragma: no mutate block (debug repr)
        return f"<shmem of {self.name}>"


class VmaOp(enum.Enum):
    """Why anon_vma_clone() is called (the 2026 tree's ``enum vma_operation``)."""

    SPLIT = "split"
    MERGE_UNFAULTED = "merge"
    REMAP = "remap"
    FORK = "fork"


class AnonVma:
    """``struct anon_vma``.

    ``degree`` exists from v3.19 (commit 7a3ef208e662) to v6.0-rc3; ``num_children`` and
    ``num_active_vmas`` from v6.0-rc4 (commit 2555283eb40d); which ones a policy maintains is its
    counter model's business.  ``tree`` stands for the interval tree ``rb_root``: an insertion
    ordered set of chains, sorted by (pgoff, insertion) when looked at.
    """

    __slots__ = ("root", "parent", "refcount", "degree", "num_children", "num_active_vmas",
                 "tree", "freed", "label", "num", "seq", "chk_vmas", "chk_children",
                 "chk_descendants", "chk_parent", "chk_root", "chk_out", "chk_mark", "kt")

    def __init__(self) -> None:
        self.root: AnonVma = self
        self.parent: AnonVma | None = self
        self.refcount = 1
        self.degree = 0
        self.num_children = 0
        self.num_active_vmas = 0
        self.tree: dict[AnonVmaChain, None] = {}
        self.freed = False
        # The name, given when first linked (see :attr:`name`): the scenario's label, or the
        # number of an automatic one, AV<num> (0: none), made a string only when asked for
        self.label: str | None = None
        self.num = 0
        self.seq = -1                     # naming order (-1: not named yet)
        # What the incremental invariant checks (anondiff.kernel.checks) counted of it, kept
        # here (like the kernel's own debug fields) so that finding it is a field load, not a
        # hash lookup: VMAs using it, its linked live children and live descendants, the parent
        # and root it counts in, and its I4/I5 violations (None: none).  One checker per Kernel.
        self.chk_vmas = 0
        self.chk_children = 0
        self.chk_descendants = 0
        self.chk_parent: AnonVma | None = None
        self.chk_root: AnonVma | None = None
        self.chk_out: list[tuple[str, str, str]] | None = None
        self.chk_mark = 0                 # the round of the checks that last queued it
        #: its number in a compiled tree's binding (anondiff.ktree), which checks it
        self.kt = 0  # pragma: no mutate (any value: the binding checks it against its own list)

    @property
    def name(self) -> str | None:
        """``AV<n>`` or the scenario's label; None before it is first linked.  (A fork names one
        anon_vma per VMA and most names are never shown: the string is made when first read.)"""
        label = self.label
        if label is None and self.num:
            label = self.label = "AV%d" % self.num
        return label

    @name.setter
    def name(self, name: str | None) -> None:
        self.label = name

    def __repr__(self) -> str:  # pragma: no mutate block (debug repr)
        return f"<anon_vma {self.name or hex(id(self))}>"


class AnonVmaChain:
    """``struct anon_vma_chain``: on ``vma.avcs`` (same_vma) and in ``anon_vma.tree``."""

    __slots__ = ("vma", "anon_vma", "seq")

    def __init__(self, vma: Vma, anon_vma: AnonVma, seq: int) -> None:
        self.vma = vma
        self.anon_vma = anon_vma
        self.seq = seq                    # interval-tree insertion order, renewed on re-key


class Page:
    """An anonymous page (folio): ``mapping`` is the anon_vma, ``index`` the linear index;
    named ``name``, or ``pg<num>`` when ``name`` is None."""

    __slots__ = ("mapping", "index", "mapcount", "label", "num")

    def __init__(self, mapping: AnonVma, index: int, name: str | None, num: int = 0) -> None:
        self.mapping = mapping
        self.index = index
        self.mapcount = 1
        self.label = name
        self.num = num

    @property
    def name(self) -> str:
        """(Made when first read, as :attr:`AnonVma.name`: a replay that draws nothing never
        reads most of them.)"""
        label = self.label
        if label is None:
            label = self.label = "pg%d" % self.num
        return label


class Vma:
    """``struct vm_area_struct``; addresses in pages (address >> PAGE_SHIFT)."""

    __slots__ = ("mm", "start", "end", "pgoff", "prot", "flags", "file", "anon_vma", "avcs",
                 "name", "chk_chain", "chk_anon_vma", "chk_out", "kt")

    def __init__(self, mm: Mm, start: int, end: int, pgoff: int, prot: frozenset[str],
                 flags: frozenset[str], file: str | ShmemFile | None, name: str) -> None:
        self.mm = mm
        self.start = start
        self.end = end
        self.pgoff = pgoff
        self.prot = prot
        self.flags = _VM_FLAGS.setdefault(flags, flags)     # vm_flags(flags), inline
        self.file = file
        self.anon_vma: AnonVma | None = None
        #: the same_vma list (``vma->anon_vma_chain``) stored **tail first**, so that pushing at
        #: the head is an append: ``avcs[-1]`` is the head; iterate head to tail with same_vma()
        self.avcs: list[AnonVmaChain] = []
        self.name = name
        # What the incremental invariant checks (anondiff.kernel.checks) last saw of it, kept
        # here as AnonVma's chk_* fields are (no object per VMA checked): its chain head first
        # (None: not checked yet, or forgotten since it left its mm; the other two then mean
        # nothing), its anon_vma and its VMA-level violations.
        self.chk_chain: tuple[AnonVma, ...] | None = None
        self.chk_anon_vma: AnonVma | None = None
        self.chk_out: tuple[tuple[str, str, str], ...] = ()
        #: its number in a compiled tree's binding (anondiff.ktree), which checks it
        self.kt = 0  # pragma: no mutate (any value: the binding checks it against its own list)

    def dup(self, mm: Mm | None = None) -> Vma:
        """vm_area_dup(): a byte copy, anon_vma and name included, with an empty chain (in
        another ``mm`` if given).  (A split and mremap's copy_vma() call it; dup_mmap() makes
        its copies inline, under the child's names.)"""
        new = Vma(mm or self.mm, self.start, self.end, self.pgoff, self.prot, self.flags,
                  self.file, self.name)
        new.anon_vma = self.anon_vma
        return new

    def same_vma(self) -> Iterator[AnonVmaChain]:
        """The chain head to tail, as list_for_each_entry(avc, &vma->anon_vma_chain, same_vma)."""
        return reversed(self.avcs)

    @property
    def shared(self) -> bool:
        return VM_SHARED in self.flags

    def __repr__(self) -> str:  # pragma: no mutate block (debug repr)
        return f"<vma {self.mm.name}/{self.name} [{self.start:#x},{self.end:#x})>"


class Mm:
    """``struct mm_struct``: VMAs in ascending address order and the page table."""

    __slots__ = ("name", "vmas", "starts", "ptes", "dirty", "dirty_ranges", "inserted")

    def __init__(self, name: str) -> None:
        self.name = name
        self.vmas: list[Vma] = []
        self.starts: list[int] = []
        self.ptes: dict[int, Page] = {}    # page number -> page
        #: Set by the incremental invariant checks once they know this mm (None before: a new
        #: mm is checked whole): VMAs inserted, removed, moved or renamed since they last
        #: looked, and page ranges whose ptes changed.  Code that changes ptes calls
        #: :meth:`touch_range`; code that renames a VMA calls :meth:`touch`.
        self.dirty: set[Vma] | None = None
        self.dirty_ranges: list[tuple[int, int]] = []
        #: VMAs :meth:`insert` has put in so far: a split piece, mremap's copy, a heap, an mmap
        #: (the engine names the pieces of a step only if it inserted any)
        self.inserted = 0

    def __iter__(self) -> Iterator[Vma]:  # pragma: no mutate block
        return iter(self.vmas)

    def touch(self, vma: Vma) -> None:
        if self.dirty is not None:
            self.dirty.add(vma)

    def touch_range(self, start: int, end: int) -> None:
        if self.dirty is not None:
            self.dirty_ranges.append((start, end))

    def insert(self, vma: Vma) -> None:
        i = bisect_left(self.starts, vma.start)
        self.vmas.insert(i, vma)
        self.starts.insert(i, vma.start)
        self.inserted += 1
        if self.dirty is not None:
            self.dirty.add(vma)

    def append(self, vma: Vma) -> None:
        """Insert a VMA known to be above every other (dup_mmap builds the child in order)."""
        self.vmas.append(vma)
        self.starts.append(vma.start)
        if self.dirty is not None:
            self.dirty.add(vma)

    def remove(self, vma: Vma) -> None:
        i = self.index(vma)
        del self.vmas[i]
        del self.starts[i]
        if self.dirty is not None:
            self.dirty.add(vma)

    def move_start(self, vma: Vma, start: int) -> None:
        """vma.vm_start changes (a split keeping the upper part, a merge): pgoff follows."""
        i = self.index(vma)
        vma.pgoff += start - vma.start
        vma.start = start
        self.starts[i] = start
        if self.dirty is not None:
            self.dirty.add(vma)

    def contains(self, vma: Vma) -> bool:
        """Is ``vma`` one of this mm's VMAs now (not unmapped, merged away or exited)?"""
        i = bisect_left(self.starts, vma.start)
        return i < len(self.vmas) and self.vmas[i] is vma

    def index(self, vma: Vma) -> int:
        i = bisect_left(self.starts, vma.start)
        assert self.vmas[i] is vma
        return i

    def prev(self, vma: Vma) -> Vma | None:
        i = self.index(vma)
        return self.vmas[i - 1] if i > 0 else None

    def next(self, vma: Vma) -> Vma | None:
        i = self.index(vma)
        return self.vmas[i + 1] if i + 1 < len(self.vmas) else None

    def neighbours(self, vma: Vma) -> tuple[Vma | None, Vma | None]:
        """(:meth:`prev`, :meth:`next`) of ``vma``, found by one bisection."""
        i = self.index(vma)
        vmas = self.vmas
        return (vmas[i - 1] if i > 0 else None), (vmas[i + 1] if i + 1 < len(vmas) else None)

    def find(self, page: int) -> Vma | None:
        """find_vma_intersection for one page."""
        i = bisect_right(self.starts, page) - 1
        if i >= 0 and self.vmas[i].end > page:
            return self.vmas[i]
        return None

    def overlapping(self, start: int, end: int) -> list[Vma]:
        vmas = self.vmas
        i = max(bisect_right(self.starts, start) - 1, 0)
        out = []
        while i < len(vmas):                # (no slice vmas[i:]: a copy of the rest of them)
            vma = vmas[i]
            if vma.start >= end:
                break
            if vma.end > start:
                out.append(vma)
            i += 1
        return out

    def by_name(self, name: str) -> Vma | None:
        for vma in self.vmas:
            if vma.name == name:
                return vma
        return None

    def pages_in(self, start: int, end: int, ordered: bool = True) -> list[int]:
        """Page numbers with a pte in [start, end), ascending (or as found: ``ordered`` false)."""
        if end - start <= len(self.ptes):
            return [p for p in range(start, end) if p in self.ptes]
        found = [p for p in self.ptes if start <= p < end]
        if ordered:
            found.sort()
        return found
