"""What counts as a finding: two policies that disagree, or one that breaks an invariant.

A difference is what ``anondiff compare`` shows on the final topologies
(:func:`anondiff.diff.compare_topologies`); an invariant finding is any finding of spec
section 9 or kernel event (``I1`` .. ``I7-UAF``, ``VM_WARN_ON``, ``VM_BUG_ON``, ``UAF``,
``CRASH``, ...) other than the informational notes.  Either is summed up in a *signature*, the
kind of the finding, which is what makes two findings of ``--all`` distinct.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from ..diff import SnapshotDiff, compare_topologies
from ..engine import findings_many, replay, replay_many
from ..errors import ReplayError
from ..policies.base import Policy
from ..scenario import Scenario
from ..topology import Finding, Replay, Topology

#: Findings that report, not accuse.
INFORMATIONAL = frozenset({"NOTE", "MERGED", "MERGE_REFUSED"})

Signature = tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    """One scenario judged: its replays and, when it is a finding, its signature (the search's
    hot loop leaves ``replays`` empty for a scenario that is no finding)."""

    replays: tuple[Replay, ...]
    signature: Signature             # () when nothing was found
    diff: SnapshotDiff | None = None


#: the verdict on a scenario that is no finding, in the search's hot loop
_NOTHING = Verdict((), ())


def bad_kinds(topo: Topology, kinds: frozenset[str] | None = None) -> list[str]:
    """The kinds of the non-informational findings, in the order found, each once (only
    ``kinds`` when given)."""
    return _bad_kinds(topo.findings, kinds)


def _bad_kinds(findings: Iterable[Finding], kinds: frozenset[str] | None) -> list[str]:
    out: list[str] = []
    for f in findings:
        if f.kind in INFORMATIONAL or f.kind in out:
            continue
        if kinds is None or f.kind in kinds:
            out.append(f.kind)
    return out


def _any_bad(findings: Iterable[Finding], kinds: frozenset[str] | None) -> bool:
    """Is there a non-informational finding (of ``kinds`` when given)?  :func:`_bad_kinds`
    without building the list: the search's hot loop asks it of every replay."""
    for f in findings:
        kind = f.kind
        if kind not in INFORMATIONAL and (kinds is None or kind in kinds):
            return True
    return False


def diff_signature(d: SnapshotDiff, a: str, b: str,
                   fields: frozenset[str] | None = None) -> Signature:
    """The fields that differ and the finding kinds only one policy reports, e.g.
    ``("anon_vma", "chain", "sharing", "only v1: I2")`` (of ``fields`` only, when given); a
    crash only one policy reports alone, ``("only wei-intended: CRASH",)``."""
    parts = {v.field for v in d.vmas if fields is None or v.field in fields}
    if fields is None or "findings" in fields:
        parts.update(f"only {a}: {f.split()[0]}" for f in d.findings_only_a
                     if f.split()[0] not in INFORMATIONAL)
        parts.update(f"only {b}: {f.split()[0]}" for f in d.findings_only_b
                     if f.split()[0] not in INFORMATIONAL)
    # a crash under one policy is the finding: after it that policy runs no step, so what the
    # other does then is no difference of theirs (and the shrinker ends the scenario there)
    crashes = {p for p in parts if p.startswith("only ") and p.endswith(": CRASH")}
    if crashes:
        return tuple(sorted(crashes))
    if not parts and not d.vmas and (fields is None or "totals" in fields):
        parts.update(f"total: {t.what}" for t in d.totals)
    return tuple(sorted(parts))


def _same(x: Topology, y: Topology) -> bool:
    """Fast path: equal processes, anon_vmas and findings (policy names aside) need no diff."""
    return (x.processes == y.processes and x.anon_vmas == y.anon_vmas
            and x.findings == y.findings and x.crashed == y.crashed)


