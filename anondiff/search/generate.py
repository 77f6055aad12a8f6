"""Random scenarios the kernel accepts, one per (seed, index), without replaying anything.

A scenario is drawn from ``random.Random`` seeded by the search seed and the scenario's index,
so that scenario *i* of seed *s* is the same in every worker process and on every machine.
Validity is decided on a page model of each process (what is mapped, with which protection,
flags and backing), which is the same under every policy: merges and anon_vma choices differ
between policies, the mapped pages never do.  Steps therefore name ranges by address
(``mprotect: P, start: .., end: ..``, ``write: P, addr: ..``) and forks name no VMAs; the
scenario writer turns them into VMA names once the shrunk scenario is known.

The steps are those of ``tests/test_stateful.py``: fork (often the youngest process, to grow
the lineages anon_vma reuse needs), exit, write faults, mprotect, munmap, madvise, mmap and
mremap (moves of one page) in a 16-page window, so that VMAs abut, split and merge often.
"""
from __future__ import annotations

from _random import Random
from typing import Final

from .. import scenario
from ..scenario import (Exit, Fault, Fork, Madvise, Mmap, Mprotect, Mremap, Munmap, ProcessSpec,
                        Scenario, Step, Target, VmaSpec)
from .budget import Budget

#: anondiff.scenario's, as a constant: the compiled code reads a name imported from another
#: module in this module's dictionary at every use (two dictionary lookups per step's record)
PAGE_SHIFT: Final = 12
assert PAGE_SHIFT == scenario.PAGE_SHIFT

BASE: Final = 0x10000 >> PAGE_SHIFT   # first page of the window
WINDOW: Final = 16                    # pages
MAX_PAGES: Final = 6                  # largest VMA drawn
MAX_ALIVE: Final = 4                  # processes at once
FILE: Final = "lib"                          # the one file: private file VMAs are pgoff-linear
PROTS: Final = {"rw": frozenset({"read", "write"}), "r": frozenset({"read"}),
         "rx": frozenset({"read", "exec"})}
_PROT_NAMES: Final = sorted(PROTS)
ADVICE: Final = ("dontfork", "dofork", "wipeonfork", "keeponfork")
_KINDS: Final = ("anon",) * 6 + ("file",) * 2 + ("shared",)
_LAYOUT_PROTS: Final = ("r", "rw", "rw", "rw", "rx")

#: How often each event is drawn, relative to the others.  Forks and exits are frequent:
#: reuse needs lineages whose anon_vmas are left with no VMA and one child.
WEIGHTS: Final = {"fork": 4, "exit": 2, "write": 3, "mprotect": 3, "madvise": 1, "munmap": 2, "mmap": 1,
           "mremap": 1}
#: mremap(MREMAP_MAYMOVE | MREMAP_FIXED) of one page: a page always lies inside one VMA,
#: whatever each policy merged, and the move is valid in every era (MREMAP_DONTUNMAP is not:
#: v5.7, and anonymous only before v5.13)
_MOVE: Final = frozenset({"maymove", "fixed"})


#: One mapped page of the model, as bits: the protection's index in PROT_ORDER, then
#: VM_DONTCOPY, VM_WIPEONFORK and the backing (anonymous, file, shared).
PROT_MASK: Final = 0b11
DONTCOPY: Final = 0b100
WIPEONFORK: Final = 0b1000
ANON: Final = 0
FILE_BACKED: Final = 0b10000
SHARED: Final = 0b100000
PROT_ORDER: Final = ("r", "rw", "rx")
_PROT_INDEX: Final = {PROTS[name]: i for i, name in enumerate(PROT_ORDER)}


def _pick(r: Random, seq):  # type: ignore[no-untyped-def]
    """``r.choice(seq)``, at a third of the cost (the generator's hot path)."""
    return seq[int(r.random() * len(seq))]


def rng_for(seed: int, index: int) -> Random:
    """The generator of scenario ``index`` of ``seed``: independent of how the indices are
    split between workers.  ``random.Random``'s C base: seeded from an int exactly as
    ``random.Random(x)`` is (Mersenne Twister, init_by_array), without its two Python frames;
    its draws beyond ``random()`` are made by :func:`_below`."""
    return Random((seed << 40) ^ index)


