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
#: ``-o FILE`` without ``--format``: the format follows FILE's suffix (any other: table)
SUFFIX_FORMATS = {".svg": "dot", ".png": "dot", ".pdf": "dot", ".dot": "dot", ".gv": "dot",
                  ".json": "json"}

EXIT_SAME, EXIT_DIFFERENT, EXIT_TROUBLE = 0, 1, 2
EXIT_INTERRUPTED = 130      # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 141      # 128 + SIGPIPE: the reader of standard output went away (quiet)

#: set to a list by ``anondiff.__main__`` when the process ends right after the command
#: (:func:`anondiff.__main__.exit_now`): what a command made is put here and left for the
#: kernel to free with the process, instead of freed object by object when the command
#: returns (a tenth of a second after a 65,000-VMA run); None (a test, an embedding) frees it
LEFT_FOR_EXIT: list[object] | None = None

#: what ``-p`` accepts (one place, so that a new kind of policy spec is one line here)
POLICY_FORMS = [
    "a policy name ({names})",
    "an alias or a kernel version inside a documented range (v4.19, v6.8.3, v5.15.100: "
    "'anondiff policies' lists the ranges; a version says which policy it resolved to)",
    "the path of a .py file defining one Policy subclass that sets its own name",
    "{tree}",
]

EXIT_CODES = {
    "run": "0 done (with --check: every expectation holds), 1 an expectation failed, "
           "2 trouble (one line on stderr), 130 interrupted, 141 standard output's reader "
           "went away",
    "compare": "0 same, 1 different (like diff(1)), 2 trouble (one line on stderr), "
               "130 interrupted, 141 standard output's reader went away",
}

OUTPUT_WRITES = ("Output: -o FILE replaces a regular FILE atomically (its mode kept; a new "
                 "file follows the umask) and writes into anything else (a device, a FIFO, a "
                 "symlink's target); -o - is standard output.")
OUTPUT_HELP = (OUTPUT_WRITES + "  Without --format the format follows FILE's suffix: .svg .png "
               ".pdf an image drawn by Graphviz dot, .dot .gv DOT, .json json, any other (.txt) "
               "table.")


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
    if output is not None and output != "-" and os.path.splitext(output)[1] and fmt == "dot" \
            and not output.lower().endswith((".dot", ".gv")):
        raise Trouble(f"unknown output format: {os.path.splitext(output)[1]!r} "
                      f"(must be one of ['.dot', '.gv', '.pdf', '.png', '.svg'])")
    _write(text, output)


def _infer_format(fmt: str, given: bool, output: str | None) -> str:
    """``-o chart.svg`` means ``--format dot``; an explicit --format wins except for images."""
    if output is None or output == "-":
        return fmt
    suffix = os.path.splitext(output)[1].lower()
    if not given:
        return SUFFIX_FORMATS.get(suffix, fmt)
    if suffix in IMAGE_SUFFIXES and fmt != "dot":
        raise Trouble(f"{output}: images are drawn from --format dot, not {fmt} "
                      "(leave --format out: the suffix chooses it)")
    return fmt


def _options(width: int, unicode: bool, chains: bool, final_only: bool):  # type: ignore[no-untyped-def]
    from .render import RenderOptions
    if width < 40:
        raise Trouble(f"--width {width}: must be at least 40")
    return RenderOptions(width=width, unicode=unicode, chains=chains, snapshots=not final_only)


def _only_snapshot(replays: list, label: str | None) -> list:  # type: ignore[type-arg]
    """``--snapshot LABEL``: each replay cut down to that one snapshot."""
    if label is None:
        return replays
    out = []
    for r in replays:
        found = [t for t in r.snapshots if t.label == label]
        if not found:
            have = ", ".join(dict.fromkeys(t.label for t in r.snapshots))
            raise Trouble(f"--snapshot {label}: no such snapshot under {r.policy} "
                          f"(there are: {have})")
        out.append(r._replace(snapshots=(found[-1],)))
    return out


