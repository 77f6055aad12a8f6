"""Run a search: scenario indices in chunks (seed ranges), in this process, in worker processes
(``--jobs``) or on a Dask cluster (``--cluster``), combined in chunk order.

The unit of work is :class:`Chunk`: a seed, a range of scenario indices, the policies (by the
names or paths the user gave, so that any process can load them) and what counts as a finding.
:func:`run_chunk` is a pure function of it, so the result of a search depends only on the seed,
the budget, the policies and the number of scenarios tried, never on how many workers tried
them: the first finding is the one with the lowest index, and under ``--all`` each kind of
finding is kept from the lowest chunk that found it.
"""
from __future__ import annotations

import gc
import os
import signal
import time
from contextlib import contextmanager
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from ..errors import AnondiffError
from ..policies import get
from ..scenario import Scenario
from .generate import Budget, generate
from .judge import Judge, Signature
from .shrink import shrink

class SearchError(AnondiffError):
    """A generated scenario that a policy cannot replay: a bug in a policy (a user's file, a
    kernel tree) or in the generator; says which scenario, to reproduce it."""


#: Scenarios per chunk.  Fixed (not derived from --jobs), so that results do not depend on it.
CHUNK = 64


@dataclass(frozen=True)
class Goal:
    """What is searched for: a difference between two policies, or an invariant finding under
    any of them (of ``kinds`` only, when given)."""

    policies: tuple[str, ...]
    difference: bool
    kinds: tuple[str, ...] | None = None
    fields: tuple[str, ...] | None = None
    clean: bool = False


@dataclass(frozen=True)
class Chunk:
    goal: Goal
    budget: Budget
    seed: int
    start: int
    stop: int
    all: bool


@dataclass(frozen=True)
class Found:
    index: int                       # the scenario's index under the seed
    signature: Signature
    scenario: Scenario               # shrunk, in the generator's names
    raw: Scenario                    # as generated


@dataclass(frozen=True)
class ChunkResult:
    start: int
    tried: int
    found: tuple[Found, ...]


_JUDGES: dict[Goal, Judge] = {}


def judge_for(goal: Goal) -> Judge:
    """One Judge per goal and process: loading a policy (a user's file, a kernel tree) once."""
    judge = _JUDGES.get(goal)
    if judge is None:
        kinds = None if goal.kinds is None else frozenset(goal.kinds)
        fields = None if goal.fields is None else frozenset(goal.fields)
        judge = _JUDGES[goal] = Judge([get(p) for p in goal.policies], goal.difference, kinds,
                                      fields, goal.clean)
    return judge


def run_chunk(chunk: Chunk) -> ChunkResult:
    """Try scenarios ``chunk.start .. chunk.stop - 1``: the first finding, shrunk, or (``all``)
    one shrunk finding per signature.

    Shrinking keeps a finding a finding, so every finding would shrink to the simplest kind
    there is; under ``all`` each part of a signature (a field that differs, a finding kind)
    seen for the first time in the chunk is shrunk for on its own: the shrunk scenario keeps
    that part, and is kept if its signature is new."""
    judge = judge_for(chunk.goal)
    found: list[Found] = []
    targeted: set[str] = set()
    kinds_seen: set[Signature] = set()
    verdicts = judge.judge_all(generate(chunk.seed, i, chunk.budget)
                               for i in range(chunk.start, chunk.stop))
    i = chunk.start - 1
    while True:
        i += 1
        try:
            sc, v = next(verdicts)
        except StopIteration:
            break
        except AnondiffError as e:
            raise SearchError(f"scenario {i} of seed {chunk.seed}: {e}") from None
        except Exception as e:
            raise SearchError(f"scenario {i} of seed {chunk.seed}: replay failed: "
                              f"{type(e).__name__}: {e}") from None
        if not v.signature:
            continue
        targets = [t for t in v.signature if t not in targeted] if chunk.all \
            else [judge.first(v)]
        for target in targets:
            if target is not None:
                targeted.add(target)
            small, sv = shrink(sc, judge, v, target)
            if sv.signature not in kinds_seen:
                kinds_seen.add(sv.signature)
                found.append(Found(i, sv.signature, small, sc))
        if not chunk.all:
            return ChunkResult(chunk.start, i - chunk.start + 1, tuple(found))
    return ChunkResult(chunk.start, chunk.stop - chunk.start, tuple(found))


