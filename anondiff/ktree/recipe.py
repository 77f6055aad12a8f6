"""What is cut from a tree, from which files, and what the cut says about the tree.

Data only: the names of the anon_vma code, the files each may live in (in the order they are
tried: code moves between eras, e.g. get_anon_vma() from include/linux/rmap.h to mm/internal.h,
find_mergeable_anon_vma() from mm/mmap.c to mm/vma.c), and the feature tests that turn what was
found into ``-D`` flags for the shim and glue.  No version number is ever tested: a tree is
recognised by what its code contains.
"""
from __future__ import annotations

import re
from typing import Callable, NamedTuple

from ..kernel.fork import ABSENT, EMPTY, NONE, PARENT, PREPARE, DupMmap

RMAP_H = "include/linux/rmap.h"
INTERNAL_H = "mm/internal.h"
MM_H = "include/linux/mm.h"
RMAP_C = "mm/rmap.c"
INTERVAL_C = "mm/interval_tree.c"
VMA_C = "mm/vma.c"
MMAP_C = "mm/mmap.c"
FORK_C = "kernel/fork.c"
#: where dup_mmap() and vm_area_dup() live (7.x moved dup_mmap() to mm/mmap.c)
FORK_FILES = (FORK_C, MMAP_C)


class Item(NamedTuple):
    kind: str                   # "struct", "enum", "function", "macro"
    name: str
    files: tuple[str, ...]
    required: bool = True
    arg: str = ""               # a macro call's first argument


def _f(name: str, files: tuple[str, ...], required: bool = True) -> Item:
    return Item("function", name, files, required)


HEADERS = (RMAP_H, INTERNAL_H)
MERGE_FILES = (VMA_C, MMAP_C)

#: The unit's sections, in order (prototypes of every function go before the first).
TYPES: tuple[Item, ...] = (
    Item("struct", "anon_vma", (RMAP_H,)),
    Item("struct", "anon_vma_chain", (RMAP_H,)),
    Item("enum", "vma_operation", (INTERNAL_H, RMAP_H, MM_H), required=False),
)
INLINES: tuple[Item, ...] = (
    _f("get_anon_vma", HEADERS),
    _f("put_anon_vma", HEADERS),
    _f("anon_vma_lock_write", HEADERS),
    _f("anon_vma_unlock_write", HEADERS),
    _f("anon_vma_merge", HEADERS, required=False),
    _f("vma_pages", (MM_H,)),
)
INTERVAL: tuple[Item, ...] = (
    _f("vma_start_pgoff", (INTERVAL_C, MM_H)),
    _f("vma_last_pgoff", (INTERVAL_C, MM_H)),
    _f("avc_start_pgoff", (INTERVAL_C,)),
    _f("avc_last_pgoff", (INTERVAL_C,)),
    Item("macro", "INTERVAL_TREE_DEFINE", (INTERVAL_C,), arg="struct anon_vma_chain"),
    _f("anon_vma_interval_tree_insert", (INTERVAL_C,)),
    _f("anon_vma_interval_tree_remove", (INTERVAL_C,)),
)
RMAP: tuple[Item, ...] = (
    _f("anon_vma_alloc", (RMAP_C,)),
    _f("anon_vma_free", (RMAP_C,)),
    _f("anon_vma_chain_alloc", (RMAP_C,)),
    _f("anon_vma_chain_free", (RMAP_C,)),
    _f("anon_vma_chain_link", (RMAP_C,), required=False),
    _f("anon_vma_chain_assign", (RMAP_C,), required=False),
    _f("__anon_vma_prepare", (RMAP_C,)),
    _f("lock_anon_vma_root", (RMAP_C,), required=False),
    _f("unlock_anon_vma_root", (RMAP_C,), required=False),
    _f("check_anon_vma_clone", (RMAP_C,), required=False),
    _f("maybe_reuse_anon_vma", (RMAP_C,), required=False),
    _f("cleanup_partial_anon_vmas", (RMAP_C,), required=False),
    _f("anon_vma_clone", (RMAP_C,)),
    _f("anon_vma_fork", (RMAP_C,)),
    _f("unlink_anon_vmas", (RMAP_C,)),
    _f("anon_vma_ctor", (RMAP_C,)),
    _f("anon_vma_init", (RMAP_C,)),
    _f("__put_anon_vma", (RMAP_C,)),
)
MERGE: tuple[Item, ...] = (
    _f("vma_is_fork_child", MERGE_FILES, required=False),
    _f("is_mergeable_anon_vma", MERGE_FILES),
    _f("anon_vma_compatible", MERGE_FILES),
    _f("reusable_anon_vma", MERGE_FILES),
    _f("find_mergeable_anon_vma", MERGE_FILES),
    _f("anon_vma_interval_tree_pre_update_vma", MERGE_FILES),
    _f("anon_vma_interval_tree_post_update_vma", MERGE_FILES),
)
SECTIONS: tuple[tuple[Item, ...], ...] = (TYPES, INLINES, INTERVAL, RMAP, MERGE)
#: Read for feature tests, not compiled (the model does the mm side in Python).
PROBES: tuple[Item, ...] = (
    _f("mprotect_fixup", ("mm/mprotect.c",), required=False),
)

