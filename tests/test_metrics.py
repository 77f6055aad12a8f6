"""``--metrics``: every figure recomputed here another way from the frozen topology."""
from __future__ import annotations

import json
import xml.dom.minidom
from pathlib import Path

import pytest
from click.testing import CliRunner

from anondiff.cli import main
from anondiff.engine import _Replayer, replay
from anondiff.metrics import measure, replay_measured
from anondiff.policies import POLICIES, get
from anondiff.render import metrics as rmetrics
from anondiff.scenario import PAGE_SHIFT, Fork, load
from anondiff.topology import Topology

from .golden import GOLDEN, ROOT, extra
from .eras import accepts

SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))
SEED = str(ROOT / "scenarios" / "seed-thread.yaml")
GROWTH = str(ROOT / "scenarios" / "endless-growth.yaml")


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _depth(t: Topology, name: str) -> int:
    av = t.anon_vma(name)
    if av.parent is None or av.parent == name:
        return 1
    return 1 + _depth(t, av.parent)


@pytest.mark.parametrize("policy", [c.name for c in POLICIES])
def test_metrics_recomputed_from_the_topology(policy: str) -> None:
    for sc in SHIPPED:
        scenario = load(str(sc.relative_to(ROOT)))
        if not accepts(scenario, policy):
            continue
        r = _Replayer(scenario, get(policy))
        rep = r.run()
        t = rep.final
        m = measure(t, replay_measured(scenario, policy)[1])
        live = [a for a in t.anon_vmas if not a.freed]
        assert m.live == len(live)
        assert m.allocated == len(t.anon_vmas) + r.k.transient_anon_vmas
        assert m.freed == len(t.anon_vmas) - len(live) + r.k.transient_anon_vmas
        # every anon_vma_chain is in one chain and one interval tree: count the trees
        assert m.chains == sum(len(a.tree) for a in live)
        chains = [len(v.chain) for p in t.processes for v in p.vmas]
        assert m.longest_chain == max(chains, default=0)
        if any(a.parent is not None for a in t.anon_vmas):
            assert m.deepest == max((_depth(t, a.name) for a in live), default=0)
        else:       # before v3.19 the longest chain is the lineage of the newest anon_vma
            assert m.deepest == m.longest_chain
        linked = sum(1 for p in t.processes for v in p.vmas if v.chain)
        assert m.vmas_linked == linked
        assert m.bound_holds == (len(live) <= 2 * linked)
        # root sharing: the VMAs whose chains reach the root
        for root, n in m.roots:
            assert n == sum(1 for p in t.processes for v in p.vmas if root in v.chain)
        # the rmap walk: VMAs whose chain holds the page's anon_vma and whose range covers its
        # index; those that map it: whose page tables hold it
        pages = {pg.name: pg for p in t.processes for v in p.vmas for pg in v.pages}
        walked = {w.page: w for w in m.walks}
        for name, pg in pages.items():
            if pg.mapping_freed:
                assert name not in walked
                continue
            visited = sum(1 for p in t.processes for v in p.vmas if pg.mapping in v.chain
                          and v.pgoff <= pg.index < v.pgoff + ((v.end - v.start) >> PAGE_SHIFT))
            mapped = sum(1 for p in t.processes for v in p.vmas
                         if any(x.name == name for x in v.pages))
            assert (walked[name].visited, walked[name].mapped) == (visited, mapped), (sc, name)
            assert walked[name].visited >= walked[name].mapped


@pytest.mark.parametrize("stem", ["seed-thread", "endless-growth"])
@pytest.mark.parametrize("policy", [c.name for c in POLICIES])
def test_reuse_count_in_fork_only_scenarios(stem: str, policy: str) -> None:
    """When only forks (and exits) run, every child VMA with an anon_vma either got a new one
    or took an existing one."""
    scenario = load(f"scenarios/{stem}.yaml")
    rep, counts, _ = replay_measured(scenario, policy)
    t = rep.final
    forked = 5 if stem == "seed-thread" else sum(1 for s in scenario.steps if isinstance(s, Fork))
    starting = 1
    assert counts.reused == forked - (len(t.anon_vmas) - starting)


def test_measured_replay_is_the_replay() -> None:
    for sc in SHIPPED:
        scenario = load(str(sc.relative_to(ROOT)))
        for cls in POLICIES:
            if not accepts(scenario, cls.name):
                continue
            assert replay_measured(scenario, cls.name)[0] == replay(scenario, cls.name)


def test_endless_growth_grows_only_before_v3_19() -> None:
    scenario = load("scenarios/endless-growth.yaml")
    series = {p: [g.live for g in replay_measured(scenario, p)[2]] for p in
              ("always-new", "degree", "split-counters", "clone-rework-2026")}
    assert series["always-new"] == [2, 3, 4, 5, 6, 7]
    for p in ("degree", "split-counters", "clone-rework-2026"):
        assert series[p] == [2, 3, 3, 3, 3, 3]
    chains = [g.longest_chain for g in replay_measured(scenario, "always-new")[2]]
    assert chains == [2, 3, 4, 5, 6, 7]


