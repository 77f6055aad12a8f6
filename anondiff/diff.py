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


def _vmas(t: Topology) -> dict[str, object]:
    return {f"{p.name}/{v.name}": v for p in t.processes for v in p.vmas}


def _sharing(t: Topology) -> dict[str, tuple[str, ...]]:
    """For each VMA, the other VMAs of its process sharing its anon_vma."""
    out: dict[str, tuple[str, ...]] = {}
    for p in t.processes:
        groups: dict[str, list[str]] = {}
        for v in p.vmas:
            if v.anon_vma is not None:
                groups.setdefault(v.anon_vma, []).append(v.name)
        for v in p.vmas:
            group = groups.get(v.anon_vma, []) if v.anon_vma else []
            out[f"{p.name}/{v.name}"] = tuple(n for n in group if n != v.name)
    return out


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(x) for x in value) + "]"
    return str(value)


def totals(t: Topology) -> dict[str, int]:
    chains = [len(v.chain) for p in t.processes for v in p.vmas]
    return {
        "anon_vmas allocated": len(t.anon_vmas),
        "anon_vmas live": sum(1 for a in t.anon_vmas if not a.freed),
        "chain links": sum(chains),
        "longest chain": max(chains, default=0),
        "findings": sum(1 for f in t.findings if f.active),
        "crashed": int(t.crashed),
    }


def compare_topologies(a: Topology, b: Topology) -> SnapshotDiff:
    va, vb = _vmas(a), _vmas(b)
    sa, sb = _sharing(a), _sharing(b)
    order = list(va) + [r for r in vb if r not in va]
    diffs: list[VmaDiff] = []
    for ref in order:
        x, y = va.get(ref), vb.get(ref)
        if x is None or y is None:
            diffs.append(VmaDiff(ref, "present", "yes" if x else "no", "yes" if y else "no"))
            continue
        for field in ("anon_vma", "chain"):
            if getattr(x, field) != getattr(y, field):
                diffs.append(VmaDiff(ref, field, _fmt(getattr(x, field)), _fmt(getattr(y, field))))
        if sa[ref] != sb[ref]:
            diffs.append(VmaDiff(ref, "sharing", _fmt(sa[ref]) if sa[ref] else "alone",
                                 _fmt(sb[ref]) if sb[ref] else "alone"))
        pa = tuple(f"{p.name}>{p.mapping}" for p in x.pages)  # type: ignore[attr-defined]
        pb = tuple(f"{p.name}>{p.mapping}" for p in y.pages)  # type: ignore[attr-defined]
        if pa != pb:
            diffs.append(VmaDiff(ref, "pages", _fmt(pa), _fmt(pb)))
    ta, tb = totals(a), totals(b)
    tdiffs = tuple(TotalDiff(k, ta[k], tb[k]) for k in ta if ta[k] != tb[k])
    fa = {f"{f.kind} {f.where}" for f in a.findings if f.active or f.kind not in ("NOTE", "MERGED")}
    fb = {f"{f.kind} {f.where}" for f in b.findings if f.active or f.kind not in ("NOTE", "MERGED")}
    return SnapshotDiff(a.label, a, b, tuple(diffs), tdiffs,
                        tuple(sorted(fa - fb)), tuple(sorted(fb - fa)))


def compare(a: Replay, b: Replay) -> Comparison:
    """Snapshots are paired by label, in A's order ("final" last)."""
    labels_b = {t.label: t for t in b.snapshots}
    pairs = [compare_topologies(t, labels_b[t.label]) for t in a.snapshots if t.label in labels_b]
    return Comparison(a, b, tuple(pairs))
