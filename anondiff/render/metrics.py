"""``--metrics``: the figures of :mod:`anondiff.metrics` added to a run or a comparison, in
every format (a block after table, list and ascii output; a ``"metrics"`` key in JSON; DOT
comments), and the growth per generation as a small text plot and as an SVG image.

Pure functions of :class:`~anondiff.metrics.Metrics` and the frozen replays.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from ..metrics import Growth, Metrics, as_json, delta_lines, lines, measure
from ..topology import Replay
from . import RenderOptions

Measured = tuple[Replay, Metrics, Sequence[Growth]]

#: marks of the plotted series, in policy order
MARKS = "abcdefghijklmnopqrstuvwxyz"


def _wrap(text: str, width: int) -> list[str]:
    from .listing import wrap
    indent = text[: len(text) - len(text.lstrip())]
    return wrap(text.strip(), width, indent, "    ")


def run_blocks(measured: Sequence[Measured], width: int) -> list[str]:
    out: list[str] = []
    for rep, m, _ in measured:
        out.append("")
        out.extend(_wrap(f"== metrics: {rep.policy} on {rep.scenario} ({m.label})", width))
        for line in lines(m):
            out.extend(_wrap(line, width))
    out.extend(growth_plots(measured, width))
    return out


def add_to_run(text: Any, fmt: str, measured: Sequence[Measured], opts: RenderOptions) -> str:
    if not isinstance(text, str):          # a renderer that streams its chunks
        text = "".join(text)
    if fmt == "json":
        from . import json_
        scenario = measured[0][0].scenario if measured else ""
        runs = []
        for rep, m, growth in measured:
            run = json_.replay(rep, opts)
            run["metrics"] = as_json(m, growth)
            runs.append(run)
        return json_._dump({"anondiff": json_.SCHEMA, "scenario": scenario, "runs": runs})
    block = run_blocks(measured, opts.width)
    if fmt == "dot":
        return text + "".join(f"// {line}\n".replace("// \n", "//\n") for line in block)
    return text + "\n".join(block) + "\n"


def add_to_compare(text: Any, fmt: str, a: Measured, b: Measured, opts: RenderOptions) -> str:
    if not isinstance(text, str):
        text = "".join(text)
    (ra, ma, ga), (rb, mb, gb) = a, b
    if fmt == "json":
        doc = json.loads(text)
        doc["metrics"] = {"a": as_json(ma, ga), "b": as_json(mb, gb),
                          "deltas": [{"what": what, "a": x, "b": y}
                                     for (what, x), (_, y) in zip(ma.numbers(), mb.numbers())]}
        from . import json_
        return json_._dump(doc)
    block = [""]
    for line in delta_lines(ma, mb, ra.policy, rb.policy):
        block.extend(_wrap(line, opts.width))
    block.extend(growth_plots([a, b], opts.width))
    if fmt == "dot":
        return text + "".join(f"// {line}\n".replace("// \n", "//\n") for line in block)
    return text + "\n".join(block) + "\n"


# -- growth per generation ---------------------------------------------------------------------

FIGURES = (("anon_vmas live", "live"), ("longest anon_vma chain", "longest_chain"))


def _groups(measured: Sequence[Measured], *fields: str) -> list[tuple[str, list[str], tuple[Any, ...]]]:
    """Policies with the same series share one mark: (mark, policies, values); with several
    fields the values are tuples of them."""
    groups: list[tuple[str, list[str], tuple[Any, ...]]] = []
    for rep, _, growth in measured:
        if len(fields) == 1:
            values: tuple[Any, ...] = tuple(getattr(g, fields[0]) for g in growth)
        else:
            values = tuple(tuple(getattr(g, f) for f in fields) for g in growth)
        for mark, names, vals in groups:
            if vals == values:
                names.append(rep.policy)
                break
        else:
            groups.append((MARKS[len(groups) % len(MARKS)], [rep.policy], values))
    return groups


def growth_plots(measured: Sequence[Measured], width: int) -> list[str]:
    """A small plot per figure, one column per generation (fork), when there are two or
    more generations."""
    gens = max((len(g) for _, _, g in measured), default=0)
    if gens < 2:
        return []
    out: list[str] = []
    for title, field in FIGURES:
        out.append("")
        out.extend(_wrap(f"== growth per generation: {title} after each fork", width))
        out.extend(text_plot(_groups(measured, field), gens, width))
    return out


def text_plot(groups: list[tuple[str, list[str], tuple[int, ...]]], gens: int,
              width: int) -> list[str]:
    top = max((v for _, _, vals in groups for v in vals), default=0)
    low = min((v for _, _, vals in groups for v in vals), default=0)
    label_w = len(str(top))
    col = max(2, min(4, (width - label_w - 4) // gens))
    out = []
    crowded = False
    for y in range(top, low - 1, -1):
        cells = []
        for x in range(gens):
            marks = "".join(m for m, _, vals in groups if x < len(vals) and vals[x] == y)
            crowded |= len(marks) >= col
            cells.append(marks.ljust(col) if len(marks) < col else marks[:col - 1] + "+")
        out.append((f"{y:>{label_w}} | " + "".join(cells)).rstrip())
    out.append(" " * label_w + " +-" + "-" * (col * gens))
    axis = "".join(str(x + 1).ljust(col) for x in range(gens)).rstrip()
    out.append(" " * (label_w + 3) + axis + "  (generation)")
    for mark, names, _ in groups:
        out.extend(_wrap(f"  {mark}  {', '.join(names)}", width))
    if crowded:
        out.append("  +  and more series at that point")
    return out


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def growth_svg(measured: Sequence[Measured], scenario: str) -> str:
    """Both figures as one hand-written SVG: one panel each, one polyline per series."""
    gens = max((len(g) for _, _, g in measured), default=0)
    pw, ph, ml, mt, gap = 420.0, 200.0, 48.0, 52.0, 64.0
    fields = [f for _, f in FIGURES]
    series = _groups(measured, *fields)
    legend_rows = len(series)
    width = ml + pw + 24
    height = mt + len(FIGURES) * (ph + gap) + 18 * legend_rows + 8
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
           f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="monospace" font-size="11">',
           f'<rect width="{_f(width)}" height="{_f(height)}" fill="white"/>',
           f'<text x="{_f(ml)}" y="18" font-size="13">{_esc(scenario)}: growth per generation'
           '</text>']
    for panel, (title, field) in enumerate(FIGURES):
        groups = [(mark, names, tuple(v[panel] for v in vals)) for mark, names, vals in series]
        y0 = mt + panel * (ph + gap)
        top = max((v for _, _, vals in groups for v in vals), default=1) or 1
        sx = pw / max(gens - 1, 1)
        sy = ph / top

        def px(i: int) -> float:
            return ml + i * sx

        def py(v: int) -> float:
            return y0 + ph - v * sy
        out.append(f'<text x="{_f(ml)}" y="{_f(y0 - 8)}">{_esc(title)}</text>')
        out.append(f'<path d="M{_f(ml)},{_f(y0)} V{_f(y0 + ph)} H{_f(ml + pw)}" '
                   'fill="none" stroke="black"/>')
        step = max(1, top // 5)
        for v in range(0, top + 1, step):
            out.append(f'<text x="{_f(ml - 6)}" y="{_f(py(v) + 4)}" text-anchor="end">{v}</text>')
            out.append(f'<path d="M{_f(ml)},{_f(py(v))} H{_f(ml + pw)}" stroke="#dddddd"/>')
        for i in range(gens):
            out.append(f'<text x="{_f(px(i))}" y="{_f(y0 + ph + 14)}" '
                       f'text-anchor="middle">{i + 1}</text>')
        out.append(f'<text x="{_f(ml + pw)}" y="{_f(y0 + ph + 28)}" '
                   'text-anchor="end">generation</text>')
        for n, (mark, names, vals) in enumerate(groups):
            colour = colours[n % len(colours)]
            pts = " ".join(f"{_f(px(i))},{_f(py(v))}" for i, v in enumerate(vals))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                       'stroke-width="2"/>')
            for i, v in enumerate(vals):
                out.append(f'<circle cx="{_f(px(i))}" cy="{_f(py(v))}" r="3" fill="{colour}"/>')
    ly = mt + len(FIGURES) * (ph + gap) - gap + 40
    for n, (mark, names, _) in enumerate(series):
        colour = colours[n % len(colours)]
        y = ly + 18 * n
        out.append(f'<path d="M{_f(ml)},{_f(y - 4)} h24" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{_f(ml + 30)}" y="{_f(y)}">{_esc(", ".join(names))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def measured(scenario: Any, policies: Sequence[Any]) -> list[Measured]:
    """Replay each policy with counts and growth, measure its final topology."""
    from ..metrics import replay_measured
    out: list[Measured] = []
    for p in policies:
        rep, counts, growth = replay_measured(scenario, p)
        out.append((rep, measure(rep.final, counts), growth))
    return out
