"""``make mutation``'s summary: the mutation score of the kernel model, the policies and the
step semantics, per module, and every survivor either explained in
tests/mutation-equivalent.txt or listed as a test to write.

Reads ``mutmut results --all true`` (one ``name: status`` line per mutant) and, for the time
spent, the ``durations_by_key`` mutmut keeps in ``mutants/**/*.meta``.

``--pin``: an equivalent whose pin (see :func:`pin`) is stale but which survived its run under
the current code gets the current pin; read its reason again first (the report names it)."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "tests" / "mutation-equivalent.txt"


def equivalent() -> dict[str, str]:
    """mutant name -> why no observable result can tell it from the original."""
    return {name: why for name, (_, why) in equivalent_pins().items()}


def equivalent_pins() -> dict[str, tuple[str, str]]:
    """mutant name -> (its pin when it was last judged, why it is equivalent).

    A line is ``NAME pin=PIN WHY`` (``pin=`` may be missing: never judged as listed)."""
    out: dict[str, tuple[str, str]] = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.partition(" ")
                pinned = ""
                if why.startswith("pin="):
                    pinned, _, why = why.partition(" ")
                    pinned = pinned[len("pin="):]
                out[name] = (pinned, why.strip())
    return out


def pin(mutant: str, hashes: dict[str, str], callers: dict[str, set[str]]) -> str | None:
    """What an equivalent mutant's verdict rests on, as a short hash: the source of its
    function and of every function mutmut saw calling it or called by it (mutmut's
    per-function hashes and call graph).  None: mutmut knows no such function.

    ``make mutation`` does not run a listed equivalent again while its pin is unchanged
    (MUTATION_RECHECK=1 runs them all): the same code around it gives the same verdict."""
    function = mutant.partition("__mutmut_")[0]
    if function not in hashes:
        return None
    near = set(callers.get(function, ())) | {f for f, cs in callers.items() if function in cs}
    digest = hashlib.sha256()
    for name in [function, *sorted(near - {function})]:
        digest.update(f"{name}={hashes.get(name, '')}\n".encode())
    return digest.hexdigest()[:12]


def stats_graph() -> tuple[dict[str, str], dict[str, set[str]]]:
    """mutmut's per-function hashes and call graph (callee -> callers) of its last stats run."""
    try:
        stats = json.loads((ROOT / "mutants" / "mutmut-stats.json").read_text())
    except (OSError, ValueError):
        return {}, {}
    return (dict(stats.get("function_hashes", {})),
            {f: set(cs) for f, cs in stats.get("function_dependencies", {}).items()})


def module(name: str) -> str:
    """anondiff.kernel.rmap.x_put_anon_vma__mutmut_3 -> anondiff.kernel.rmap"""
    return re.split(r"\.x(?:_|\u01c1)", name, maxsplit=1)[0]


def durations() -> dict[str, float]:
    out: dict[str, float] = {}
    for meta in (ROOT / "mutants").rglob("*.meta"):
        try:
            out.update(json.loads(meta.read_text()).get("durations_by_key", {}))
        except (OSError, ValueError):
            pass
    return out


def main(argv: list[str]) -> int:
    text = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout
    status: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, what = line.strip().rpartition(": ")
        if sep:
            status[name] = what
    explained = equivalent()
    spent = durations()
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    secs: dict[str, float] = defaultdict(float)
    for name, what in status.items():
        if what == "survived" and name in explained:
            what = "equivalent"
        elif what == "timeout":          # the mutated replay does not finish: a user notices
            what = "killed"
        rows[module(name)][what] += 1
        if what != "not checked":      # a verdict reset since keeps the time of its old run
            secs[module(name)] += spent.get(name, 0.0)
    print(f"{'module':40} {'mutants':>7} {'killed':>6} {'surv.':>5} {'equiv.':>6} "
          f"{'unrun':>5} {'other':>5} {'time':>7}")
    total: Counter[str] = Counter()
    for mod in sorted(rows):
        c = rows[mod]
        total.update(c)
        n = sum(c.values())
        other = n - c["killed"] - c["survived"] - c["equivalent"] - c["not checked"]
        print(f"{mod:40} {n:7} {c['killed']:6} {c['survived']:5} {c['equivalent']:6} "
              f"{c['not checked']:5} {other:5} {secs[mod]:6.0f}s")
    run = sum(total.values()) - total["not checked"]
    counted = run - total["equivalent"]
    score = 100.0 * total["killed"] / counted if counted else 100.0
    unexplained = sorted(n for n, s in status.items() if s == "survived" and n not in explained)
    print(f"mutants: {sum(total.values())}; run {run}, killed {total['killed']}, survived "
          f"{total['survived'] + total['equivalent']} ({total['equivalent']} explained as "
          f"equivalent), not run {total['not checked']}; score {score:.1f}% of the run, "
          f"non-equivalent ones; {sum(secs.values()) / 60:.0f} min of mutant runs")
    for name in unexplained:
        print(f"  unexplained survivor: {name} (mutmut show {name})")
    stale = stale_pins(status, spent)
    if stale and "--pin" in argv:
        repin(stale)
    else:
        for name in stale:
            print(f"  equivalent survived with its code changed: {name}: read its reason in "
                  f"{EQUIVALENT.relative_to(ROOT)} again, then `python -m tests.mutation_report --pin`")
    for name, what in sorted(status.items()):
        if name in explained and what in ("killed", "timeout"):
            print(f"  listed as equivalent but {what}: {name}: take it out of the list")
    carried = sum(1 for name in explained if status.get(name) == "survived" and name not in spent)
    if carried:
        print(f"{carried} equivalents not run again (their pins unchanged; MUTATION_RECHECK=1 "
              f"runs them)")
    return 1 if unexplained or total["not checked"] else 0


def stale_pins(status: dict[str, str], spent: dict[str, float]) -> dict[str, str]:
    """listed equivalents that survived a run under code their pin does not match:
    name -> the current pin"""
    hashes, callers = stats_graph()
    out: dict[str, str] = {}
    for name, (pinned, _) in equivalent_pins().items():
        now = pin(name, hashes, callers)
        if now and now != pinned and status.get(name) == "survived" and name in spent:
            out[name] = now
    return out


def repin(stale: dict[str, str]) -> None:
    lines = []
    for line in EQUIVALENT.read_text().splitlines():
        name, _, why = line.partition(" ")
        if name in stale and not line.startswith("#"):
            if why.startswith("pin="):
                why = why.partition(" ")[2]
            line = f"{name} pin={stale[name]} {why}"
            print(f"  pinned {name}")
        lines.append(line)
    EQUIVALENT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
