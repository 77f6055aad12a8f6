"""Era variants: the same anon_vma decisions as a main policy, with the surroundings of other
releases.  Not run by default; selected by version (``anondiff run -p v5.10``).

* ``v3.19`` — ``degree`` before VM_WIPEONFORK existed: v3.19 .. v4.13 (4.4.y, 4.9.y).  The flag
  came with commit d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK") (v4.14-rc1); before it
  dup_mmap() copies a VMA marked so like any other (anon_vma_fork(), copy_page_range()), with
  a NOTE, as ``always-new`` does.
* ``v5.10`` — ``degree`` as in v5.6 .. v6.0-rc3 (the 5.10 and 5.15 releases, before their
  stable trees took commit 2555283eb40d): Li Xinhai's "mm: set vm_next and vm_prev to NULL in
  vm_area_dup()" and "mm: don't prepare anon_vma if vma has VM_WIPEONFORK" (v5.6-rc, spec
  section 6), and the ``src->anon_vma`` test of v5.5.
* ``v5.10-stable`` — ``v5.10`` after the 5.10.y stable tree took commit 2555283eb40d: the
  ``split-counters`` reuse rule (num_children/num_active_vmas), the old is_mergeable_anon_vma(),
  the 5.10 surroundings: vm_area_dup() clearing vm_next/vm_prev, VM_WIPEONFORK children left
  unfaulted, MREMAP_DONTUNMAP of private anonymous VMAs only, sys_mremap() checking the
  destination in mremap_to() before looking the old VMA up.  Debian's 5.10.223 tree compiled
  (anondiff.ktree) equals it.
* ``v6.1`` — ``split-counters`` with is_mergeable_anon_vma() as before the 2025 fix ("mm/vma:
  fix incorrectly disallowed anonymous VMA merges"), the rule of the 6.6 code the kernel-runs
  known answers were made with, and VM_ACCOUNT never cleared by mprotect() (before v6.7).
* ``v6.12`` — ``v6.1`` with mprotect() clearing VM_ACCOUNT of an unfaulted anonymous VMA made
  non-writable (commit 9b9143298585, v6.7) and the merge rule still the old one: v6.7 .. the 2025
  merge fix.  Debian's 6.12.117 tree compiled (anondiff.ktree) equals it.
"""
from __future__ import annotations

from typing import ClassVar

from ..kernel.fork import ABSENT, EMPTY, NONE, PARENT, DupMmap
from ..kernel.objects import AnonVma, Vma
from .base import Policy
from .degree import Degree
from .split_counters import SplitCountersPolicy
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class DegreeV319(Degree):
    """``degree`` in v3.19 .. v4.13: the reuse rule of commit 7a3ef208e662 ("mm: prevent endless
    growth of anon_vma hierarchy") with a dup_mmap() that knows no VM_WIPEONFORK.  The flag and
    its branch in dup_mmap() (an empty copy, anon_vma_prepare() at fork) came with commit
    d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK") in v4.14-rc1; a scenario's wipeonfork
    VMA is copied normally here, with a NOTE, as in ``always-new``."""
    name = "v3.19"
    aliases = ("v4.4", "v4.9")
    versions = "v3.19 .. v4.13 (4.4.y; 4.9.y until the 2555283eb40d backport)"
    rule = "degree; no VM_WIPEONFORK yet (v4.14): such a VMA is copied like any other"
    dup_mmap = DupMmap(vm_prev=PARENT, wipeonfork=ABSENT)


@mypyc_attr(allow_interpreted_subclasses=True)
class DegreeV510(Degree):
    name = "v5.10"
    aliases = ("v5.6", "v5.15")
    versions = "v5.6 .. v6.0-rc3 (5.10.y/5.15.y until the 2555283eb40d backport)"
    rule = "degree; vm_prev cleared by vm_area_dup, VM_WIPEONFORK children stay unfaulted"
    dup_mmap = DupMmap(vm_prev=NONE, wipeonfork=EMPTY)
    src_guard = True
    #: v5.7 .. v5.12 (v5.15 itself allows every VMA)
    mremap_dontunmap = "anon"


