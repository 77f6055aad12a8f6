"""``--format table`` (the default): per policy and snapshot, a table of VMAs per process, a
table of anon_vmas, then the findings.  Plain ASCII, no trailing spaces."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

from ..topology import AnonVmaView, Finding, Replay, Topology
from . import RenderOptions

if TYPE_CHECKING:  # the differ is not needed to draw a run
    from ..diff import Comparison


def _table(rows: list[list[object]], headers: list[str]) -> str:
    return "\n".join(_table_lines(rows, headers))


def _table_lines(rows: list[list[object]], headers: list[str]) -> list[str]:
    """What ``tabulate(rows, headers, tablefmt="simple", disable_numparse=True)`` prints, with
    trailing spaces stripped: every column left-aligned, as wide as its widest cell or its
    header plus two, columns two spaces apart, the header underlined with dashes.  Written out
    because tabulate's type inference of every cell costs more than the whole table here."""
    cells = [["" if c is None else str(c).strip() for c in row] for row in rows]
    widths = [len(h) + 2 for h in headers]
    for i, column in enumerate(zip(*cells)):
        widest = max(map(len, column))
        if widest > widths[i]:
            widths[i] = widest
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    row_format = "  ".join(f"{{:<{w}}}" for w in widths)     # str.ljust, in one C call a row
    lines += [row_format.format(*row).rstrip() for row in cells]
    if not lines[-1]:
        lines.pop()     # a last row with nothing in it ends the text: splitlines() dropped it
    return lines


def _some(items: Sequence[str], most: int = 8) -> str:
    """A cell that stays narrow: tabulate pads every row to the widest cell of a column."""
    if not items:
        return "-"
    more = f" (+{len(items) - most} more)" if len(items) > most else ""
    return " ".join(items[:most]) + more


def _counters(a: AnonVmaView) -> str:
    return " ".join(f"{k}={v}" for k, v in a.counters) or "-"


def finding_line(f: Finding) -> str:
    where = f"step {f.step}" + (f" (line {f.line})" if f.line else "") if f.step else "layout"
    # invariant findings ("I1".."I7") may stop holding later; kernel events are one-off
    state = " (cleared)" if f.kind.startswith("I") and not f.active else ""
    return f"  {f.kind:<10} {f.where}: {f.detail} [{where}]{state}"


def topology(t: Topology) -> str:
    return "\n".join(topology_lines(t))


def topology_lines(t: Topology) -> Iterator[str]:
    """The lines of one snapshot, a process at a time."""
    parents = {a.name: a for a in t.anon_vmas}
    for p in t.processes:
        rows = []
        for v in p.vmas:
            av = parents.get(v.anon_vma) if v.anon_vma else None
            rows.append([
                v.name, f"{v.start:#x}-{v.end:#x}",
                "".join(c[0] for c in v.prot) or "-",
                ",".join(v.flags) or "-",
                v.anon_vma or "-",
                (av.parent or "-") if av else "-",
                av.root if av else "-",
                " ".join(v.chain) or "-",
                " ".join(f"{pg.name}>{pg.mapping}{'' if pg.in_chain else '!'}" for pg in v.pages[:4])
                + (f" +{len(v.pages) - 4}" if len(v.pages) > 4 else ""),
            ])
        yield f"process {p.name}"
        if rows:
            yield from _table_lines(rows, ["vma", "range", "prot", "flags", "anon_vma", "parent",
                                           "root", "chain (head first)", "pages"])
        else:
            yield "  (no VMAs)"
        yield ""
    if t.anon_vmas:
        rows = [[a.name, a.parent or "-", a.root, _counters(a), str(a.refcount),
                 _some(a.users), "freed" if a.freed else "live"] for a in t.anon_vmas]
        yield from _table_lines(rows, ["anon_vma", "parent", "root", "counters", "refcount",
                                       "used by", "state"])
        yield ""
    if t.findings:
        yield "findings:"
        yield from (finding_line(f) for f in t.findings)
    else:
        yield "findings: none"
    if t.crashed:
        yield "the replay stopped: the kernel code of this version crashes here"


def heading(r: Replay) -> str:
    return f"== {r.policy}: {r.policy_cite}"


#: lines per chunk
CHUNK_LINES = 4096


def render_run(replays: Sequence[Replay], opts: RenderOptions) -> Iterator[str]:
    """The text in chunks of at most :data:`CHUNK_LINES` lines (never one string)."""
    def lines() -> Iterator[str]:
        for r in replays:
            yield heading(r)
            snaps = r.snapshots if opts.snapshots else r.snapshots[-1:]
            for t in snaps:
                yield f"-- {r.scenario}, {t.label} (after step {t.step})"
                yield from topology_lines(t)
                yield ""
    # what "\n".join(lines).rstrip("\n") + "\n" gives: blank lines are held back until a
    # line with text follows them
    batch: list[str] = []
    blanks = 0
    for line in lines():
        if not line:
            blanks += 1
            continue
        if blanks:
            batch += [""] * blanks
            blanks = 0
        batch.append(line)
        if len(batch) >= CHUNK_LINES:
            yield "\n".join(batch) + "\n"
            batch = []
    yield "\n".join(batch) + "\n"


def render_compare(cmp: Comparison, opts: RenderOptions) -> str:
    a, b = cmp.a.policy, cmp.b.policy
    out = [f"--- {a}: {cmp.a.policy_cite}", f"+++ {b}: {cmp.b.policy_cite}"]
    for d in cmp.snapshots:
        if not opts.snapshots and d.label != "final":
            continue
        out.append(f"@@ {cmp.a.scenario}, {d.label} @@")
        if d.same:
            out.append("  same")
            continue
        if d.vmas:
            out.append(_table([[v.ref, v.field, v.a, v.b] for v in d.vmas], ["vma", "what", a, b]))
        if d.totals:
            out.append(_table([[t.what, str(t.a), str(t.b)] for t in d.totals], ["total", a, b]))
        for f in d.findings_only_a:
            out.append(f"  only {a}: {f}")
        for f in d.findings_only_b:
            out.append(f"  only {b}: {f}")
    out.append("same" if cmp.same else "different")
    return "\n".join(out) + "\n"
