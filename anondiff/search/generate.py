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

The page model of a process (:class:`_Proc`) is a bit mask of the window's mapped pages and a
list of each page's bits; "the k-th mapped page" (what ``sorted(pages)[k]`` was) is found by
walking the mask.  Every draw is the one the model as dicts and lists made, in the same order:
scenario *i* of seed *s* has not changed since the generator was first written this way
(tests/test_search_generate.py holds a digest of them).
"""
from __future__ import annotations

import threading
from _random import Random
from typing import Callable, Final

from .. import scenario
from ..scenario import (Exit, Fault, Fork, Madvise, Mmap, Mprotect, Mremap, Munmap, ProcessSpec,
                        Scenario, Target, VmaSpec)
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
ADVICE: Final = ("dontfork", "dofork", "wipeonfork", "keeponfork")

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
#: PROTS in PROT_ORDER: a page's protection bits index it
_PROT_SETS: Final = tuple(PROTS[name] for name in PROT_ORDER)
RW: Final = 1                         # "rw"'s index
#: what a new VMA is, drawn with equal chances from these: the backing, then the protection
_KINDS: Final = (ANON,) * 6 + (FILE_BACKED,) * 2 + (SHARED,)
_LAYOUT_PROTS: Final = (0, 1, 1, 1, 2)     # r, rw, rw, rw, rx
#: every page of the window mapped
FULL: Final = (1 << WINDOW) - 1
#: the window's page i as an address, made once: a Python int each, not one per record
_ADDR: Final[tuple[object, ...]] = tuple((BASE + i) << PAGE_SHIFT for i in range(WINDOW + 1))


class _Gen:
    """A thread's generator, seeded again for each scenario (:func:`_seeded`), and its
    methods bound once."""

    __slots__ = ("rng", "random", "bits")

    def __init__(self) -> None:
        self.rng = Random(0)
        self.random = self.rng.random
        self.bits: Callable[[int], int] = self.rng.getrandbits


#: each thread's _Gen: a Dask worker runs chunks in threads, and the pure-Python generator
#: can be interrupted by another thread between two draws
_PER_THREAD: Final = threading.local()


def _seeded(seed: int, index: int) -> _Gen:
    """This thread's generator, seeded for scenario ``index`` of ``seed``.  Random.seed(n)
    on the C base runs the same random_seed() as Random(n) (init_by_array; the next draw
    twists the state), so what the scenario before drew is gone: a new Random per scenario
    cost its allocation (2.5 KB of state, cleared), its freeing and two bound methods."""
    gen: _Gen | None = getattr(_PER_THREAD, "gen", None)
    if gen is None:
        gen = _PER_THREAD.gen = _Gen()
    gen.rng.seed((seed << 40) ^ index)
    return gen


def rng_for(seed: int, index: int) -> Random:
    """The generator of scenario ``index`` of ``seed``: independent of how the indices are
    split between workers.  ``random.Random``'s C base, seeded from an int exactly as
    ``random.Random(x)`` is (Mersenne Twister, init_by_array), without its two Python frames;
    its draws beyond ``random()`` are made by :func:`_below` from its ``getrandbits``.  It is
    this thread's one generator (:func:`_seeded`): the next call seeds it again."""
    return _seeded(seed, index).rng


# -- random.Random's integer draws, exactly (CPython's Lib/random.py) ----------------------------
# randint(a, b) is randrange(a, b + 1), which is a + _randbelow(b + 1 - a); sample() of a
# population of at most 21 draws from a pool.  Three interpreted frames per number, a tenth of
# the generator's time; the same numbers here (tests/test_search_generate.py holds them to
# random.Random's).

def _below(bits: Callable[[int], int], n: int) -> int:
    """``random.Random._randbelow(n)`` for ``n > 0``, ``bits`` the generator's
    ``getrandbits`` (bound once: a method looked up at every draw costs more than the draw):
    the top ``n.bit_length()`` bits of the next 32-bit output, drawn again while they are
    ``n`` or more."""
    k = n.bit_length()
    x = bits(k)
    while x >= n:
        x = bits(k)
    return x


