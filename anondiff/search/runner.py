"""Run a search: scenario indices in chunks (seed ranges), in this process, in worker processes
(``--jobs``) or on a Dask cluster (``--cluster``), combined in chunk order.

The unit of work is :class:`Chunk`: a seed, a range of scenario indices, the policies (by the
names or paths the user gave, so that any process can load them) and what counts as a finding.
:func:`run_chunk` is a pure function of it, so the result of a search depends only on the seed,
the budget, the policies and the number of scenarios tried, never on how many workers tried
them: the first finding is the one with the lowest index, and under ``--all`` each kind of
finding is kept from the lowest chunk that found it.

Worker processes (``--jobs``) take the chunks themselves, each the next one not yet taken,
from a counter they share (:class:`_Shared`), and send each result back down one pipe; the
search puts the results back in chunk order.  No chunk goes through the search process on its
way to a worker, and a worker never waits for the next one: handed out one future at a time
(ProcessPoolExecutor: the chunk pickled by a feeder thread, the result taken by a manager
thread), each chunk of 64 scenarios cost the search 0.26-0.46 ms of CPU, about 3% of a core
beside two workers; reading results alone costs nothing measurable beyond the pool's start.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import time
from contextlib import contextmanager
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import repeat
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
    verdicts = judge.judge_all(map(generate, repeat(chunk.seed), range(chunk.start, chunk.stop),
                                   repeat(chunk.budget)))
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


def _worker_start(started: Any, shared: "_Shared | None" = None) -> None:
    """Workers leave Ctrl-C to the main process, which stops the search and keeps what was
    found (a worker's KeyboardInterrupt would only print a traceback and break the pool).
    A forked worker drops the handlers it inherited (the command's SIGTERM and SIGHUP ones
    raise an exception: terminate() at a Ctrl-C printed its traceback, or left the pool
    waiting for a worker that had caught it) and leaves what it inherited out of its cyclic
    collections, which would otherwise walk all of it and copy its pages."""
    global _SHARED
    _SHARED = shared
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


class _Shared:
    """What the workers of a pool share with the search: the next chunk to take and the first
    not to (``limit``), and the pipe their results go back down (each one a pickled
    ``(chunk number, ChunkResult or the exception it raised)``).  Made before the workers
    start, so that they inherit it (or the fork server passes it on as they start)."""

    def __init__(self, ctx: Any) -> None:
        self.lock = ctx.Lock()
        self.counters = ctx.RawArray("q", 2)          # next, limit
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self.write_lock = ctx.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # a worker only writes: the reading end stays in the search
        return {k: v for k, v in self.__dict__.items() if k != "reader"}

    def start(self, limit: int) -> None:
        with self.lock:
            self.counters[0] = 0
            self.counters[1] = limit

    def take(self) -> int | None:
        """The next chunk's number, or None when there is none left to take."""
        with self.lock:
            k = self.counters[0]
            if k >= self.counters[1]:
                return None
            self.counters[0] = k + 1
        return k

    def stop_at(self, k: int) -> None:
        """No chunk numbered ``k`` or more is taken from now on."""
        with self.lock:
            if k < self.counters[1]:
                self.counters[1] = k

    def send(self, k: int, result: "ChunkResult | BaseException") -> None:
        try:
            data = pickle.dumps((k, result), pickle.HIGHEST_PROTOCOL)
            if isinstance(result, BaseException):
                pickle.loads(data)      # some exceptions pickle but do not unpickle
        except Exception:               # then their text does
            data = pickle.dumps((k, RuntimeError(f"{type(result).__name__}: {result}")),
                                pickle.HIGHEST_PROTOCOL)
        with self.write_lock:           # more than PIPE_BUF bytes are not written at once
            self.writer.send_bytes(data)


#: in a worker: what it shares with the search (:func:`_worker_start`)
_SHARED: _Shared | None = None


def _take_chunks(plan: "Plan") -> int:
    """In a worker: run the plan's chunks, each the next one no worker has taken, until none
    is left; the number it ran.  A finding (unless ``--all``) or an error in chunk k leaves
    the chunks after k to nobody: the search stops there whatever they hold."""
    shared = _SHARED
    assert shared is not None, "a worker of a pool made without _Shared"
    ran = 0
    while True:
        k = shared.take()
        if k is None:
            return ran
        try:
            result = run_chunk(plan.chunk(k))
        except BaseException as e:      # SystemExit from a policy too: the search raises it
            shared.stop_at(k + 1)
            shared.send(k, e)
            return ran
        if result.found and not plan.all:
            shared.stop_at(k + 1)
        shared.send(k, result)
        ran += 1


def _pool(jobs: int, shared: bool = False):  # type: ignore[no-untyped-def]
    """A pool of ``jobs`` worker processes, every one started and ready when it returns (with
    ``shared``: and the :class:`_Shared` its workers took, as ``(pool, shared)``).  Call
    with SIGINT blocked (:func:`_sigint_blocked`): a Ctrl-C while the fork server imports
    anondiff, or while a worker unpickles what the parent sent it, printed their tracebacks
    (the parent, gone, had already unlinked the pool's semaphore) and could hang the pool;
    forked workers are born with it blocked too."""
    from concurrent.futures import ProcessPoolExecutor
    ctx = _context()
    # every worker waits at the barrier until all have started (and so unpickled what the
    # parent sent them, or dropped the handlers it had), then the parent goes on
    started = ctx.Barrier(jobs + 1)
    common = _Shared(ctx) if shared else None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_start,
                                   initargs=(started, common))
        for _ in range(jobs):
            pool.submit(os.getpid)      # a worker is spawned for each while none is idle
        started.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return (pool, common) if shared else pool


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