# -- random.Random's integer draws, exactly (CPython's Lib/random.py) ----------------------------
# randint(a, b) is randrange(a, b + 1), which is a + _randbelow(b + 1 - a); sample() of a
# population of at most 21 draws from a pool.  Three interpreted frames per number, a tenth of
# the generator's time; the same numbers here (tests/test_search_generate.py holds them to
# random.Random's).

def _below(r: Random, n: int) -> int:
    """``random.Random._randbelow(n)`` for ``n > 0``: the top ``n.bit_length()`` bits of the
    next 32-bit output, drawn again while they are ``n`` or more."""
    k = n.bit_length()
    x = r.getrandbits(k)
    while x >= n:
        x = r.getrandbits(k)
    return x


def _randint(r: Random, a: int, b: int) -> int:
    """``random.Random.randint(a, b)``."""
    return a + _below(r, b + 1 - a)


def _sample(r: Random, n: int, k: int) -> list[int]:
    """``random.Random.sample(range(n), k)`` for ``n <= 21`` (its pool of the population)."""
    pool = list(range(n))
    out = []
    for i in range(k):
        j = _below(r, n - i)
        out.append(pool[j])
        pool[j] = pool[n - i - 1]
    return out


class _State:
    __slots__ = ("r", "random", "budget", "processes", "generations", "double_fork", "space",
                 "generation", "alive", "born", "steps", "serial")

    def __init__(self, r: Random, budget: Budget) -> None:
        self.r = r
        self.random = r.random
        self.budget = budget
        # what the steps ask of the budget, read once (a Budget is a Python object: each
        # attribute a dictionary lookup)
        self.processes = budget.processes
        self.generations = budget.generations
        self.double_fork = "exit" in budget.events
        self.space: dict[str, dict[int, int]] = {}     # process -> page -> bits
        self.generation: dict[str, int] = {}
        self.alive: list[str] = []                      # in creation order
        self.born = 0
        self.steps: list[Step] = []
        self.serial = 0

    def fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"


_DECKS: Final[dict[tuple[str, ...], list]] = {}  # type: ignore[type-arg]


def generate(seed: int, index: int, budget: Budget) -> Scenario:
    """Scenario ``index`` of ``seed``: a starting layout and 1..budget.steps steps, every one
    of which the kernel accepts."""
    st = _State(rng_for(seed, index), budget)
    processes = _layout(st)
    n = 1 + int(st.random() * budget.steps)
    deck = _DECKS.get(budget.events)
    if deck is None:
        deck = _DECKS[budget.events] = [_EVENT[e] for e in budget.events
                                        for _ in range(WEIGHTS[e])]
    random_, size, steps = st.random, len(deck), st.steps
    tries = 0
    while len(steps) < n and tries < 4 * n:
        tries += 1
        deck[int(random_() * size)](st)
    return _tuple(_SCENARIO, ("<search>", "", processes, tuple(st.steps), None, (), "found"))


# -- the starting layout -------------------------------------------------------------------------

def _layout(st: _State) -> tuple[ProcessSpec, ...]:
    r, budget = st.r, st.budget
    names = ["P"]
    if budget.processes >= 2 and budget.vmas >= 2 and r.random() < 0.2:
        names.append("Q")
    left = budget.vmas
    out = []
    for i, name in enumerate(names):
        st.space[name] = {}
        st.generation[name] = 0
        st.alive.append(name)
        st.born += 1
        specs: list[VmaSpec] = []
        if i == 0 and r.random() < 0.5:
            # one faulted anonymous mapping, which mprotect will split: the thread's SRC1..SRCn
            pages = _randint(r, 2, MAX_PAGES)
            start = BASE + _randint(r, 0, 2)
            specs.append(_vma(st.fresh("v"), start << PAGE_SHIFT, (start + pages) << PAGE_SHIFT,
                              PROTS["rw"], _NO_FLAGS, faulted=True))
            left -= 1
        else:
            want = _randint(r, 1, max(1, min(3, left - (len(names) - 1 - i))))
            label = f"{name}_AV"
            for _ in range(want):
                spec = _layout_vma(st, name, label)
                if spec is None:
                    break
                specs.append(spec)
                left -= 1
        for spec in specs:
            _map(st, name, spec)
        out.append(_tuple(_PROCESSSPEC, (name, tuple(sorted(specs, key=_start)), 0)))
    return tuple(out)


