"""Compare a replay with a known answer from ../shared/reference/kernel-runs (copied into
tests/data/kernel-runs): the real anon_vma functions of each version, compiled in userspace.

anon_vmas are matched by allocation order (the reference names them av0, av1, ... when first
linked, as anondiff does); VMAs, processes and pages by name.  Protections are not compared
(scenario translations may pick other ones so that nothing merges back); every anon_vma
decision, chain order, counter, refcount, tree, page mapping and invariant is.
"""
from __future__ import annotations

import json
from pathlib import Path

from anondiff.topology import Replay, Topology

DATA = Path(__file__).parent / "data" / "kernel-runs"
SCENARIOS = Path(__file__).parent.parent / "scenarios" / "kernel-runs"

#: reference version names -> policy names
VERSIONS = {
    "always-new": "always-new", "degree": "degree", "wei-4e4a": "wei-4e4a9eb92133",
    "wei-4e4a-intended": "wei-intended", "kk-v1": "v1", "kk-v2": "v2",
    "split-counters": "split-counters", "clone-rework-2026": "clone-rework-2026",
}
#: invariants the reference reports (we also report I5, refcounts)
REF_INVARIANTS = {"I1", "I2", "I3", "I4a", "I4b", "I6", "I6-UAF", "I7-UAF"}
EVENT_KINDS = {"VM_WARN_ON", "VM_BUG_ON", "CRASH", "NOTE", "UAF", "DOUBLE_FREE"}


def reference(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def states(ref: dict) -> dict[str, dict]:
    out = {s["label"]: s for s in ref["snapshots"]}
    out["final"] = ref["final"]
    return out


def diff_state(ref: dict, topo: Topology) -> list[str]:
    """Every difference between one reference STATE and one snapshot, as readable lines."""
    problems: list[str] = []
    ref_avs = ref["anon_vmas"]
    if len(ref_avs) != len(topo.anon_vmas):
        problems.append(f"{len(ref_avs)} anon_vmas in the reference, {len(topo.anon_vmas)} here: "
                        f"{[a['id'] for a in ref_avs]} vs {[a.name for a in topo.anon_vmas]}")
        return problems
    name = {a["id"]: ours.name for a, ours in zip(ref_avs, topo.anon_vmas)}
    name[None] = None

    def m(x: str | None) -> str | None:
        return name.get(x, f"?{x}")

    ref_procs = [p["name"] for p in ref["procs"]]
    our_procs = [p.name for p in topo.processes]
    if sorted(ref_procs) != sorted(our_procs):
        problems.append(f"processes {ref_procs} vs {our_procs}")
        return problems
    for rp in ref["procs"]:
        op = topo.process(rp["name"])
        rv_names = [v["name"] for v in rp["vmas"]]
        if rv_names != [v.name for v in op.vmas]:
            problems.append(f"{rp['name']}: VMAs {rv_names} vs {[v.name for v in op.vmas]}")
            continue
        for rv, ov in zip(rp["vmas"], op.vmas):
            where = f"{rp['name']}/{rv['name']}"
            got = {
                "range": (ov.start >> 12, ov.end >> 12, ov.pgoff),
                "flags": sorted(f for f in ov.flags if f in ("dontcopy", "wipeonfork")),
                "anon_vma": ov.anon_vma,
                "chain": list(ov.chain),
                "pages": [(p.addr >> 12, p.name, p.mapping, p.in_chain, p.mapping_freed) for p in ov.pages],
            }
            want = {
                "range": (rv["start"], rv["end"], rv["pgoff"]),
                "flags": sorted(f for f in rv["flags"] if f in ("dontcopy", "wipeonfork")),
                "anon_vma": m(rv["anon_vma"]),
                "chain": [m(c) for c in rv["chain"]],
                "pages": [(p["addr"], p["page"], m(p["mapping"]), p["in_chain"], p["mapping_freed"])
                          for p in rv["pages"]],
            }
            for key in want:
                if got[key] != want[key]:
                    problems.append(f"{where} {key}: reference {want[key]}, anondiff {got[key]}")
    for ra, oa in zip(ref_avs, topo.anon_vmas):
        if ra["freed"] != oa.freed:
            problems.append(f"{oa.name} (ref {ra['id']}) freed: reference {ra['freed']}, anondiff {oa.freed}")
            continue
        if ra["freed"]:
            continue
        want = {"root": m(ra["root"]), "parent": m(ra.get("parent")), "refcount": ra["refcount"],
                "counters": {k: ra[k] for k in ("degree", "num_children", "num_active_vmas") if k in ra},
                "tree": ra["tree"]}
        got = {"root": oa.root, "parent": oa.parent, "refcount": oa.refcount,
               "counters": dict(oa.counters), "tree": list(oa.tree)}
        for key in want:
            if got[key] != want[key]:
                problems.append(f"{oa.name} (ref {ra['id']}) {key}: reference {want[key]}, anondiff {got[key]}")
    ref_inv = sorted({(v["inv"].rstrip("ab") if v["inv"].startswith("I4") else v["inv"], v["where"])
                      for v in ref["violations"] if v["inv"] in REF_INVARIANTS})
    our_inv = sorted({(f.kind, f.where) for f in topo.findings
                      if f.active and f.kind != "I5"})
    if ref_inv != our_inv:
        problems.append(f"invariants: reference {ref_inv}, anondiff {our_inv}")
    return problems


def diff_replay(ref: dict, rep: Replay, merges: bool = False) -> list[str]:
    """``merges``: also compare the MERGED / MERGE_REFUSED events (for literal translations,
    whose explicit merge steps are the reference's)."""
    problems = []
    ours = {t.label: t for t in rep.snapshots}
    for label, state in states(ref).items():
        if label not in ours:
            problems.append(f"no snapshot {label!r}")
            continue
        problems += [f"[{label}] {p}" for p in diff_state(state, ours[label])]
    kinds = EVENT_KINDS | ({"MERGED", "MERGE_REFUSED"} if merges else set())
    ref_events = sorted(e["kind"] for e in ref["events"] if e["kind"] in kinds)
    our_events = sorted(f.kind for f in rep.final.findings if not f.active and f.kind in kinds)
    if ref_events != our_events:
        problems.append(f"kernel events: reference {ref_events}, anondiff {our_events}")
    if bool(ref["crash"]) != rep.final.crashed:
        problems.append(f"crash: reference {ref['crash']!r}, anondiff {rep.final.crashed}")
    return problems
