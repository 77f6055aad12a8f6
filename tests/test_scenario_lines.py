"""The line-by-line fast path of the scenario loader (anondiff.scenario_lines) against the
careful node-by-node path: the same Scenario on every shipped scenario and on generated big
files, the same message for every error, and no use of the fast path where the lines do not mean
what they look like."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anondiff import scenario_lines, yamlnodes
from anondiff.errors import ScenarioError
from anondiff.scenario import loads
from anondiff.scenario_loader import Loader
from bench.__main__ import write_big

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))


def full(text: str, path: str = "t.yaml"):  # type: ignore[no-untyped-def]
    """The careful path alone: every value a YAML node."""
    return Loader(path).scenario(yamlnodes.compose(text, path))


class Failed(str):
    """The message of a load that failed."""


def outcome(load, text: str):  # type: ignore[no-untyped-def]
    try:
        return load(text, "t.yaml")
    except ScenarioError as e:
        return Failed(e)


def fast_used(text: str) -> bool:
    try:
        return isinstance(scenario_lines.compose(text, "t.yaml"), scenario_lines.FastDocument)
    except ScenarioError:
        return False


def same(text: str, fast_expected: bool | None = None) -> object:
    """Load *text* both ways; they must agree (Scenario or message).  With *fast_expected*,
    whether the fast path took any VMA list."""
    got = outcome(loads, text)
    assert got == outcome(full, text)
    if fast_expected is not None:
        assert fast_used(text) is fast_expected
    return got


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_scenarios_load_the_same_both_ways(path: Path) -> None:
    text = path.read_text()
    sc = same(text)
    assert not isinstance(sc, Failed), sc


def test_most_shipped_scenarios_take_the_fast_path() -> None:
    used = [p for p in SHIPPED if fast_used(p.read_text())]
    assert len(used) >= len(SHIPPED) // 2


@pytest.mark.parametrize("n", [1, 2, 5000])
def test_generated_big_files_load_the_same_both_ways(tmp_path: Path, n: int) -> None:
    path = tmp_path / "big.yaml"
    write_big(n, path)
    sc = same(path.read_text(), fast_expected=True)
    assert len(sc.processes[0].vmas) == n     # type: ignore[attr-defined]


HEAD = "description: d\nprocesses:\n  - name: P\n    vmas:\n"
STEPS = "steps:\n  - {fork: P, child: C}\n"


def vma(i: int, extra: str = "faulted: true, anon_vma: AV0") -> str:
    return f"      - {{name: v{i}, start: {0x7f0000000000 + i * 4096:#x}, pages: 1, {extra}}}\n"


def lines(*items: str, tail: str = STEPS) -> str:
    return HEAD + "".join(items) + tail


@pytest.mark.parametrize("text, fast", [
    (lines(vma(0), vma(1)), True),
    # blank and comment lines inside the list, a second process after it
    (lines(vma(0), "\n", "      # a comment\n", vma(1),
           tail="  - name: Q\n    vmas:\n" + vma(5).replace("v5", "q5") + STEPS), True),
    # a list the careful path reads, then one read line by line (its line numbers)
    (lines("      - {name: 'a', start: 4096, pages: 1}\n",
           tail="  - name: Q\n    vmas:\n" + vma(5) + vma(6) + STEPS), True),
    # no newline at the end of the file
    (HEAD + vma(0) + vma(1).rstrip("\n"), True),
    # every key the fast path reads, decimal and hex, end instead of pages, a file
    (lines("      - {name: a, start: 4096, end: 0x3000, prot: rx, shared: false, "
           "file: lib.so, faulted: false}\n", vma(9, "prot: none")), True),
    # null values count as absent, except where they are an error
    (lines("      - {name: a, start: 4096, pages: 1, file: Null, anon_vma: null}\n"), True),
    (lines("      - {name: a, start: null, pages: 1}\n"), False),
    # a key twice, the second after a null: the careful path says so
    (lines("      - {name: a, start: 4096, pages: 1, file: null, file: x}\n"), False),
    # names and values the resolver makes something else than a string
    (lines("      - {name: yes, start: 4096, pages: 1}\n"), False),
    (lines("      - {name: a, start: 4096, pages: 1, prot: true}\n"), False),
    (lines("      - {name: .5, start: 4096, pages: 1}\n"), False),
    # YAML 1.1 integers and booleans as PyYAML reads them
    (lines("      - {name: a, start: 010000, pages: 1}\n"), True),    # octal
    (lines("      - {name: a, start: 0b1000000000000, pages: 1_0}\n"), True),
    (lines("      - {name: a, start: 4_096, pages: 1}\n"), True),
    (lines("      - {name: a, start: 4096, pages: 1, faulted: yes}\n"), True),
    (lines("      - {name: a, start: 4096, pages: 1, faulted: True}\n"), True),
    # quoted, tagged or multi-line items, flags, a trailing comment: the careful path
    (lines("      - {name: 'a', start: 4096, pages: 1}\n"), False),
    (lines("      - {name: !!str a, start: 4096, pages: 1}\n"), False),
    (lines("      - {name: a, start: 4096, pages: 1, flags: [dontcopy]}\n"), False),
    (lines("      - {name: a, start: 4096,\n         pages: 1}\n"), False),
    (lines("      - {name: a, start: 4096, pages: 1}  # the heap\n"), False),
    (lines("      - name: a\n        start: 4096\n        pages: 1\n"), False),
    (lines(vma(0), "      - name: b\n        start: 0x7f0000010000\n        pages: 1\n"), False),
    # an indentless list, items at two columns, something deeper after the list
    (HEAD.replace("    vmas:\n", "    vmas:\n") + vma(0).replace("      -", "    -") + STEPS, False),
    (lines(vma(0), vma(1).replace("      -", "       -")), False),
    (lines(vma(0), tail="       x: 1\n" + STEPS), False),
    # looks like a VMA list but is text in a block scalar: the description must not change
    ("description: |\n  a\n  vmas:\n" + vma(0).replace("      -", "    -") + "processes:\n"
     "  - name: P\n", False),
    ("description: |\n    vmas:\n" + vma(0) + "processes:\n  - name: P\n", False),
    # a vmas key outside processes
    ("description: d\nvmas:\n" + vma(0) + "processes:\n  - name: P\n", False),
    # carriage returns: YAML counts lines differently
    (lines(vma(0)).replace("\n", "\r\n"), False),
])
def test_fast_path_only_where_it_is_exact(text: str, fast: bool) -> None:
    same(text, fast_expected=fast)


@pytest.mark.parametrize("text, message", [
    (lines(vma(0), vma(1), vma(0)), "VMA name 'v0' is already used in process 'P' at line 5"),
    (lines(vma(0), vma(1), vma(1).replace("v1", "w1")), "overlaps VMA 'v1'"),
    (lines(vma(0), tail="  - name: Q\n    vmas:\n" + vma(5)), "is used in processes P and Q"),
    (lines("      - {name: 'a', start: 4096, pages: 1}\n",
           tail="  - name: Q\n    vmas:\n" + vma(5) + vma(6) + vma(5)), "t.yaml:10: "),
    (lines(vma(0), vma(1, "file: x, faulted: true, anon_vma: AV0")), "must agree on 'file'"),
    # one label of many is another process's: every label of the list is checked
    (lines(vma(0), tail="  - name: Q\n    vmas:\n" + "".join(
        vma(i, f"faulted: true, anon_vma: Q{i}") for i in range(1, 41)) + vma(41)),
     "is used in processes P and Q"),
    (lines(vma(0), tail="steps:\n  - {fork: Q}\n"), "'Q' is not a process"),
    (lines(vma(0), tail="steps: [\n"), "YAML syntax error"),
    (lines(vma(0), "    vmas:\n" + vma(1)), "duplicate key 'vmas'"),
    (lines(vma(0), "  - name: P\n"), "process name 'P' is already used"),
    (lines(vma(0), tail="bogus: 1\n"), "unknown key 'bogus'"),
    (lines(vma(0), "      - {name: a, start: 4096, pages: 1, file: null, file: x}\n"),
     "duplicate key 'file'"),
])
def test_errors_are_the_careful_paths(text: str, message: str) -> None:
    got = same(text)
    assert isinstance(got, Failed) and message in got, got


def test_error_line_of_a_duplicate_read_line_by_line() -> None:
    text = lines(*(vma(i) for i in range(50)), vma(7))
    with pytest.raises(ScenarioError) as e:
        loads(text, "t.yaml")
    assert e.value.line == 55 and "[50]" in e.value.message and "at line 12" in e.value.message


@pytest.mark.parametrize("value", [
    "v0", "AV0", "rw", "r", "x", "none", "null", "Null", "NULL", "~", "true", "True", "TRUE",
    "false", "yes", "no", "on", "off", "y", "n", "0", "1", "10", "010", "0x10", "0x7f0000000000",
    "0xDEAD", "0b11", "1_0", "1.5", ".5", ".inf", ".nan", "1e3", "2001-12-14", "1:20", "lib.so",
    "_x", "a-b", "a.b", "foo", "one", "tree", "O", "ON", "off_", "nan", "inf", "NaN",
])
def test_tags_are_the_resolvers(value: str) -> None:
    expected = yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False))
    assert scenario_lines._tag(value, {}) == expected


@pytest.mark.parametrize("text", ["0", "7", "4096", "0x1000", "0x7F0000000000", "010", "0b101",
                                  "1_000", "-5", "+5", "0x_1", "1:30"])
def test_integers_are_the_constructors(text: str) -> None:
    expected = yaml.constructor.SafeConstructor().construct_yaml_int(
        yaml.ScalarNode("tag:yaml.org,2002:int", text))
    assert scenario_lines.yaml_int(text) == expected


@pytest.mark.parametrize("text", [
    # lines alike but for their name and start, read by the shape of their rest: the checks on
    # each name and start are still made (a bad one sends the document the careful way)
    lines(*(vma(i) for i in range(5)), vma(5).replace("v5", "yes")),
    lines(*(vma(i) for i in range(5)), vma(5).replace("v5", "n5"), vma(6).replace("v6", "on")),
    lines(*(vma(i) for i in range(3)), vma(3).replace("0x7f0000003000", "0x7f0000003001")),
    lines(*(vma(i) for i in range(3)), "      - {name: z, start: 0x7ffffffff000, pages: 1, "
          "faulted: true, anon_vma: AV0}\n"),
    lines(*(vma(i) for i in range(3)), "      - {name: z, start: 0x7ffffffff000, pages: 2, "
          "faulted: true, anon_vma: AV0}\n", "      - {name: y, start: 0x7ffffffff000, pages: 2, "
          "faulted: true, anon_vma: AV0}\n"),
    lines(*(vma(i) for i in range(3)), vma(3).replace("0x7f0000003000", "0x900000000000")),
    lines(*(vma(i) for i in range(3)), "      - {name: z, start: 4096, pages: 1, "
          "faulted: true, anon_vma: AV0}\n", "      - {name: y, start: 0, pages: 1, "
          "faulted: true, anon_vma: AV0}\n"),
    # shapes interleaved; a rest with end (no shape); a rest naming a key twice
    lines(*(vma(i, "prot: r" if i % 2 else "prot: rw, faulted: true") for i in range(6))),
    lines(*(f"      - {{name: e{i}, start: {4096 * (i + 1)}, end: {4096 * (i + 2)}}}\n"
            for i in range(4))),
    lines(vma(0), vma(1, "faulted: true, name: again")),
    lines(vma(0), vma(1, "faulted: true, start: 0x1000")),
    # a label that needs faulted; shared and faulted; more pages than may be faulted
    lines(vma(0, "anon_vma: AV0"), vma(1, "anon_vma: AV0")),
    lines(vma(0, "shared: true, faulted: true"), vma(1, "shared: true, faulted: true")),
    lines("      - {name: big, start: 0x100000000, pages: 2000000, faulted: true}\n",
          "      - {name: big2, start: 0x200000000, pages: 2000000, faulted: true}\n"),
])
def test_lines_read_by_shape_as_the_careful_path(text: str) -> None:
    same(text)


def test_shapes_are_the_common_case() -> None:
    """A generated layout is read by the shapes of a handful of rests."""
    text = lines(*(vma(i, "prot: r" if i % 2 else "faulted: true") for i in range(100)))
    seen: list[str] = []
    real = scenario_lines._shape

    def counting(rest, *args):  # type: ignore[no-untyped-def]
        seen.append(rest)
        return real(rest, *args)

    import unittest.mock
    with unittest.mock.patch.object(scenario_lines, "_shape", counting):
        sc = loads(text, "t.yaml")
    assert sc == same(text, fast_expected=True)
    assert len(sc.processes[0].vmas) == 100
    assert sorted(seen) == [", pages: 1, faulted: true", ", pages: 1, prot: r"]


def odd_lists() -> list[str]:
    """Lists of 40 lines alike but for one or two odd ones at various places: every batch that
    holds an odd line is read by the one-line loops (or the careful path), the others at once."""
    def at(i: int, odd: str) -> str:
        return lines(*(odd if j == i else vma(j) for j in range(40)))
    return [
        lines(*(vma(i) for i in range(40))),
        lines(*(vma(i, "prot: r" if i % 3 else "faulted: true") for i in range(40))),
        at(0, vma(0).replace("v0", "yes")),
        at(13, vma(13).replace("v13", "n13")),             # a string, though n is a trigger
        at(13, vma(13).replace("v13", "on")),              # a bool
        at(21, vma(21).replace("v21", "t.x")),
        at(21, vma(21).replace("v21", "'q'")),
        at(22, vma(22).replace("0x7f0000016000", "0x7f0000016001")),
        at(22, vma(22).replace("0x7f0000016000", "139637976817664")),   # decimal, the same
        at(22, vma(22).replace("0x7f0000016000", "0139637976817664")),
        at(22, vma(22).replace("0x7f0000016000", "0x7F0000016000")),
        at(23, vma(23).replace("start:", "start:  ")),
        at(23, vma(23).replace("{name:", "{ name:")),
        at(23, vma(23).replace("name: v23,", "name: v23 ,")),
        at(24, vma(24).replace("}", "  }  ")),
        at(24, vma(24).replace("pages: 1", "end: 0x7f0000019000")),
        at(24, vma(24).replace("pages: 1", "pages: 0")),
        at(25, vma(25).replace("pages: 1,", "pages: 1, pages: 1,")),
        at(25, vma(25).replace("anon_vma: AV0", "anon_vma: AV0, flags: [dontcopy]")),
        at(26, vma(26).replace("      -", "       -")),
        at(27, "\n"),
        at(27, "      # a comment\n"),
        at(28, vma(28).rstrip("\n") + "  # a comment\n"),
        at(29, vma(1)),                                    # a duplicate name
        at(30, vma(30).replace("v30", "v29")),
        at(39, vma(39).rstrip("\n")) + "",                 # the last, without a line break
        HEAD + "".join(vma(i) for i in range(39)) + vma(39).rstrip("\n"),
        at(31, "      - {name: top, start: 0x7ffffffff000, pages: 2, faulted: true}\n"),
    ]


@pytest.mark.parametrize("text", odd_lists())
def test_batches_read_as_the_careful_path(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scenario_lines, "BATCH_LINES", 4)
    monkeypatch.setattr(scenario_lines, "BATCH_MIN", 0)
    taken: list[int] = []
    real = scenario_lines._Batch.__call__

    def counting(self, *args):  # type: ignore[no-untyped-def]
        got = real(self, *args)
        taken.append(len(got) if got else 0)
        return got

    monkeypatch.setattr(scenario_lines._Batch, "__call__", counting)
    same(text)
    if fast_used(text):
        assert max(taken) == 4      # the batches without odd lines were read at once


def test_a_batch_that_fails_is_not_tried_again_line_after_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Odd lines everywhere: each line is in at most one batch tried (linear, not quadratic)."""
    monkeypatch.setattr(scenario_lines, "BATCH_LINES", 16)
    monkeypatch.setattr(scenario_lines, "BATCH_MIN", 0)
    tried: list[int] = []
    real = scenario_lines._Batch.__init__

    def init(self, column: int) -> None:  # type: ignore[no-untyped-def]
        real(self, column)
        run = self.run

        def counting(text: str, pos: int):  # type: ignore[no-untyped-def]
            m = run(text, pos)
            if m is not None:
                tried.append(text.count("\n", pos, m.end()))
            return m
        self.run = counting

    monkeypatch.setattr(scenario_lines._Batch, "__init__", init)
    # every seventh line with an end, not pages: read by the general loop, never in a batch
    text = lines(*(vma(i).replace("pages: 1", f"end: {0x7f0000001000 + i * 4096:#x}")
                   if i % 7 == 3 else vma(i) for i in range(500)))
    same(text, fast_expected=True)
    tried.clear()
    loads(text, "t.yaml")
    assert 0 < sum(tried) <= 500


def test_short_lists_are_read_without_batches() -> None:
    """A small scenario does not compile the batches' regular expressions."""
    text = lines(*(vma(i) for i in range(10)))
    scenario_lines._checks.cache_clear()
    same(text, fast_expected=True)
    assert scenario_lines._checks.cache_info().currsize == 0
    text = lines(*(vma(i) for i in range(100)))
    same(text, fast_expected=True)
    assert scenario_lines._checks.cache_info().currsize == 1