def _layout_vma(st: _State, process: str, label: str) -> VmaSpec | None:
    r = st.r
    free = [p for p in range(BASE, BASE + WINDOW) if p not in st.space[process]]
    if not free:
        return None
    start = _pick(r, free)
    room = _room(st.space[process], start)
    name = st.fresh("v")
    size, kind, prot = _draw_vma(r, room)
    if kind == "shared":
        spec = _make_spec(name, start, size, prot, kind)
        _map(st, process, spec)
        return spec
    file = FILE if kind == "file" else None
    dontcopy = r.random() < 0.1
    wipeonfork = file is None and r.random() < 0.1
    flags = _FLAGS[dontcopy, wipeonfork]
    how = r.random()
    faulted, offsets = how < 0.75, None
    if faulted and how > 0.6:
        assert size <= 21                    # sample()'s pool, not its set
        offsets = tuple(sorted(_sample(r, size, _randint(r, 0, size))))
        if len(offsets) == size:
            offsets = None                   # every page: faulted: true
    anon_vma = label if faulted and file is None and r.random() < 0.5 else None
    spec = _vma(name, start << PAGE_SHIFT, (start + size) << PAGE_SHIFT, prot, flags, False, file,
                faulted, offsets, anon_vma)
    # the model's page table: reserve before the next draw sees the space
    _map(st, process, spec)
    return spec


def _start(spec: VmaSpec) -> int:
    return spec.start


def _room(space: dict[int, int], start: int) -> int:
    room = 0
    while start + room < BASE + WINDOW and start + room not in space:
        room += 1
    return room


def _draw_vma(r: Random, room: int) -> tuple[int, str, frozenset[str]]:
    """A new VMA's size in pages (at most ``room``), kind and protection."""
    pages = _randint(r, 1, min(MAX_PAGES, room))
    kind = _pick(r, _KINDS)
    return pages, kind, PROTS[_pick(r, _LAYOUT_PROTS)]


def _make_spec(name: str, start: int, pages: int, prot: frozenset[str], kind: str) -> VmaSpec:
    return _vma(name, start << PAGE_SHIFT, (start + pages) << PAGE_SHIFT, prot, _NO_FLAGS,
                kind == "shared", FILE if kind == "file" else None)


def _vma_spec(st: _State, name: str, start: int, room: int) -> VmaSpec:
    pages, kind, prot = _draw_vma(st.r, room)
    return _make_spec(name, start, pages, prot, kind)


_NO_FLAGS: Final[frozenset[str]] = frozenset()
#: (dontcopy, wipeonfork) -> the layout VMA's flags
_FLAGS: Final = {(d, w): frozenset({"dontcopy"} if d else set()) | ({"wipeonfork"} if w else set())
          for d in (False, True) for w in (False, True)}


def _map(st: _State, process: str, spec: VmaSpec) -> None:
    page = (_PROT_INDEX[spec.prot] | (DONTCOPY if "dontcopy" in spec.flags else 0)
            | (WIPEONFORK if "wipeonfork" in spec.flags else 0)
            | (SHARED if spec.shared else FILE_BACKED if spec.file is not None else ANON))
    space = st.space[process]
    for p in range(spec.start >> PAGE_SHIFT, spec.end >> PAGE_SHIFT):
        space[p] = page


# -- the steps' records, made directly ----------------------------------------------------------
# A scenario's steps are NamedTuples, whose __new__ is Python code (collections.namedtuple
# compiles it): an interpreted call per record, from the compiled generator.  These make the same
# tuples with tuple.__new__ (every field given, the defaults spelled out); the asserts keep them
# in step with anondiff/scenario.py.

