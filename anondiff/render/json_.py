"""``--format json``: the stable, documented schema (README, "JSON output").

Everything the other renderers use is here, so a script can draw its own picture.  Keys are
emitted in a fixed order; addresses are integers (bytes).
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _s
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..topology import AnonVmaView, Finding, PageView, Replay, Topology, VmaView
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


# -- the same bytes, written out ------------------------------------------------------------
# json.dumps(indent=2) runs CPython's pure-Python encoder; these functions write the same text
# for a run, chunk by chunk, with C-encoded strings.  ``ind`` is the indentation of an object's
# members; tests/test_render_json.py holds them to _dump().

def _b(value: bool) -> str:
    return "true" if value else "false"


def _opt(value: str | None) -> str:
    return "null" if value is None else _s(value)


def _strings(items: Sequence[str], ind: str) -> str:
    if not items:
        return "[]"
    inner = ",\n  " + ind
    return "[\n  " + ind + inner.join(map(_s, items)) + "\n" + ind + "]"


def _page(pg: PageView, ind: str) -> str:
    return (f'{{\n{ind}"name": {_s(pg.name)},\n{ind}"addr": {pg.addr},\n{ind}"index": {pg.index},\n'
            f'{ind}"mapping": {_opt(pg.mapping)},\n{ind}"in_chain": {_b(pg.in_chain)},\n'
            f'{ind}"mapping_freed": {_b(pg.mapping_freed)}\n{ind[:-2]}}}')


def _vma(v: VmaView, ind: str) -> str:
    if v.pages:
        i2 = ind + "    "
        pages = ("[\n  " + ind
                 + (",\n  " + ind).join([_page(pg, i2) for pg in v.pages])
                 + "\n" + ind + "]")
    else:
        pages = "[]"
    return (f'{{\n{ind}"name": {_s(v.name)},\n{ind}"start": {v.start},\n{ind}"end": {v.end},\n'
            f'{ind}"pgoff": {v.pgoff},\n{ind}"prot": {_strings(v.prot, ind)},\n'
            f'{ind}"flags": {_strings(v.flags, ind)},\n{ind}"anon_vma": {_opt(v.anon_vma)},\n'
            f'{ind}"chain": {_strings(v.chain, ind)},\n{ind}"pages": {pages}\n{ind[:-2]}}}')


def _anon_vma(a: AnonVmaView, ind: str) -> str:
    if a.counters:
        counters = ("{\n" + ",\n".join(f"{ind}  {_s(k)}: {v}" for k, v in a.counters)
                    + "\n" + ind + "}")
    else:
        counters = "{}"
    return (f'{{\n{ind}"name": {_s(a.name)},\n{ind}"root": {_s(a.root)},\n'
            f'{ind}"parent": {_opt(a.parent)},\n{ind}"refcount": {a.refcount},\n'
            f'{ind}"counters": {counters},\n{ind}"freed": {_b(a.freed)},\n'
            f'{ind}"users": {_strings(a.users, ind)},\n{ind}"tree": {_strings(a.tree, ind)}\n'
            f'{ind[:-2]}}}')


def _finding(f: Finding, ind: str) -> str:
    return (f'{{\n{ind}"kind": {_s(f.kind)},\n{ind}"where": {_s(f.where)},\n'
            f'{ind}"detail": {_s(f.detail)},\n{ind}"step": {f.step},\n{ind}"line": {f.line},\n'
            f'{ind}"active": {_b(f.active)}\n{ind[:-2]}}}')


def _list(items: Sequence[Any], item: Callable[[Any, str], str], ind: str) -> Iterator[str]:
    """A list that is a member at ``ind``, its items written by ``item``, 512 to a chunk."""
    return _batched(items, lambda batch, inner: [item(x, inner) for x in batch], ind)


def _batched(items: Sequence[Any], texts: Callable[[Sequence[Any], str], list[str]],
             ind: str) -> Iterator[str]:
    """:func:`_list`, the items written 512 at a time by ``texts``."""
    if not items:
        yield "[]"
        return
    sep, inner = "[\n  " + ind, ind + "    "
    for lo in range(0, len(items), 512):
        yield sep + (",\n  " + ind).join(texts(items[lo:lo + 512], inner))
        sep = ",\n  " + ind
    yield "\n" + ind + "]"


class _Encoded(dict):  # type: ignore[type-arg]
    """str -> its JSON text (:func:`_s`), each encoded once."""

    def __missing__(self, text: str) -> str:
        out = self[text] = _s(text)
        return out


def _vmas(vmas: Sequence[VmaView], ind: str) -> list[str]:
    """``[_vma(v, ind) for v in vmas]``, written inline: one VMA is a dozen calls of the helpers
    above, and a large process has tens of thousands (the common one-page, one-link VMA
    written without them; prot and flags once per distinct tuple)."""
    out = []
    lists: dict[tuple[str, ...], str] = {}      # prot and flags tuples, as _strings gives them
    i2, up = ind + "    ", ind[:-2]
    # the text between the values, once per list (fewer pieces to join per VMA)
    k_name, k_start, k_end = f'{{\n{ind}"name": ', f',\n{ind}"start": ', f',\n{ind}"end": '
    k_pgoff, k_prot, k_flags = f',\n{ind}"pgoff": ', f',\n{ind}"prot": ', f',\n{ind}"flags": '
    k_av, k_chain, k_pages = f',\n{ind}"anon_vma": ', f',\n{ind}"chain": ', f',\n{ind}"pages": '
    k_end_vma = f"\n{up}}}"
    p_name, p_addr = f'[\n  {ind}{{\n{i2}"name": ', f',\n{i2}"addr": '
    p_index, p_mapping = f',\n{i2}"index": ', f',\n{i2}"mapping": '
    p_true = f',\n{i2}"in_chain": true,\n{i2}"mapping_freed": '
    p_false = f',\n{i2}"in_chain": false,\n{i2}"mapping_freed": '
    p_end = f"\n{ind}  }}\n{ind}]"
    c_one, c_end, c_sep = f"[\n  {ind}", f"\n{ind}]", f",\n  {ind}"
    # the anon_vma names, encoded once each in a batch (a VMA names its anon_vma up to three
    # times: its own, its chain's head, its page's mapping; and the parent's in its chain)
    enc = _Encoded()
    for v in vmas:
        prot = lists.get(v.prot)
        if prot is None:
            prot = lists[v.prot] = _strings(v.prot, ind)
        flags = lists.get(v.flags)
        if flags is None:
            flags = lists[v.flags] = _strings(v.flags, ind)
        chain = v.chain
        if len(chain) == 1:
            chain_text = f"{c_one}{enc[chain[0]]}{c_end}"
        elif len(chain) == 2:
            chain_text = f"{c_one}{enc[chain[0]]}{c_sep}{enc[chain[1]]}{c_end}"
        else:
            chain_text = _strings(chain, ind)
        pages = v.pages
        if len(pages) == 1:
            pg = pages[0]
            mapping = "null" if pg.mapping is None else enc[pg.mapping]
            pages_text = (
                f'{p_name}{_s(pg.name)}{p_addr}{pg.addr}{p_index}{pg.index}{p_mapping}{mapping}'
                f'{p_true if pg.in_chain else p_false}'
                f'{"true" if pg.mapping_freed else "false"}{p_end}')
        elif pages:
            pages_text = ("[\n  " + ind + (",\n  " + ind).join([_page(pg, i2) for pg in pages])
                          + "\n" + ind + "]")
        else:
            pages_text = "[]"
        av = v.anon_vma
        out.append(
            f'{k_name}{_s(v.name)}{k_start}{v.start}{k_end}{v.end}{k_pgoff}{v.pgoff}'
            f'{k_prot}{prot}{k_flags}{flags}{k_av}{"null" if av is None else enc[av]}'
            f'{k_chain}{chain_text}{k_pages}{pages_text}{k_end_vma}')
    return out


def _anon_vmas(avs: Sequence[AnonVmaView], ind: str) -> list[str]:
    """``[_anon_vma(a, ind) for a in avs]``, written inline (see :func:`_vmas`)."""
    out = []
    counters_texts: dict[tuple[tuple[str, int], ...], str] = {}
    up = ind[:-2]
    # the text between the values, once per list (see _vmas)
    k_name, k_root, k_parent = f'{{\n{ind}"name": ', f',\n{ind}"root": ', f',\n{ind}"parent": '
    k_ref, k_counters = f',\n{ind}"refcount": ', f',\n{ind}"counters": '
    k_freed, k_users, k_tree = f',\n{ind}"freed": ', f',\n{ind}"users": ', f',\n{ind}"tree": '
    k_end = f"\n{up}}}"
    c_one, c_end = f"[\n  {ind}", f"\n{ind}]"
    enc = _Encoded()        # names of roots and parents, many times each
    for a in avs:
        counters = counters_texts.get(a.counters)
        if counters is None:
            counters = counters_texts[a.counters] = (
                "{\n" + ",\n".join(f"{ind}  {_s(k)}: {v}" for k, v in a.counters) + "\n" + ind
                + "}" if a.counters else "{}")
        users, tree = a.users, a.tree
        users_text = (f"{c_one}{_s(users[0])}{c_end}" if len(users) == 1
                      else _strings(users, ind))
        tree_text = (f"{c_one}{_s(tree[0])}{c_end}" if len(tree) == 1
                     else _strings(tree, ind))
        parent = a.parent
        out.append(
            f'{k_name}{_s(a.name)}{k_root}{enc[a.root]}'
            f'{k_parent}{"null" if parent is None else enc[parent]}'
            f'{k_ref}{a.refcount}{k_counters}{counters}'
            f'{k_freed}{"true" if a.freed else "false"}'
            f'{k_users}{users_text}{k_tree}{tree_text}{k_end}')
    return out


def _topology(t: Topology, ind: str) -> Iterator[str]:
    """One snapshot as a member of a list at ``ind[:-2]``, members at ``ind``."""
    i2, i3 = ind + "  ", ind + "    "
    yield (f'{{\n{ind}"label": {_s(t.label)},\n{ind}"step": {t.step},\n'
           f'{ind}"crashed": {_b(t.crashed)},\n{ind}"processes": ')
    if t.processes:
        yield "["
        for n, p in enumerate(t.processes):
            yield (",\n" if n else "\n") + f'{i2}{{\n{i3}"name": {_s(p.name)},\n{i3}"vmas": '
            yield from _batched(p.vmas, _vmas, i3)
            yield f"\n{i2}}}"
        yield "\n" + ind + "]"
    else:
        yield "[]"
    yield f',\n{ind}"anon_vmas": '
    yield from _batched(t.anon_vmas, _anon_vmas, ind)
    yield f',\n{ind}"transient_anon_vmas": {t.transient_anon_vmas},\n{ind}"findings": '
    yield from _list(t.findings, _finding, ind)
    yield f"\n{ind[:-2]}}}"


def iter_run(replays: Sequence[Replay], opts: RenderOptions) -> Iterator[str]:
    """:func:`render_run`'s text in chunks (a large run is never one string)."""
    scenario = replays[0].scenario if replays else ""
    yield f'{{\n  "anondiff": {SCHEMA},\n  "scenario": {_s(scenario)},\n  "runs": '
    if not replays:
        yield "[]\n}\n"
        return
    yield "["
    for n, r in enumerate(replays):
        snaps = r.snapshots if opts.snapshots else r.snapshots[-1:]
        yield (",\n" if n else "\n") + (f'    {{\n      "policy": {_s(r.policy)},\n'
                                         f'      "cite": {_s(r.policy_cite)},\n      "snapshots": ')
        if snaps:
            yield "["
            for m, t in enumerate(snaps):
                yield (",\n" if m else "\n") + "        "
                yield from _topology(t, "          ")
            yield "\n      ]"
        else:
            yield "[]"
        yield "\n    }"
    yield "\n  ]\n}\n"


def render_run(replays: Sequence[Replay], opts: RenderOptions) -> Iterator[str]:
    """Chunks: a 65,000-VMA run is some 140 MB of JSON, never held as one string."""
    return iter_run(replays, opts)


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
