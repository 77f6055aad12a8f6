"""``always-new``: mainline from v2.6.34 to v3.19-rc3.

Since commit 5beb49305251 ("mm: change anon_vma linking to fix multi-process server
scalability issue") (v2.6.34) every fork gives each child VMA a new anon_vma, child of the root,
and a chain one longer than its parent's: ``[new] + parent's chain``.  Nothing bounds the
depth: a server that keeps forking grows it without end, which commit 7a3ef208e662 ("mm: prevent
endless growth of anon_vma hierarchy") fixed in v3.19 (tagged for stable 2.6.34+, so stable
trees switched at their backport).  There is no ``anon_vma->parent`` and there are no counters.
VM_WIPEONFORK does not exist yet (v4.14): such a VMA is copied normally, with a note.
"""
from __future__ import annotations

from ..kernel.fork import ABSENT, PARENT, DupMmap
from .base import ChainCopyPolicy, NoCounters
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class AlwaysNew(ChainCopyPolicy):
    name = "always-new"
    aliases = ("v3.10", "v3.13")
    versions = "v2.6.34 .. v3.19-rc3; stable trees before the 7a3ef208e662 backport"
    cite = 'commit 5beb49305251 ("mm: change anon_vma linking to fix multi-process server scalability issue")'
    rule = "always allocate a new anon_vma (root = parent's root); chain = [new] + parent's chain"
    counters = NoCounters()
    dup_mmap = DupMmap(vm_prev=PARENT, wipeonfork=ABSENT)
    #: MREMAP_DONTUNMAP came in v5.7 (commit e346b3813067)
    mremap_dontunmap = None