#: Copied from the tree into the build's include/linux/ (the rbtree the interval tree uses).
HEADER_COPIES: tuple[str, ...] = (
    "include/linux/rbtree.h", "include/linux/rbtree_types.h",
    "include/linux/rbtree_augmented.h", "include/linux/interval_tree_generic.h",
)
#: Header copies a tree may lack: a 5.10 tree has no rbtree_types.h (its rbtree.h defines
#: struct rb_node and rb_root_cached itself; the types were split out later).
OPTIONAL_HEADERS: frozenset[str] = frozenset({"include/linux/rbtree_types.h"})
#: Compiled as a second unit.
EXTRA_UNITS: tuple[str, ...] = ("lib/rbtree.c",)

#: The cut's static variables (the two slab caches anon_vma_init() creates).
VARIABLES: tuple[str, ...] = (
    "static struct kmem_cache *anon_vma_cachep;",
    "static struct kmem_cache *anon_vma_chain_cachep;",
)

#: The interval-tree entry points the glue wraps (to log insertions and removals).
WRAPPED: tuple[str, ...] = ("anon_vma_interval_tree_insert", "anon_vma_interval_tree_remove")


class Features(NamedTuple):
    """What the cut code says about its era."""

    split_counters: bool        # num_children/num_active_vmas (else degree)
    chain_link: bool            # anon_vma_chain_link() (else _assign + an explicit insert)
    clone_has_op: bool          # anon_vma_clone(dst, src, enum vma_operation)
    mergeable_vmg: bool         # is_mergeable_anon_vma(vmg, merge_next)
    #: find_mergeable_anon_vma() looks neighbours up in a maple tree (v6.1+: MA_STATE, then the
    #: VMA iterator); False: it reads vma->vm_next and vma->vm_prev of the VMA list (v3.19 ..
    #: v6.0), which the glue keeps up to date from its copy of the list
    maple: bool
    #: mprotect_fixup() takes VM_ACCOUNT away from an unfaulted anonymous VMA made read-only
    #: (commit 9b9143298585 ("mm/mprotect: allow unfaulted VMAs to be unaccounted on
    #: mprotect()"), v6.7)
    mprotect_unaccounts: bool
    #: the static inline anon_vma_merge() of include/linux/rmap.h (gone in 7.x: vma_complete()
    #: calls unlink_anon_vmas() itself)
    anon_vma_merge: bool = False

    def defines(self) -> list[str]:
        flags = {"KT_SPLIT_COUNTERS": self.split_counters, "KT_CHAIN_LINK": self.chain_link,
                 "KT_CLONE_HAS_OP": self.clone_has_op, "KT_MERGEABLE_VMG": self.mergeable_vmg,
                 "KT_ANON_VMA_MERGE": self.anon_vma_merge, "KT_VMA_LIST": not self.maple}
        return [f"-D{k}" for k, v in flags.items() if v]


