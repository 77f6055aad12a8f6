"""The JSON renderer writes what ``json.dumps(..., indent=2)`` of the schema's objects gives."""
from __future__ import annotations

from pathlib import Path

import pytest

from anondiff.engine import replay
from anondiff.policies import names
from anondiff.render import RenderOptions, text
from anondiff.render import json_
from anondiff.scenario import load
from .eras import accepts

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
@pytest.mark.parametrize("snapshots", [True, False])
def test_same_bytes_as_json_dumps(path: Path, snapshots: bool) -> None:
    sc = load(str(path))
    replays = [replay(sc, p) for p in names() if accepts(sc, p)]
    opts = RenderOptions(snapshots=snapshots)
    want = json_._dump({"anondiff": json_.SCHEMA, "scenario": sc.name,
                        "runs": [json_.replay(r, opts) for r in replays]})
    assert text(json_.render_run(replays, opts)) == want
    assert text(json_.render_run(replays[:1], opts)) == json_._dump(
        {"anondiff": json_.SCHEMA, "scenario": sc.name, "runs": [json_.replay(replays[0], opts)]})


def test_no_runs() -> None:
    assert text(json_.render_run([], RenderOptions())) == json_._dump(
        {"anondiff": json_.SCHEMA, "scenario": "", "runs": []})