def _randint(bits: Callable[[int], int], a: int, b: int) -> int:
    """``random.Random.randint(a, b)``."""
    return a + _below(bits, b + 1 - a)


def _sample(bits: Callable[[int], int], n: int, k: int) -> list[int]:
    """``random.Random.sample(range(n), k)`` for ``n <= 21`` (its pool of the population)."""
    pool = list(range(n))
    out = []
    for i in range(k):
        j = _below(bits, n - i)
        out.append(pool[j])
        pool[j] = pool[n - i - 1]
    return out


# -- the page model ------------------------------------------------------------------------------

class _Proc:
    """A process of the page model: ``mapped`` has bit i set when page ``BASE + i`` of the
    window is mapped, and then ``pages[i]`` is that page's bits (stale when it is not)."""

    __slots__ = ("name", "generation", "mapped", "pages", "records")

    def __init__(self, name: str, generation: int, mapped: int, pages: list[int]) -> None:
        self.name = name
        self.generation = generation
        self.mapped = mapped
        self.pages = pages
        records = _RECORDS.get(name)
        if records is None:
            records = _Records(name)
            if len(_RECORDS) < _NAMES_KEPT:
                _RECORDS[name] = records
        self.records = records


#: a byte's bits set, and where its k-th one is (``_NTH8[byte * 8 + k]``)
_POP8: Final = tuple(bin(b).count("1") for b in range(256))
_NTH8: Final = tuple(([i for i in range(8) if b >> i & 1] + [-1] * 8)[k]
                     for b in range(256) for k in range(8))
assert WINDOW == 16                   # a mask of the window is two bytes


def _count(mask: int) -> int:
    """How many pages of the window ``mask`` has."""
    return _POP8[mask & 255] + _POP8[mask >> 8]


def _nth(mask: int, k: int) -> int:
    """The index of the k-th bit set in ``mask`` (from 0, lowest first): the k-th element of
    the sorted list of the pages it stands for."""
    low = mask & 255
    n = _POP8[low]
    if k < n:
        return _NTH8[low * 8 + k]
    return 8 + _NTH8[(mask >> 8) * 8 + k - n]


def _draw(st: _State, mask: int) -> int:
    """``sorted(pages)[int(random() * len(pages))]`` of the pages in ``mask`` (not empty)."""
    return _nth(mask, int(st.random() * _count(mask)))


def _map(proc: _Proc, start: int, end: int, bits: int) -> None:
    """Pages ``start .. end - 1`` of the window mapped, with ``bits``."""
    pages = proc.pages
    for i in range(start, end):
        pages[i] = bits
    proc.mapped |= ((1 << (end - start)) - 1) << start


def _room(proc: _Proc, start: int) -> int:
    """Free pages from ``start`` on, up to the next mapped one or the window's end."""
    mapped = proc.mapped
    room = 0
    while start + room < WINDOW and not mapped >> (start + room) & 1:
        room += 1
    return room


class _Limits:
    """What the steps ask of a budget, read once per Budget object (a Budget is a Python
    dataclass: each attribute a dictionary lookup, and hashing one runs Python code); the
    events as a deck of numbers, each event as many times as its weight."""

    __slots__ = ("budget", "processes", "vmas", "steps", "generations", "double_fork", "deck")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget             # kept alive: identity says it is this one
        self.processes = budget.processes
        self.vmas = budget.vmas
        self.steps = budget.steps
        self.generations = budget.generations
        self.double_fork = "exit" in budget.events
        self.deck = [_EVENTS.index(e) for e in budget.events for _ in range(WEIGHTS[e])]


#: the last budget's limits (a chunk's scenarios share one Budget object)
_LAST: Final[list[_Limits | None]] = [None]


def _limits(budget: Budget) -> _Limits:
    # one read of _LAST[0]: another thread may put its own there meanwhile
    last = _LAST[0]
    if last is not None and last.budget is budget:
        return last
    limits = _LAST[0] = _Limits(budget)
    return limits


