"""The incremental invariant checks against the full recount.

After every step of every shipped scenario, and of the random sequences of
tests/test_stateful.py, under every policy (era variants and scenarios/found included), the set
of violations the incremental checks hold must be exactly what :func:`anondiff.kernel.checks.check`
recounts from scratch, and a replay with each gives the same findings in the same order.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import invariant

from anondiff.engine import _Replayer, replay
from anondiff.errors import ReplayError
from anondiff.kernel import checks
from anondiff.kernel.fork import ABSENT
from anondiff.policies import get, names
from anondiff.policies.eras import ERA_VARIANTS
from anondiff.scenario import Madvise, Scenario, load
from anondiff.topology import Replay

from . import test_stateful

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p for p in (ROOT / "scenarios").rglob("*.yaml"))
POLICIES = names() + [c.name for c in ERA_VARIANTS]


class Verifying(_Replayer):
    """A replay that holds the incremental checks to the full recount after every record()."""

    def record(self) -> None:
        super().record()
        assert self.checker is not None
        full = set(checks.check(self.k))
        have = self.checker.current()
        assert have == full, (f"step {self.step_no}: incremental only {sorted(have - full)}, "
                              f"full only {sorted(full - have)}")
        assert set(self.active) == full


def verified(sc: Scenario, policy: str) -> Replay:
    return Verifying(sc, get(policy), "incremental").run()


@pytest.mark.parametrize("path", SCENARIOS, ids=[str(p.relative_to(ROOT)) for p in SCENARIOS])
def test_every_scenario_every_policy(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    sc = load(str(path.relative_to(ROOT)))
    wipes = any(isinstance(s, Madvise) and s.advice in ("wipeonfork", "keeponfork")
                for s in sc.steps)
    for policy in POLICIES:
        if wipes and get(policy).dup_mmap.wipeonfork == ABSENT:
            # no MADV_WIPEONFORK before v4.14 (always-new, v3.19): EINVAL
            with pytest.raises(ReplayError, match="EINVAL"):
                replay(sc, policy)
            continue
        inc = verified(sc, policy)
        assert inc == replay(sc, policy, checks="full"), policy


def test_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANONDIFF_FULL_CHECKS", "1")
    sc = load(str(ROOT / "scenarios" / "seed-thread.yaml"))
    assert _Replayer(sc, get("v2")).checker is None
    monkeypatch.setenv("ANONDIFF_FULL_CHECKS", "0")
    assert _Replayer(sc, get("v2")).checker is not None
    with pytest.raises(ValueError, match="unknown checks"):
        _Replayer(sc, get("v2"), "sometimes")


class IncrementalMatchesFull(test_stateful.Steps):
    """The random sequences of tests/test_stateful.py, every policy, verified step by step."""

    def replay_all(self) -> None:
        sc = self.scenario()
        self.replays = {name: Verifying(sc, policy, "incremental").run()
                        for name, policy in self.by_name.items()}

    @invariant()
    def same_findings_as_the_full_recount(self) -> None:
        turn = len(self.steps) % len(self.by_name)
        name = sorted(self.by_name)[turn]
        full = replay(self.scenario(), self.by_name[name], checks="full")
        assert full == self.replays[name], self.explain(f"{name}: incremental != full", [])


TestIncrementalMatchesFull = IncrementalMatchesFull.TestCase
TestIncrementalMatchesFull.settings = settings(max_examples=60, stateful_step_count=30,
                                               deadline=None)


def test_replay_many_and_findings_many_agree_with_replay() -> None:
    from anondiff.engine import findings_many, replay_many
    scenarios = [load(str(p)) for p in SCENARIOS[:6]]
    policies = ["split-counters", "degree", "v1"]
    one_by_one = [replay(sc, p) for sc in scenarios for p in policies]
    assert list(replay_many(scenarios, policies)) == one_by_one
    finals = [r.final for r in replay_many(scenarios, policies, snapshots=False)]
    assert [t.findings for t in finals] == [r.final.findings for r in one_by_one]
    outcomes = list(findings_many(scenarios, policies))
    assert [(o.scenario.name, o.policy, o.findings, o.crashed) for o in outcomes] == \
        [(r.scenario, r.policy, r.final.findings, r.final.crashed) for r in one_by_one]
