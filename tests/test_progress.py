"""The progress bar of a large run: on standard error when it is a terminal, never otherwise."""
from __future__ import annotations

import io
import sys

import pytest

from anondiff import progress
from anondiff.engine import replay
from anondiff.scenario import PAGE_SIZE, Fork, ProcessSpec, Scenario, VmaSpec


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def big(n: int) -> Scenario:
    rw, r = frozenset({"read", "write"}), frozenset({"read"})
    vmas = tuple(VmaSpec(f"v{i}", 0x10000000 + i * PAGE_SIZE, 0x10000000 + (i + 1) * PAGE_SIZE,
                         rw if i % 2 == 0 else r, frozenset(), faulted=True, anon_vma="AV0")
                 for i in range(n))
    return Scenario(path="<test>", name="big", description="", processes=(ProcessSpec("P", vmas),),
                    steps=(Fork("P", "C"),))


@pytest.mark.parametrize("tty", [True, False])
def test_bar_only_on_a_terminal(tty: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    err = Tty() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "THRESHOLD", 1000)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    quiet = replay(big(2000), "split-counters")
    text = err.getvalue()
    if not tty:
        assert text == ""
        return
    for what in ("laying out P", "fork P -> C", "checking the invariants",
                 "taking the snapshot of C"):
        assert f"\r{what} [" in text
    assert "/2,000" in text
    assert text.endswith("\r\x1b[K")          # the last bar erased: nothing left on the line
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert replay(big(2000), "split-counters") == quiet


def test_bar_from_the_threshold_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A phase of exactly THRESHOLD items has its bar (the callers that skip calling bar()
    below it, the fork and the checks, must agree with it)."""
    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "THRESHOLD", 2000)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    replay(big(2000), "split-counters")
    text = err.getvalue()
    for what in ("laying out P", "fork P -> C", "checking the invariants"):
        assert f"\r{what} [" in text
