"""The command line: parse, call the core, echo, choose the exit code (like diff(1): 0 same,
1 different, 2 trouble).  No kernel logic here."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Sequence

import click

from .errors import AnondiffError

if TYPE_CHECKING:
    from .output import Content

FORMATS = ["table", "json", "ascii", "list", "dot"]
IMAGE_SUFFIXES = (".svg", ".png", ".pdf")

EXIT_SAME, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2


class Trouble(click.ClickException):
    """Every error the user sees: one line on stderr, exit status 2."""

    exit_code = EXIT_TROUBLE

    def show(self, file=None) -> None:  # type: ignore[no-untyped-def,override]
        click.echo(f"anondiff: {self.message}", err=True)


def _write(text: "Content", output: str | None) -> None:
    """Write a rendered output (a str, or an iterable of str chunks) to ``output`` (None or
    ``-``: standard output).  A regular file is replaced atomically, anything else (/dev/null, a
    FIFO, a terminal) is written into; see :mod:`anondiff.output`."""
    from .output import write
    write(text, output)


def _emit(text: "Content", fmt: str, output: str | None) -> None:
    if output is not None and output.lower().endswith(IMAGE_SUFFIXES):
        if fmt != "dot":
            raise Trouble(f"{output}: images are drawn from --format dot")
        from .render.dot import write_image
        for warning in write_image(text if isinstance(text, str) else "".join(text), output):
            click.echo(f"anondiff: dot: {warning}", err=True)
        return
    if output is not None and os.path.splitext(output)[1] and fmt == "dot" \
            and not output.lower().endswith((".dot", ".gv")):
        raise Trouble(f"unknown output format: {os.path.splitext(output)[1]!r} "
                      f"(must be one of ['.dot', '.gv', '.pdf', '.png', '.svg'])")
    _write(text, output)


def _options(width: int, unicode: bool, chains: bool, final_only: bool):  # type: ignore[no-untyped-def]
    from .render import RenderOptions
    if width < 40:
        raise Trouble(f"--width {width}: must be at least 40")
    return RenderOptions(width=width, unicode=unicode, chains=chains, snapshots=not final_only)


def _policies(names: Sequence[str], scenario) -> list:  # type: ignore[no-untyped-def]
    from . import policies
    if names:
        return [policies.get(n) for n in names]
    if scenario.policies:
        try:
            return [policies.get(n) for n in scenario.policies]
        except AnondiffError as e:
            raise Trouble(f"{scenario.path}: policies: {e}") from None
    return [cls() for cls in policies.POLICIES]


def _guard(fn):  # type: ignore[no-untyped-def]
    """Core errors become one line and exit 2; so does anything unexpected, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except AnondiffError as e:
            raise Trouble(str(e)) from None
        except RecursionError:
            raise Trouble("internal error: recursion too deep") from None
        except Exception as e:  # pragma: no cover - a bug; still one line, still exit 2
            if os.environ.get("ANONDIFF_DEBUG"):
                raise
            raise Trouble(f"internal error: {type(e).__name__}: {e} "
                          "(set ANONDIFF_DEBUG=1 for the traceback)") from None
    return wrapper


common = [
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                 help="Output format."),
    click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
                 help="Write to this file (.svg/.png/.pdf: draw --format dot with Graphviz)."),
    click.option("--width", type=int, default=72, show_default=True,
                 help="Columns for ascii and list output."),
    click.option("--unicode", is_flag=True, help="Box-drawing characters in ascii output."),
    click.option("--chains", is_flag=True, help="DOT: a dotted edge for every chain link."),
    click.option("--final-only", is_flag=True, help="Only the final state, not the snapshots."),
]


def with_common(fn):  # type: ignore[no-untyped-def]
    for opt in reversed(common):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="anondiff")
def main() -> None:
    """Simulate and diff Linux anon_vma topologies across kernel and patch versions."""


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--policy", "-p", "policy_names", multiple=True, metavar="POLICY",
              help="Policy to run (repeatable); default: the scenario's, else all.")
@click.option("--check", is_flag=True, help="Verify the scenario's expectations; exit 1 if one fails.")
@click.option("--metrics", "show_metrics", is_flag=True,
              help="Also measure anon_vmas, chains, depth, root sharing and rmap walk cost.")
