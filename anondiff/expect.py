"""``anondiff run --check``: the scenario's expectations against the final topologies."""
from __future__ import annotations

from dataclasses import dataclass

from .scenario import Expectation
from .topology import Topology


@dataclass(frozen=True)
class Verdict:
    expectation: Expectation
    policy: str
    ok: bool
    message: str


def _vma(topo: Topology, ref: str) -> tuple[str | None, tuple[str, ...]] | None:
    try:
        v = topo.vma(ref)
    except KeyError:
        return None
    return v.anon_vma, v.chain


def check(exp: Expectation, topo: Topology) -> tuple[bool, str]:
    kind, value = exp.kind, exp.value
    if kind in ("same_anon_vma", "different_anon_vma", "anon_vma", "chain"):
        refs = value if kind in ("same_anon_vma", "different_anon_vma") else [r for r, _ in value]  # type: ignore[union-attr]
        missing = [r for r in refs if _vma(topo, r) is None]  # type: ignore[union-attr]
        if missing:
            return False, f"no VMA {missing[0]} in the final topology"
    if kind == "same_anon_vma":
        avs = [topo.vma(r).anon_vma for r in value]  # type: ignore[union-attr]
        ok = avs[0] is not None and len(set(avs)) == 1
        return ok, ", ".join(f"{r}={a}" for r, a in zip(value, avs))  # type: ignore[arg-type]
    if kind == "different_anon_vma":
        avs = [topo.vma(r).anon_vma for r in value]  # type: ignore[union-attr]
        ok = len(set(avs)) == len(avs)
        return ok, ", ".join(f"{r}={a}" for r, a in zip(value, avs))  # type: ignore[arg-type]
    if kind == "anon_vma":
        bad = [(r, want, topo.vma(r).anon_vma) for r, want in value if topo.vma(r).anon_vma != want]  # type: ignore[union-attr]
        return not bad, "; ".join(f"{r}: want {w}, got {g}" for r, w, g in bad) or "as expected"
    if kind == "chain":
        bad = [(r, list(want), list(topo.vma(r).chain)) for r, want in value  # type: ignore[union-attr]
               if topo.vma(r).chain != tuple(want)]
        return not bad, "; ".join(f"{r}: want {w}, got {g}" for r, w, g in bad) or "as expected"
    if kind == "findings":
        kinds = {f.kind for f in topo.findings}
        missing = [k for k in value if k not in kinds]  # type: ignore[union-attr]
        return not missing, f"missing {', '.join(missing)}" if missing else f"found {', '.join(value)}"  # type: ignore[arg-type]
    if kind == "no_findings":
        bad = [f for f in topo.findings if f.kind not in ("NOTE", "MERGED")]
        return not bad, (f"{len(bad)} findings, first: {bad[0].kind} {bad[0].where}: {bad[0].detail}"
                         if bad else "none")
    if kind == "freed":
        state = {a.name: a.freed for a in topo.anon_vmas}
        bad = [n for n in value if not state.get(n, False)]  # type: ignore[union-attr]
        return not bad, f"not freed: {', '.join(bad)}" if bad else "freed"
    return False, f"unknown expectation {kind!r}"


def verify(expectations: tuple[Expectation, ...], finals: dict[str, Topology]) -> list[Verdict]:
    out = []
    for exp in expectations:
        for policy, topo in finals.items():
            if exp.policies is not None and policy not in exp.policies:
                continue
            ok, msg = check(exp, topo)
            out.append(Verdict(exp, policy, ok, msg))
    return out


def summary(path: str, verdicts: list[Verdict], policies: list[str]) -> str:
    """The last line of ``run --check``: what was checked and how it went, e.g.
    ``scenarios/x.yaml: 12 checks (4 expectations under 3 policies): 11 ok, 1 FAILED``."""
    failed = sum(not v.ok for v in verdicts)
    if not verdicts:
        return f"{path}: no expectations for the policies run ({', '.join(policies)})"
    expectations = len({id(v.expectation) for v in verdicts})
    used = len({v.policy for v in verdicts})
    checks = f"{len(verdicts)} check{'s' * (len(verdicts) != 1)}"
    what = (f"{expectations} expectation{'s' * (expectations != 1)} under "
            f"{used} polic{'ies' if used != 1 else 'y'}")
    verdict = f"{len(verdicts) - failed} ok, {failed} FAILED" if failed else "all ok"
    return f"{path}: {checks} ({what}): {verdict}"
