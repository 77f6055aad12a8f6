"""``anondiff search``: the click command (parse, call :func:`runner.search`, write, exit)."""
from __future__ import annotations

import functools
import os
import re
import shlex
import sys
from typing import Any, Callable

import click

from ..cli import _PolicyCommand
from . import EVENTS, FIELDS, GENERATIONS, PROCESSES, STEPS, VMAS

#: Without --count or --time, a search runs this long.
DEFAULT_SECONDS = 60.0


def _guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """anondiff.cli's _guard (errors as one line, exit 2), looked up when the command runs:
    anondiff.cli imports this module to register the command."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from ..cli import _guard
        return _guard(fn)(*args, **kwargs)
    return wrapper


def _trouble(message: str) -> Exception:
    from ..cli import Trouble
    return Trouble(message)


def _list(option: str, text: str | None, allowed: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not items:
        raise _trouble(f"{option}: expected a comma-separated list")
    for x in items:
        if allowed is not None and x not in allowed:
            raise _trouble(f"{option}: unknown value {x!r} (must be one of {list(allowed)})")
    return items


def _terminal() -> bool:
    """Progress is for a person watching: only when stderr is a terminal."""
    return sys.stderr.isatty()


def _scenarios(n: int) -> str:
    return f"{n:,} scenario" + ("" if n == 1 else "s")


def _stem(names: list[str], difference: bool) -> str:
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", n) for n in names]
    return "-vs-".join(safe) if difference else "-".join(safe) + "-invariants"


def _paths(output: str, n: int, stem: str, all_: bool) -> list[str]:
    """Where n found scenarios go: a directory gets <stem>[-k].yaml, a file name under --all
    gets -1, -2, ... before its suffix."""
    if output.endswith(os.sep) or os.path.isdir(output):
        if all_:
            return [os.path.join(output, f"{stem}-{k}.yaml") for k in range(1, n + 1)]
        return [os.path.join(output, f"{stem}.yaml")]
    if not all_:
        return [output]
    root, ext = os.path.splitext(output)
    return [f"{root}-{k}{ext or '.yaml'}" for k in range(1, n + 1)]


def _command(policies: tuple[str, ...], invariants: bool, kinds: str | None,
             fields: str | None, clean: bool, events: str, budget, seed: int,  # type: ignore[no-untyped-def]
             all_: bool = False) -> str:
    """The options that shape the scenarios, for the description of a found file."""
    out = ["anondiff search"] + [f"-p {shlex.quote(p)}" for p in policies]
    if invariants:
        out.append("--invariants")
    if kinds:
        out.append(f"--kinds {kinds}")
    if fields:
        out.append(f"--fields {fields}")
    if clean:
        out.append("--clean")
    if budget.events != EVENTS:
        out.append(f"--events {','.join(budget.events)}")
    defaults = {"processes": PROCESSES, "vmas": VMAS, "steps": STEPS, "generations": GENERATIONS}
    for name, default in defaults.items():
        if getattr(budget, name) != default:
            out.append(f"--{name} {getattr(budget, name)}")
    out.append(f"--seed {seed}")
    if all_:
        out.append("--all")
    return " ".join(out)


@click.command("search", cls=_PolicyCommand)
@click.option("--policy", "-p", "policy_names", multiple=True, required=True, metavar="POLICY",
              help="A policy (name, version alias, .py file or kernel tree+PATCH...: see "
                   "below); two for a difference, one or more with --invariants.")
@click.option("--invariants", is_flag=True,
              help="Find an invariant finding, kernel warning or crash instead of a difference.")
@click.option("--kinds", metavar="K1,K2", help="With --invariants: only these finding kinds "
              "count (I1..I7-UAF, VM_WARN_ON, UAF, CRASH, ...).")
@click.option("--fields", metavar="F1,F2", help="A difference counts only in these: "
              + ", ".join(FIELDS) + ".")
@click.option("--clean", is_flag=True, help="A difference counts only when neither policy "
              "reports a finding (a pure topology difference).")
@click.option("--events", default=",".join(EVENTS), show_default=True, metavar="E1,E2",
              help="The steps scenarios are made of.")
@click.option("--processes", type=int, default=PROCESSES, show_default=True,
              help="Processes ever, fork children included.")
@click.option("--vmas", type=int, default=VMAS, show_default=True,
              help="VMAs in the starting layout.")
@click.option("--steps", type=int, default=STEPS, show_default=True,
              help="Steps per scenario, at most.")
@click.option("--generations", type=int, default=GENERATIONS, show_default=True,
              help="How deep forks go below a starting process.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Scenario i of a seed is the same everywhere.")
@click.option("--count", type=int, help="Try this many scenarios (reproducible).")
@click.option("--time", "seconds", type=float,
              help=f"Search this long (default without --count: {DEFAULT_SECONDS:g} s).")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--cluster", metavar="ADDRESS",
              help="Run on a Dask distributed scheduler (pip install 'anondiff[cluster]').")
@click.option("--all", "all_", is_flag=True,
              help="Keep searching; write every distinct kind of finding.")
@click.option("--output", "-o", default="-", show_default=True,
              help="File, or directory; '-' is stdout.  With --all: numbered files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary on stderr.")
@_guarded
def search(policy_names: tuple[str, ...], invariants: bool, kinds: str | None,
           fields: str | None, clean: bool, events: str, processes: int, vmas: int, steps: int,
           generations: int, seed: int, count: int | None, seconds: float | None, jobs: int,
           cluster: str | None, all_: bool, output: str, quiet: bool) -> None:
    """Find the smallest scenario where two policies differ, or (--invariants) where a policy
    breaks an invariant; write it as a scenario file.  Exit 0 nothing found, 1 found, 2
    trouble."""
    from ..cli import EXIT_DIFFERENT, EXIT_SAME, _write
    from ..policies import get_each
    from .generate import Budget
    from .runner import Goal, absolute_spec
    from .runner import search as run_search
    from .writer import write

    if invariants and clean:
        raise _trouble("--clean is for differences, not with --invariants")
    if invariants and fields:
        raise _trouble("--fields is for differences, not with --invariants")
    if kinds and not invariants:
        raise _trouble("--kinds needs --invariants")
    if not invariants and len(policy_names) != 2:
        raise _trouble(f"a difference needs two policies (-p A -p B), got {len(policy_names)}")
    for name, value in (("--count", count), ("--jobs", jobs)):
        if value is not None and value < 1:
            raise _trouble(f"{name} {value}: must be at least 1")
    if seconds is not None and seconds <= 0:
        raise _trouble(f"--time {seconds:g}: must be more than 0")
    if seed < 0:
        raise _trouble(f"--seed {seed}: must be at least 0")
    try:
        chosen = _list("--events", events, EVENTS) or ()
        # in the canonical order: the same events, the same scenarios
        budget = Budget(processes, vmas, steps, generations,
                        tuple(e for e in EVENTS if e in chosen))
    except ValueError as e:
        raise _trouble(f"budget: {e}") from None
    if count is None and seconds is None:
        seconds = DEFAULT_SECONDS
    if output != "-":
        # before the search, not after it: a long campaign must not end in "cannot write"
        if output.endswith(os.sep):
            try:
                os.makedirs(output, exist_ok=True)
            except OSError as e:
                raise _trouble(f"{output}: cannot make the directory: {e.strerror}") from None
        parent = output if os.path.isdir(output) else os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            raise _trouble(f"{output}: no such directory: {parent}")
    pols = get_each(policy_names)
    goal = Goal(tuple(absolute_spec(p) for p in policy_names), not invariants,
                _list("--kinds", kinds, None), _list("--fields", fields, FIELDS), clean)
    show = _terminal() and not quiet

    def progress(state) -> None:  # type: ignore[no-untyped-def]
        if not show:
            return
        best = ""
        if state.found:
            f = state.found[-1]
            best = f"  found {len(state.found)}: {', '.join(f.signature)} ({len(f.scenario.steps)} steps)"
        click.echo(f"\rtried {state.tried:,}  {state.rate:,.0f}/s  {state.elapsed:.1f}s{best}\x1b[K",
                   nl=False, err=True)

    state = run_search(goal, budget, seed, count, seconds, jobs, all_, cluster, progress)
    if show:
        click.echo("", err=True)
    # (the policies as the workers got them: a path absolute, so that the file found, and the
    # command in its description, work from any directory)
    command = _command(goal.policies, invariants, kinds, fields, clean, events, budget, seed,
                       all_)
    from .judge import Judge
    from .runner import judge_for
    judge: Judge = judge_for(goal)
    texts = []
    for f in state.found:
        v = judge.judge(f.scenario)
        assert v is not None
        origin = (f"Found by `{command}` (scenario {f.index}), shrunk from "
                  f"{len(f.raw.steps)} steps to {len(f.scenario.steps)}.")
        texts.append(write(f.scenario, v, judge, list(goal.policies), origin))
    what = " vs ".join(p.name for p in pols) if not invariants else ", ".join(p.name for p in pols)
    if state.interrupted:
        what += "; interrupted"
    if not texts:
        if not quiet:
            click.echo(f"anondiff search: nothing found ({what}) in {_scenarios(state.tried)}, "
                       f"{state.elapsed:.1f} s", err=True)
        sys.exit(EXIT_SAME)
    if output == "-":
        _write("---\n".join(texts), None)
        where = "stdout"
    else:
        paths = _paths(output, len(texts), _stem([p.name for p in pols], not invariants), all_)
        for path, text in zip(paths, texts):
            _write(text, path)
        where = paths[0] if len(paths) == 1 else f"{paths[0]} .. {paths[-1]}"
    if not quiet:
        kinds_found = ", ".join(state.found[0].signature) if len(texts) == 1 else \
            "different kinds"
        click.echo(f"anondiff search: found {len(texts)} ({what}: {kinds_found}) in "
                   f"{_scenarios(state.tried)}, {state.elapsed:.1f} s -> {where}", err=True)
    sys.exit(EXIT_DIFFERENT)