@with_common
@_guard
def run(scenario: str, policy_names: tuple[str, ...], check: bool, fmt: str, output: str | None,
        width: int, unicode: bool, chains: bool, final_only: bool,
        show_metrics: bool = False) -> None:
    """Replay SCENARIO under each policy and show the topologies."""
    from .engine import replay
    from .render import formatter
    from .scenario import load

    opts = _options(width, unicode, chains, final_only)
    sc = load(scenario)
    pols = _policies(policy_names, sc)
    if show_metrics:
        from .render import metrics as rmetrics
        measured = rmetrics.measured(sc, pols)
        replays = [m[0] for m in measured]
    else:
        replays = [replay(sc, p) for p in pols]
    text = formatter(fmt).render_run(replays, opts)
    growth = None      # --metrics with an image: the growth plot beside it, written after it
    if show_metrics:
        text = rmetrics.add_to_run(text, fmt, measured, opts)
        if output is not None and output.lower().endswith(IMAGE_SUFFIXES) \
                and any(len(m[2]) > 1 for m in measured):
            growth = rmetrics.growth_svg(measured, sc.name)
    if not check:
        _emit(text, fmt, output)
        if growth is not None:
            _write(growth, os.path.splitext(output)[0] + "-growth.svg")  # type: ignore[arg-type]
        return
    from .expect import verify
    verdicts = verify(sc.expectations, {r.policy: r.final for r in replays})
    _emit(text, fmt, output)
    if growth is not None:
        _write(growth, os.path.splitext(output)[0] + "-growth.svg")  # type: ignore[arg-type]
    failed = 0
    for v in verdicts:
        failed += not v.ok
        click.echo(f"{sc.path}:{v.expectation.line}: {'ok' if v.ok else 'FAIL'} "
                   f"{v.expectation.kind} under {v.policy}: {v.message}", err=True)
    if not verdicts:
        click.echo(f"{sc.path}: no expectations for the policies run", err=True)
    if failed:
        sys.exit(EXIT_DIFFERENT)


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--policy", "-p", "policy_names", nargs=2, required=True, metavar="A B",
              help="The two policies to compare.")
@click.option("--metrics", "show_metrics", is_flag=True,
              help="Also the metrics of both, with deltas and percentages.")
@click.option("--explain", "explain_parting", is_flag=True,
              help="Also, for each VMA that differs, the first decision where the two parted.")
@with_common
@_guard
def compare(scenario: str, policy_names: tuple[str, str], fmt: str, output: str | None,
            width: int, unicode: bool, chains: bool, final_only: bool,
            show_metrics: bool = False, explain_parting: bool = False) -> None:
    """Show what differs between two policies on SCENARIO; exit 0 same, 1 different, 2 trouble."""
    from . import policies
    from .diff import compare as compare_replays
    from .engine import replay
    from .render import formatter
    from .scenario import load

    opts = _options(width, unicode, chains, final_only)
    pa, pb = (policies.get(n) for n in policy_names)
    sc = load(scenario)
    if explain_parting and fmt in ("json", "dot"):
        raise Trouble(f"--explain: with --format table, list or ascii, not {fmt}")
    if show_metrics:
        from .render import metrics as rmetrics
        ma, mb = rmetrics.measured(sc, [pa, pb])
        cmp = compare_replays(ma[0], mb[0])
    else:
        cmp = compare_replays(replay(sc, pa), replay(sc, pb))
    text = formatter(fmt).render_compare(cmp, opts)
    if show_metrics:
        text = rmetrics.add_to_compare(text, fmt, ma, mb, opts)
    if explain_parting:
        from .explain.core import explain, render_partings
        text = (text if isinstance(text, str) else "".join(text)) + "\n" + render_partings(
            explain(sc, pa), explain(sc, pb), width)
    _emit(text, fmt, output)
    sys.exit(EXIT_SAME if cmp.same else EXIT_DIFFERENT)


@main.command("policies")
@_guard
def list_policies() -> None:
    """List the policies: versions, commits, aliases and the rule at fork."""
    from . import policies

    for cls in policies.POLICIES + policies.ERA_VARIANTS:
        if cls is policies.ERA_VARIANTS[0]:
            click.echo("\nera variants (the same decisions, other surroundings; not run by default):")
        aliases = f" (aliases: {', '.join(cls.aliases)})" if cls.aliases else ""
        click.echo(f"{cls.name}{aliases}")
        click.echo(f"    versions: {cls.versions}")
        click.echo(f"    {cls.cite}")
        click.echo(f"    at fork:  {cls.rule}")


from .explain.command import explain_command  # noqa: E402  (it needs the helpers above)

main.add_command(explain_command)


if __name__ == "__main__":  # pragma: no cover
    main()
