"""Scenario tests that kill mutants of the kernel model and the policies (issue 12, make
mutation): each pins one kernel rule, with the kernel reason and the commit in its docstring."""
from __future__ import annotations

import pytest

from anondiff.kernel.objects import AnonVma, AnonVmaChain, Mm, Vma, VmaOp
from anondiff.kernel.state import Kernel
from anondiff.policies import get


def _vma(mm: Mm, name: str, start: int) -> Vma:
    return Vma(mm, start, start + 1, start, frozenset({"r", "w"}), frozenset(), None, name)


def _chain(vma: Vma, *avs: AnonVma) -> None:
    """vma's same_vma list, given head first."""
    vma.avcs = [AnonVmaChain(vma, av, 0) for av in reversed(avs)]


def _warnings(src_av: bool, src_chain: int, dst_av: str, dst_chain: int, op: VmaOp) -> list[str]:
    """check_anon_vma_clone() of clone-rework-2026 on a hand-built src/dst pair: the details
    of the VM_WARN_ON_ONCE events it raises, in order.  ``dst_av``: "none", "src" or "other"."""
    policy = get("clone-rework-2026")
    k = Kernel(policy)
    mm = Mm("P")
    src, dst = _vma(mm, "src", 0x10), _vma(mm, "dst", 0x20)
    a, b, other = AnonVma(), AnonVma(), AnonVma()
    src.anon_vma = a if src_av else None
    _chain(src, *[a, b][:src_chain])
    dst.anon_vma = {"none": None, "src": src.anon_vma, "other": other}[dst_av]
    _chain(dst, *[other][:dst_chain])
    policy.check_anon_vma_clone(k, dst, src, op)
    assert all(e.kind == "VM_WARN_ON_ONCE" and e.where is dst for e in k.events)
    return [e.detail.removeprefix("check_anon_vma_clone: ") for e in k.events]


SRC_NULL = "src without anon_vma has a chain or dst has an anon_vma"
DST_CHAIN = "dst chain not empty on entry"
DST_OTHER = "dst->anon_vma neither NULL nor src's"
NOT_SET = "dst->anon_vma not set for a non-fork clone"
MERGE = "merge of an unfaulted VMA from a non-singular chain"


@pytest.mark.parametrize("case, expected", [
    # the calls the kernel makes: no warning
    ((True, 2, "none", 0, VmaOp.FORK), []),
    ((True, 1, "src", 0, VmaOp.SPLIT), []),
    ((True, 2, "src", 0, VmaOp.REMAP), []),
    ((True, 1, "src", 0, VmaOp.MERGE_UNFAULTED), []),
    ((False, 0, "none", 0, VmaOp.SPLIT), []),
    ((False, 0, "none", 0, VmaOp.FORK), []),
    # each check alone
    ((False, 1, "none", 0, VmaOp.SPLIT), [SRC_NULL]),
    ((False, 0, "other", 0, VmaOp.FORK), [SRC_NULL, DST_OTHER]),
    ((True, 1, "src", 1, VmaOp.SPLIT), [DST_CHAIN]),
    ((True, 1, "other", 0, VmaOp.FORK), [DST_OTHER]),
    ((True, 1, "none", 0, VmaOp.SPLIT), [NOT_SET]),
    ((True, 1, "none", 0, VmaOp.REMAP), [NOT_SET]),
    ((True, 2, "src", 0, VmaOp.MERGE_UNFAULTED), [MERGE]),
    ((False, 0, "none", 0, VmaOp.MERGE_UNFAULTED), [MERGE]),
    # several at once, in the kernel's order
    ((True, 2, "none", 1, VmaOp.MERGE_UNFAULTED), [DST_CHAIN, NOT_SET, MERGE]),
])
def test_clone_rework_check_anon_vma_clone_warnings(case: tuple, expected: list[str]) -> None:
    """mm/rmap.c @ 0014dde7e945 check_anon_vma_clone() (Lorenzo Stoakes, "mm: clean up
    anon_vma implementation", 2026): VM_WARN_ON_ONCE(!src->anon_vma && !list_empty(&src->
    anon_vma_chain)) and VM_WARN_ON_ONCE(!src->anon_vma && dst->anon_vma) (one warning in the
    model); VM_WARN_ON_ONCE(!list_empty(&dst->anon_vma_chain));
    VM_WARN_ON_ONCE(dst->anon_vma && dst->anon_vma != src->anon_vma); VM_WARN_ON_ONCE(operation
    != VMA_OP_FORK && src->anon_vma && !dst->anon_vma); VM_WARN_ON_ONCE(operation ==
    VMA_OP_MERGE_UNFAULTED && !list_is_singular(&src->anon_vma_chain)).  Each fires on its own
    condition and on no other, under the text a user reads in the findings."""
    assert _warnings(*case) == expected
