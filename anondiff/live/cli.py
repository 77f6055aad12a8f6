"""``anondiff live``, ``anondiff capture`` and ``anondiff reproducer``: click only."""
from __future__ import annotations

import platform
import re
import sys

import click

from ..cli import EXIT_DIFFERENT, EXIT_SAME, Trouble, _emit, _guard, _options, with_common


def _reader(probe_hint: bool = False):  # type: ignore[no-untyped-def]
    from .reader import CaptureError, Reader
    try:
        return Reader()
    except CaptureError as e:
        hint = "; try --probe (unprivileged: merges and VM_ACCOUNT only)" if probe_hint else ""
        raise Trouble(f"cannot capture: {e}{hint}") from None


def running_policy():  # type: ignore[no-untyped-def]
    """The policy of the running kernel's version (``v6.18`` -> split-counters)."""
    from .. import policies
    from ..errors import UnknownPolicyError
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    version = f"v{m.group(1)}.{m.group(2)}" if m else platform.release()
    try:
        return policies.get(version)
    except UnknownPolicyError:
        raise Trouble(f"no policy for the running kernel {platform.release()} "
                      f"(no alias {version!r}); name one with -p") from None


@click.command()
@click.argument("scenario", type=click.Path())
@click.option("--policy", "-p", "policy_name", default=None, metavar="POLICY",
              help="Policy to compare with; default: the running kernel's version's.")
@click.option("--probe", is_flag=True,
              help="No root, no BPF: probe merges and VM_ACCOUNT with mprotect instead.")
@with_common
@_guard
def live(scenario: str, policy_name: str | None, probe: bool, fmt: str, output: str | None,
         width: int, unicode: bool, chains: bool, final_only: bool) -> None:
    """Replay SCENARIO as real processes on this kernel, capture the real anon_vma topology
    after every step and compare it with POLICY; exit 0 same, 1 different, 2 trouble."""
    from .. import policies
    from ..diff import compare
    from ..render import formatter
    from ..scenario import load
    from .replay import Unsupported, run

    opts = _options(width, unicode, chains, final_only)
    sc = load(scenario)
    policy = policies.get(policy_name) if policy_name else running_policy()
    if probe:
        _live_probe(sc, policy, fmt, output)
        return
    reader = _reader(probe_hint=True)
    try:
        lr = run(sc, policy, reader)
    except Unsupported as e:
        raise Trouble(f"cannot run live: {e}") from None
    finally:
        reader.close()
    cmp = compare(lr.predicted, lr.live)
    _emit(formatter(fmt).render_compare(cmp, opts), fmt, output)
    for msg in lr.layout:
        click.echo(msg, err=True)
    sys.exit(EXIT_SAME if cmp.same and not lr.layout else EXIT_DIFFERENT)


def _live_probe(sc, policy, fmt: str, output: str | None) -> None:  # type: ignore[no-untyped-def]
    import json

    from . import probe
    from .replay import Unsupported
    try:
        result = probe.run(sc, policy)
    except Unsupported as e:
        raise Trouble(f"cannot run live: {e}") from None
    live_name = f"live {platform.release()} (probed)"
    if fmt == "json":
        text = json.dumps({"anondiff": 1, "scenario": sc.name, "a": policy.name, "b": live_name,
                           "probes": result.probes, "same": not result.differences,
                           "differences": list(result.differences)}, indent=1) + "\n"
    else:
        text = "".join(d + "\n" for d in result.differences) + (
            f"{sc.name}: {policy.name} vs {live_name}: {len(result.differences)} differences "
            f"(the layout after every step, and {result.probes} mprotect probes)\n")
    _emit(text, "list" if fmt == "dot" else fmt, output)
    sys.exit(EXIT_DIFFERENT if result.differences else EXIT_SAME)


def _parse_range(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1 << 64
    m = re.fullmatch(r"(?:0x)?([0-9a-fA-F]+)-(?:0x)?([0-9a-fA-F]+)", text)
    if not m or int(m.group(1), 16) >= int(m.group(2), 16):
        raise Trouble(f"--range {text}: expected START-END in hex, START < END")
    return int(m.group(1), 16), int(m.group(2), 16)


@click.command()
@click.option("--pid", type=int, required=True, help="The process to read.")
@click.option("--range", "range_", default=None, metavar="START-END",
              help="Only VMAs overlapping this address range (hex).")
@with_common
@_guard
def capture(pid: int, range_: str | None, fmt: str, output: str | None, width: int,
            unicode: bool, chains: bool, final_only: bool) -> None:
    """Show the real anon_vma topology of running process PID."""
    from ..render import formatter
    from ..topology import Replay
    from .capture import capture_process

    opts = _options(width, unicode, chains, final_only)
    lo, hi = _parse_range(range_)
    reader = _reader()
    try:
        topo = capture_process(reader, pid, lo, hi)
    finally:
        reader.close()
    rp = Replay(f"pid {pid}", topo.policy, f"Linux {platform.release()} (captured)", (topo,))
    _emit(formatter(fmt).render_run([rp], opts), fmt, output)


@click.command()
@click.argument("scenario", type=click.Path())
@click.option("--policy", "-p", "policy_name", default=None, metavar="POLICY",
              help="Policy whose merges and splits to check; default: the running kernel's.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the C program here (default: stdout).")
@_guard
def reproducer(scenario: str, policy_name: str | None, output: str | None) -> None:
    """Write SCENARIO as a self-contained C program (gcc alone, no root, no BPF) checking from
    /proc/PID/maps every merge and split POLICY predicts, kselftest style."""
    from .. import policies
    from ..cli import _write
    from ..scenario import load
    from .replay import Unsupported
    from .reproducer import generate

    sc = load(scenario)
    policy = policies.get(policy_name) if policy_name else running_policy()
    try:
        text = generate(sc, policy)
    except Unsupported as e:
        raise Trouble(f"cannot write a reproducer: {e}") from None
    _write(text, output)
