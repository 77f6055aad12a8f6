"""``make mutation``'s summary: the mutation score of the kernel model, the policies and the
step semantics, per module, and every survivor either explained in
tests/mutation-equivalent.txt or listed as a test to write.

Reads ``mutmut results --all true`` (one ``name: status`` line per mutant) and, for the time
spent, the ``durations_by_key`` mutmut keeps in ``mutants/**/*.meta``."""
from __future__ import annotations

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
    out: dict[str, str] = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.partition(" ")
                out[name] = why.strip()
    return out


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


def main() -> int:
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
    return 1 if unexplained or total["not checked"] else 0


if __name__ == "__main__":
    sys.exit(main())