_tuple: Final = tuple.__new__
# the classes as Final names, which the compiled code keeps in C variables (an imported name is
# looked up in the module's dictionary at every use)
_TARGET: Final = Target
_FORK: Final = Fork
_EXIT: Final = Exit
_FAULT: Final = Fault
_MPROTECT: Final = Mprotect
_MADVISE: Final = Madvise
_MUNMAP: Final = Munmap
_MMAP: Final = Mmap
_MREMAP: Final = Mremap
_VMASPEC: Final = VmaSpec
_PROCESSSPEC: Final = ProcessSpec
_SCENARIO: Final = Scenario
assert Target._fields == ("process", "vma", "first", "end")
assert Fork._fields == ("process", "child", "names", "line")
assert Exit._fields == ("process", "line")
assert Fault._fields == ("process", "vma", "pages", "addr", "kind", "line")
assert Mprotect._fields == ("target", "prot", "names", "line")
assert Madvise._fields == ("target", "advice", "names", "line")
assert Munmap._fields == ("target", "names", "line")
assert Mmap._fields == ("process", "vma", "line", "merge")
assert Mremap._fields == ("target", "new_pages", "flags", "to", "name", "names", "line")
assert VmaSpec._fields == ("name", "start", "end", "prot", "flags", "shared", "file", "faulted",
                           "pages", "anon_vma", "line", "offset")
assert ProcessSpec._fields == ("name", "vmas", "line")
assert Scenario._fields == ("path", "description", "processes", "steps", "policies",
                            "expectations", "name")


def _vma(name: str, start: int, end: int, prot: frozenset[str], flags: frozenset[str],
         shared: bool = False, file: str | None = None, faulted: bool = False,
         pages: tuple[int, ...] | None = None, anon_vma: str | None = None) -> VmaSpec:
    """``VmaSpec(name, start, end, prot, flags, shared, file, faulted, pages, anon_vma)``."""
    return _tuple(_VMASPEC, (name, start, end, prot, flags, shared, file, faulted, pages,
                            anon_vma, 0, None))


def _target(process: str, start: int, end: int) -> Target:
    """``Target(process, None, start << PAGE_SHIFT, end << PAGE_SHIFT)``: pages to bytes."""
    return _tuple(_TARGET, (process, None, start << PAGE_SHIFT, end << PAGE_SHIFT))


# -- steps ---------------------------------------------------------------------------------------

def _fork(st: _State) -> None:
    alive = st.alive
    if len(alive) >= MAX_ALIVE or st.born >= st.processes:
        return
    # the youngest half the time: deep lineages
    parent = alive[-1] if st.random() < 0.5 else alive[int(st.random() * len(alive))]
    if st.generation[parent] >= st.generations:
        return
    child = st.fresh("p")
    st.generation[child] = st.generation[parent] + 1
    alive.append(child)
    st.born += 1
    st.space[child] = {p: a for p, a in st.space[parent].items() if not a & DONTCOPY}
    st.steps.append(_tuple(_FORK, (parent, child, None, 0)))
    if st.double_fork and st.random() < 0.3:
        # a daemon's double fork: the parent's anon_vmas are left with no VMA and one child,
        # which is what the reuse at the next fork looks for (spec 3 and 7)
        _gone(st, parent)


def _gone(st: _State, process: str) -> None:
    del st.space[process]
    st.alive.remove(process)
    st.steps.append(_tuple(_EXIT, (process, 0)))


def _exit(st: _State) -> None:
    alive = st.alive
    if len(alive) < 2:
        return
    # an older process more often: what is left behind is what the next fork reuses
    _gone(st, alive[0] if st.random() < 0.3 else alive[int(st.random() * (len(alive) - 1))])


def _with_pages(st: _State) -> str | None:
    alive = [p for p in st.alive if st.space[p]]
    return alive[int(st.random() * len(alive))] if alive else None


def _any_page(st: _State, space: dict[int, int]) -> int:
    pages = sorted(space)
    return pages[int(st.random() * len(pages))]


