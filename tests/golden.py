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


#: the seed thread's scenarios: explain goldens (golden/explain/) and metrics (golden/metrics/)
THREAD_SCENARIOS = ("seed-thread", "kk-old-anon-vmas", "cve-2022-42703", "endless-growth")


def extra() -> dict[Path, str]:
    """Goldens beyond scenario x policy x format: ``anondiff explain`` of every policy, and the
    metrics (text and, for endless-growth, the growth image) of the thread scenarios."""
    from anondiff.explain.core import explain, render as render_explain
    from anondiff.render import metrics as rmetrics
    from anondiff.scenario import load

    out: dict[Path, str] = {}
    for stem in THREAD_SCENARIOS:
        sc = load(f"scenarios/{stem}.yaml")
        for policy in policies():
            out[GOLDEN / "explain" / stem / f"{policy}.txt"] = render_explain(explain(sc, policy))
        measured = rmetrics.measured(sc, policies())
        out[GOLDEN / "metrics" / f"{stem}.txt"] = "\n".join(rmetrics.run_blocks(measured, 72)[1:]) + "\n"
        if any(len(m[2]) > 1 for m in measured):
            out[GOLDEN / stem / "growth.svg"] = rmetrics.growth_svg(measured, sc.name)
    return out


def main() -> int:
    import os
    os.chdir(ROOT)
    wanted = set()
    for p, text in extra().items():
        wanted.add(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
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
