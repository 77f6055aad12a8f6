"""Scenario files: YAML -> a validated, frozen :class:`Scenario`.

The immutable records below (NamedTuples: cheap to define, which keeps ``anondiff`` quick to
start) are the contract between the loader and the engine.  Every node keeps the
line it came from so that the engine, too, can point at the step that went wrong.

Addresses are bytes (page aligned, ``PAGE_SIZE`` = 4096); sizes are in pages.
"""
from __future__ import annotations

from typing import Final, NamedTuple, Union

from .errors import ScenarioError

PAGE_SIZE: Final = 4096
PAGE_SHIFT: Final = 12
#: 47-bit user address space (x86-64 TASK_SIZE without 5-level paging).
TASK_SIZE: Final = 1 << 47

PROT_BITS = ("read", "write", "exec")
#: "growsdown" is VM_GROWSDOWN (a stack: a fault below it grows it); "noreserve" is
#: VM_NORESERVE (MAP_NORESERVE: a writable private mapping that never gets VM_ACCOUNT); "io"
#: (VM_IO) and "dontexpand" (VM_DONTEXPAND) are VM_SPECIAL flags: such a VMA never merges, and a
#: VM_DONTEXPAND one cannot grow with mremap.
#: "softdirty" (VM_SOFTDIRTY) and "guard" (VM_MAYBE_GUARD: madvise(MADV_GUARD_INSTALL) put guard
#: markers in its page tables) never stop a merge; in the 2026 tree they are VMA_STICKY_FLAGS and
#: the merged VMA keeps them.  "close" states that the VMA has vm_ops->close (a driver's or a
#: special mapping's), which forbids merges into it before v6.12 and its removal by a merge
#: from v6.12.
#: "account" is VM_ACCOUNT, which the engine also infers (a private VMA that is writable, or
#: faulted in a layout, or made writable by mprotect); state it for a private VMA mapped
#: writable and made read-only before the scenario starts.
VMA_FLAGS = ("dontcopy", "wipeonfork", "account", "growsdown", "noreserve", "io", "dontexpand",
             "softdirty", "guard", "close")
ADVICE = ("dontfork", "dofork", "wipeonfork", "keeponfork")
#: mremap() flags: MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP
MREMAP_FLAGS = ("maymove", "fixed", "dontunmap")


class VmaSpec(NamedTuple):
    """One VMA of the starting layout."""

    name: str
    start: int                       # bytes, page aligned
    end: int                         # bytes, exclusive, page aligned, > start
    prot: frozenset[str]             # subset of PROT_BITS
    flags: frozenset[str]            # subset of VMA_FLAGS
    shared: bool = False             # MAP_SHARED: never has an anon_vma
    file: str | None = None          # file-backed (private unless shared); None = anonymous
    faulted: bool = False            # anon_vma prepared (and pages written)
    pages: tuple[int, ...] | None = None   # page offsets written when faulted; None = every page
    anon_vma: str | None = None      # sharing label, e.g. "AV0"; only with faulted
    line: int = 0
    #: file offset in bytes (page aligned), only with ``file``; None: the offset equal to the
    #: address (the model's convention before real offsets could be stated)
    offset: int | None = None


class ProcessSpec(NamedTuple):
    name: str
    vmas: tuple[VmaSpec, ...]        # in ascending address order, non-overlapping
    line: int = 0


class Target(NamedTuple):
    """A range of one process, resolved at replay time.

    With ``vma`` set, ``first``/``end`` are page offsets inside that VMA (``end`` None = to the
    VMA's end).  Without it they are absolute byte addresses and ``end`` is required.
    """

    process: str
    vma: str | None = None
    first: int = 0
    end: int | None = None


class Fork(NamedTuple):
    process: str
    child: str
    #: child VMA names: by parent VMA name, or a list applied to the copied VMAs in address order
    names: tuple[tuple[str, str], ...] | tuple[str, ...] | None = None
    line: int = 0


class Exit(NamedTuple):
    process: str
    line: int = 0


class Fault(NamedTuple):
    """A write to pages of one VMA (``kind`` "fault" or "write": the same kernel path).

    ``pages``: "all", "none" (only __anon_vma_prepare) or page offsets in the VMA.
    Either ``vma`` is named, or ``addr`` gives the one page written.
    """

    process: str
    vma: str | None
    pages: Union[str, tuple[int, ...]] = "all"
    addr: int | None = None
    kind: str = "fault"
    line: int = 0


