"""``make mutation``'s summary: the mutation score of the kernel model and the policies, and
every survivor either explained in tests/mutation-equivalent.txt or listed as a test to write.

Reads ``mutmut results --all true`` (one ``name: status`` line per mutant)."""
from __future__ import annotations

import subprocess
import sys
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


def main() -> int:
    text = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout
    status: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, what = line.strip().rpartition(": ")
        if sep:
            status[name] = what
    explained = equivalent()
    killed = sum(1 for s in status.values() if s == "killed")
    survivors = sorted(n for n, s in status.items() if s == "survived")
    unexplained = [n for n in survivors if n not in explained]
    counted = len(status) - sum(1 for n in survivors if n in explained)
    score = 100.0 * killed / counted if counted else 100.0
    print(f"mutants: {len(status)}; killed {killed}; survived {len(survivors)} "
          f"({len(survivors) - len(unexplained)} explained as equivalent); "
          f"score {score:.1f}% of the non-equivalent ones")
    for name in unexplained:
        print(f"  unexplained survivor: {name} (mutmut show {name})")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
