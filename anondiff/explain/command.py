"""``anondiff explain``: the click command.  The work is in :mod:`anondiff.explain.core`,
imported only when the command runs (start-up stays fast)."""
from __future__ import annotations

import os
import sys

import click

from ..cli import (EXIT_DIFFERENT, EXIT_SAME, IMAGE_SUFFIXES, OUTPUT_WRITES, SUFFIX_FORMATS,
                   Trouble, _Command, _complete_policy, _guard, _load, _write)


class _ExplainCommand(_Command):
    output_help = (OUTPUT_WRITES + "  Without --format the format follows FILE's suffix: .json "
                   "json, any other (.txt) text; explain draws no image (.svg .png .pdf) and "
                   "writes no DOT (.dot .gv).")


def _format(fmt: str | None, output: str | None) -> str:
    """``-o ex.json`` means ``--format json``, any other suffix text, as ``run -o`` chooses
    (anondiff.cli.SUFFIX_FORMATS); a suffix asking for what explain cannot write is an error:
    an image always, DOT without --format (an explicit --format wins, as for run)."""
    suffix = os.path.splitext(output)[1].lower() if output not in (None, "-") else ""
    if suffix in IMAGE_SUFFIXES or (fmt is None and SUFFIX_FORMATS.get(suffix) == "dot"):
        what = "an image" if suffix in IMAGE_SUFFIXES else "DOT"
        raise Trouble(f"{output}: explain writes text or json, not {what} "
                      "(-o FILE.txt, -o FILE.json)")
    if fmt is not None:
        return fmt
    return "json" if SUFFIX_FORMATS.get(suffix) == "json" else "text"


@click.command("explain", cls=_ExplainCommand)
@click.argument("scenario", type=click.Path(allow_dash=True))
@click.option("--policy", "-p", "policy_names", multiple=True, required=True, metavar="POLICY",
              shell_complete=_complete_policy,
              help="The policy whose decisions to explain; given twice: for each VMA that "
                   "differs, the first decision where the two parted.")
@click.option("--vma", "vma", default=None, metavar="NAME",
              help="Only the decisions about this VMA (NAME, or PROC/NAME).")
@click.option("--step", "step_no", type=int, default=None, metavar="N",
              help="Only the decisions of step N (0: the starting layout).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default=None,
              help="Output format (default: from -o's suffix, else text; json: every call, "
                   "nested).")
@click.option("--width", type=int, default=72, show_default=True, help="Columns of text.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write to FILE ('-': standard output; .json: json; any other: text).")
@_guard
def explain_command(scenario: str, policy_names: tuple[str, ...], vma: str | None,
                    step_no: int | None, fmt: str | None, width: int,
                    output: str | None) -> None:
    """Why each VMA got its anon_vma: every policy decision of SCENARIO ('-': standard input),
    in order, with the kernel function, the rule's condition, and the policy and commit that
    decided it."""
    from .. import policies
    from .core import explain, partings_json, render, render_partings, to_json

    if width < 40:
        raise Trouble(f"--width {width}: must be at least 40")
    fmt = _format(fmt, output)
    if len(policy_names) > 2:
        raise Trouble(f"--policy given {len(policy_names)} times: one policy to explain, "
                      "or two to see where they parted")
    pols = policies.get_each(policy_names)
    sc = _load(scenario)
    if step_no is not None and not 0 <= step_no <= len(sc.steps):
        raise Trouble(f"--step {step_no}: {sc.path} has steps 1..{len(sc.steps)} "
                      "(0: the starting layout)")
    expls = [explain(sc, p) for p in pols]
    if vma is not None and not any(_known(e, vma) for e in expls):
        raise Trouble(f"--vma {vma}: no VMA of that name in {sc.path} under "
                      f"{' or '.join(policy_names)}")
    if len(expls) == 1:
        if fmt == "json":
            _write(_dump(to_json(expls[0], vma, step_no)), output)
        else:
            _write(render(expls[0], width, vma, step_no), output)
        return
    from .core import differing_vmas
    if fmt == "json":
        _write(_dump(partings_json(expls[0], expls[1], vma)), output)
    else:
        _write(render_partings(expls[0], expls[1], width, vma), output)
    sys.exit(EXIT_DIFFERENT if differing_vmas(expls[0].replay, expls[1].replay) else EXIT_SAME)


def _known(expl, vma: str) -> bool:  # type: ignore[no-untyped-def]
    from .core import _matches
    refs = {f"{p.name}/{v.name}" for t in expl.replay.snapshots for p in t.processes
            for v in p.vmas}
    refs |= {r for c in expl.calls() for r in c.vmas}
    return any(_matches(r, vma) for r in refs)


def _dump(doc: dict) -> str:  # type: ignore[type-arg]
    import json
    return json.dumps({"anondiff": 1, **doc}, indent=2, ensure_ascii=True) + "\n"