@mypyc_attr(allow_interpreted_subclasses=True)
class SplitCountersV61(SplitCountersPolicy):
    name = "v6.1"
    aliases: ClassVar[tuple[str, ...]] = ("v6.0", "v6.6")
    versions = "v6.0-rc4 .. the 2025 merge fix (6.1.y, 6.6.y)"
    rule = "split-counters; merges with the old is_mergeable_anon_vma() rule"
    #: 6.1 and 6.6 predate commit 9b9143298585 (v6.7): mprotect never clears VM_ACCOUNT
    mprotect_unaccounts_unfaulted = False
    #: before v6.12 vma_merge() returns NULL when its anon_vma_clone() fails
    merge_nomem_fails = False
    #: before v6.12 is_mergeable_vma() refuses a neighbour with vm_ops->close
    close_forbids = "neighbour"
    #: remap_move() is 6.17+
    mremap_moves_several = False
    #: 6.1's and 6.12's sys_mremap(): vma_lookup() (-EFAULT) before mremap_to()'s checks of
    #: the destination (put there by commit 550a7d60bd5e ("mm, hugepages: add mremap() support
    #: for hugepage backed vma"), v5.16)
    mremap_finds_vma_first = True
    #: 6.1's __vma_adjust() (mm/mmap.c@6.1.176) imports middle's anon_vma before next's
    #: (``remove_next == 2 && !next->anon_vma``); unobservable under the old merge rule (an
    #: unfaulted prev merges only with an unfaulted middle), the tree's all the same
    merge_both_exports_next = False

    def is_mergeable_anon_vma(self, src: Vma | None, tgt: Vma, copied_from: Vma | None = None,
                              anon_vma: AnonVma | None = None) -> bool:
        return Policy.is_mergeable_anon_vma(self, src, tgt, copied_from, anon_vma)


@mypyc_attr(allow_interpreted_subclasses=True)
class SplitCountersV510(SplitCountersV61):
    """5.10.y once it took commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity leading
    to double-reuse") (Cc: stable, 4.9 up; Debian's 5.10.223 has it: struct anon_vma has
    num_children and num_active_vmas).  anon_vma_clone(), anon_vma_fork() and
    unlink_anon_vmas() are v6.1's; find_mergeable_anon_vma() walks vm_next/vm_prev instead of
    the maple tree, with the same answer (anon_vma_compatible() wants adjacent VMAs).  What
    differs from ``v6.1`` is the mm around it:

    - mremap(MREMAP_DONTUNMAP) moves private anonymous VMAs only (vma_to_resize(), v5.7 ..
      v5.12; commit a4609387859f ("mm: extend MREMAP_DONTUNMAP to non-anonymous mappings"),
      v5.13, lifted it).
    - sys_mremap() leaves the old VMA's lookup to mremap_to() (vma_to_resize()), after the
      destination checks: the lookup moved before them in v5.16 (commit 550a7d60bd5e ("mm,
      hugepages: add mremap() support for hugepage backed vma")).
    """
    name = "v5.10-stable"
    aliases = ()
    versions = "5.10.y after its backport of 2555283eb40d (Debian bullseye's 5.10.223)"
    rule = ("split-counters; the old is_mergeable_anon_vma() rule; the 5.10 mm "
            "(vm_area_dup() clears vm_prev, MREMAP_DONTUNMAP of anonymous VMAs only)")
    mremap_dontunmap = "anon"
    mremap_finds_vma_first = False


@mypyc_attr(allow_interpreted_subclasses=True)
class SplitCountersV612(SplitCountersV61):
    name = "v6.12"
    aliases = ()
    versions = "v6.7 .. the 2025 merge fix (6.12.y)"
    rule = "split-counters; the old is_mergeable_anon_vma() rule; mprotect clears VM_ACCOUNT of unfaulted VMAs"
    mprotect_unaccounts_unfaulted = True
    #: the 6.12 code (vma_merge_struct): a failed merge clone is -ENOMEM for mprotect/madvise
    merge_nomem_fails = True
    #: and can_merge_remove_vma(): vm_ops->close only stops a merge that would remove the VMA
    close_forbids = "removed"
    #: vma_merge_existing_range(): dup_anon_vma(prev, next->anon_vma ? next : middle)
    merge_both_exports_next = True


ERA_VARIANTS: tuple[type[Policy], ...] = (DegreeV319, DegreeV510, SplitCountersV510,
                                          SplitCountersV61, SplitCountersV612)
