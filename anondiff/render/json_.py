"""``--format json``: the stable, documented schema (README, "JSON output").

Everything the other renderers use is here, so a script can draw its own picture.  Keys are
emitted in a fixed order; addresses are integers (bytes).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

from ..topology import Replay, Topology
from . import RenderOptions

if TYPE_CHECKING:  # the differ is not needed to draw a run
    from ..diff import Comparison, SnapshotDiff

SCHEMA = 1


def topology(t: Topology) -> dict[str, Any]:
    return {
        "label": t.label,
        "step": t.step,
        "crashed": t.crashed,
        "processes": [{
            "name": p.name,
            "vmas": [{
                "name": v.name, "start": v.start, "end": v.end, "pgoff": v.pgoff,
                "prot": list(v.prot), "flags": list(v.flags),
                "anon_vma": v.anon_vma, "chain": list(v.chain),
                "pages": [{"name": pg.name, "addr": pg.addr, "index": pg.index,
                           "mapping": pg.mapping, "in_chain": pg.in_chain,
                           "mapping_freed": pg.mapping_freed} for pg in v.pages],
            } for v in p.vmas],
        } for p in t.processes],
        "anon_vmas": [{
            "name": a.name, "root": a.root, "parent": a.parent, "refcount": a.refcount,
            "counters": dict(a.counters), "freed": a.freed,
            "users": list(a.users), "tree": list(a.tree),
        } for a in t.anon_vmas],
        "transient_anon_vmas": t.transient_anon_vmas,
        "findings": [{
            "kind": f.kind, "where": f.where, "detail": f.detail, "step": f.step,
            "line": f.line, "active": f.active,
        } for f in t.findings],
    }


def replay(r: Replay, opts: RenderOptions) -> dict[str, Any]:
    snaps = r.snapshots if opts.snapshots else r.snapshots[-1:]
    return {"policy": r.policy, "cite": r.policy_cite,
            "snapshots": [topology(t) for t in snaps]}


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=True) + "\n"


def render_run(replays: Sequence[Replay], opts: RenderOptions) -> str:
    scenario = replays[0].scenario if replays else ""
    return _dump({"anondiff": SCHEMA, "scenario": scenario,
                  "runs": [replay(r, opts) for r in replays]})


def _snapshot_diff(d: SnapshotDiff) -> dict[str, Any]:
    return {
        "label": d.label, "same": d.same,
        "vmas": [{"vma": v.ref, "field": v.field, "a": v.a, "b": v.b} for v in d.vmas],
        "totals": [{"what": t.what, "a": t.a, "b": t.b} for t in d.totals],
        "findings_only_a": list(d.findings_only_a),
        "findings_only_b": list(d.findings_only_b),
    }


def render_compare(cmp: Comparison, opts: RenderOptions) -> str:
    return _dump({"anondiff": SCHEMA, "scenario": cmp.a.scenario, "same": cmp.same,
                  "a": replay(cmp.a, opts), "b": replay(cmp.b, opts),
                  "differences": [_snapshot_diff(d) for d in cmp.snapshots]})
