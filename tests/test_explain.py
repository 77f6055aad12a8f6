"""``anondiff explain``: every decision a policy takes is explained, in the kernel's terms."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from anondiff.cli import main
from anondiff.engine import replay
from anondiff.explain.core import Call, explain, hooks, render, traced, Tracer
from anondiff.policies import ERA_VARIANTS, POLICIES, get
from anondiff.policies.base import Policy
from anondiff.policies.split_counters import SplitCountersPolicy
from anondiff.scenario import load

from .golden import GOLDEN, ROOT, THREAD_SCENARIOS, extra
from .eras import accepts

SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))
SEED = str(ROOT / "scenarios" / "seed-thread.yaml")
CVE = str(ROOT / "scenarios" / "cve-2022-42703.yaml")
BUILT_IN = POLICIES + ERA_VARIANTS


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def rules(cls: type[Policy]) -> set[str]:
    """The hooks of ``cls`` that are a policy's rule, not shared machinery: those some policy
    module defines below Policy, or that differ between the built-in policies.  A rule must
    say why on every call; machinery only needs its observation."""
    out = set()
    for name in hooks(cls):
        impls = {getattr(c, name) for c in BUILT_IN + (cls,) if hasattr(c, name)}
        owner = next(k for k in cls.__mro__ if name in k.__dict__)
        if len(impls) > 1 or (owner is not Policy and issubclass(owner, Policy)):
            out.add(name)
    return out


def unexplained(policy: Policy, scenarios=SHIPPED) -> tuple[dict[str, int], list[str]]:  # type: ignore[no-untyped-def]
    """Replay every scenario explaining ``policy``: how often each hook was called, and every
    call that came without an observation, or, for a rule, without a reason of its own (a
    call that crashed inside a nested hook has its reason there)."""
    called: dict[str, int] = defaultdict(int)
    missing = []
    needs_reason = rules(type(policy))
    for sc in scenarios:
        scenario = load(str(sc.relative_to(ROOT)))
        if not accepts(scenario, policy):
            continue
        for c in explain(scenario, policy).calls():
            called[c.hook] += 1
            if not c.outcome:
                missing.append(f"{sc.stem}: {c.hook}({c.args}): no observation")
            elif c.hook in needs_reason and not c.why and "crashed in " not in c.outcome:
                missing.append(f"{sc.stem}: {c.hook}({c.args}): no reason (add 'if self.trace: "
                               "self.trace.why(...)' to the rule)")
    return called, missing


@pytest.mark.parametrize("cls", BUILT_IN, ids=[c.name for c in BUILT_IN])
def test_every_decision_explained(cls: type[Policy]) -> None:
    """Every public hook of every built-in policy reports why, on every call the shipped
    scenarios make; every hook a policy defines itself is exercised by them."""
    called, missing = unexplained(cls())
    assert {"anon_vma_fork", "anon_vma_clone", "is_mergeable_anon_vma"} <= rules(cls)
    assert missing == []
    for name in hooks(cls):
        if name in cls.__dict__:
            assert called[name] > 0, f"no shipped scenario calls {cls.name}.{name}"
    assert called["anon_vma_fork"] > 0


def test_a_rule_without_a_report_fails_the_check() -> None:
    class Silent(SplitCountersPolicy):
        name = "silent"

        def reusable(self, av, src):  # type: ignore[no-untyped-def]
            return src.anon_vma is not None and av.num_children < 2 and av.num_active_vmas == 0

    _, missing = unexplained(Silent(), [ROOT / "scenarios" / "endless-growth.yaml"])
    assert missing and all("reusable(" in m and "no reason" in m for m in missing)


def test_hooks_are_discovered_not_listed() -> None:
    assert {"anon_vma_fork", "anon_vma_clone", "is_mergeable_anon_vma", "reusable"} <= set(
        hooks(get("degree").__class__))
    assert "maybe_reuse_anon_vma" in hooks(get("clone-rework-2026").__class__)

    class WithNewHook(SplitCountersPolicy):
        name = "with-new-hook"

        def new_hook(self) -> int:
            return 3

    assert "new_hook" in hooks(WithNewHook)
    tracer = Tracer(WithNewHook())
    twin = traced(WithNewHook(), tracer)
    tracer.begin(1, 1, "by hand")
    assert twin.new_hook() == 3
    tracer.end()
    (call,) = tracer.steps[0].calls
    assert call.hook == "new_hook" and call.outcome.startswith("returns 3")


def test_a_user_policy_is_observed_without_a_line_of_its_own() -> None:
    user = get("docs/examples/clone_rework_2026_ordered.py")
    expl = explain(load("scenarios/kernel-runs/check4_o1_five_generations.yaml"), user)
    clones = [c for c in expl.calls() if c.hook == "anon_vma_clone"]
    assert clones and all(" chain [" in c.outcome for c in clones if "FORK" in c.args)
    # its override reports nothing itself, the inherited maybe_reuse_anon_vma does
    assert any(c.hook == "maybe_reuse_anon_vma" and c.why for c in expl.calls())


@pytest.mark.parametrize("policy", [c.name for c in BUILT_IN])
def test_explaining_changes_nothing(policy: str) -> None:
    for sc in SHIPPED:
        scenario = load(str(sc.relative_to(ROOT)))
        if not accepts(scenario, policy):
            continue
        assert explain(scenario, policy).replay == replay(scenario, policy), sc.stem


def test_outside_explain_the_trace_is_none() -> None:
    for cls in BUILT_IN:
        assert get(cls.name).trace is None
    assert Policy().trace is None      # (a class attribute in Python, an instance one compiled)


def test_each_fork_decision_names_the_anon_vma_the_vma_ends_with() -> None:
    for cls in POLICIES:
        expl = explain(load("scenarios/seed-thread.yaml"), cls.name)
        final = expl.replay.final
        forks = [c for c in expl.steps[1].calls if c.hook == "anon_vma_fork"]
        assert len(forks) == 5, cls.name
        for c in forks:
            ref = c.args.split(", ")[0]
            av = final.vma(ref).anon_vma
            assert f"{ref} uses {av}," in c.outcome or f"{ref} reuses {av}," in c.outcome


def test_the_issue_examples_read_as_in_the_kernel() -> None:
    v2 = render(explain(load("scenarios/seed-thread.yaml"), "v2"), width=400)
    assert ("anon_vma_fork(C/DST2, P/SRC2): prev C/DST1 uses AV1, AV1->parent == AV0 == "
            "pvma->anon_vma -> share AV1, clone C/DST1's chain => C/DST2 reuses AV1, chain "
            "[AV1, AV0] (v2, <157839239609...@buzz>)") in v2
    sc = render(explain(load("scenarios/cve-2022-42703.yaml"), "split-counters"), width=400)
    # a refusal says which condition failed
    assert "is_mergeable_anon_vma(Y/hi, Y/lo): case 3: AV6 != AV3 -> refused => false" in sc
    assert "AV3 has num_active_vmas 1 and num_children 0 -> not reused: num_active_vmas != 0" in sc


def test_a_crash_is_explained_where_it_happens() -> None:
    text = render(explain(load("scenarios/dontcopy-first.yaml"), "wei-intended"), width=400)
    assert "child_prev(): dst->vm_prev is the child's previous VMA: NULL => CRASH: NULL pointer" in text
    assert "anon_vma_fork(C/DST2, P/SRC2) => C/DST2->anon_vma = NULL, crashed in anon_vma_clone()" in text


def test_explain_goldens() -> None:
    explained = {p: t for p, t in extra().items() if p.relative_to(GOLDEN).parts[0] == "explain"}
    assert len(explained) == len(THREAD_SCENARIOS) * len(POLICIES)
    for p, text in explained.items():
        assert p.exists(), f"{p} missing: run 'make golden' and review it"
        assert p.read_text() == text, f"{p} differs: run 'make golden' and review the diff"
        assert all(len(line) <= 72 for line in text.splitlines()), p


# -- the command -------------------------------------------------------------------------------

def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_explain_command_one_policy() -> None:
    r = invoke("explain", SEED, "-p", "degree")
    assert r.exit_code == 0
    assert r.output == (GOLDEN / "explain" / "seed-thread" / "degree.txt").read_text()


def test_explain_vma_shows_only_decisions_about_it() -> None:
    r = invoke("explain", CVE, "-p", "degree", "--vma", "Y/hi", "--width", "400")
    assert r.exit_code == 0
    tops = [line for line in r.output.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert tops and all("Y/hi" in line for line in tops)
    assert "reusable(AV3, X/hi): AV3 has degree 1 < 2 -> reused => true" in r.output
    everything = invoke("explain", CVE, "-p", "degree").output
    assert len(r.output) < len(everything)


def test_explain_step() -> None:
    r = invoke("explain", CVE, "-p", "split-counters", "--step", "13")
    assert r.exit_code == 0
    steps = [line for line in r.output.splitlines() if line.startswith("step ")]
    assert steps == ["step 13 (line 27) mprotect Y/hi read"]


def test_explain_two_policies_shows_where_they_parted() -> None:
    r = invoke("explain", SEED, "-p", "wei-4e4a9eb92133", "-p", "v2", "--width", "400")
    assert r.exit_code == 1
    assert "C/DST2: first at step 1 (line 19) fork P -> C" in r.output
    assert "wei-4e4a9eb92133: anon_vma_fork(C/DST2, P/SRC2)" in r.output
    same = invoke("explain", SEED, "-p", "split-counters", "-p", "clone-rework-2026")
    assert same.exit_code == 0 and "no VMA differs" in same.output


def test_compare_explain() -> None:
    r = invoke("compare", "-p", "degree", "split-counters", CVE, "--explain", "--format", "list")
    assert r.exit_code == 1
    assert "== where degree and split-counters parted (cve-2022-42703)" in r.output
    bad = CliRunner().invoke(main, ["compare", "-p", "degree", "v2", CVE, "--explain",
                                    "--format", "dot"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "--explain" in bad.output
    import json
    doc = json.loads(invoke("compare", "-p", "degree", "-p", "split-counters", CVE, "--explain",
                            "--format", "json").output)
    assert doc["same"] is False
    (y_lo,) = [p for p in doc["explain"]["partings"] if p["vma"] == "Y/lo"]
    assert y_lo["step"] == 13 and y_lo["b"]["why"] == ["case 3: AV6 != AV3 -> refused"]


@pytest.mark.parametrize("args,message", [
    (["--vma", "NOPE"], "--vma NOPE: no VMA of that name"),
    (["--step", "9"], "--step 9: "),
    (["-p", "v2", "-p", "v1"], "given 3 times"),
    (["-p", "nope"], "unknown policy: 'nope'"),
])
def test_explain_trouble_is_one_line_exit_2(args: list[str], message: str) -> None:
    r = CliRunner().invoke(main, ["explain", SEED, "-p", "degree", *args])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and message in r.output


def test_explain_every_shipped_scenario_and_call_is_a_line() -> None:
    for sc in SHIPPED:
        expl = explain(load(str(sc.relative_to(ROOT))), "split-counters")
        text = render(expl, width=100000)
        for c in expl.calls():
            assert c.outcome
            assert c.line() in text or (not c.why and c.outcome.startswith("no change"))
        assert isinstance(expl.steps[0], tuple) and all(isinstance(c, Call) for c in expl.calls())


def test_a_policy_built_with_arguments_is_observed() -> None:
    """Like anondiff.ktree's compiled trees: no argument-less constructor, names per instance,
    hooks of its own."""
    class Compiled(SplitCountersPolicy):
        def __init__(self, tree: str) -> None:
            self.name = tree                                    # type: ignore[misc]
            self.cite = f"the anon_vma code of {tree}, compiled"  # type: ignore[misc]

        def rekey_everything(self) -> None:
            pass

    policy = Compiled("linux-6.18.44")
    expl = explain(load("scenarios/seed-thread.yaml"), policy)
    assert expl.replay.policy == "linux-6.18.44" and policy.trace is None
    forks = [c for c in expl.calls() if c.hook == "anon_vma_fork"]
    assert len(forks) == 5
    assert all(f"allocated AV{i}" in c.outcome for i, c in enumerate(forks, 1))
    assert "rekey_everything" in hooks(Compiled)


def test_explain_json_has_every_call_nested() -> None:
    import json
    r = invoke("explain", CVE, "-p", "degree", "--format", "json")
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert (doc["anondiff"], doc["policy"]) == (1, "degree")

    def count(calls):  # type: ignore[no-untyped-def]
        return sum(1 + count(c["calls"]) for c in calls)
    expl = explain(load("scenarios/cve-2022-42703.yaml"), "degree")
    assert sum(count(s["calls"]) for s in doc["steps"]) == len(expl.calls())
    (fork,) = [c for s in doc["steps"] if s["step"] == 4 for c in s["calls"]]
    assert fork["hook"] == "anon_vma_fork" and fork["calls"][0]["hook"] == "anon_vma_clone"
    assert fork["calls"][0]["calls"][1]["why"] == ["AV2 has degree 1 < 2 -> reused"]
    two = json.loads(invoke("explain", SEED, "-p", "degree", "-p", "v2", "--format", "json").output)
    assert [p["vma"] for p in two["partings"]][:2] == ["C/DST1", "C/DST2"]


@pytest.mark.parametrize("args,first", [
    (("-o", "{tmp}/ex.json"), "{"),
    (("-o", "{tmp}/ex.txt"), "== explain seed-thread under degree"),
    (("-o", "{tmp}/ex.yaml"), "== explain seed-thread under degree"),
    (("--format", "text", "-o", "{tmp}/ex.dot"), "== explain seed-thread under degree"),
    (("--format", "json", "-o", "{tmp}/ex.txt"), "{"),
])
def test_explain_output_suffix_chooses_json_or_text(tmp_path: Path, args: tuple[str, ...],
                                                    first: str) -> None:
    """-o FILE: .json json, any other suffix text, as run -o chooses; --format wins."""
    args = tuple(a.format(tmp=tmp_path) for a in args)
    r = invoke("explain", SEED, "-p", "degree", *args)
    assert r.exit_code == 0, r.output
    assert r.output == ""
    assert Path(args[-1]).read_text().startswith(first)


@pytest.mark.parametrize("args,what", [
    (("-o", "ex.svg"), "an image"), (("-o", "ex.PNG"), "an image"), (("-o", "ex.pdf"), "an image"),
    (("-o", "ex.dot"), "DOT"), (("-o", "ex.gv"), "DOT"),
    (("--format", "json", "-o", "ex.svg"), "an image"),
])
def test_explain_output_it_cannot_write_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     args: tuple[str, ...], what: str) -> None:
    """explain draws no image and writes no DOT: -o ex.svg (or ex.dot without --format) is one
    line, exit 2, and no file, instead of text under an image's name."""
    monkeypatch.chdir(tmp_path)
    r = invoke("explain", SEED, "-p", "degree", *args)
    assert r.exit_code == 2
    assert r.output == (f"anondiff: {args[-1]}: explain writes text or json, not {what} "
                        "(-o FILE.txt, -o FILE.json)\n")
    assert list(tmp_path.iterdir()) == []


