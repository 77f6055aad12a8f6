"""Every policy against the real kernel code of its version, on the nine known answers."""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.scenario import load

from .kernel_runs import DATA, SCENARIOS, VERSIONS, diff_replay, reference

CASES = sorted(p.stem for p in DATA.glob("*.json"))

#: (scenario, policy): why the comparison cannot pass yet
PENDING: dict[tuple[str, str], str] = {}


#: the reference's split-counters runs used the 6.6 code: the era variant v6.1 must agree too
RUNS = sorted(VERSIONS.items()) + [("split-counters", "v6.1")]


@pytest.mark.parametrize("version,policy", RUNS, ids=[f"{v}-{p}" for v, p in RUNS])
@pytest.mark.parametrize("case", CASES)
def test_known_answer(case: str, version: str, policy: str) -> None:
    if (case, policy) in PENDING:
        pytest.xfail(PENDING[(case, policy)])
    ref = reference(case)[version]
    literal = SCENARIOS / f"{case}_literal.yaml"
    for scenario in [SCENARIOS / f"{case}.yaml"] + ([literal] if literal.exists() else []):
        rep = replay(load(str(scenario)), policy)
        problems = diff_replay(ref, rep, merges=scenario == literal)
        assert not problems, f"{scenario.name}:\n" + "\n".join(problems)


def test_every_known_answer_has_a_scenario() -> None:
    assert CASES and all((SCENARIOS / f"{c}.yaml").is_file() for c in CASES)