class Judge:
    """Replays scenarios under the policies and says whether each is a finding.

    ``difference``: two policies, a finding is any difference ``compare`` shows.  Otherwise a
    finding is an invariant finding under any of the policies (of ``kinds`` when given).
    A difference counts only in ``fields`` (of :data:`anondiff.search.FIELDS`), when given, and with
    ``clean`` only when neither policy reports a finding (a pure topology difference, what the
    seed thread argued about).
    """

    def __init__(self, policies: list[Policy], difference: bool,
                 kinds: frozenset[str] | None = None,
                 fields: frozenset[str] | None = None, clean: bool = False) -> None:
        if difference and len(policies) != 2:
            raise ValueError("a difference needs exactly two policies")
        self.policies = policies
        self.difference = difference
        self.kinds = kinds
        self.fields = fields
        self.clean = clean

    def replays(self, sc: Scenario, snapshots: bool = True) -> tuple[Replay, ...] | None:
        """The replays, or None when a step cannot be replayed (a shrinking candidate that
        lost the step making a process or a mapping)."""
        try:
            return tuple(replay(sc, p, snapshots=snapshots) for p in self.policies)
        except ReplayError:
            return None

    def judge(self, sc: Scenario) -> Verdict | None:
        reps = self.replays(sc, snapshots=False)
        if reps is None:
            return None
        return self.verdict(reps)

    def judge_all(self, scenarios: Iterable[Scenario]) -> Iterator[tuple[Scenario, Verdict]]:
        """Each scenario with its verdict: the search's hot loop, through the engine's batch
        API (:func:`anondiff.engine.replay_many`, or :func:`~anondiff.engine.findings_many` for
        invariant findings: policies resolved once, the garbage collector run once per batch).
        Scenarios must replay (generated ones do)."""
        if not self.difference:
            yield from self._judge_findings(scenarios)
            return
        fed: list[Scenario] = []

        def feed() -> Iterator[Scenario]:
            for sc in scenarios:
                fed.append(sc)
                yield sc

        reps = replay_many(feed(), self.policies, snapshots=False)
        # one iterator twice over: each scenario's two replays, paired without a Python call;
        # the scenario is the one fed last (replay_many takes the next after both replays).
        # The same final topologies are no finding: the shared empty verdict (no Verdict
        # made, the replays dropped at once)
        for a, b in zip(reps, reps):
            sc = fed.pop()
            if _same(a.snapshots[-1], b.snapshots[-1]):
                yield sc, _NOTHING
            else:
                yield sc, self.verdict((a, b))

    def _judge_findings(self, scenarios: Iterable[Scenario]) -> Iterator[tuple[Scenario, Verdict]]:
        """:meth:`judge_all` for invariant findings: the findings alone decide, so nothing is
        frozen (:func:`anondiff.engine.findings_many`); a scenario that is a finding is
        replayed again for its verdict (replays are deterministic: the same findings)."""
        kinds = self.kinds
        outcomes = findings_many(scenarios, self.policies)
        for group in zip(*[outcomes] * len(self.policies)):
            for o in group:
                if o.findings and _any_bad(o.findings, kinds):
                    break
            else:
                yield group[0].scenario, _NOTHING
                continue
            sc = group[0].scenario
            v = self.judge(sc)
            if v is None or not v.signature:
                raise RuntimeError("a second replay gave other findings (a policy that is "
                                   "not deterministic?)")
            yield sc, v

    def _signature(self, policy: str, findings: Iterable[Finding], n: int) -> list[str]:
        return [k if n == 1 else f"{policy}: {k}" for k in _bad_kinds(findings, self.kinds)]

    def verdict(self, reps: tuple[Replay, ...]) -> Verdict:
        if self.difference:
            a, b = reps[0].final, reps[1].final
            if _same(a, b) or self.clean and (bad_kinds(a) or bad_kinds(b)):
                return Verdict(reps, ())
            d = compare_topologies(a, b)
            if d.same:
                return Verdict(reps, ())
            return Verdict(reps, diff_signature(d, a.policy, b.policy, self.fields), d)
        kinds: list[str] = []
        for r in reps:
            for label in self._signature(r.policy, r.final.findings, len(reps)):
                if label not in kinds:
                    kinds.append(label)
        return Verdict(reps, tuple(sorted(kinds)))

    def first(self, v: Verdict) -> str | None:
        """What shrinking keeps for the first finding: an invariant finding keeps the kind
        found first (a difference only needs to remain a difference)."""
        if self.difference or not v.signature:
            return None
        firsts = []
        for r in v.replays:
            found = [f for f in r.final.findings if f.kind not in INFORMATIONAL
                     and (self.kinds is None or f.kind in self.kinds)]
            if found:
                label = found[0].kind if len(v.replays) == 1 else f"{r.policy}: {found[0].kind}"
                firsts.append((found[0].step, label))
        return min(firsts)[1]

    def keeps(self, sc: Scenario, target: str | None) -> Verdict | None:
        """The verdict on ``sc`` if it is still a finding (with ``target`` in its signature).

        A shrinking candidate is not always a scenario a program could make (a VMA made
        smaller under a later step's range, say): one that a policy cannot replay at all is
        simply not kept."""
        try:
            v = self.judge(sc)
        except Exception:
            return None
        if v is None or not v.signature:
            return None
        if target is not None and target not in v.signature:
            return None
        return v