def _params(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1:signature.rindex(")")]
    return [p.strip() for p in inner.split(",") if p.strip() not in ("", "void")]


class TreeUnsupported(Exception):
    """The tree's code is of an era the shim does not serve (message: why)."""


def features(cuts: dict[str, "object"]) -> Features:
    """From the cuts (name -> cutter.Cut), the era's features; TreeUnsupported if the tree is
    too old or too new for this shim."""
    from .cutter import mask
    av = cuts["anon_vma"]
    fields = mask(av.text)  # type: ignore[attr-defined]
    split = re.search(r"\bnum_children\s*;", fields) is not None
    degree = re.search(r"\bdegree\s*;", fields) is not None
    if not split and not degree:
        raise TreeUnsupported("struct anon_vma has neither degree nor num_children: a tree "
                              "before v3.19 (commit 7a3ef208e662), too old for this shim")
    fma = mask(cuts["find_mergeable_anon_vma"].text)  # type: ignore[attr-defined]
    maple = "MA_STATE" in fma or "VMA_ITERATOR" in fma
    if not maple and not re.search(r"->\s*vm_(?:next|prev)\b", fma):
        raise TreeUnsupported("find_mergeable_anon_vma() reads neither a maple tree nor "
                              "vm_next/vm_prev: a neighbour lookup this shim does not know")
    if not maple:
        for name in ("anon_vma_clone", "anon_vma_fork"):
            if re.search(r"->\s*vm_(?:prev|next)\b", mask(cuts[name].text)):  # type: ignore[attr-defined]
                raise TreeUnsupported(
                    f"{name}() reads the VMA list (vm_prev/vm_next), as commit 4e4a9eb92133 "
                    "(\"mm/rmap.c: reuse mergeable anon_vma as parent when fork\") did in "
                    "v5.5: the neighbours at fork are not served by this shim")
    clone = _params(cuts["anon_vma_clone"].signature)  # type: ignore[attr-defined]
    if len(clone) not in (2, 3) or (len(clone) == 3 and "vma_operation" not in clone[2]):
        raise TreeUnsupported(f"anon_vma_clone({', '.join(clone)}): a signature newer than "
                              "this shim knows (too new)")
    mergeable = _params(cuts["is_mergeable_anon_vma"].signature)  # type: ignore[attr-defined]
    vmg = any("vma_merge_struct" in p for p in mergeable)
    if not vmg and len(mergeable) != 3:
        raise TreeUnsupported(f"is_mergeable_anon_vma({', '.join(mergeable)}): a signature "
                              "this shim does not know (too new)")
    if "anon_vma_chain_link" not in cuts and "anon_vma_chain_assign" not in cuts:
        raise TreeUnsupported("neither anon_vma_chain_link() nor anon_vma_chain_assign() in "
                              f"{RMAP_C}: too new for this shim")
    fixup = cuts.get("mprotect_fixup")
    unaccounts = fixup is not None and re.search(
        r"&=\s*~VM_ACCOUNT\b|vma_flags_clear\([^;]*VMA_ACCOUNT_BIT", fixup.text) is not None  # type: ignore[attr-defined]
    return Features(split_counters=split, chain_link="anon_vma_chain_link" in cuts,
                    clone_has_op=len(clone) == 3, mergeable_vmg=vmg, maple=maple,
                    mprotect_unaccounts=unaccounts, anon_vma_merge="anon_vma_merge" in cuts)


def files() -> tuple[str, ...]:
    """Every file the cut and the build read (extractions keep these as files)."""
    found = {f for section in SECTIONS + (PROBES,) for item in section for f in item.files}
    return tuple(sorted(found | set(HEADER_COPIES) | set(EXTRA_UNITS) | {"Makefile"}))