def test_explain_help_says_which_outputs_it_writes() -> None:
    flat = " ".join(invoke("explain", "--help").output.split())
    assert "the format follows FILE's suffix: .json json, any other (.txt) text" in flat
    assert "explain draws no image (.svg .png .pdf) and writes no DOT (.dot .gv)" in flat
    assert "an image drawn by Graphviz" not in flat


def _tree(version: str) -> Policy:
    """A Debian kernel tree compiled as a policy (anondiff.ktree); skips when there is none."""
    import os
    import shutil
    env = os.environ.get("ANONDIFF_TREE_" + version.replace(".", "_"))
    path = Path(env) if env else (Path.home() / ".cache" / "anondiff" / "debian" /
                                  f"linux-source-{version}.tar.xz")
    if shutil.which("gcc") is None or not path.is_file():
        pytest.skip(f"needs gcc and linux-source-{version}.tar.xz (anondiff.ktree.debian)")
    return get(str(path))


@pytest.mark.parametrize("version,python", [("5.10", "v5.10-stable"), ("6.1", "v6.1"),
                                            ("7.2", "clone-rework-2026")])
def test_a_compiled_tree_is_observed_like_its_python_policy(version: str, python: str) -> None:
    """The kernel's own C code gets no reasons, but every call it makes is observed, and the
    observations of anon_vma_fork and anon_vma_clone match the Python policy of its era."""
    tree = _tree(version)

    def observed(policy: Policy | str, stem: str) -> list[tuple[int, str, str, str]]:
        expl = explain(load(f"scenarios/{stem}.yaml"), policy)
        out = []
        for s in expl.steps:
            for c in s.calls:
                if c.hook in ("anon_vma_fork", "anon_vma_clone"):
                    out.append((s.step, c.hook, c.args, c.outcome.rsplit(" (", 1)[0]))
        return out

    for stem in THREAD_SCENARIOS:
        mine = observed(tree, stem)
        assert mine and mine == observed(python, stem), stem


def test_a_step_kind_explain_does_not_know_is_still_described() -> None:
    text = render(explain(load("scenarios/mremap-fork-child.yaml"), "split-counters"))
    assert "step 7 (line 25) mremap C/A to 0x14000 (fixed, maymove)" in text
    assert "is_mergeable_anon_vma(NULL, C/B, C/A, AV1): case 1, C/B imports AV1:" in text
