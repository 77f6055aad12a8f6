"""Drive a compiled tree through ctypes and read its state back into the kernel model.

One C entry point, ``kt_call``, per operation: it is given the VMAs involved (geometry, flags,
file, anon_vma, attached state: Python owns the mm) and returns a stream of records, which this
module applies to the :mod:`anondiff.kernel.objects` so that topology, checks and renderers see
the C result exactly as they see a Python policy's:

* interval-tree insertions and removals, in the order the C code made them (an anon_vma is
  named at its first insertion, as the Python model names it at its first link);
* anon_vma frees (one freed before it was ever linked is counted in
  ``Kernel.transient_anon_vmas``);
* WARN/BUG events, as kernel events naming the tree's file:line and the condition;
* each involved VMA's ``anon_vma`` and chain head to tail, and the ``refcount``, ``root``,
  ``parent`` and counters of every anon_vma the call touched;
* a fault inside the tree's code (SIGSEGV/SIGBUS caught in C), abort(), a trap, an arithmetic
  exception or a call running longer than :func:`timeout` CPU seconds, which becomes a
  KernelCrash.

A fork is one call, ``kt_fork_all`` (:meth:`Binding.fork_all`): every anon_vma_fork() of the
dup_mmap() in order, each anon_vma's state read back once at the end.

Pointers are the identities (the slab never reuses an object within a replay), as small
numbers in creation order (glue.c: kt_vma_id(), kt_av_id()): each Python object keeps its own
(``Vma.kt``, ``AnonVma.kt``) and the binding its objects in lists indexed by them
(:mod:`.readback`: vma_number(), av_get(), ...).
"""
from __future__ import annotations

import ctypes
import os
import signal
from array import array
from bisect import bisect_left
from pathlib import Path

from .. import _compiled
from ..kernel.counters import NoCounters
from ..kernel.objects import (VM_ACCOUNT, VM_DONTCOPY, VM_SHARED, VM_WIPEONFORK, AnonVma,
                              AnonVmaChain, Mm, Vma, VmaOp)
from ..kernel.rmap import ref
from ..kernel.state import Enomem, Kernel, KernelCrash
from . import readback

# enum kt_op and enum kt_record of shim/glue.c
PREPARE, FORK, CLONE, UNLINK, REKEY, DUP_ANON_VMA, MERGEABLE, ATTACH, FIND, ANON_VMA_MERGE = \
    range(1, 11)
# (4, R_ALLOC, is no longer written: Library.kt_av_allocated() answers)
R_NEWVMA, R_INS, R_DEL = range(1, 4)
R_FREE, R_EVENT, R_VMA, R_AV, R_CRASH, R_RESULT, R_PAIR, R_NOMEM = range(5, 13)
OP_NAMES = {PREPARE: "__anon_vma_prepare", FORK: "anon_vma_fork", CLONE: "anon_vma_clone",
            UNLINK: "unlink_anon_vmas", REKEY: "anon_vma_interval_tree_post_update_vma",
            DUP_ANON_VMA: "anon_vma_clone (dup_anon_vma)", MERGEABLE: "is_mergeable_anon_vma",
            ATTACH: "anon_vma_chain_link", FIND: "find_mergeable_anon_vma",
            ANON_VMA_MERGE: "anon_vma_merge"}
#: is the readback mypyc's (it reads a fork's sections as bytes) or Python (as C decodes them)?
_READBACK_COMPILED = _compiled.compiled(readback)
#: kt_fork_fast()'s head: the sections' offsets and lengths from F_SECT (glue.c: KT_F_SECT),
#: for the sections of enum kt_sect
F_SECT = 10
#: kt_fork_fast()'s count of pairs (glue.c: KT_F_PAIRS)
F_PAIRS = 2
S_INS_AV, S_INS_VMA, S_PAIRS, S_CHAIN, S_AVS, S_NEW, S_RUNS = range(7)
S_COUNT = 7
F_HEAD = F_SECT + 2 * S_COUNT
VMA_OPS = {VmaOp.SPLIT: 0, VmaOp.MERGE_UNFAULTED: 1, VmaOp.REMAP: 2, VmaOp.FORK: 3}
#: the shim's vm_flags bits (ktshim.h: VMA_*_BIT)
FLAG_BITS = readback.FLAG_BITS
SLOT_FREED = 2