class MergeRules(NamedTuple):
    """The merge rules of the tree's mm (read, not compiled: the Python mm does the merges) for
    the flags a merge treats specially (:class:`anondiff.policies.base.Policy`'s attributes of
    the same names)."""

    #: VMA_STICKY_FLAGS (or VM_STICKY) in include/linux/mm.h: "softdirty", "guard"
    sticky_flags: frozenset[str]
    #: "removed": can_merge_remove_vma() (v6.12+, only the removal of a VMA with
    #: vm_ops->close is refused); "neighbour": is_mergeable_vma() refuses any VMA with one
    close_forbids: str
    #: vmg->state = VMA_MERGE_ERROR_NOMEM (v6.12+): a merge whose anon_vma_clone() fails is
    #: -ENOMEM for mprotect()/madvise()
    merge_nomem_fails: bool
    #: remap_move() in mm/mremap.c (v6.17+): an MREMAP_FIXED move of the same size may span
    #: several VMAs, each moved in turn, the gaps kept (``mremap_moves_several``)
    mremap_moves_several: bool = False
    #: sys_mremap() looks the VMA up before mremap_to() checks the destination (v5.16 ..
    #: v6.15: a vma_lookup() or find_vma() in the syscall before its call of mremap_to(), and
    #: no check_mremap_params() with vrm_overlaps()) (``mremap_finds_vma_first``)
    mremap_finds_vma_first: bool = False
    #: which VMAs MREMAP_DONTUNMAP may move: None (no such flag, before v5.7), "anon" (vma_to_resize()
    #: refuses all but private anonymous VMAs, v5.7 .. v5.12), "any" (``mremap_dontunmap``)
    mremap_dontunmap: str | None = "any"
    #: a merge of prev, middle and next into an unfaulted prev imports next's anon_vma when
    #: next has one (the 6.x vma_merge() rewrite: ``dup_anon_vma(prev, next->anon_vma ? next :
    #: vma, ...)``); False: middle's first (__vma_adjust()'s ``remove_next == 2 &&
    #: !next->anon_vma``, up to 6.1) (``merge_both_exports_next``)
    merge_both_exports_next: bool = True


#: the sticky bits' names, as the two spellings of include/linux/mm.h write them
_STICKY_BITS = {"softdirty": r"VMA?_SOFTDIRTY(?:_BIT)?\b", "guard": r"VMA?_MAYBE_GUARD(?:_BIT)?\b"}
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(VMA_STICKY_FLAGS|VM_STICKY)\b((?:[^\n]*\\\n)*[^\n]*)",
                     re.M)


def merge_rules(read: Callable[[str], "str | None"]) -> MergeRules:
    """From the tree's own files (``read(relpath)``): the definitions of VMA_STICKY_FLAGS /
    VM_STICKY (every ``#define`` of them: the CONFIG_MEM_SOFT_DIRTY branch names soft-dirty,
    the other one only the guard marker), can_merge_remove_vma() and VMA_MERGE_ERROR_NOMEM in
    mm/vma.c, else mm/mmap.c; remap_move() and the order of sys_mremap()'s checks in mm/mremap.c."""
    mm_h = read(MM_H) or ""
    sticky: set[str] = set()
    for m in _DEFINE.finditer(mm_h):
        for name, pattern in _STICKY_BITS.items():
            if re.search(pattern, m.group(2)):
                sticky.add(name)
    merge_src = "\n".join(read(f) or "" for f in (VMA_C, MMAP_C))
    close = "removed" if re.search(r"\bcan_merge_remove_vma\s*\(", merge_src) else "neighbour"
    nomem = re.search(r"=\s*VMA_MERGE_ERROR_NOMEM\b", merge_src) is not None
    mremap_c = read("mm/mremap.c") or ""
    several = re.search(r"\bremap_move\s*\(", mremap_c) is not None
    syscall = re.search(r"SYSCALL_DEFINE5\(\s*mremap\b(.*?)\bmremap_to\s*\(", mremap_c, re.S)
    vma_first = syscall is not None and not re.search(r"\bvrm_overlaps\s*\(", mremap_c) \
        and re.search(r"\b(?:vma_lookup|find_vma)\s*\(", syscall.group(1)) is not None
    if "MREMAP_DONTUNMAP" not in mremap_c:
        dontunmap = None
    elif re.search(r"MREMAP_DONTUNMAP\s*&&\s*\(\s*!\s*vma_is_anonymous\s*\(", mremap_c):
        dontunmap = "anon"
    else:
        dontunmap = "any"
    middle_first = re.search(r"remove_next\s*==\s*2\s*&&\s*!\s*next->anon_vma", merge_src)
    return MergeRules(frozenset(sticky), close, nomem, several, vma_first, dontunmap,
                      middle_first is None)


