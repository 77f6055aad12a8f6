"""The command line as a user meets it: exit codes, stdout, stderr, files."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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
    assert "DST1..DST5 - AV1 (child of AV0)" in out.read_text()
    assert [f.name for f in tmp_path.iterdir()] == ["seed.txt"]


def test_trouble_leaves_no_output_file(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    r = invoke("run", SEED, "-p", "bogus", "-o", str(out))
    assert r.exit_code == 2 and not out.exists()


def test_image_needs_dot_format(tmp_path: Path) -> None:
    r = invoke("run", SEED, "-p", "v2", "-o", str(tmp_path / "x.svg"))
    assert r.exit_code == 2 and "--format dot" in r.output


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
    for name in main.commands:
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