class _FlagBits(dict):  # type: ignore[type-arg]
    """(prot, flags) -> the shim's vm_flags word, computed once per pair of sets."""

    def __missing__(self, key: tuple[frozenset[str], frozenset[str]]) -> int:
        bits = self[key] = sum(FLAG_BITS.get(f, 0) for f in key[0] | key[1])
        return bits


class _FileIds(dict):  # type: ignore[type-arg]
    """vm_file -> the small integer C sees (None: 0)."""

    def __missing__(self, key: object) -> int:
        fid = self[key] = len(self) + 1
        return fid


#: The CPU seconds one call into the compiled tree may take: then it is stopped, reported as a
#: crash (an endless loop in the tree's code must not hang anondiff).
DEFAULT_TIMEOUT = 30.0


def timeout() -> float:
    """``ANONDIFF_KTREE_TIMEOUT`` (CPU seconds per call into C), else DEFAULT_TIMEOUT."""
    try:
        value = float(os.environ.get("ANONDIFF_KTREE_TIMEOUT", ""))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


class Library:
    """The loaded ``.so`` of one tree (its static state is the C kernel's)."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        lib.kt_reset.restype = ctypes.c_int
        lib.kt_call.restype = ctypes.c_long
        lib.kt_call.argtypes = (ctypes.c_void_p,)
        lib.kt_records.restype = ctypes.c_void_p
        lib.kt_event_field.restype = ctypes.c_char_p
        lib.kt_event_field.argtypes = (ctypes.c_long, ctypes.c_long)
        lib.kt_tree.restype = ctypes.c_long
        lib.kt_tree.argtypes = (ctypes.c_long, ctypes.c_void_p, ctypes.c_long)
        lib.kt_fork_all.restype = ctypes.c_long
        lib.kt_fork_all.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        lib.kt_fork_fast.restype = ctypes.c_void_p
        lib.kt_fork_fast_bytes.restype = ctypes.c_void_p
        lib.kt_fork_deltas.restype = ctypes.c_long
        lib.kt_fork_deltas.argtypes = (ctypes.c_long, ctypes.c_void_p)
        lib.kt_set_timeout.argtypes = (ctypes.c_double,)
        lib.kt_set_timeout(timeout())
        lib.kt_set_fail_nth.argtypes = (ctypes.c_long,)
        lib.kt_fail_allocs.restype = ctypes.c_long
        lib.kt_addr_av.restype = ctypes.c_long
        lib.kt_addr_av.argtypes = (ctypes.c_long,)
        lib.kt_av_allocated.restype = ctypes.c_long
        lib.kt_av_allocated.argtypes = (ctypes.c_long,)
        self.path = str(path)
        self.lib = lib
        self.kt_call = lib.kt_call
        self.kt_fork_all = lib.kt_fork_all
        self.kt_fork_fast = lib.kt_fork_fast
        self.kt_fork_fast_bytes = lib.kt_fork_fast_bytes
        self.kt_records = lib.kt_records
        #: was this anon_vma (its number) allocated by the tree's code in this replay?
        self.kt_av_allocated = lib.kt_av_allocated


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


class _Elf64Sym(ctypes.Structure):
    _fields_ = [("st_name", ctypes.c_uint32), ("st_info", ctypes.c_ubyte),
                ("st_other", ctypes.c_ubyte), ("st_shndx", ctypes.c_uint16),
                ("st_value", ctypes.c_uint64), ("st_size", ctypes.c_uint64)]


#: dladdr1()'s RTLD_DL_SYMENT: the ELF symbol (with its size) of an address
_RTLD_DL_SYMENT = 1
#: the functions an anon_vma or anon_vma_chain allocation of the anon_vma code is made in
ALLOCATORS = ("__anon_vma_prepare", "anon_vma_clone", "anon_vma_fork")


def function_at(address: int) -> str | None:
    """The name of the exported function of the compiled tree whose code holds ``address``
    (dladdr1() with the ELF symbol's size: an address in a static function the tree did not
    inline is None, not its exported neighbour's)."""
    try:
        dladdr1 = ctypes.CDLL(None).dladdr1
    except AttributeError:      # pragma: no cover - a libc without dladdr1()
        return None
    dladdr1.argtypes = (ctypes.c_void_p, ctypes.POINTER(_DlInfo),
                        ctypes.POINTER(ctypes.c_void_p), ctypes.c_int)
    info, sym = _DlInfo(), ctypes.c_void_p()
    if not dladdr1(address, ctypes.byref(info), ctypes.byref(sym), _RTLD_DL_SYMENT) \
            or not info.dli_sname or not sym.value or not info.dli_saddr:
        return None
    size = ctypes.cast(sym, ctypes.POINTER(_Elf64Sym)).contents.st_size
    if not info.dli_saddr <= address < info.dli_saddr + size:
        return None
    return info.dli_sname.decode()


class Binding:
    """The C kernel behind one replay: the map between Python objects and C pointers."""

    #: read a fork's records split by kind when the glue could split them (False: record by
    #: record, as every other call; the two must agree, tests/test_ktree_equivalence.py)
    bulk_fork = True
    #: take the children's chains from the insertions when the glue says they are theirs
    own_chains = True

    def __init__(self, library: Library, k: Kernel | None, counters: NoCounters) -> None:
        self.library = library
        #: None until the first hook that knows the Kernel (is_mergeable_anon_vma() does not)
        self.k = k
        self.split = "num_children" in counters.fields
        if library.lib.kt_reset():
            raise MemoryError("kt_reset: cannot map the slab arenas")
        #: the VMAs and anon_vmas by their numbers (index 0, NULL, holds None; an anon_vma
        #: numbered 0 or below, a pointer to no slab object, is in av_odd)
        self.vma_at: list[Vma | None] = [None]
        self.av_at: list[AnonVma | None] = [None]
        self.av_odd: dict[int, AnonVma] = {}
        #: the chains by their number in the records (glue.c: kt_known), in order
        self.avc_at: list[AnonVmaChain] = []
        self.mm_id: dict[Mm, int] = {}
        self.file_id: dict[object, int] = _FileIds({None: 0})
        self.flag_bits: dict[tuple[frozenset[str], frozenset[str]], int] = _FlagBits()
        #: a Python AnonVma waiting for the C one the next call allocates (starting layout)
        self.bind_next: AnonVma | None = None
        self.orphan_events: list[tuple[str, str, str]] = []
        #: the failed allocation of an armed call (KT_R_NOMEM: cache, number, caller)
        self.nomem: tuple[int, int, int] | None = None

    def vma_number(self, vma: Vma) -> int:
        """The number C knows ``vma`` by, 0 for a VMA it has not seen."""
        return readback.vma_number(vma, self.vma_at)

    def av_number(self, av: AnonVma) -> int:
        """The number C knows ``av`` by, 0 for an anon_vma it has not seen."""
        return readback.av_number(av, self.av_at, self.av_odd)

    def av_get(self, n: int) -> AnonVma | None:
        """The anon_vma C numbers ``n``, if Python has seen it."""
        return readback.av_get(n, self.av_at, self.av_odd)

    def adopt(self, k: Kernel) -> None:
        """The replay's Kernel, first known now: events seen before it go to it."""
        self.k = k
        for ev in self.orphan_events:
            k.event(*ev)
        self.orphan_events.clear()

    def serves(self, vma: Vma) -> bool:
        """Is this binding the current replay's (the one ``vma`` belongs to)?"""
        if self.k is None:
            return vma.mm in self.mm_id or not self.mm_id
        return self.k.mms.get(vma.mm.name) is vma.mm

    # -- calls ---------------------------------------------------------------------------
    def call(self, op: int, vmas: list[Vma], arg: int = 0, window: int = -1) -> int:
        words = [op, len(vmas), arg, 0, window]
        for vma in vmas:
            words += self._describe(vma)
        buf = array("l", words)
        k = self.k
        if k is not None and k.fail_nth:
            return self._armed(k, op, lambda: self.library.kt_call(buf.buffer_info()[0]), vmas)
        n = self.library.kt_call(buf.buffer_info()[0])
        return self._apply((ctypes.c_long * n).from_address(self.library.kt_records())[:],
                           vmas, op)

    def _armed(self, k: Kernel, op: int, run, vmas: list[Vma]) -> int:  # type: ignore[no-untyped-def]
        """One call with the step's allocation counter (``enomem: N``) handed to the C slab:
        the allocations it made are added to ``k.allocs``; when the N-th is among them, the
        tree's own error path ran, its state is read back, then Enomem is raised as a Python
        policy raises it from the same hook."""
        lib = self.library.lib
        before = k.allocs
        lib.kt_set_fail_nth(k.fail_nth - before if k.failed is None else -1)
        self.nomem = None
        try:
            n = run()
            rc = self._apply((ctypes.c_long * n).from_address(self.library.kt_records())[:],
                             vmas, op)
        finally:
            k.allocs = before + lib.kt_fail_allocs()
            lib.kt_set_fail_nth(0)
        if self.nomem is not None:
            what, nth, address = self.nomem
            self.nomem = None
            func = function_at(address)
            if func not in ALLOCATORS:
                func = OP_NAMES[op] if op != DUP_ANON_VMA else "anon_vma_clone"
            k.failed = Enomem("anon_vma" if what == 0 else "anon_vma_chain", func, before + nth)
            raise k.failed
        return rc

    def fork(self, vma: Vma, pvma: Vma) -> None:
        """anon_vma_fork(vma, pvma) from dup_mmap(): vma is pvma's vm_area_dup() in the child,
        not yet attached (the hot path of a fork: one descriptor built, the other derived)."""
        parent = self._describe(pvma)
        mm_id = self.mm_id.get(vma.mm)
        if mm_id is None:
            mm_id = self.mm_id[vma.mm] = len(self.mm_id)
        av = vma.anon_vma
        child = [0, mm_id, *parent[2:7], 0 if av is None else self.av_number(av), 0]
        buf = array("l", [FORK, 2, 0, 0, -1, *child, *parent])
        k = self.k
        if k is not None and k.fail_nth:
            self._armed(k, FORK, lambda: self.library.kt_call(buf.buffer_info()[0]), [vma, pvma])
            return
        n = self.library.kt_call(buf.buffer_info()[0])
        self._apply((ctypes.c_long * n).from_address(self.library.kt_records())[:],
                    [vma, pvma], FORK)

    def dup_fork(self, parent: Mm, child: Mm, rename: dict[str, str] | None
                 ) -> readback.DupFork:
        """dup_mmap()'s copies of ``parent``'s VMAs into ``child`` and the parents' words for
        :meth:`fork_all` (:func:`.readback.dup_fork`)."""
        return readback.dup_fork(parent, child, rename, self.vma_at, self.flag_bits,
                                 self.file_id, self.av_at, self.av_odd)

    def fork_all(self, children: list[Vma], parents: list[Vma],
                 columns: readback.Columns) -> None:
        """anon_vma_fork(child, parent) for each pair of one dup_mmap() (every parent in the
        parent mm's list, each child its copy in the child mm), in order, in one C call
        (:meth:`fork` pair by pair, but each anon_vma's state read once, at the end); a crash
        is raised with its pair's index as ``crash.pair``.  The parents go as a word each, a
        byte a field (:func:`.readback.fork_columns`), and the records come back split by kind
        (:meth:`_apply_fork`) unless something out of the ordinary happened. ``columns``:
        those words (:meth:`dup_fork`)."""
        if not parents:
            return
        words, wide, base_num, base_start, base_av = columns
        head = array("l", [len(parents), self._mm_id(parents[0].mm), self._mm_id(children[0].mm),
                           int(self.own_chains), base_num, base_start, base_av,
                           int(self.bulk_fork)])
        # ("L", unsigned long, 64 bits here as in C: each word converted digit by digit;
        # "Q" goes through _PyLong_AsByteArray(), several times the cost)
        packed = array("L", words)
        wides = array("l", wide or [0])
        lib = self.library
        count = lib.kt_fork_all(head.buffer_info()[0], packed.buffer_info()[0],
                                wides.buffer_info()[0])
        fast = lib.kt_fork_fast()
        kind = ctypes.c_long.from_address(fast).value if self.bulk_fork else 0
        if kind == 1:
            self._apply_fork(fast, children, parents)
            return
        if kind == 2:
            # the first pairs in sections (their records not kept), the rest in records
            # (glue.c: kt_inc_partial()), with every anon_vma's state at the end
            done = ctypes.c_long.from_address(fast + F_PAIRS * ctypes.sizeof(ctypes.c_long))
            self._apply_fork(fast, children[:done.value], parents[:done.value])
        self._apply((ctypes.c_long * count).from_address(lib.kt_records())[:], [], FORK,
                    list(zip(children, parents)))

    def _apply_fork(self, fast: int, children: list[Vma], parents: list[Vma]) -> None:
        """The records of a :meth:`fork_all` split by kind (glue.c: kt_fork_split()), applied
        kind by kind with the result :meth:`_apply` gives them one by one
        (:func:`.readback.apply_fork`)."""
        k = self.k
        assert k is not None
        head = (ctypes.c_long * F_HEAD).from_address(fast)[:]
        n_ins, n_pairs, n_chain, n_avs, n_new, own, max_vma, max_av, first = head[1:F_SECT]
        sects = [self._section(i, head[F_SECT + 2 * i], head[F_SECT + 2 * i + 1])
                 for i in range(S_COUNT)]
        # (room for the numbers the sections name: the VMAs all, the anon_vmas inserted into)
        readback.room(self.vma_at, max_vma)
        readback.room(self.av_at, max_av)
        readback.apply_fork(k, first, n_ins, sects[S_RUNS] if own else None, sects[S_INS_AV],
                            sects[S_INS_VMA], sects[S_PAIRS], sects[S_CHAIN], n_avs,
                            sects[S_AVS], n_new, sects[S_NEW], children, parents, self.vma_at,
                            self.av_at, self.av_odd, self.avc_at,
                            None if self.bind_next is None else self._av, self.split)

    def _section(self, i: int, offset: int, length: int) -> readback.Values:
        """Section ``i`` of the last fork (``length`` bytes at ``offset``): its bytes for the
        compiled readback, its differences decoded by C for the Python one."""
        lib = self.library
        if _READBACK_COMPILED:
            return readback.Varints(ctypes.string_at(lib.kt_fork_fast_bytes() + offset, length))
        out = (ctypes.c_long * max(length, 1))()
        return readback.Deltas(out[:lib.lib.kt_fork_deltas(i, out)])

    def _mm_id(self, mm: Mm) -> int:
        mm_id = self.mm_id.get(mm)
        if mm_id is None:
            mm_id = self.mm_id[mm] = len(self.mm_id)
        return mm_id

    def _describe(self, vma: Vma) -> list[int]:
        mm = vma.mm
        mm_id = self.mm_id.get(mm)
        if mm_id is None:
            mm_id = self.mm_id[mm] = len(self.mm_id)
        flags = self.flag_bits[vma.prot, vma.flags]
        file = self.file_id[vma.file]
        av = vma.anon_vma
        i = bisect_left(mm.starts, vma.start)
        attached = int(i < len(mm.vmas) and mm.vmas[i] is vma)
        return [readback.vma_number(vma, self.vma_at), mm_id, vma.start, vma.end, vma.pgoff,
                flags, file, 0 if av is None else self.av_number(av), attached]

    # -- readback ------------------------------------------------------------------------
    def _av(self, ptr: int) -> AnonVma:
        """The anon_vma C numbers ``ptr``: a new one (or the one waiting to be bound) at the
        first sight of it."""
        av = readback.av_get(ptr, self.av_at, self.av_odd)
        if av is None:
            av = self.bind_next
            if av is not None and self.library.kt_av_allocated(ptr):
                self.bind_next = None
            else:
                av = AnonVma()
            readback.bind_av(ptr, av, self.av_at, self.av_odd)
        return av

    def _set_av(self, recs: list[int], i: int) -> AnonVma:
        av = self._av(recs[i + 1])
        av.root, av.parent = self._av(recs[i + 3]), self._av(recs[i + 4])
        av.refcount = recs[i + 2]
        if self.split:
            av.num_children, av.num_active_vmas = recs[i + 5], recs[i + 6]
        else:
            av.degree = recs[i + 5]
        return av

    def _apply(self, recs: list[int], vmas: list[Vma], op: int,
               pairs: list[tuple[Vma, Vma]] | None = None) -> int:
        """Apply the records of one call (``pairs``: of one :meth:`fork_all`, whose anon_vma
        states are applied once each, the last one, before a free of it and at the end)."""
        k = self.k
        assert k is not None or op in (MERGEABLE, FIND)
        avc_at = self.avc_at
        # what changed, for the incremental invariant checks (Kernel.dirty_vmas/dirty_avs)
        dirty_vmas = k.dirty_vmas if k is not None else set()
        dirty_avs = k.dirty_avs if k is not None else set()
        i, n = 0, len(recs)
        rc = 0
        pending: dict[int, int] | None = None if pairs is None else {}
        at = -1
        vma_at, new_av = self.vma_at, self._av
        add_vma, add_av = dirty_vmas.add, dirty_avs.add
        while i < n:
            t = recs[i]
            if t == R_INS:
                avc_id, av_p = recs[i + 1], recs[i + 2]
                av = new_av(av_p)
                if avc_id < len(avc_at):
                    avc = avc_at[avc_id]
                else:                   # a new chain: the next number
                    assert avc_id == len(avc_at), (avc_id, len(avc_at))
                    avc = AnonVmaChain(vma_at[recs[i + 3]], av, 0)
                    avc_at.append(avc)
                k._avc_seq += 1
                avc.seq = k._avc_seq
                av.tree[avc] = None
                add_vma(avc.vma)
                if av.seq == -1:            # not named yet
                    k.name(av)
                add_av(av)
                i += 4
            elif t == R_VMA:
                vma = vma_at[recs[i + 1]]
                av_p, cnt = recs[i + 2], recs[i + 3]
                vma.anon_vma = new_av(av_p) if av_p else None
                ids = recs[i + 4:i + 4 + 2 * cnt:2]                # head to tail
                for j, avc_id in enumerate(ids):
                    if avc_id >= len(avc_at):   # a chain never inserted: the next number
                        assert avc_id == len(avc_at), (avc_id, len(avc_at))
                        avc_at.append(AnonVmaChain(vma, new_av(recs[i + 5 + 2 * j]), 0))
                vma.avcs = [avc_at[avc_id] for avc_id in reversed(ids)]  # tail first
                add_vma(vma)
                if vma.anon_vma is not None:
                    add_av(vma.anon_vma)
                i += 4 + 2 * cnt
            elif t == R_AV:
                if pending is not None:
                    pending[recs[i + 1]] = i
                else:
                    add_av(self._set_av(recs, i))
                i += 7
            elif t == R_PAIR:
                at, ptr = recs[i + 1], recs[i + 2]
                vmas = pairs[at]  # type: ignore[index,assignment]
                readback.bind_vma(ptr, vmas[0], vma_at)
                i += 3
            elif t == R_NEWVMA:     # (of a fork_all: the current pair's parent)
                vma = vmas[recs[i + 1]] if pairs is None else pairs[at][1]  # type: ignore[index]
                readback.bind_vma(recs[i + 2], vma, vma_at)
                i += 3
            elif t == R_DEL:
                avc, av = avc_at[recs[i + 1]], new_av(recs[i + 2])
                av.tree.pop(avc, None)
                add_vma(avc.vma)
                add_av(av)
                i += 3
            elif t == R_FREE:
                ptr = recs[i + 1]
                if pending and ptr in pending:
                    dirty_avs.add(self._set_av(recs, pending.pop(ptr)))
                av = self.av_get(ptr)
                if av is None or av.name is None:
                    k.transient_anon_vmas += 1
                    if av is not None:
                        av.freed = True
                else:
                    k.free_readback(av)
                i += 2
            elif t == R_EVENT:
                kind, file, line, cond = (self.library.lib.kt_event_field(recs[i + 1], f).decode()
                                          for f in range(4))
                if k is None:
                    self.orphan_events.append((kind, f"{file}:{line}", cond))
                else:
                    k.event(kind, f"{file}:{line}", cond)
                i += 2
            elif t == R_RESULT:
                rc = recs[i + 1]
                i += 2
            elif t == R_NOMEM:
                self.nomem = (recs[i + 1], recs[i + 2], recs[i + 3])
                i += 4
            elif t == R_CRASH:
                if pending:
                    for j in pending.values():
                        dirty_avs.add(self._set_av(recs, j))
                crash = KernelCrash(self._crash_text(op, recs[i + 1], recs[i + 2], recs[i + 3],
                                                     recs[i + 4]))
                crash.pair = at  # type: ignore[attr-defined]
                if pairs is None and vmas and vmas[0] is not None:
                    crash.where = ref(vmas[0])      # (a fork's: the pair's child, policy.py)
                raise crash
            else:  # pragma: no cover - the glue writes only the records above
                raise AssertionError(f"unknown record {t} from the compiled tree")
        if pending:
            for j in pending.values():
                dirty_avs.add(self._set_av(recs, j))
        return rc

    def _crash_text(self, op: int, sig: int, addr: int, slot_state: int, code: int) -> str:
        where = OP_NAMES.get(op, "?")
        if sig == signal.SIGABRT:
            return f"{where}: abort() (SIGABRT)"
        if sig == signal.SIGVTALRM:
            return (f"{where}: still running after {code / 1000:g} s of CPU time, stopped (an "
                    "endless loop? ANONDIFF_KTREE_TIMEOUT sets the limit)")
        if sig == signal.SIGILL:
            return f"{where}: invalid instruction at {addr:#x} (a trap, SIGILL)"
        if sig == signal.SIGFPE:
            return f"{where}: arithmetic exception at {addr:#x} (a division by zero?, SIGFPE)"
        signame = "SIGBUS" if sig == signal.SIGBUS else "SIGSEGV"
        if slot_state == SLOT_FREED:
            av = self.av_get(self.library.lib.kt_addr_av(addr))
            what = f"use after free of {av.name}" if av is not None and av.name else "use after free"
            return f"{where}: {what} (the tree's code touched freed slab object at {addr:#x}, {signame})"
        if code == 0x80:
            return (f"{where}: general protection fault (a poisoned or non-canonical pointer, "
                    f"{signame})")
        if 0 <= addr < 4096:
            return f"{where}: NULL pointer dereference at {addr:#x} ({signame})"
        return f"{where}: bad memory access at {addr:#x} ({signame})"

    def tree_order(self, av: AnonVma) -> list[AnonVmaChain]:
        """The anon_vma's interval tree in order, walked in C (for tests against the log)."""
        ptr = self.av_number(av)
        if not ptr:
            raise KeyError(av)
        n = self.library.lib.kt_tree(ptr, None, 0)
        buf = (ctypes.c_long * max(n, 1))()
        self.library.lib.kt_tree(ptr, buf, n)
        return [self.avc_at[p] for p in buf[:n]]
