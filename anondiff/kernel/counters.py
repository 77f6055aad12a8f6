"""The anon_vma counters of each era, behind one small interface.

The kernel code of each era bumps its own fields at the same points; what those points mean is
the same in every era, so the model calls these methods and the era decides what they touch:

* ``vma_attached(av)``     a VMA's ``anon_vma`` now points at av (prepare, clone, fork)
* ``vma_detached(av)``     unlink_anon_vmas of a VMA whose ``anon_vma`` is av
* ``child_linked(av)``     av gained a child (for a new root: its self-parent link)
* ``child_unlinked(av)``   a child's tree emptied (for a root: its own tree emptied)
* ``warnings_at_free(av)`` the VM_WARN_ON checks in unlink_anon_vmas phase 2
"""
from __future__ import annotations

from .objects import AnonVma

try:
    from mypy_extensions import mypyc_attr
except ImportError:                  # no mypy (so nothing compiled): a no-op
    from .._compiled import mypyc_attr  # type: ignore[assignment]


@mypyc_attr(allow_interpreted_subclasses=True)   # a policy may bring its own
class NoCounters:
    """Before v3.19: no ``anon_vma->parent`` and no counters."""

    fields: tuple[str, ...] = ()
    has_parent = False

    def vma_attached(self, av: AnonVma) -> None:
        pass

    def vma_detached(self, av: AnonVma) -> None:
        pass

    def child_linked(self, av: AnonVma) -> None:
        pass

    def child_unlinked(self, av: AnonVma) -> None:
        pass

    def warnings_at_free(self, av: AnonVma) -> list[str]:
        return []

    def values(self, av: AnonVma) -> tuple[tuple[str, int], ...]:
        return ()

    def expected(self, vmas: int, children: int, is_root_linked: bool) -> tuple[tuple[str, int], ...]:
        return ()


@mypyc_attr(allow_interpreted_subclasses=True)   # a policy may bring its own
class DegreeCounters(NoCounters):
    """commit 7a3ef208e662 ("mm: prevent endless growth of anon_vma hierarchy") (v3.19) until
    commit 2555283eb40d (v6.0-rc4): ``degree`` = VMAs using it + live children + self link."""

    fields: tuple[str, ...] = ("degree",)
    has_parent = True

    def vma_attached(self, av: AnonVma) -> None:
        av.degree += 1

    def vma_detached(self, av: AnonVma) -> None:
        av.degree -= 1

    def child_linked(self, av: AnonVma) -> None:
        av.degree += 1

    def child_unlinked(self, av: AnonVma) -> None:
        av.degree -= 1

    def warnings_at_free(self, av: AnonVma) -> list[str]:
        return [f"anon_vma->degree ({av.degree})"] if av.degree else []

    def values(self, av: AnonVma) -> tuple[tuple[str, int], ...]:
        return (("degree", av.degree),)

    def expected(self, vmas: int, children: int, is_root_linked: bool) -> tuple[tuple[str, int], ...]:
        return (("degree", vmas + children + int(is_root_linked)),)


@mypyc_attr(allow_interpreted_subclasses=True)   # a policy may bring its own
class SplitCounters(NoCounters):
    """commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity leading to double-reuse")
    (v6.0-rc4) onward: ``num_children`` (live children + self link) and ``num_active_vmas``."""

    fields: tuple[str, ...] = ("num_children", "num_active_vmas")
    has_parent = True

    def vma_attached(self, av: AnonVma) -> None:
        av.num_active_vmas += 1

    def vma_detached(self, av: AnonVma) -> None:
        av.num_active_vmas -= 1

    def child_linked(self, av: AnonVma) -> None:
        av.num_children += 1

    def child_unlinked(self, av: AnonVma) -> None:
        av.num_children -= 1

    def warnings_at_free(self, av: AnonVma) -> list[str]:
        out = []
        if av.num_children:
            out.append(f"anon_vma->num_children ({av.num_children})")
        if av.num_active_vmas:
            out.append(f"anon_vma->num_active_vmas ({av.num_active_vmas})")
        return out

    def values(self, av: AnonVma) -> tuple[tuple[str, int], ...]:
        return (("num_children", av.num_children), ("num_active_vmas", av.num_active_vmas))

    def expected(self, vmas: int, children: int, is_root_linked: bool) -> tuple[tuple[str, int], ...]:
        return (("num_children", children + int(is_root_linked)), ("num_active_vmas", vmas))