class Mprotect(NamedTuple):
    target: Target
    prot: frozenset[str]
    names: tuple[str, ...] = ()      # names for the new pieces, in address order
    line: int = 0


class Munmap(NamedTuple):
    target: Target
    names: tuple[str, ...] = ()
    line: int = 0


class Mmap(NamedTuple):
    process: str
    vma: VmaSpec                     # faulted is always False here
    line: int = 0
    #: False: insert without trying vma_merge() (insert_vm_struct(), or a userspace harness)
    merge: bool = True


class Madvise(NamedTuple):
    target: Target
    advice: str                      # one of ADVICE
    names: tuple[str, ...] = ()
    line: int = 0


class Split(NamedTuple):
    """__split_vma() itself, as the kernel's own paths call it (mremap, mlock, ...) and as the
    userspace harnesses of the anon_vma code drive it: ``at`` pages into the VMA; the new VMA
    is the part below ``at`` when ``new_below``, else the part above, and is named ``new``."""

    process: str
    vma: str
    at: int
    new: str
    new_below: bool = False
    line: int = 0


class SetFlags(NamedTuple):
    """Change vm_flags of one whole VMA without the merge attempt mprotect/madvise make."""

    process: str
    vma: str
    set: frozenset[str] = frozenset()     # of PROT_BITS + VMA_FLAGS
    clear: frozenset[str] = frozenset()
    line: int = 0


class Merge(NamedTuple):
    """vma_merge() of two adjacent VMAs: ``hi`` takes ``lo``'s flags, then merges into ``lo``
    (prev) if the anon_vma rule allows; neither VMA is split."""

    process: str
    lo: str
    hi: str
    line: int = 0


class Mremap(NamedTuple):
    """mremap(): ``target`` is the old range (inside one VMA), ``new_pages`` the new length
    (None: the old one); ``to`` is MREMAP_FIXED's address, or where get_unmapped_area() puts the
    mapping when it has to move (the model does not choose one).  ``name`` names a VMA the move
    creates at the destination (default: the source's name when the whole source moved, else
    the usual piece names); ``names`` names pieces the step splits off."""

    target: Target
    new_pages: int | None = None
    flags: frozenset[str] = frozenset()      # of MREMAP_FLAGS
    to: int | None = None                    # bytes
    name: str | None = None
    names: tuple[str, ...] = ()
    line: int = 0


class Spawn(NamedTuple):
    """A new, empty process (execve() of a new program, or a process the scenario did not
    start with): it has no VMA until mmap (or brk) steps give it some.  A name is free for
    ``spawn`` and ``fork`` again once its process exited."""

    process: str
    line: int = 0


class Brk(NamedTuple):
    """brk() moving the break of ``process`` from ``start`` to ``end`` (bytes, page aligned):
    the VMA ending at ``start`` grows when it can, else a new VMA named ``name`` maps the range;
    a lower ``end`` unmaps."""

    process: str
    start: int
    end: int
    name: str | None = None
    line: int = 0


class FailNth(NamedTuple):
    """A step with ``enomem: N``: the N-th anon_vma or anon_vma_chain allocation the step makes
    fails, as /proc/self/fail-nth makes the N-th fault-injection point of the next syscall fail
    (Documentation/fault-injection/fault-injection.rst).  Only that allocation fails; the error
    paths of each era run and the step ends with -ENOMEM (a fault: VM_FAULT_OOM).  An N beyond
    the allocations the step made fails nothing, which a note says (as fail-nth users iterate N
    until the syscall succeeds)."""

    step: Step
    nth: int
    line: int = 0


class Snapshot(NamedTuple):
    label: str
    line: int = 0


Step = Union[Fork, Exit, Fault, Mprotect, Munmap, Mmap, Madvise, Split, SetFlags, Merge, Snapshot,
             Mremap, Brk, Spawn, "FailNth"]

EXPECT_KINDS = ("same_anon_vma", "different_anon_vma", "anon_vma", "chain", "findings",
                "no_findings", "freed")


