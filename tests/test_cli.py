"""The command line as a user meets it: exit codes, stdout, stderr, files."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from anondiff.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios" / "seed-thread.yaml")
CVE = str(ROOT / "scenarios" / "cve-2022-42703.yaml")


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_prints_every_policy_of_the_scenario() -> None:
    r = invoke("run", SEED)
    assert r.exit_code == 0
    from anondiff.policies import names
    for name in names():
        assert f"== {name}:" in r.output


def test_run_one_policy_table_shows_the_thread_answer() -> None:
    r = invoke("run", SEED, "-p", "wei-4e4a9eb92133", "--final-only")
    assert r.exit_code == 0
    rows = {line.split()[0]: line.split() for line in r.output.splitlines()
            if line.startswith("DST")}
    assert rows["DST1"][4] == "AV1"
    assert all(rows[f"DST{i}"][4] == "AV0" for i in range(2, 6))


def test_a_command_in_a_process_that_goes_on_switches_the_collector_back_on() -> None:
    """The collector is off during a command; run from Python (not ``python -m anondiff``,
    which ends with the command and leaves it off: test_output), it is back on afterwards."""
    import gc
    assert gc.isenabled()
    assert invoke("run", SEED, "-p", "v2", "--final-only").exit_code == 0
    assert gc.isenabled()


def test_version_alias_selects_the_policy() -> None:
    r = invoke("run", SEED, "-p", "v5.5", "--final-only")
    assert r.exit_code == 0 and "== wei-4e4a9eb92133:" in r.output


def test_compare_exit_codes_follow_diff() -> None:
    assert invoke("compare", "-p", "degree", "v2", SEED).exit_code == 1
    assert invoke("compare", "-p", "degree", "v4.19", SEED).exit_code == 0
    same = invoke("compare", "-p", "split-counters", "clone-rework-2026", SEED)
    assert same.exit_code == 0 and same.output.rstrip().endswith("same")


def test_compare_names_the_differing_vmas() -> None:
    r = invoke("compare", "-p", "wei-4e4a9eb92133", "v2", SEED, "--final-only")
    assert r.exit_code == 1
    assert "C/DST2" in r.output and "AV0" in r.output and "AV1" in r.output
    assert "C/DST1" not in [line.split()[0] for line in r.output.splitlines()
                            if line.startswith("C/") and "anon_vma" in line]


def test_compare_json_is_parseable_and_says_different() -> None:
    r = invoke("compare", "-p", "degree", "split-counters", CVE, "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.output)
    assert doc["same"] is False and doc["a"]["policy"] == "degree"
    final = [d for d in doc["differences"] if d["label"] == "final"][0]
    assert any(v["vma"].startswith("Y/") for v in final["vmas"])


def test_run_json_schema_fields() -> None:
    r = invoke("run", SEED, "-p", "v2", "--format", "json")
    doc = json.loads(r.output)
    assert doc["anondiff"] == 1 and doc["scenario"] == "seed-thread"
    final = doc["runs"][0]["snapshots"][-1]
    assert final["label"] == "final"
    c = [p for p in final["processes"] if p["name"] == "C"][0]
    assert [v["name"] for v in c["vmas"]] == ["DST1", "DST2", "DST3", "DST4", "DST5"]
    assert all(v["chain"] == ["AV1", "AV0"] for v in c["vmas"])
    av1 = [a for a in final["anon_vmas"] if a["name"] == "AV1"][0]
    assert av1["parent"] == "AV0" and av1["counters"] == {"degree": 5} and not av1["freed"]
    assert av1["users"] == [f"C/DST{i}" for i in range(1, 6)]


def test_check_passes_and_fails() -> None:
    ok = invoke("run", SEED, "--check", "--format", "list")
    assert ok.exit_code == 0, ok.output
    assert "FAIL" not in ok.output


def test_check_reports_a_failed_expectation(tmp_path: Path) -> None:
    text = Path(SEED).read_text().replace(
        "  - policy: wei-4e4a9eb92133\n    anon_vma: {C/DST1: AV1,",
        "  - policy: wei-4e4a9eb92133\n    anon_vma: {C/DST1: AV9,")
    p = tmp_path / "seed.yaml"
    p.write_text(text)
    r = invoke("run", str(p), "--check", "-p", "wei-4e4a9eb92133")
    assert r.exit_code == 1
    assert re.search(r"seed\.yaml:\d+: FAIL anon_vma under wei-4e4a9eb92133: C/DST1: want AV9, got AV1",
                     r.output)


@pytest.mark.parametrize("args,message", [
    (("run", "nonexistent.yaml"), "nonexistent.yaml"),
    (("run", SEED, "-p", "v9"), "unknown policy: 'v9' (must be one of"),
    (("compare", "-p", "degree", "nope", SEED), "unknown policy: 'nope'"),
    (("run", SEED, "--width", "10", "--format", "ascii"), "--width 10"),
])
def test_trouble_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    r = invoke(*args)
    assert r.exit_code == 2
    assert message in r.output
    assert "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1


def test_bad_scenario_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("description: x\nprocesses:\n  - name: P\n    vmas:\n      - {name: A, start: 0x1001, pages: 1}\n")
    r = invoke("run", str(p))
    assert r.exit_code == 2
    assert re.match(rf"anondiff: {re.escape(str(p))}:5(:\d+)?: .*page aligned", r.output)


def test_replay_error_names_the_step_line(tmp_path: Path) -> None:
    p = tmp_path / "hole.yaml"
    p.write_text("description: x\nprocesses:\n  - name: P\n    vmas:\n"
                 "      - {name: A, start: 0x10000, pages: 1}\n"
                 "steps:\n  - {mprotect: P, start: 0x10000, pages: 2, prot: r}\n")
    r = invoke("run", str(p))
    assert r.exit_code == 2
    assert f"{p}:7: " in r.output and "ENOMEM" in r.output


def test_output_file_is_written_whole(tmp_path: Path) -> None:
    out = tmp_path / "seed.txt"
    r = invoke("run", SEED, "-p", "v2", "--format", "list", "-o", str(out))
    assert r.exit_code == 0 and r.output == ""
    assert "DST1..DST5 (5) - AV1 (child of AV0)" in out.read_text()
    assert [f.name for f in tmp_path.iterdir()] == ["seed.txt"]


def test_trouble_leaves_no_output_file(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    r = invoke("run", SEED, "-p", "bogus", "-o", str(out))
    assert r.exit_code == 2 and not out.exists()


def test_image_refuses_a_text_format(tmp_path: Path) -> None:
    r = invoke("run", SEED, "-p", "v2", "--format", "table", "-o", str(tmp_path / "x.svg"))
    assert r.exit_code == 2 and "--format dot, not table" in r.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.needs_dot
@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz 'dot' (apt-get install graphviz)")
def test_svg_output(tmp_path: Path) -> None:
    out = tmp_path / "seed.svg"
    r = invoke("run", SEED, "-p", "v2", "--format", "dot", "--final-only", "-o", str(out))
    assert r.exit_code == 0, r.output
    svg = out.read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "DST5" in svg


def test_missing_dot_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    r = invoke("run", SEED, "-p", "v2", "--format", "dot", "-o", str(tmp_path / "x.png"))
    assert r.exit_code == 2
    assert "graphviz" in r.output and "--format dot" in r.output
    assert not (tmp_path / "x.png").exists()


def test_policies_lists_every_policy_with_its_commit() -> None:
    r = invoke("policies")
    assert r.exit_code == 0
    assert 'commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity' in r.output
    from anondiff.policies import names
    for name in names():
        assert re.search(rf"^{re.escape(name)}\b", r.output, re.M)


def test_user_policy_file(tmp_path: Path) -> None:
    p = tmp_path / "mine.py"
    p.write_text(
        "from anondiff.policies.split_counters import SplitCountersPolicy\n"
        "class NeverReuse(SplitCountersPolicy):\n"
        "    name = 'never-reuse'\n"
        "    def reusable(self, av, src):\n"
        "        return False\n")
    r = invoke("run", str(ROOT / "scenarios" / "endless-growth.yaml"), "-p", str(p), "--final-only",
               "--format", "json")
    assert r.exit_code == 0, r.output
    run = json.loads(r.output)["runs"][0]
    assert run["policy"] == "never-reuse"
    heap = run["snapshots"][-1]["processes"][0]["vmas"][0]
    # without reuse the chain grows one per generation, as before commit 7a3ef208e662
    assert heap["chain"] == ["AV7", "AV6", "AV5", "AV4", "AV3", "AV2", "AV1"]


def test_every_command_is_documented_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    with click.Context(main) as ctx:
        names = main.list_commands(ctx)
    assert {"run", "compare", "policies", "explain", "live", "search"} <= set(names)
    for name in names:
        assert main.get_command(ctx, name) is not None, name
        assert f"anondiff {name}" in readme, name
    for fmt in ("table", "json", "ascii", "list", "dot"):
        assert fmt in readme


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[:8]
    assert any(line.startswith("make run") for line in block)
    assert any(line.startswith("make test") for line in block)


def test_python_dash_m(tmp_path: Path) -> None:
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "anondiff", "compare", "-p", "degree", "v2", SEED],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and "different" in r.stdout


# -- policies by version, scenario policies, user policy files -------------------------------

@pytest.mark.parametrize("version,policy", [
    ("v6.8.3", "v6.12"), ("v6.6.50", "v6.1"), ("v5.15.100", "v5.10"), ("v3.2", "always-new"), ("v3.19-rc3", "always-new"),
    ("v3.19.3", "v3.19"), ("v4.14-rc1", "degree"), ("v6.0-rc3", "v5.10"), ("v6.0-rc4", "v6.1"), ("v7.1", "clone-rework-2026"),
    ("v2.6.39.4", "always-new"),
])
def test_any_version_inside_a_range_resolves_and_says_so(version: str, policy: str) -> None:
    r = invoke("run", SEED, "-p", version, "--final-only", "--format", "list")
    assert r.exit_code == 0, r.output
    assert f"== {policy}:" in r.stdout
    assert r.stderr.startswith(f"anondiff: {version}: policy {policy} (")


def test_stable_release_names_the_unrecorded_backport() -> None:
    r = invoke("run", SEED, "-p", "v5.15.100", "--final-only")
    assert "5.15.y took the backport of 2555283eb40d" in r.stderr
    assert "use -p split-counters" in r.stderr


@pytest.mark.parametrize("version,message", [
    ("v2.6.32", "before v2.6.34 there is no anon_vma_chain"),
    ("v9.9", "newer than the newest release modelled"),
])
def test_versions_outside_every_range_are_refused(version: str, message: str) -> None:
    r = invoke("run", SEED, "-p", version)
    assert r.exit_code == 2 and message in r.output and len(r.output.splitlines()) == 1


def test_policies_lists_the_version_ranges() -> None:
    out = invoke("policies").output
    assert re.search(r"^  v6\.0-rc4 +\.\. v6\.1$", out, re.M)
    assert re.search(r"^  v3\.19-rc4 +\.\. v3\.19$", out, re.M)
    assert re.search(r"^  v4\.14-rc1 +\.\. degree$", out, re.M)


def scenario_with_policies(tmp_path: Path, entries: str) -> Path:
    text = re.sub(r"^policies: \[.*?\]\n", f"policies: [{entries}]\n", Path(SEED).read_text(),
                  flags=re.M | re.S)
    sub = tmp_path / "sub"
    sub.mkdir(exist_ok=True)
    p = sub / "s.yaml"
    p.write_text(text)
    return p


def test_unknown_scenario_policy_names_its_line(tmp_path: Path) -> None:
    p = scenario_with_policies(tmp_path, "degree,\n           bogus")
    r = invoke("run", str(p))
    assert r.exit_code == 2
    line = p.read_text().splitlines().index("           bogus]") + 1
    assert r.output.startswith(f"anondiff: {p}:{line}: policies[1]: unknown policy: 'bogus'")


def test_scenario_policy_file_is_relative_to_the_scenario(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    p = scenario_with_policies(tmp_path, "mine.py, degree")
    (p.parent / "mine.py").write_text(
        "from anondiff.policies.degree import Degree\n"
        "class Mine(Degree):\n    name = 'mine'\n")
    monkeypatch.chdir(tmp_path)       # not the scenario's directory
    r = invoke("run", "sub/s.yaml", "--final-only", "--format", "list")
    assert r.exit_code == 0, r.output
    assert "== mine:" in r.stdout and "== degree:" in r.stdout


USER_POLICY = ("from anondiff.policies.split_counters import SplitCountersPolicy\n"
               "class Mine(SplitCountersPolicy):\n"
               "    name = 'mine'\n"
               "    def reusable(self, av, src):\n"
               "        {body}\n")


@pytest.mark.parametrize("body,message", [
    ("raise SystemExit(3)", "policy failed: called sys.exit(3)"),
    ("return 1 / 0", "policy failed: ZeroDivisionError: division by zero"),
    ("return self.reusable(av, src)", "policy failed: RecursionError: recursion too deep"),
])
def test_user_policy_failing_in_a_method_names_file_and_line(tmp_path: Path, body: str,
                                                             message: str) -> None:
    p = tmp_path / "mine.py"
    p.write_text(USER_POLICY.format(body=body))
    r = invoke("run", SEED, "-p", str(p))
    assert r.exit_code == 2
    assert r.output == f"anondiff: {p}:5: {message}\n"


def test_user_policy_exiting_at_import(tmp_path: Path) -> None:
    p = tmp_path / "bye.py"
    p.write_text("import sys\n\nsys.exit('bye')\n")
    r = invoke("compare", "-p", str(p), "-p", "degree", SEED)
    assert r.exit_code == 2 and r.output == f"anondiff: {p}:3: cannot load policy: called sys.exit('bye')\n"


def test_user_policy_must_set_its_own_name(tmp_path: Path) -> None:
    p = tmp_path / "anon.py"
    p.write_text("from anondiff.policies.split_counters import SplitCountersPolicy\n"
                 "class Mine(SplitCountersPolicy):\n    pass\n")
    r = invoke("run", SEED, "-p", str(p))
    assert r.exit_code == 2 and "Mine must set its own 'name'" in r.output
    p.write_text("from anondiff.policies.split_counters import SplitCountersPolicy\n"
                 "class Mine(SplitCountersPolicy):\n    name = 'degree'\n")
    r = invoke("run", SEED, "-p", str(p))
    assert r.exit_code == 2 and "'degree' is taken by the built-in policy degree" in r.output


# -- compare's arguments ----------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("-p", "degree", "-p", "v2", SEED), ("-p", "degree", "v2", SEED), (SEED, "-p", "degree", "v2"),
    (SEED, "-p", "degree", "-p", "v2"),
])
def test_compare_forms(args: tuple[str, ...]) -> None:
    r = invoke("compare", *args, "--final-only")
    assert r.exit_code == 1, r.output
    assert r.stdout.startswith("--- degree: ") and "\n+++ v2: " in r.stdout


@pytest.mark.parametrize("args,message", [
    (("-p", "degree", SEED), "compare needs two policies, got only 'degree'"),
    ((SEED,), "compare needs two policies, got none"),
    (("-p", "degree", "-p", "v2", "-p", "v1", SEED), "compare takes two policies, got 3 (degree, v2, v1)"),
    (("-p", "degree", "-p", "v2"), "compare needs a SCENARIO after the two policies"),
])
def test_compare_says_what_is_missing(args: tuple[str, ...], message: str) -> None:
    r = invoke("compare", *args)
    assert r.exit_code == 2
    assert r.output.startswith(f"anondiff: {message}") and len(r.output.splitlines()) == 1
    assert "usage: anondiff compare -p A -p B SCENARIO" in r.output


# -- help, --check, formats -------------------------------------------------------------------

def test_run_help_lists_policies_forms_and_exit_codes() -> None:
    out = invoke("run", "--help").output
    from anondiff.policies import names
    flat = " ".join(out.split())
    for name in names():
        assert name in flat
    assert ".py file" in flat and "kernel version" in flat
    assert "Exit status: 0" in flat and "130 interrupted" in flat
    assert "_ANONDIFF_COMPLETE=bash_source anondiff" in " ".join(invoke("--help").output.split())


#: what every command taking -p says a kernel tree as a policy looks like
TREE_WORDS = ("a kernel source tree (a directory with a Makefile and mm/, or a "
              ".tar.xz/.tar.gz/.tar.bz2/.tar tarball) followed by +PATCH for each patch to "
              "apply, an mbox or a unified diff")


@pytest.mark.parametrize("command", ["run", "compare", "explain", "search"])
def test_help_says_a_kernel_tree_and_its_patches_are_a_policy(command: str) -> None:
    """Every command that takes -p POLICY lists a kernel tree, +PATCH..., among the forms."""
    r = invoke(command, "--help")
    assert r.exit_code == 0
    flat = " ".join(r.output.split())
    assert "POLICY is one of: - a policy name" in flat
    assert TREE_WORDS in flat and ".py file" in flat


@pytest.mark.parametrize("policy", ["degree.diff", "linux-7.2.tar.zst", "foo+bar.diff"])
def test_unknown_policy_says_a_kernel_tree_is_one(policy: str) -> None:
    """A patch alone, or a tarball anondiff cannot read: the error lists every form of POLICY,
    trees with their +PATCH syntax among them, in one line."""
    r = invoke("run", SEED, "-p", policy)
    assert r.exit_code == 2
    assert r.output.startswith(f"anondiff: unknown policy: {policy!r} (must be one of [")
    assert ", a .py file, or " + TREE_WORDS in r.output
    assert len(r.output.splitlines()) == 1


def test_shell_completion_offers_policy_names() -> None:
    import os
    import subprocess
    import sys
    env = dict(os.environ, _ANONDIFF_COMPLETE="bash_complete", COMP_WORDS="anondiff run x -p spl",
               COMP_CWORD="4")
    r = subprocess.run([sys.executable, "-c", "from anondiff.cli import main; main(prog_name='anondiff')"], env=env,
                       capture_output=True, text=True, cwd=ROOT)
    assert "plain,split-counters" in r.stdout.splitlines()


def test_check_prints_a_summary_line() -> None:
    r = invoke("run", SEED, "--check", "--format", "list")
    assert r.exit_code == 0
    assert r.stderr.splitlines()[-1] == (f"{SEED}: 11 checks (5 expectations under 9 policies): "
                                         "all ok")
    assert "DST1" in r.stdout


def test_check_quiet_shows_only_failures_and_the_summary(tmp_path: Path) -> None:
    ok = invoke("run", SEED, "--check", "--quiet")
    assert ok.exit_code == 0 and ok.stdout == ""
    assert ok.stderr.splitlines() == [f"{SEED}: 11 checks (5 expectations under 9 policies): all ok"]
    text = Path(SEED).read_text().replace("anon_vma: {C/DST1: AV1,", "anon_vma: {C/DST1: AV9,")
    p = tmp_path / "seed.yaml"
    p.write_text(text)
    bad = invoke("run", str(p), "--check", "-q")
    assert bad.exit_code == 1 and bad.stdout == ""
    lines = bad.stderr.splitlines()
    assert len(lines) == 2 and ": FAIL anon_vma under wei-4e4a9eb92133" in lines[0]
    assert lines[1] == f"{p}: 11 checks (5 expectations under 9 policies): 10 ok, 1 FAILED"
    assert invoke("run", SEED, "--quiet").exit_code == 2


def test_output_suffix_chooses_the_format(tmp_path: Path) -> None:
    out = tmp_path / "seed.json"
    assert invoke("run", SEED, "-p", "v2", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text())["scenario"] == "seed-thread"
    gv = tmp_path / "seed.gv"
    assert invoke("run", SEED, "-p", "v2", "-o", str(gv)).exit_code == 0
    assert gv.read_text().startswith("digraph")
    txt = tmp_path / "seed.txt"
    assert invoke("run", SEED, "-p", "v2", "-o", str(txt), "--final-only").exit_code == 0
    assert txt.read_text() == invoke("run", SEED, "-p", "v2", "--final-only").stdout
    explicit = tmp_path / "list.json"
    assert invoke("run", SEED, "-p", "v2", "-o", str(explicit), "--format", "list").exit_code == 0
    assert "DST1..DST5" in explicit.read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz 'dot' (apt-get install graphviz)")
def test_svg_suffix_draws_an_image_without_format(tmp_path: Path) -> None:
    out = tmp_path / "seed.svg"
    r = invoke("run", SEED, "-p", "v2", "--final-only", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_snapshot_selects_one_snapshot() -> None:
    cve = invoke("run", CVE, "-p", "degree", "--format", "json")
    labels = [s["label"] for s in json.loads(cve.stdout)["runs"][0]["snapshots"]]
    assert len(labels) > 1
    one = invoke("run", CVE, "-p", "degree", "--format", "json", "--snapshot", labels[0])
    assert [s["label"] for s in json.loads(one.stdout)["runs"][0]["snapshots"]] == [labels[0]]
    bad = invoke("run", CVE, "-p", "degree", "--snapshot", "nope")
    assert bad.exit_code == 2 and f"there are: {', '.join(labels)}" in bad.output


def test_scenario_format_example_is_the_shipped_seed_thread() -> None:
    doc = (ROOT / "docs" / "scenario-format.md").read_text()
    section = doc[doc.index("## A complete example"):]
    block = section[section.index("```yaml\n") + len("```yaml\n"):]
    block = block[:block.index("```\n")]
    assert block == (ROOT / "scenarios" / "seed-thread.yaml").read_text()


@pytest.mark.parametrize("args", [
    ("run", "scenarios/seed-thread.yaml", "-p", "degree", "-p", "wei-4e4a9eb92133", "-p", "v2",
     "--format", "ascii", "--final-only"),
    ("compare", "-p", "wei-4e4a9eb92133", "-p", "v2", "scenarios/seed-thread.yaml",
     "--format", "list"),
])
def test_readme_examples_reproduce(args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out = invoke(*args).stdout
    assert f"```\n{out}```\n" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("how", ["python -m anondiff", "anondiff"])
def test_ctrl_c_during_the_imports_is_a_quiet_130(how: str) -> None:
    """Ctrl-C before click and yaml are imported (the first few hundred milliseconds on a
    loaded machine) printed KeyboardInterrupt's traceback; now it ends like any Ctrl-C.  The
    interrupt is made to land exactly there: ``import click`` raises it."""
    import subprocess
    import sys
    entry = ("runpy.run_module('anondiff', run_name='__main__')" if how != "anondiff" else
             "from importlib.metadata import entry_points\n"
             "[ep] = [e for e in entry_points(group='console_scripts') if e.name == 'anondiff']\n"
             "ep.load()()")
    code = ("import builtins, runpy\n"
            "real = builtins.__import__\n"
            "def imp(name, *a, **k):\n"
            "    if name == 'click':\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = imp\n" + entry + "\n")
    p = subprocess.run([sys.executable, "-c", code, "run", "scenarios/seed-thread.yaml"],
                       capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert (p.returncode, p.stdout, p.stderr) == (130, "", "")
