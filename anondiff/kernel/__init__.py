"""The kernel model: anon_vma, anon_vma_chain, VMA, mm and anonymous pages, and the rmap
primitives every policy shares.

How faithful each piece is (in the spirit of the kernel's tools/testing/vma):

* duplicated from the kernel's logic: anon_vma_chain_link, __anon_vma_prepare,
  find_mergeable_anon_vma / reusable_anon_vma / anon_vma_compatible, unlink_anon_vmas,
  put_anon_vma, __split_vma's clone and interval-tree re-key, dup_mmap's loop;
* customised: page faults (a write fault = do_anonymous_page, wp_page_copy or the
  folio_move_anon_rmap reuse path, "exclusive" approximated as mapcount == 1);
* not modelled: locks and races, ENOMEM paths, KSM/migration references, swap, THP.
"""