class Expectation(NamedTuple):
    """One check for ``anondiff run --check``.

    kind / value:
      same_anon_vma      value = tuple of "PROC/VMA": all share one anon_vma
      different_anon_vma value = tuple of "PROC/VMA": pairwise different anon_vmas
      anon_vma           value = (("PROC/VMA", "AVn" or None), ...)
      chain              value = (("PROC/VMA", ("AVn", ...)), ...)   head first
      findings           value = tuple of invariant ids ("I2", "I3", "VM_WARN_ON", "CRASH", ...):
                         each must be among the findings
      no_findings        value = True
      freed              value = tuple of anon_vma names that must be freed
    """

    kind: str
    value: object
    policies: tuple[str, ...] | None = None   # None: every policy that was run
    line: int = 0


class Scenario(NamedTuple):
    path: str
    description: str
    processes: tuple[ProcessSpec, ...]
    steps: tuple[Step, ...] = ()
    policies: tuple[str, ...] | None = None   # the policies it is meant for
    expectations: tuple[Expectation, ...] = ()
    name: str = ""                            # file stem


# ---------------------------------------------------------------------------------------------
# Loader.  The YAML is composed into a node tree (every node keeps its start mark) and checked
# node by node, so that every error can name the line of the value at fault.  See
# docs/scenario-format.md for the format itself.

#: Process, VMA, anon_vma label and snapshot names.
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]*"
#: Largest VMA that ``faulted: true`` may fault completely (4 GiB of 4 KiB pages).
MAX_FAULT_ALL_PAGES = 1 << 20

STEP_KINDS = ("fork", "exit", "fault", "write", "mprotect", "munmap", "mmap", "madvise",
              "split", "setflags", "merge", "snapshot", "mremap", "brk",
              "spawn")
TOP_KEYS = ("description", "policies", "processes", "steps", "expect")
PROCESS_KEYS = ("name", "vmas")
VMA_KEYS = ("name", "start", "pages", "end", "prot", "flags", "shared", "file", "faulted",
            "anon_vma", "offset")
MMAP_KEYS = ("name", "start", "pages", "end", "prot", "flags", "shared", "file", "offset")
_RANGE_KEYS = ("offset", "pages", "start", "end")
#: The argument keys of each step kind (the kind's own key comes on top).
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "fork": ("child", "names"),
    "exit": (),
    "fault": ("pages", "addr"),
    "write": ("pages", "addr"),
    "mprotect": ("prot",) + _RANGE_KEYS + ("names",),
    "munmap": _RANGE_KEYS + ("names",),
    "mmap": MMAP_KEYS + ("vma_merge",),
    "madvise": ("advice",) + _RANGE_KEYS + ("names",),
    "split": ("at", "new", "new_below"),
    "setflags": ("set", "clear"),
    "merge": ("lo", "hi"),
    "snapshot": (),
    "mremap": _RANGE_KEYS + ("new_pages", "flags", "to", "name", "names"),
    "brk": ("from", "to", "name"),
    "spawn": (),
}
#: The step kinds that may allocate an anon_vma or anon_vma_chain, and so take ``enomem: N``.
ENOMEM_KINDS = ("fork", "fault", "write", "mprotect", "munmap", "mmap", "madvise", "split",
                "merge", "mremap", "brk")
for _kind in ENOMEM_KINDS:
    STEP_KEYS[_kind] += ("enomem",)
del _kind
EXPECT_KEYS = EXPECT_KINDS + ("policies", "policy")

def load(path: str) -> Scenario:
    """Read and validate the scenario file at *path*; every problem raises ScenarioError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ScenarioError(path, None, "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(path, None, "is a directory, not a scenario file") from None
    except OSError as e:
        raise ScenarioError(path, None, f"cannot read: {e.strerror or e}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ScenarioError(path, line, f"not valid UTF-8 (byte {data[e.start]:#04x})",
                            column) from None
    return loads(text, path)


def loads(text: str, path: str = "<string>") -> Scenario:
    """Validate the scenario in *text*; *path* is only used in messages and Scenario.path."""
    import gc

    from .scenario_loader import compose, Loader
    # A big file makes a big node tree: keep the cyclic collector from walking it again and
    # again while it grows (nothing in it is garbage before the load ends).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return Loader(path).scenario(compose(text, path))
    finally:
        if enabled:
            gc.enable()