def _write(st: _State) -> None:
    process = _with_pages(st)
    if process is None:
        return
    page = _any_page(st, st.space[process])
    st.steps.append(_tuple(_FAULT, (process, None, (), page << PAGE_SHIFT, "write", 0)))


def _mapped_range(st: _State, space: dict[int, int]) -> tuple[int, int]:
    """A short range of mapped pages with no hole (mprotect and madvise need one)."""
    start = _any_page(st, space)
    end = start + 1
    while end in space and st.random() < 0.6:
        end += 1
    return start, end


def _mprotect(st: _State) -> None:
    process = _with_pages(st)
    if process is None:
        return
    space = st.space[process]
    start, end = _mapped_range(st, space)
    i = int(st.random() * 3)
    for p in range(start, end):
        space[p] = (space[p] & ~PROT_MASK) | i
    st.steps.append(_tuple(_MPROTECT, (_target(process, start, end), PROTS[PROT_ORDER[i]], (), 0)))


_ADVICE_BITS: Final = {"dontfork": (DONTCOPY, True), "dofork": (DONTCOPY, False),
                "wipeonfork": (WIPEONFORK, True), "keeponfork": (WIPEONFORK, False)}
_NOT_WIPE: Final = ("dontfork", "dofork", "keeponfork")


def _madvise(st: _State) -> None:
    process = _with_pages(st)
    if process is None:
        return
    space = st.space[process]
    start, end = _mapped_range(st, space)
    # MADV_WIPEONFORK is EINVAL on file or shared VMAs
    advice = _NOT_WIPE if any(space[p] & (FILE_BACKED | SHARED) for p in range(start, end)) \
        else ADVICE
    choice = advice[int(st.random() * len(advice))]
    bit, on = _ADVICE_BITS[choice]
    for p in range(start, end):
        space[p] = space[p] | bit if on else space[p] & ~bit
    st.steps.append(_tuple(_MADVISE, (_target(process, start, end), choice, (), 0)))


def _munmap(st: _State) -> None:
    process = _with_pages(st)
    if process is None:
        return
    space = st.space[process]
    start = _any_page(st, space)
    end = min(start + (1, 1, 2, 3)[int(st.random() * 4)], BASE + WINDOW)
    for p in range(start, end):
        space.pop(p, None)
    st.steps.append(_tuple(_MUNMAP, (_target(process, start, end), (), 0)))


def _mmap(st: _State) -> None:
    alive = [p for p in st.alive if len(st.space[p]) < WINDOW]
    if not alive:
        return
    process = alive[int(st.random() * len(alive))]
    space = st.space[process]
    free = [p for p in range(BASE, BASE + WINDOW) if p not in space]
    # next to a mapping more often than not: a merge candidate
    near = [p for p in free if p - 1 in space or p + 1 in space]
    start = _pick(st.r, near if near and st.r.random() < 0.7 else free)
    spec = _vma_spec(st, st.fresh("m"), start, _room(space, start))
    _map(st, process, spec)
    st.steps.append(_tuple(_MMAP, (process, spec, 0, True)))


def _mremap(st: _State) -> None:
    process = _with_pages(st)
    if process is None:
        return
    space = st.space[process]
    page = _any_page(st, space)
    new = 1 + (st.random() < 0.3)                # grow to two pages now and then
    # anywhere in the window not overlapping the old page (MREMAP_FIXED unmaps what is there)
    targets = [p for p in range(BASE, BASE + WINDOW - new + 1) if not p <= page < p + new]
    to = targets[int(st.random() * len(targets))]
    attrs = space.pop(page)
    for p in range(to, to + new):
        space[p] = attrs
    st.steps.append(_tuple(_MREMAP, (_target(process, page, page + 1), None if new == 1 else new,
                                    _MOVE, to << PAGE_SHIFT, None, (), 0)))


_EVENT: Final = {"fork": _fork, "exit": _exit, "write": _write, "mprotect": _mprotect,
          "madvise": _madvise, "munmap": _munmap, "mmap": _mmap, "mremap": _mremap}