@dataclass(frozen=True)
class Plan:
    """A search's chunks, numbered from 0: chunk k tries scenarios ``k * CHUNK`` on (to
    ``count``, when given)."""

    goal: Goal
    budget: Budget
    seed: int
    count: int | None
    all: bool

    @property
    def chunks(self) -> int | None:
        return None if self.count is None else -(-self.count // CHUNK)

    def chunk(self, k: int) -> Chunk:
        start = k * CHUNK
        stop = start + CHUNK if self.count is None else min(start + CHUNK, self.count)
        return Chunk(self.goal, self.budget, self.seed, start, stop, self.all)


def _chunks(plan: Plan) -> Iterator[Chunk]:
    k = 0
    while plan.count is None or k * CHUNK < plan.count:
        yield plan.chunk(k)
        k += 1


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
    plan = Plan(goal, budget, seed, count, all_)
    state = Progress()
    executor: Any = None
    shared: _Shared | None = None
    pending: list[Future[Any]] = []            # chunks submitted, or the workers' _take_chunks
    try:
        if cluster:
            executor = _Cluster(cluster)
            _collect(executor, 64, _chunks(plan), seconds, all_, state, pending, progress)
        elif jobs > 1:
            with _sigint_blocked():
                executor, shared = _pool(jobs, shared=True)
            assert shared is not None
            _gather(executor, shared, jobs, plan, seconds, state, pending, progress)
        else:
            executor = _InProcess()
            _collect(executor, 1, _chunks(plan), seconds, all_, state, pending, progress)
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
            elif shared is not None:
                _stop(shared, pending)
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
        if _account(pending.pop(0).result(), state, kinds, t0, progress, all_, deadline):
            break


def _account(result: ChunkResult, state: Progress, kinds: set[Signature], t0: float,
             progress: Callable[[Progress], None] | None, all_: bool,
             deadline: float | None) -> bool:
    """Take the next chunk's result; is the search over?"""
    state.tried += result.tried
    for f in result.found:
        if f.signature not in kinds:
            kinds.add(f.signature)
            state.found.append(f)
    state.elapsed = time.perf_counter() - t0
    if progress is not None:
        progress(state)
    if state.found and not all_:
        return True
    return deadline is not None and time.perf_counter() >= deadline


#: How long the search waits for a result before it looks whether its workers are still there.
_POLL = 0.1


def _gather(pool: Any, shared: _Shared, jobs: int, plan: Plan, seconds: float | None,
            state: Progress, drains: list[Future[int]],
            progress: Callable[[Progress], None] | None) -> None:
    """Start ``jobs`` workers taking the plan's chunks (:func:`_take_chunks`); take their
    results in chunk order, as they come."""
    t0 = time.perf_counter()
    deadline = None if seconds is None else t0 + seconds
    last = plan.chunks
    shared.start(1 << 62 if last is None else last)
    drains.extend(pool.submit(_take_chunks, plan) for _ in range(jobs))
    kinds: set[Signature] = set()
    early: dict[int, ChunkResult | BaseException] = {}     # results ahead of the next one
    k = 0
    while last is None or k < last:
        result = early.pop(k, None)
        if result is None:
            wait = _POLL
            if deadline is not None:
                wait = min(wait, deadline - time.perf_counter())
                if wait <= 0:
                    return
            if shared.reader.poll(wait):
                j, got = pickle.loads(shared.reader.recv_bytes())
                early[j] = got
            elif all(d.done() for d in drains) and not shared.reader.poll():
                for d in drains:
                    d.result()              # a worker that died: BrokenProcessPool
                raise RuntimeError(f"the workers stopped before chunk {k}")
            continue
        if isinstance(result, BaseException):
            raise result
        k += 1
        if _account(result, state, kinds, t0, progress, plan.all, deadline):
            return


def _stop(shared: _Shared, drains: list[Future[int]]) -> None:
    """Let the workers take no more chunks, and read (and drop) what they send until each has
    finished the one it runs: one blocked on a full pipe would never finish."""
    shared.stop_at(0)
    while not all(d.done() for d in drains):
        if shared.reader.poll(0.01):
            shared.reader.recv_bytes()


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


__all__ = ["Goal", "Chunk", "Plan", "Found", "SearchError", "search", "run_chunk", "absolute_spec",
           "CHUNK"]