# -- executors ----------------------------------------------------------------------------------

class Executor(Protocol):
    def submit(self, fn: Callable[[Chunk], ChunkResult], chunk: Chunk) -> "Future[ChunkResult]": ...


class _InProcess:
    """Runs each chunk when it is submitted."""

    def submit(self, fn: Callable[[Chunk], ChunkResult], chunk: Chunk) -> "Future[ChunkResult]":
        fut: Future[ChunkResult] = Future()
        fut.set_result(fn(chunk))
        return fut

    def shutdown(self) -> None:
        pass


def _worker_start(started: Any) -> None:
    """Workers leave Ctrl-C to the main process, which stops the search and keeps what was
    found (a worker's KeyboardInterrupt would only print a traceback and break the pool).
    A forked worker drops the handlers it inherited (the command's SIGTERM and SIGHUP ones
    raise an exception: terminate() at a Ctrl-C printed its traceback, or left the pool
    waiting for a worker that had caught it) and leaves what it inherited out of its cyclic
    collections, which would otherwise walk all of it and copy its pages."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in _HELD:
        if callable(signal.getsignal(sig)):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    gc.freeze()
    started.wait()


#: Signals held back while workers are forked, until they have dropped the parent's handlers.
_HELD = {signal.SIGTERM, signal.SIGHUP}


def _context():  # type: ignore[no-untyped-def]
    """How workers start.  Forked from the search itself when it runs one thread (on Linux):
    they start in milliseconds, with anondiff imported and the policies loaded (a user's file,
    a kernel tree) since :func:`judge_for` ran here; a fork server took 0.5 s of a short
    search's wall clock to start and import anondiff, then each worker loaded the policies.
    A process with other threads (a program calling :func:`search`, pytest-xdist's workers)
    gets a fork server: forking it could copy a lock another thread holds."""
    import multiprocessing
    import sys
    import threading
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["anondiff.search.runner"])
        from multiprocessing import forkserver
        forkserver.ensure_running()     # born with the caller's mask: SIGINT blocked, for good
        return ctx
    return multiprocessing.get_context()  # pragma: no cover - not Linux


def _pool(jobs: int):  # type: ignore[no-untyped-def]
    """A pool of ``jobs`` worker processes, every one started and ready when it returns.  Call
    with SIGINT blocked (:func:`_sigint_blocked`): a Ctrl-C while the fork server imports
    anondiff, or while a worker unpickles what the parent sent it, printed their tracebacks
    (the parent, gone, had already unlinked the pool's semaphore) and could hang the pool;
    forked workers are born with it blocked too."""
    from concurrent.futures import ProcessPoolExecutor
    ctx = _context()
    # every worker waits at the barrier until all have started (and so unpickled what the
    # parent sent them, or dropped the handlers it had), then the parent goes on
    started = ctx.Barrier(jobs + 1)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_start,
                                   initargs=(started,))
        for _ in range(jobs):
            pool.submit(os.getpid)      # a worker is spawned for each while none is idle
        started.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pool


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Ctrl-C held back: SIGINT blocked in this thread (the mask survives fork and exec, so the
    processes started meanwhile keep it blocked), and a SIGINT that another thread takes only
    noted; it is raised as a KeyboardInterrupt when the block ends."""
    caught: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)
    if caught:
        raise KeyboardInterrupt


class _Cluster:
    """A Dask distributed cluster (the optional extra ``anondiff[cluster]``)."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError("--cluster needs Dask distributed: pip install 'anondiff[cluster]'") \
                from None
        self.client = Client(address, set_as_default=False)

    def submit(self, fn: Callable[[Chunk], ChunkResult], chunk: Chunk):  # type: ignore[no-untyped-def]
        # pure=False: the same chunk submitted twice runs twice (it never is)
        return self.client.submit(fn, chunk, pure=False)

    def shutdown(self) -> None:
        self.client.close()


# -- the search ---------------------------------------------------------------------------------

@dataclass
class Progress:
    tried: int = 0
    elapsed: float = 0.0
    found: list[Found] = field(default_factory=list)
    interrupted: bool = False               # Ctrl-C ended it

    @property
    def rate(self) -> float:
        return self.tried / self.elapsed if self.elapsed > 0 else 0.0


def _chunks(goal: Goal, budget: Budget, seed: int, count: int | None,
            all_: bool) -> Iterator[Chunk]:
    start = 0
    while count is None or start < count:
        stop = start + CHUNK if count is None else min(start + CHUNK, count)
        yield Chunk(goal, budget, seed, start, stop, all_)
        start = stop


def search(goal: Goal, budget: Budget, seed: int = 0, count: int | None = None,
           seconds: float | None = None, jobs: int = 1, all_: bool = False,
           cluster: str | None = None,
           progress: Callable[[Progress], None] | None = None) -> Progress:
    """Search until ``count`` scenarios are tried or ``seconds`` have passed (at least one of
    them), stopping at the first finding unless ``all_``, or at Ctrl-C.  The findings come
    back in the order of their scenario index, one per signature."""
    if count is None and seconds is None:
        raise ValueError("a search needs a count or a time budget")
    judge_for(goal)                     # unknown policies fail here, not in a worker
    state = Progress()
    executor: Any = None
    pending: list[Future[ChunkResult]] = []
    try:
        if cluster:
            executor = _Cluster(cluster)
        elif jobs > 1:
            with _sigint_blocked():
                executor = _pool(jobs)
        else:
            executor = _InProcess()
        _collect(executor, 64 if cluster else 2 * jobs, _chunks(goal, budget, seed, count, all_),
                 seconds, all_, state, pending, progress)
    except KeyboardInterrupt:
        state.interrupted = True
    finally:
        for fut in pending:
            fut.cancel()
        if isinstance(executor, _Cluster):
            executor.shutdown()
        elif executor is not None and not isinstance(executor, _InProcess):
            if state.interrupted:
                # the workers ignore SIGINT and would finish their chunks first: stop them,
                # then wait for the pool's threads (left to the interpreter's exit, they could
                # find its pipes closed: "OSError: [Errno 9] Bad file descriptor" on stderr)
                for proc in list((getattr(executor, "_processes", None) or {}).values()):
                    proc.terminate()
            executor.shutdown(wait=True, cancel_futures=True)
    return state


def _collect(executor: Executor, in_flight: int, chunks: Iterator[Chunk], seconds: float | None,
             all_: bool, state: Progress, pending: list["Future[ChunkResult]"],
             progress: Callable[[Progress], None] | None) -> None:
    """Keep ``in_flight`` chunks submitted; take their results in chunk order."""
    t0 = time.perf_counter()
    deadline = None if seconds is None else t0 + seconds
    kinds: set[Signature] = set()
    while True:
        while len(pending) < in_flight and (deadline is None or time.perf_counter() < deadline):
            chunk = next(chunks, None)
            if chunk is None:
                break
            pending.append(executor.submit(run_chunk, chunk))
            if isinstance(executor, _InProcess):
                break                       # it ran already: look at it before the next
        if not pending:
            break
        result = pending.pop(0).result()
        state.tried += result.tried
        for f in result.found:
            if f.signature not in kinds:
                kinds.add(f.signature)
                state.found.append(f)
        state.elapsed = time.perf_counter() - t0
        if progress is not None:
            progress(state)
        if state.found and not all_:
            break
        if deadline is not None and time.perf_counter() >= deadline:
            break


def absolute_spec(spec: str) -> str:
    """A policy given by path (a .py file, a kernel tree or tarball, with ``+patch`` parts),
    made absolute for workers that do not share the current directory; names stay names."""
    if spec.endswith(".py"):
        return os.path.abspath(os.path.expanduser(spec))
    from ..ktree.source import parse_spec
    tree = parse_spec(spec)
    if tree is None:
        return spec
    return "+".join(str(p.absolute()) for p in (tree.tree,) + tree.patches)


__all__ = ["Goal", "Chunk", "Found", "SearchError", "search", "run_chunk", "absolute_spec",
           "CHUNK"]