class _State:
    __slots__ = ("random", "bits", "vmas", "processes", "generations", "double_fork", "alive",
                 "born", "steps", "serial")

    def __init__(self, gen: _Gen, limits: _Limits) -> None:
        self.random = gen.random
        self.bits = gen.bits
        self.vmas = limits.vmas
        self.processes = limits.processes
        self.generations = limits.generations
        self.double_fork = limits.double_fork
        self.alive: list[_Proc] = []                    # in creation order
        self.born = 0
        self.steps: list[object] = []          # the records of Step
        self.serial = 0

    def fresh(self, names: tuple[str, ...], prefix: str) -> str:
        """The next name: ``prefix`` and the serial number (``names``: the first ones, made
        once)."""
        self.serial += 1
        if self.serial < len(names):
            return names[self.serial]
        return f"{prefix}{self.serial}"


def _names(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(128))


_V: Final = _names("v")
_P: Final = _names("p")
_M: Final = _names("m")

#: the events, as the numbers generate() dispatches on
_EVENTS: Final = ("fork", "exit", "write", "mprotect", "madvise", "munmap", "mmap", "mremap")


def generate(seed: int, index: int, budget: Budget) -> Scenario:
    """Scenario ``index`` of ``seed``: a starting layout and 1..budget.steps steps, every one
    of which the kernel accepts."""
    limits = _limits(budget)
    st = _State(_seeded(seed, index), limits)
    processes = _layout(st)
    n = 1 + int(st.random() * limits.steps)
    deck = limits.deck
    random_, size, steps = st.random, len(deck), st.steps
    tries = 0
    while len(steps) < n and tries < 4 * n:
        tries += 1
        e = deck[int(random_() * size)]
        if e == 0:
            _fork(st)
        elif e == 1:
            _exit(st)
        elif e == 2:
            _write(st)
        elif e == 3:
            _mprotect(st)
        elif e == 4:
            _madvise(st)
        elif e == 5:
            _munmap(st)
        elif e == 6:
            _mmap(st)
        else:
            _mremap(st)
    return _tuple(_SCENARIO, ("<search>", "", processes, tuple(st.steps), None, (), "found"))


# -- the starting layout -------------------------------------------------------------------------

def _layout(st: _State) -> tuple[object, ...]:
    random_, bits = st.random, st.bits
    n = 2 if st.processes >= 2 and st.vmas >= 2 and random_() < 0.2 else 1   # P, and Q?
    left = st.vmas
    out: list[object] = []                # ProcessSpecs
    for i in range(n):
        name = "Q" if i else "P"
        proc = _Proc(name, 0, 0, [0] * WINDOW)
        st.alive.append(proc)
        st.born += 1
        if i == 0 and random_() < 0.5:
            # one faulted anonymous mapping, which mprotect will split: the thread's SRC1..SRCn
            pages = _randint(bits, 2, MAX_PAGES)
            start = _randint(bits, 0, 2)
            out.append(_src(st, start, pages))
            _map(proc, start, start + pages, RW | ANON)
            left -= 1
            continue
        want = _randint(bits, 1, max(1, min(3, left - (n - 1 - i))))
        label = "Q_AV" if i else "P_AV"
        specs: list[VmaSpec] = []
        starts: list[int] = []
        for _ in range(want):
            free = FULL & ~proc.mapped
            if not free:
                break
            start = _draw(st, free)
            # in address order
            k = len(starts)
            while k and starts[k - 1] > start:
                k -= 1
            specs.insert(k, _layout_vma(st, proc, label, start))
            starts.insert(k, start)
            left -= 1
        out.append(_tuple(_PROCESSSPEC, (name, tuple(specs), 0)))
    return tuple(out)


#: P with one faulted anonymous VMA v1 of pages start .. start + pages - 1, by
#: ``start * 8 + pages``: made once (as a step's record is)
_SRC: Final[list[object]] = [None] * (3 * 8)


def _src(st: _State, start: int, pages: int) -> object:
    assert st.serial == 0                # P's first VMA: v1
    name = st.fresh(_V, "v")
    k = start * 8 + pages
    p = _SRC[k]
    if p is None:
        spec = _vma(name, _ADDR[start], _ADDR[start + pages], _PROT_SETS[RW], _NO_FLAGS,
                    faulted=True)
        p = _SRC[k] = _tuple(_PROCESSSPEC, ("P", (spec,), 0))
    return p