def test_clone_rework_allocates_what_it_frees_unused() -> None:
    scenario = load("scenarios/endless-growth.yaml")
    rep, counts, _ = replay_measured(scenario, "clone-rework-2026")
    m = measure(rep.final, counts)
    assert (m.allocated, m.freed, m.live, m.reused) == (7, 4, 3, 4)


# -- the command -------------------------------------------------------------------------------

def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_metrics_text_block() -> None:
    r = invoke("run", SEED, "-p", "v2", "--metrics", "--format", "list")
    assert r.exit_code == 0
    assert "== metrics: v2 on seed-thread (final)" in r.output
    assert "  anon_vmas live 2, allocated 2, freed 0, reused at fork 4" in r.output
    plain = invoke("run", SEED, "-p", "v2", "--format", "list").output
    assert r.output.startswith(plain)


def test_run_json_has_metrics_only_when_asked() -> None:
    plain = json.loads(invoke("run", SEED, "-p", "degree", "--format", "json").output)
    assert "metrics" not in plain["runs"][0]
    doc = json.loads(invoke("run", SEED, "-p", "degree", "--format", "json", "--metrics").output)
    m = doc["runs"][0]["metrics"]
    assert (m["anon_vmas_allocated"], m["anon_vmas_live"], m["longest_chain"]) == (6, 6, 2)
    assert doc["runs"][0]["snapshots"] == plain["runs"][0]["snapshots"]


def test_compare_metrics_deltas_with_percentages() -> None:
    r = invoke("compare", "-p", "degree", "v2", SEED, "--metrics", "--format", "list")
    assert r.exit_code == 1
    assert "  anon_vmas allocated: 6 -> 2 (-66.7%)" in r.output
    assert "  anon_vma_chains: 15 -> 15 (same)" in r.output
    doc = json.loads(invoke("compare", "-p", "degree", "v2", SEED, "--metrics",
                            "--format", "json").output)
    assert {"what": "anon_vmas allocated", "a": 6, "b": 2} in doc["metrics"]["deltas"]


def test_growth_plot_in_the_terminal() -> None:
    r = invoke("run", GROWTH, "-p", "always-new", "-p", "degree", "--metrics", "--format", "ascii")
    lines = r.output.splitlines()
    i = lines.index("== growth per generation: anon_vmas live after each fork")
    plot = lines[i + 1:i + 12]
    assert plot[0] == "7 |                     a"
    assert plot[4] == "3 |     ab  b   b   b   b"
    assert plot[5] == "2 | ab"
    assert "  a  always-new" in plot and "  b  degree" in plot


def test_growth_image_next_to_the_diagram(tmp_path: Path) -> None:
    if not any((Path(d) / "dot").exists() for d in __import__("os").environ["PATH"].split(":")):
        pytest.skip("graphviz 'dot' not installed")
    out = tmp_path / "eg.svg"
    r = invoke("run", GROWTH, "-p", "always-new", "-p", "degree", "--metrics", "--format", "dot",
               "-o", str(out))
    assert r.exit_code == 0
    svg = (tmp_path / "eg-growth.svg").read_text()
    assert svg == rmetrics.growth_svg(rmetrics.measured(load(GROWTH), ["always-new", "degree"]),
                                      "endless-growth")


def test_growth_svg_draws_each_series() -> None:
    svg = (GOLDEN / "endless-growth" / "growth.svg").read_text()
    doc = xml.dom.minidom.parseString(svg)
    lines = doc.getElementsByTagName("polyline")
    # two series (always-new and mirror-parent grow; the rest do not), two panels
    assert len(lines) == 4
    for line in lines:
        assert len(line.getAttribute("points").split()) == 6
    texts = [t.firstChild.data for t in doc.getElementsByTagName("text")]
    assert "always-new, mirror-parent" in texts


def test_metrics_goldens() -> None:
    mine = {p: t for p, t in extra().items() if p.relative_to(GOLDEN).parts[0] != "explain"}
    assert mine
    for p, text in mine.items():
        assert p.exists() and p.read_text() == text, f"{p}: run 'make golden' and review"


def test_no_growth_image_when_the_diagram_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))          # no 'dot'
    out = tmp_path / "eg.svg"
    r = CliRunner().invoke(main, ["run", GROWTH, "-p", "degree", "--metrics", "--format", "dot",
                                  "-o", str(out)])
    assert r.exit_code == 2
    assert not out.exists() and not (tmp_path / "eg-growth.svg").exists()


def test_roots_line_names_the_busiest_first() -> None:
    from anondiff.metrics import Metrics, lines
    m = measure(replay(load(SEED), "degree").final)._replace(
        roots=tuple((f"AV{i}", i) for i in range(12)))
    (roots,) = [line for line in lines(m) if "sharing each root" in line]
    assert roots.endswith("AV11 11, AV10 10, AV9 9, AV8 8, AV7 7, AV6 6, AV5 5, AV4 4, and 4 more roots")
    assert isinstance(m, Metrics)


def test_the_readme_growth_image_is_the_golden_one() -> None:
    assert (ROOT / "docs" / "endless-growth-growth.svg").read_text() == \
        (GOLDEN / "endless-growth" / "growth.svg").read_text()
    assert "docs/endless-growth-growth.svg" in (ROOT / "README.md").read_text()