def _load(scenario: str):  # type: ignore[no-untyped-def]
    """The scenario at *scenario*; ``-`` reads standard input."""
    from .scenario import load, loads
    if scenario != "-":
        return load(scenario)
    from .errors import ScenarioError
    if sys.stdin is None:
        raise ScenarioError("<stdin>", None, "cannot read: standard input is closed")
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ScenarioError("<stdin>", data.count(b"\n", 0, e.start) + 1,
                                f"not valid UTF-8 (byte {data[e.start]:#04x})") from None
    return loads(data, "<stdin>")


def _say_resolved(names: Sequence[str]) -> None:
    from . import policies
    for name in names:
        note = policies.explain(name)
        if note is not None:
            click.echo(f"anondiff: {note}", err=True)


def _policies(names: Sequence[str], scenario) -> list:  # type: ignore[no-untyped-def]
    from . import policies
    if names:
        pols = policies.get_each(names)
        _say_resolved(names)
        return pols
    if scenario.policies:
        base = os.path.dirname(scenario.path) if scenario.path != "<stdin>" else ""
        pols, paths = [], []
        for i, name in enumerate(scenario.policies):
            # a relative .py, tree or patch in the scenario is relative to the scenario, like
            # an #include
            path = policies.in_folder(name, base)
            try:
                pols.append(policies.get(path))
                paths.append(path)
            except AnondiffError as e:
                line = _policy_line(scenario.path, i)
                where = f"{scenario.path}:{line}" if line else scenario.path
                message = str(e)
                if message.startswith(path + ":") and path != name:
                    message = name + message[len(path):]
                raise Trouble(f"{where}: policies[{i}]: {message}") from None
        policies.distinct_names(pols, paths)
        _say_resolved(scenario.policies)
        return pols
    return [cls() for cls in policies.POLICIES]


def _policy_line(path: str, index: int) -> int | None:
    """The line of the *index*-th entry of a scenario's top-level ``policies:`` list."""
    import yaml
    try:
        with open(path, encoding="utf-8-sig") as f:
            root = yaml.compose(f, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value == "policies" and isinstance(value, yaml.SequenceNode) \
                and index < len(value.value):
            return value.value[index].start_mark.line + 1
    return None


def _quiet_exit(code: int) -> "click.exceptions.Exit":
    """Standard output is gone: point it at /dev/null so that the interpreter's last flush is
    silent, and leave with *code*."""
    from .output import _silence
    _silence(sys.stdout)
    return click.exceptions.Exit(code)


def _guard(fn):  # type: ignore[no-untyped-def]
    """Core errors become one line and exit 2; so does anything unexpected, never a traceback.
    An exception raised by a user's policy file names that file and line."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        from .output import BrokenPipe
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (BrokenPipe, BrokenPipeError):
            raise _quiet_exit(EXIT_BROKEN_PIPE) from None
        except AnondiffError as e:
            raise Trouble(str(e)) from None
        except (Exception, SystemExit) as e:
            user = _user_policy_error(e)
            if user is not None:
                raise Trouble(user) from None
            if isinstance(e, SystemExit):
                raise
            if os.environ.get("ANONDIFF_DEBUG"):
                raise
            if isinstance(e, RecursionError):
                raise Trouble("internal error: recursion too deep") from None
            raise Trouble(f"internal error: {type(e).__name__}: {e} "  # pragma: no cover
                          "(set ANONDIFF_DEBUG=1 for the traceback)") from None
    return wrapper


def _user_policy_error(e: BaseException) -> str | None:
    policies = sys.modules.get(f"{__package__}.policies")
    if policies is None or not policies.USER_FILES or policies.user_frame(e) is None:
        return None
    return policies.user_error(e)


def _complete_policy(ctx: click.Context, param: click.Parameter, incomplete: str):  # type: ignore[no-untyped-def]
    from click.shell_completion import CompletionItem

    from . import policies
    out = []
    for cls in policies.POLICIES + policies.ERA_VARIANTS:
        for name in (cls.name,) + cls.aliases:
            if name.startswith(incomplete):
                out.append(CompletionItem(name, help=cls.versions))
    return out or [CompletionItem(incomplete, type="file")]


common = [
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                 help="Output format (default: from -o's suffix, else table)."),
    click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default=None,
                 metavar="FILE",
                 help="Write to FILE ('-': standard output; .svg/.png/.pdf: an image drawn by "
                      "Graphviz dot; .dot/.gv: DOT; .json: json)."),
    click.option("--width", type=int, default=72, show_default=True,
                 help="Columns for ascii and list output."),
    click.option("--unicode", is_flag=True, help="Box-drawing characters in ascii output."),
    click.option("--chains", is_flag=True, help="DOT: a dotted edge for every chain link."),
    click.option("--final-only", is_flag=True, help="Only the final state, not the snapshots."),
]
snapshot_option = click.option(
    "--snapshot", "snapshot", metavar="LABEL", default=None,
    help="Only the snapshot LABEL (a 'snapshot' step's label, or 'final'): one image each.")


def with_common(fn):  # type: ignore[no-untyped-def]
    """The output options of every command.  The format's inference from ``-o`` is done here,
    so a command's function keeps the signature (fmt, output, width, unicode, chains,
    final_only)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        ctx = click.get_current_context()
        if "fmt" in kwargs:
            given = ctx.get_parameter_source("fmt") is not click.core.ParameterSource.DEFAULT
            kwargs["fmt"] = _infer_format(kwargs["fmt"], given, kwargs.get("output"))
        return fn(*args, **kwargs)

    for opt in reversed(common):
        wrapper = opt(wrapper)
    return wrapper