def _layout_vma(st: _State, proc: _Proc, label: str, start: int) -> VmaSpec:
    random_ = st.random
    room = _room(proc, start)
    name = st.fresh(_V, "v")
    size, kind, prot = _draw_vma(st, room)
    end = start + size
    if kind == SHARED:
        _map(proc, start, end, prot | SHARED)
        return _vma(name, _ADDR[start], _ADDR[end], _PROT_SETS[prot], _NO_FLAGS, True)
    file = FILE if kind == FILE_BACKED else None
    dontcopy = random_() < 0.1
    wipeonfork = file is None and random_() < 0.1
    how = random_()
    faulted, offsets = how < 0.75, None
    if faulted and how > 0.6:
        assert size <= 21                    # sample()'s pool, not its set
        offsets = tuple(sorted(_sample(st.bits, size, _randint(st.bits, 0, size))))
        if len(offsets) == size:
            offsets = None                   # every page: faulted: true
    anon_vma = label if faulted and file is None and random_() < 0.5 else None
    # the model's page table: reserve before the next draw sees the space
    _map(proc, start, end, prot | kind | (DONTCOPY if dontcopy else 0)
         | (WIPEONFORK if wipeonfork else 0))
    return _vma(name, _ADDR[start], _ADDR[end], _PROT_SETS[prot], _FLAGS[dontcopy, wipeonfork],
                False, file, faulted, offsets, anon_vma)


def _draw_vma(st: _State, room: int) -> tuple[int, int, int]:
    """A new VMA's size in pages (at most ``room``), backing (of _KINDS) and protection (an
    index in PROT_ORDER)."""
    pages = _randint(st.bits, 1, min(MAX_PAGES, room))
    kind = _KINDS[int(st.random() * 9)]
    return pages, kind, _LAYOUT_PROTS[int(st.random() * 5)]


_NO_FLAGS: Final[frozenset[str]] = frozenset()
#: (dontcopy, wipeonfork) -> the layout VMA's flags
_FLAGS: Final = {(d, w): frozenset({"dontcopy"} if d else set()) | ({"wipeonfork"} if w else set())
          for d in (False, True) for w in (False, True)}
assert len(_KINDS) == 9 and len(_LAYOUT_PROTS) == 5


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


def _vma(name: str, start: object, end: object, prot: frozenset[str], flags: frozenset[str],
         shared: bool = False, file: str | None = None, faulted: bool = False,
         pages: tuple[int, ...] | None = None, anon_vma: str | None = None) -> VmaSpec:
    """``VmaSpec(name, start, end, prot, flags, shared, file, faulted, pages, anon_vma)``
    (``start`` and ``end`` ints, taken as objects: :data:`_ADDR`'s, not boxed again)."""
    return _tuple(_VMASPEC, (name, start, end, prot, flags, shared, file, faulted, pages,
                            anon_vma, 0, None))


# -- the records of a process's steps, made once ------------------------------------------------
# A record made with tuple.__new__ costs about 1,100 instructions (the call goes through the
# slot wrapper: three more tuples made and dropped) and as much again to free.  A step's record
# is a function of the process's name and a few small numbers, and records are immutable and
# compared by value (nothing holds a step by identity), so each is made the first time a
# process of that name draws it and shared by every later scenario of the process (a worker's):
# the window's ranges, pages, protections and advices bound them.

_SPAN: Final = WINDOW + 1


class _Range:
    """The records on pages ``start .. end - 1`` of a process (``start * _SPAN + end`` in
    :attr:`_Records.ranges`)."""

    __slots__ = ("target", "munmap", "mprotect", "madvise")

    def __init__(self, target: object) -> None:
        self.target = target
        self.munmap: object = None
        self.mprotect: list[object] = [None] * len(PROT_ORDER)
        self.madvise: list[object] = [None] * len(ADVICE)


