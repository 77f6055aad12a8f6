"""Golden files: golden/<scenario>/<policy>.<ext>, one per scenario x policy x format.

Regenerate with ``make golden`` (``python -m tests.golden``) and read every diff before
committing it: a golden is a reviewed statement of what the kernel does.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "golden"
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted((ROOT / "scenarios" / "kernel-runs").glob("*.yaml"))
#: file extension -> --format
FORMATS = {"txt": "table", "json": "json", "ascii": "ascii", "list": "list", "dot": "dot"}


def policies() -> list[str]:
    from anondiff.policies import names
    return names()


def render(scenario: Path, policy: str) -> dict[str, str]:
    from anondiff.engine import replay
    from anondiff.render import RenderOptions, formatter, text
    from anondiff.scenario import load

    rep = replay(load(str(scenario.relative_to(ROOT))), policy)
    opts = RenderOptions()
    return {ext: text(formatter(fmt).render_run([rep], opts)) for ext, fmt in FORMATS.items()}


def path(scenario: Path, policy: str, ext: str) -> Path:
    return GOLDEN / scenario.stem / f"{policy}.{ext}"


def main() -> int:
    import os
    os.chdir(ROOT)
    wanted = set()
    for sc in SCENARIOS:
        for policy in policies():
            for ext, text in render(sc, policy).items():
                p = path(sc, policy, ext)
                wanted.add(p)
                p.parent.mkdir(parents=True, exist_ok=True)
                if not p.exists() or p.read_text() != text:
                    p.write_text(text)
    for stale in GOLDEN.rglob("*"):
        if stale.is_file() and stale not in wanted:
            stale.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
