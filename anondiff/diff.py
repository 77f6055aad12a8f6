"""Compare two topologies of one scenario (two policies, same snapshot label)."""
from __future__ import annotations

from dataclasses import dataclass

from .topology import Replay, Topology


@dataclass(frozen=True)
class VmaDiff:
    ref: str                 # "C/DST2"
    field: str               # "anon_vma", "sharing", "chain", "present", "pages"
    a: str                   # value under policy A, as text ("AV1", "[AV1, AV0]", "-")
    b: str


@dataclass(frozen=True)
class TotalDiff:
    what: str                # "anon_vmas allocated", "anon_vmas live", "chain links", "findings"
    a: int
    b: int


@dataclass(frozen=True)
class SnapshotDiff:
    label: str
    a: Topology
    b: Topology
    vmas: tuple[VmaDiff, ...]
    totals: tuple[TotalDiff, ...]
    findings_only_a: tuple[str, ...]
    findings_only_b: tuple[str, ...]

    @property
    def same(self) -> bool:
        return not (self.vmas or self.totals or self.findings_only_a or self.findings_only_b)


@dataclass(frozen=True)
class Comparison:
    a: Replay
    b: Replay
    snapshots: tuple[SnapshotDiff, ...]

    @property
    def same(self) -> bool:
        return all(s.same for s in self.snapshots)