class _Records:
    """The records of the steps of a process named ``name``, made when first drawn."""

    __slots__ = ("name", "exit", "forks", "faults", "ranges", "mremaps")

    def __init__(self, name: str) -> None:
        self.name = name
        self.exit = _tuple(_EXIT, (name, 0))
        self.forks: dict[str, object] = {}             # by the child's name
        self.faults: list[object] = [None] * WINDOW    # by page
        self.ranges: list[_Range | None] = [None] * (_SPAN * _SPAN)
        self.mremaps: list[object] = [None] * (WINDOW * 2 * WINDOW)   # page, pages - 1, to


#: by process name: the records of every scenario drawn in this process (of the first
#: _NAMES_KEPT names: a budget of thousands of steps names thousands of processes)
_RECORDS: Final[dict[str, _Records]] = {}
_NAMES_KEPT: Final = 256


def _range(records: _Records, start: int, end: int) -> _Range:
    """The records on pages ``start .. end - 1``: its ``Target(process, None, start, end)``
    in bytes, and the steps on it made so far."""
    k = start * _SPAN + end
    r = records.ranges[k]
    if r is None:
        r = records.ranges[k] = _Range(_tuple(_TARGET, (records.name, None, _ADDR[start],
                                                        _ADDR[end])))
    return r



# -- steps ---------------------------------------------------------------------------------------

def _fork(st: _State) -> None:
    alive = st.alive
    if len(alive) >= MAX_ALIVE or st.born >= st.processes:
        return
    # the youngest half the time: deep lineages
    parent = alive[-1] if st.random() < 0.5 else alive[int(st.random() * len(alive))]
    if parent.generation >= st.generations:
        return
    name = st.fresh(_P, "p")
    # VM_DONTCOPY pages are not copied
    pages = parent.pages
    mapped = parent.mapped
    for i in range(WINDOW):
        if pages[i] & DONTCOPY:
            mapped &= ~(1 << i)
    alive.append(_Proc(name, parent.generation + 1, mapped, pages[:]))
    st.born += 1
    forks = parent.records.forks
    step = forks.get(name)
    if step is None:
        step = forks[name] = _tuple(_FORK, (parent.name, name, None, 0))
    st.steps.append(step)
    if st.double_fork and st.random() < 0.3:
        # a daemon's double fork: the parent's anon_vmas are left with no VMA and one child,
        # which is what the reuse at the next fork looks for (spec 3 and 7)
        _gone(st, parent)


def _gone(st: _State, proc: _Proc) -> None:
    st.alive.remove(proc)
    st.steps.append(proc.records.exit)


def _exit(st: _State) -> None:
    alive = st.alive
    if len(alive) < 2:
        return
    # an older process more often: what is left behind is what the next fork reuses
    _gone(st, alive[0] if st.random() < 0.3 else alive[int(st.random() * (len(alive) - 1))])


def _with_pages(st: _State) -> _Proc | None:
    """One of the processes alive that have pages mapped, or None (no draw) when none has."""
    n = 0
    for proc in st.alive:
        if proc.mapped:
            n += 1
    if not n:
        return None
    k = int(st.random() * n)
    for proc in st.alive:
        if proc.mapped:
            if not k:
                return proc
            k -= 1
    raise AssertionError("unreachable")


def _write(st: _State) -> None:
    proc = _with_pages(st)
    if proc is None:
        return
    page = _draw(st, proc.mapped)
    faults = proc.records.faults
    step = faults[page]
    if step is None:
        step = faults[page] = _tuple(_FAULT, (proc.name, None, (), _ADDR[page], "write", 0))
    st.steps.append(step)


def _mapped_range(st: _State, proc: _Proc) -> tuple[int, int]:
    """A short range of mapped pages with no hole (mprotect and madvise need one)."""
    mapped = proc.mapped
    start = _draw(st, mapped)
    end = start + 1
    while end < WINDOW and mapped >> end & 1 and st.random() < 0.6:
        end += 1
    return start, end


def _mprotect(st: _State) -> None:
    proc = _with_pages(st)
    if proc is None:
        return
    start, end = _mapped_range(st, proc)
    prot = int(st.random() * 3)
    pages = proc.pages
    for i in range(start, end):
        pages[i] = (pages[i] & ~PROT_MASK) | prot
    r = _range(proc.records, start, end)
    step = r.mprotect[prot]
    if step is None:
        step = r.mprotect[prot] = _tuple(_MPROTECT, (r.target, _PROT_SETS[prot], (), 0))
    st.steps.append(step)


