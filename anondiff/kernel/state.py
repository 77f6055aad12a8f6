"""The simulated machine: every mm, every anon_vma ever named, the pages, and the kernel's own
warnings as they happen."""
from __future__ import annotations

from typing import NamedTuple
from typing import TYPE_CHECKING

from .objects import AnonVma, Mm, Page, Vma

if TYPE_CHECKING:
    from ..policies.base import Policy


class KernelCrash(Exception):
    """The real code of this version would oops here (e.g. a NULL pointer dereference).

    ``where`` names the VMA being worked on, when the caller knows it."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.where = ""     # (set here: a compiled exception class's defaults are not applied)


class Enomem(Exception):
    """An allocation failed (the step's ``enomem: N``): the function that made it has undone its
    own work as its era wrote the error path, and every caller on the way up returns -ENOMEM
    after its own cleanup.  ``what`` is "anon_vma" or "anon_vma_chain", ``func`` the kernel
    function that allocated, ``n`` the allocation's number in the step."""

    def __init__(self, what: str, func: str, n: int) -> None:
        super().__init__(f"allocation {n} of the step ({what} in {func}()) fails")
        self.what = what
        self.func = func
        self.n = n


class Event(NamedTuple):
    kind: str       # "VM_WARN_ON", "VM_BUG_ON", "UAF", "CRASH", "NOTE"
    #: "PROC/VMA", an anon_vma name, or the Vma itself when the event happens before the VMA
    #: has its final name (a piece being split off): named when the step ends
    where: str | Vma
    detail: str


class Kernel:
    # (every policy is a Policy, the compiled trees' too: typed so, the compiled model calls
    # its hooks natively; the contract is anondiff.kernel.ops.KernelOps)
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.counters = policy.counters
        self.mms: dict[str, Mm] = {}
        #: every anon_vma that was ever linked, in naming (= allocation) order
        self.anon_vmas: list[AnonVma] = []
        self.live: set[AnonVma] = set()
        #: the scenario's labels of the form AV<n>: numbers automatic names skip
        self._taken_numbers: set[int] = set()
        self._next_name = 1
        self._avc_seq = 0
        self._pages = 0
        self.events: list[Event] = []
        #: anon_vmas allocated and freed without ever being linked (2026 fork preallocation)
        self.transient_anon_vmas = 0
        #: What changed since the incremental invariant checks last looked
        #: (:class:`~anondiff.kernel.checks.IncrementalChecks` empties them): VMAs whose chain,
        #: range or anon_vma changed, anon_vmas named or freed.  The mm's own operations
        #: (:meth:`Mm.insert` ...) and page-table changes are noted on the :class:`Mm`.
        self.dirty_vmas: set[Vma] = set()
        self.dirty_avs: set[AnonVma] = set()
        self.named_any = False
        self.freed_any = False
        #: Fault injection (the step's ``enomem: N``, like /proc/self/fail-nth): the N-th
        #: anon_vma or anon_vma_chain allocation of the step fails (0: none does); ``allocs``
        #: counts the step's allocations so far (only while armed), ``failed`` is the failure.
        self.fail_nth = 0
        self.allocs = 0
        self.failed: Enomem | None = None

    # -- anon_vmas ---------------------------------------------------------------------------
    def anon_vma_alloc(self) -> AnonVma:
        """anon_vma_alloc(): refcount 1, root and parent itself; named when first linked."""
        av = AnonVma()
        if not self.counters.has_parent:
            av.parent = None
        return av

    # -- fault injection: the one place every allocation of the model is counted --------------
    def arm_enomem(self, nth: int) -> None:
        """Make the ``nth`` allocation from now on fail (``nth`` 0: disarm)."""
        self.fail_nth = nth
        self.allocs = 0
        self.failed = None

    def _alloc_fails(self, what: str, func: str) -> bool:
        self.allocs += 1
        if self.allocs != self.fail_nth:
            return False
        self.failed = Enomem(what, func, self.allocs)
        return True

    def anon_vma_alloc_fails(self, func: str) -> bool:
        """anon_vma_alloc() (kmem_cache_alloc(anon_vma_cachep, GFP_KERNEL)) in ``func``: does
        it return NULL?  Call it where the kernel allocates, before the object is used."""
        return bool(self.fail_nth) and self._alloc_fails("anon_vma", func)

    def anon_vma_chain_alloc_fails(self, func: str) -> bool:
        """anon_vma_chain_alloc() in ``func``: does it return NULL?  (anon_vma_clone()'s
        GFP_NOWAIT try and GFP_KERNEL retry before 2026 count as one allocation: only the
        retry's failure is an error.)"""
        return bool(self.fail_nth) and self._alloc_fails("anon_vma_chain", func)

    def enomem(self) -> Enomem:
        """The failure just injected, to raise once the failing function has cleaned up."""
        assert self.failed is not None
        return self.failed

    def reserve(self, label: str) -> None:
        """A label the scenario gives (``anon_vma: LABEL``): when it is of the form ``AV<n>``,
        automatic names skip its number (a label of another form cannot clash with them)."""
        digits = label[2:]
        if label.startswith("AV") and digits.isdigit():
            n = int(digits)
            if str(n) == digits:            # (AV07 is a label like any other)
                self._taken_numbers.add(n)

    def name(self, av: AnonVma, label: str | None = None) -> None:
        """Name ``av`` (``label``, or the next automatic number) in naming order."""
        if label is None:
            n = self._next_name
            taken = self._taken_numbers
            if taken:
                while n in taken:
                    n += 1
            av.num = n                      # AV<n>: the string is made when first read
            self._next_name = n + 1
        else:
            self.reserve(label)
            av.label = label
        anon_vmas = self.anon_vmas
        av.seq = len(anon_vmas)
        anon_vmas.append(av)
        self.live.add(av)
        self.dirty_avs.add(av)
        self.named_any = True

    def name_many(self, avs: list[AnonVma]) -> None:
        """:meth:`name` of each of ``avs``, in order, an automatic number each (a compiled
        tree's fork names the anon_vmas it made in bulk: one call, the lists and sets
        extended once)."""
        if not avs:
            return
        n = self._next_name
        taken = self._taken_numbers
        # (no number above the highest label's is taken: past it, nothing to skip)
        top = max(taken) if taken else 0
        anon_vmas = self.anon_vmas
        seq = len(anon_vmas)
        for av in avs:
            if n <= top:
                while n in taken:
                    n += 1
            av.num = n
            n += 1
            av.seq = seq
            seq += 1
        self._next_name = n
        anon_vmas.extend(avs)
        self.live.update(avs)
        self.dirty_avs.update(avs)
        self.named_any = True

    def avc_seq(self) -> int:
        self._avc_seq += 1
        return self._avc_seq

    def free(self, av: AnonVma) -> None:
        """anon_vma_free().  Its VM_BUG_ON(atomic_read(&anon_vma->refcount)) is not modelled: it
        cannot fire here, put_anon_vma() (:mod:`anondiff.kernel.rmap`) being the only caller,
        at refcount 0 (a refcount left over is spec I5's finding; a compiled tree's own
        anon_vma_free() makes the check in C)."""
        self.free_readback(av)

    def free_readback(self, av: AnonVma) -> None:
        """av is freed (for a compiled kernel tree: its own anon_vma_free() made the checks)."""
        av.freed = True
        self.live.discard(av)
        self.dirty_avs.add(av)
        self.freed_any = True
        for avc in av.tree:
            self.dirty_vmas.add(avc.vma)

    # -- pages -------------------------------------------------------------------------------
    def new_page(self, mapping: AnonVma, index: int) -> Page:
        page = Page(mapping, index, None, self._pages)      # named pg<n> when first read
        self._pages += 1
        return page

    # -- reporting ---------------------------------------------------------------------------
    def event(self, kind: str, where: str | Vma, detail: str) -> None:
        self.events.append(Event(kind, where, detail))