def _definition(text: str, name: str) -> str | None:
    """The definition of function ``name`` in a kernel source file, by the kernel's layout (the
    header at the start of a line, the closing brace alone in column 0): a rule is read from
    it, so the whole file is not masked as the cutter does for code that is compiled."""
    m = re.search(r"^[A-Za-z_][^;{}()\n]*\b%s\s*\([^;{}]*?\)\s*\{" % re.escape(name), text, re.M)
    if m is None:
        return None
    end = text.find("\n}", m.end())
    return text[m.start():end + 2] if end >= 0 else None


def fork_rules(read: Callable[[str], "str | None"], maple: bool) -> DupMmap:
    """dup_mmap() of the tree (kernel/fork.c, else mm/mmap.c where 7.x moved it), read, not
    compiled (the Python mm runs the loop): what ``tmp->vm_prev``/``vm_next`` hold when
    anon_vma_fork() runs, and what a VM_WIPEONFORK VMA gets (spec section 1.11).

    ``vm_prev``: NONE when vm_area_dup() clears the list pointers (Li Xinhai's "mm: set vm_next
    and vm_prev to NULL in vm_area_dup()", v5.6) or dup_mmap() does before anon_vma_fork(), or
    when the VMAs have none (the maple tree, v6.1+); else PARENT (the byte copy keeps the
    parent's neighbours until after the fork).  ``wipeonfork``: ABSENT without VM_WIPEONFORK
    (before v4.14), PREPARE when its branch calls anon_vma_prepare() (v4.14 .. v5.5), else
    EMPTY ("mm: don't prepare anon_vma if vma has VM_WIPEONFORK", v5.6).  TreeUnsupported
    when a tree of the VMA list has no dup_mmap() to read."""
    from .cutter import mask
    dup = vm_area_dup = None
    for rel in FORK_FILES:
        text = read(rel)
        if text is None:
            continue
        dup = dup or _definition(text, "dup_mmap")
        vm_area_dup = vm_area_dup or _definition(text, "vm_area_dup")
    if dup is None:
        if maple:
            return DupMmap(vm_prev=NONE, wipeonfork=EMPTY)
        raise TreeUnsupported(f"dup_mmap() not found in {' or '.join(FORK_FILES)}: what "
                              "anon_vma_fork() sees of vm_prev, and what a VM_WIPEONFORK VMA "
                              "gets, cannot be read from this tree")
    body = mask(dup)
    fork_at = body.find("anon_vma_fork(")
    cleared = re.compile(r"\bvm_prev\s*=\s*(?:NULL|0)\b")
    if maple or (vm_area_dup is not None and cleared.search(mask(vm_area_dup))) or \
            any(m.start() < fork_at for m in cleared.finditer(body)):
        vm_prev = NONE
    else:
        vm_prev = PARENT
    wipe = re.search(r"WIPEONFORK", body)
    if wipe is None:
        wipeonfork = ABSENT
    else:
        branch = body[wipe.start():fork_at if fork_at > wipe.start() else len(body)]
        wipeonfork = PREPARE if re.search(r"\banon_vma_prepare\s*\(", branch) else EMPTY
    return DupMmap(vm_prev=vm_prev, wipeonfork=wipeonfork)
