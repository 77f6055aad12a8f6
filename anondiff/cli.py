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
    # One command: what it allocates lives until it ends, so the cyclic garbage collector
    # would only walk it again and again (a fifth of a 65,000-VMA run); back on afterwards.
    import gc
    if gc.isenabled():
        gc.disable()
        click.get_current_context().call_on_close(gc.enable)


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--policy", "-p", "policy_names", multiple=True, metavar="POLICY",
              help="Policy to run (repeatable); default: the scenario's, else all.")
@click.option("--check", is_flag=True, help="Verify the scenario's expectations; exit 1 if one fails.")
@with_common
@_guard
def run(scenario: str, policy_names: tuple[str, ...], check: bool, fmt: str, output: str | None,
        width: int, unicode: bool, chains: bool, final_only: bool) -> None:
    """Replay SCENARIO under each policy and show the topologies."""
    from .engine import replay
    from .render import formatter
    from .scenario import load

    opts = _options(width, unicode, chains, final_only)
    sc = load(scenario)
    pols = _policies(policy_names, sc)
    replays = [replay(sc, p) for p in pols]
    text = formatter(fmt).render_run(replays, opts)
    if not check:
        _emit(text, fmt, output)
        return
    from .expect import verify
    verdicts = verify(sc.expectations, {r.policy: r.final for r in replays})
    _emit(text, fmt, output)
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
@with_common
@_guard
def compare(scenario: str, policy_names: tuple[str, str], fmt: str, output: str | None,
            width: int, unicode: bool, chains: bool, final_only: bool) -> None:
    """Show what differs between two policies on SCENARIO; exit 0 same, 1 different, 2 trouble."""
    from . import policies
    from .diff import compare as compare_replays
    from .engine import replay
    from .render import formatter
    from .scenario import load

    opts = _options(width, unicode, chains, final_only)
    pa, pb = (policies.get(n) for n in policy_names)
    sc = load(scenario)
    cmp = compare_replays(replay(sc, pa), replay(sc, pb))
    _emit(formatter(fmt).render_compare(cmp, opts), fmt, output)
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


if __name__ == "__main__":  # pragma: no cover
    main()