def _on_signal(signum: int, frame: object) -> None:
    from .output import Terminated
    raise Terminated(signum)


class _Main(click.Group):
    """Ctrl-C exits 130 (not click's "Aborted!" and 1, which would read as "different");
    SIGTERM and SIGHUP unwind (temporary files removed) and exit 128 + the signal.  The
    commands of :data:`LAZY_COMMANDS` are imported when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | LAZY_COMMANDS.keys())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            import importlib
            module, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        import signal

        from .output import Terminated
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                if signal.getsignal(sig) == signal.SIG_DFL:
                    previous[sig] = signal.signal(sig, _on_signal)
            except ValueError:      # not the main thread
                pass
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Terminated as t:
            raise click.exceptions.Exit(128 + t.signum) from None
        except BrokenPipeError:
            raise _quiet_exit(EXIT_BROKEN_PIPE) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _Command(click.Command):
    """A command whose help ends with what -p accepts (the policy names are looked up only when
    the help is shown), how -o writes (``output_help``, if any) and the exit codes."""

    output_help: str | None = OUTPUT_HELP

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from . import policies
        forms = [f.format(names=", ".join(policies.names()), tree=policies.TREE_FORM)
                 for f in POLICY_FORMS]
        with formatter.section("POLICY is one of"):
            for form in forms:
                formatter.write_text("- " + form)
        if self.output_help is not None:
            formatter.write_paragraph()
            formatter.write_text(self.output_help)
        if self.name in EXIT_CODES:
            formatter.write_paragraph()
            formatter.write_text(f"Exit status: {EXIT_CODES[self.name]}.")
        super().format_epilog(ctx, formatter)


class _PolicyCommand(_Command):
    """A command whose help ends with what -p accepts (and its own word on output)."""

    output_help = None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Shell completion (commands, options, policy names): add "
                    "'eval \"$(_ANONDIFF_COMPLETE=bash_source anondiff)\"' to ~/.bashrc, or "
                    "'eval \"$(_ANONDIFF_COMPLETE=zsh_source anondiff)\"' to ~/.zshrc; fish: "
                    "'_ANONDIFF_COMPLETE=fish_source anondiff | source'.")
@click.version_option(package_name="anondiff")
def main() -> None:
    """Simulate and diff Linux anon_vma topologies across kernel and patch versions."""
    # One command: what it allocates lives until it ends, so the cyclic garbage collector
    # would only walk it again and again (a fifth of a 65,000-VMA run); back on afterwards,
    # unless the process ends with the command (LEFT_FOR_EXIT): switched on, it would collect
    # its youngest generation at the next allocation, and that generation is everything the
    # command allocated (0.15 s after a 65,000-VMA run, for nothing)
    import gc
    if gc.isenabled():
        gc.disable()
        if LEFT_FOR_EXIT is None:
            click.get_current_context().call_on_close(gc.enable)


@main.command(cls=_Command)
@click.argument("scenario", type=click.Path(allow_dash=True))
@click.option("--policy", "-p", "policy_names", multiple=True, metavar="POLICY",
              shell_complete=_complete_policy,
              help="Policy to run (repeatable); default: the scenario's 'policies:', else all.")
@click.option("--check", is_flag=True,
              help="Verify the scenario's expectations: a line each on stderr and a summary "
                   "line; exit 1 if one fails.")
@click.option("--quiet", "-q", is_flag=True,
              help="With --check: no topologies, only the failed expectations and the summary.")
@click.option("--metrics", "show_metrics", is_flag=True,
              help="Also measure anon_vmas, chains, depth, root sharing and rmap walk cost.")
@snapshot_option
@with_common
@_guard
def run(scenario: str, policy_names: tuple[str, ...], check: bool, quiet: bool,
        snapshot: str | None, fmt: str,
        output: str | None, width: int, unicode: bool, chains: bool, final_only: bool,
        show_metrics: bool = False) -> None:
    """Replay SCENARIO ('-': standard input) under each policy and show the topologies."""
    from .engine import replay
    from .render import formatter

    if quiet and not check:
        raise Trouble("--quiet goes with --check (it leaves out the topologies and the ok lines)")
    opts = _options(width, unicode, chains, final_only)
    sc = _load(scenario)
    pols = _policies(policy_names, sc)
    if show_metrics:
        from .render import metrics as rmetrics
        measured = rmetrics.measured(sc, pols)
        replays = [m[0] for m in measured]
    else:
        replays = [replay(sc, p) for p in pols]
    shown = _only_snapshot(replays, snapshot)
    if LEFT_FOR_EXIT is not None:
        LEFT_FOR_EXIT.append((sc, replays, shown))
    if not quiet:
        text = formatter(fmt).render_run(shown, opts)
        if show_metrics:
            text = rmetrics.add_to_run(text, fmt, measured, opts)
        _emit(text, fmt, output)
        if show_metrics and output is not None and output.lower().endswith(IMAGE_SUFFIXES) \
                and any(len(m[2]) > 1 for m in measured):
            # the growth per generation, beside the diagram (written after it)
            _write(rmetrics.growth_svg(measured, sc.name), os.path.splitext(output)[0] + "-growth.svg")
    if not check:
        return
    from .expect import summary, verify
    verdicts = verify(sc.expectations, {r.policy: r.final for r in replays})
    for v in verdicts:
        if not (quiet and v.ok):
            click.echo(f"{sc.path}:{v.expectation.line}: {'ok' if v.ok else 'FAIL'} "
                       f"{v.expectation.kind} under {v.policy}: {v.message}", err=True)
    click.echo(summary(sc.path, verdicts, [r.policy for r in replays]), err=True)
    if any(not v.ok for v in verdicts):
        sys.exit(EXIT_DIFFERENT)


def _compare_args(policy_names: Sequence[str], args: Sequence[str]) -> tuple[str, str, str]:
    """``-p A -p B SCENARIO`` (or the older ``-p A B SCENARIO``) -> (A, B, SCENARIO)."""
    usage = "usage: anondiff compare -p A -p B SCENARIO"
    pols, rest = list(policy_names), list(args)
    if len(pols) == 1 and len(rest) == 2:
        # -p A B SCENARIO; also SCENARIO -p A B: the scenario is the one that is a file
        is_scenario = [a == "-" or (os.path.isfile(a) and not a.endswith(".py")) for a in rest]
        if is_scenario == [True, False]:
            rest.reverse()
        pols.append(rest.pop(0))
    if len(pols) > 2:
        raise Trouble(f"compare takes two policies, got {len(pols)} "
                      f"({', '.join(pols)}): {usage}")
    if len(pols) < 2:
        got = f"only {pols[0]!r}" if pols else "none"
        if len(rest) == 2:
            got += f" (and {rest[0]!r}: a second -p?)"
        raise Trouble(f"compare needs two policies, got {got}: {usage}")
    if not rest:
        raise Trouble(f"compare needs a SCENARIO after the two policies: {usage}")
    if len(rest) > 1:
        raise Trouble(f"compare takes one SCENARIO, got {len(rest)} ({', '.join(rest)}): {usage}")
    return pols[0], pols[1], rest[0]


@main.command(cls=_Command, options_metavar="-p A -p B [OPTIONS]")
@click.argument("args", nargs=-1, metavar="SCENARIO")
@click.option("--policy", "-p", "policy_names", multiple=True, metavar="POLICY",
              shell_complete=_complete_policy,
              help="The two policies to compare: -p A -p B (the older -p A B works too).")
@click.option("--metrics", "show_metrics", is_flag=True,
              help="Also the metrics of both, with deltas and percentages.")
@click.option("--explain", "explain_parting", is_flag=True,
              help="Also, for each VMA that differs, the first decision where the two parted.")
@snapshot_option
@with_common
@_guard
def compare(args: tuple[str, ...], policy_names: tuple[str, ...], snapshot: str | None,
            fmt: str, output: str | None,
            width: int, unicode: bool, chains: bool, final_only: bool,
            show_metrics: bool = False, explain_parting: bool = False) -> None:
    """Show what differs between two policies on SCENARIO ('-': standard input); exit 0 same,
    1 different, 2 trouble."""
    from . import policies
    from .diff import compare as compare_replays
    from .engine import replay
    from .render import formatter

    a, b, scenario = _compare_args(policy_names, args)
    opts = _options(width, unicode, chains, final_only)
    pa, pb = policies.get_each((a, b))
    _say_resolved((a, b))
    sc = _load(scenario)
    if explain_parting and fmt == "dot":
        raise Trouble("--explain: with --format table, list, ascii or json, not dot")
    if show_metrics:
        from .render import metrics as rmetrics
        ma, mb = rmetrics.measured(sc, [pa, pb])
        ra, rb = _only_snapshot([ma[0], mb[0]], snapshot)
    else:
        ra, rb = _only_snapshot([replay(sc, pa), replay(sc, pb)], snapshot)
    cmp = compare_replays(ra, rb)
    if LEFT_FOR_EXIT is not None:
        LEFT_FOR_EXIT.append((sc, ra, rb, cmp))
    text = formatter(fmt).render_compare(cmp, opts)
    if show_metrics:
        text = rmetrics.add_to_compare(text, fmt, ma, mb, opts)
    if explain_parting:
        from .explain.core import add_partings
        text = add_partings(text, fmt, sc, pa, pb, width)
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
    click.echo("\nkernel versions (-p v6.8.3, -p v5.15.100) resolve by release:")
    for first, name, doubt in policies.release_table():
        click.echo(f"  {first:<13} .. {name}" + (f" ({doubt})" if doubt else ""))


#: the commands defined in other modules (which import the helpers above), by name: each is
#: imported when it runs, or when --help or shell completion lists the commands, so that
#: ``anondiff run`` pays for none of them
LAZY_COMMANDS = {
    "capture": "anondiff.live.cli:capture",
    "explain": "anondiff.explain.command:explain_command",
    "live": "anondiff.live.cli:live",
    "reproducer": "anondiff.live.cli:reproducer",
    "search": "anondiff.search.cli:search",
}


if __name__ == "__main__":  # pragma: no cover
    main()
