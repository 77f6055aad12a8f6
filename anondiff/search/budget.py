"""The size of the scenarios a search draws (:class:`Budget`).

A module of its own, in Python, so that the generator (anondiff/search/generate.py) can be
compiled with mypyc while a Budget stays a plain frozen dataclass: pickled to worker processes
and Dask workers with each chunk, hashable, compared by value.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import EVENTS, GENERATIONS, PROCESSES, STEPS, VMAS


@dataclass(frozen=True)
class Budget:
    """The size of the scenarios drawn: at most ``processes`` processes ever (fork children
    included), ``vmas`` VMAs in the starting layout, ``steps`` steps, and forks at most
    ``generations`` deep below a starting process."""

    processes: int = PROCESSES
    vmas: int = VMAS
    steps: int = STEPS
    generations: int = GENERATIONS
    events: tuple[str, ...] = EVENTS

    def __post_init__(self) -> None:
        for name in ("processes", "vmas", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.generations < 0:
            raise ValueError("generations must be at least 0")
        bad = [e for e in self.events if e not in EVENTS]
        if bad:
            raise ValueError(f"unknown event {bad[0]!r} (must be one of {list(EVENTS)})")
        if not self.events:
            raise ValueError("no events")