#: an advice's bit in a page, and whether it sets it
_ADVICE_BITS: Final = (DONTCOPY, DONTCOPY, WIPEONFORK, WIPEONFORK)
_ADVICE_SETS: Final = (True, False, True, False)
assert ADVICE == ("dontfork", "dofork", "wipeonfork", "keeponfork")
#: MADV_WIPEONFORK is EINVAL on file or shared VMAs: the others, as indices in ADVICE
_NOT_WIPE: Final = (0, 1, 3)


def _madvise(st: _State) -> None:
    proc = _with_pages(st)
    if proc is None:
        return
    start, end = _mapped_range(st, proc)
    pages = proc.pages
    wipe = True
    for i in range(start, end):
        if pages[i] & (FILE_BACKED | SHARED):
            wipe = False
    advice = int(st.random() * 4) if wipe else _NOT_WIPE[int(st.random() * 3)]
    bit = _ADVICE_BITS[advice]
    if _ADVICE_SETS[advice]:
        for i in range(start, end):
            pages[i] |= bit
    else:
        for i in range(start, end):
            pages[i] &= ~bit
    r = _range(proc.records, start, end)
    step = r.madvise[advice]
    if step is None:
        step = r.madvise[advice] = _tuple(_MADVISE, (r.target, ADVICE[advice], (), 0))
    st.steps.append(step)



def _munmap(st: _State) -> None:
    proc = _with_pages(st)
    if proc is None:
        return
    start = _draw(st, proc.mapped)
    end = min(start + (1, 1, 2, 3)[int(st.random() * 4)], WINDOW)
    proc.mapped &= ~(((1 << (end - start)) - 1) << start)
    r = _range(proc.records, start, end)
    step = r.munmap
    if step is None:
        step = r.munmap = _tuple(_MUNMAP, (r.target, (), 0))
    st.steps.append(step)


def _mmap(st: _State) -> None:
    n = 0
    for proc in st.alive:
        if proc.mapped != FULL:
            n += 1
    if not n:
        return
    k = int(st.random() * n)
    for proc in st.alive:
        if proc.mapped != FULL:
            if not k:
                break
            k -= 1
    mapped = proc.mapped
    free = FULL & ~mapped
    # next to a mapping more often than not: a merge candidate
    near = free & (mapped << 1 | mapped >> 1)
    start = _draw(st, near if near and st.random() < 0.7 else free)
    name = st.fresh(_M, "m")
    size, kind, prot = _draw_vma(st, _room(proc, start))
    _map(proc, start, start + size, prot | kind)
    spec = _vma(name, _ADDR[start], _ADDR[start + size], _PROT_SETS[prot], _NO_FLAGS,
                kind == SHARED, FILE if kind == FILE_BACKED else None)
    st.steps.append(_tuple(_MMAP, (proc.name, spec, 0, True)))


def _mremap(st: _State) -> None:
    proc = _with_pages(st)
    if proc is None:
        return
    page = _draw(st, proc.mapped)
    new = 1 + (st.random() < 0.3)                # grow to two pages now and then
    # anywhere in the window not overlapping the old page (MREMAP_FIXED unmaps what is there):
    # of the starts 0 .. WINDOW - new, all but those from lo to hi, which would cover it
    lo, hi = max(0, page - new + 1), min(page, WINDOW - new)
    k = int(st.random() * (WINDOW - new + 1 - (hi - lo + 1)))
    to = k if k < lo else k + hi - lo + 1
    bits = proc.pages[page]
    proc.mapped &= ~(1 << page)
    _map(proc, to, to + new, bits)
    mremaps = proc.records.mremaps
    k = (page * 2 + new - 1) * WINDOW + to
    step = mremaps[k]
    if step is None:
        step = mremaps[k] = _tuple(_MREMAP, (_range(proc.records, page, page + 1).target,
                                             None if new == 1 else new, _MOVE, _ADDR[to], None,
                                             (), 0))
    st.steps.append(step)
