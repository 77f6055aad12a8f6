"""``anondiff reproducer``: a scenario as a self-contained C program (gcc alone; no root, no
BPF, no anondiff) that performs the same syscalls as ``anondiff live`` and checks, from
/proc/PID/maps after the layout and after every step, every merge and split the policy predicts.

The syscalls are recorded by running :class:`anondiff.live.replay._Live` (the same layout
building and step code as ``live``) against a recorder instead of real processes, so the two
cannot drift apart.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..policies.base import Policy
from ..scenario import Mmap, Scenario, Snapshot, Step
from ..topology import Topology
from .replay import Unsupported, _Live, _range, file_size, predictions, supported

TEMPLATE = Path(__file__).with_name("reproducer.c")
MADV = {"dontneed": "MADV_DONTNEED", "dontfork": "MADV_DONTFORK", "dofork": "MADV_DOFORK",
        "dontdump": "MADV_DONTDUMP", "dodump": "MADV_DODUMP",
        "wipeonfork": "MADV_WIPEONFORK", "keeponfork": "MADV_KEEPONFORK"}


def _prot(bits: int) -> str:
    names = [n for b, n in ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")) if bits & b]
    return " | ".join(names) or "PROT_NONE"


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Recorder:
    """Stands in for :class:`~anondiff.live.procs.Processes`: each call becomes C."""

    def __init__(self, files: list[str]) -> None:
        self.index: dict[str, int] = {}
        self.files = files
        self.memfd = "self->memfd" if files else "NULL"
        self.lines: list[str] = []
        self.pids: dict[str, int] = {}

    def _idx(self, name: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.index)
        return self.index[name]

    def _call(self, who: str, op: str, arg: str = "0", addr: int = 0, length: int = 0,
              prot: str = "0", flags: str = "0", offset: int = 0) -> None:
        self.lines.append(f"\tASSERT_EQ(0, request(self->proc, {self._idx(who)}, {op}, {arg}, "
                          f"{addr:#x}, {length:#x}, {prot}, {flags}, {offset:#x}));"
                          f"\t/* {who} */")

    def start(self, name: str) -> int:
        self.lines.append(f"\tASSERT_EQ(0, start_proc(self->proc, {self.memfd}, "
                          f"{self._idx(name)}));\t/* {name} */")
        self.pids[name] = 0
        return 0

    def request(self, name: str, op: str, **a: object) -> dict:
        if op == "mmap":
            flags = "MAP_SHARED" if a["shared"] else "MAP_PRIVATE"
            arg = "-1"
            if a["file"]:
                arg = str(self.files.index(str(a["file"])))
            else:
                flags += " | MAP_ANONYMOUS"
            self._call(name, "OP_MMAP", arg, int(a["start"]), int(a["length"]),  # type: ignore[call-overload]
                       _prot(int(a["prot"])), flags, int(a["offset"]))  # type: ignore[call-overload]
        elif op in ("munmap", "mprotect"):
            self._call(name, f"OP_{op.upper()}", "0", int(a["start"]), int(a["length"]),  # type: ignore[call-overload]
                       _prot(int(a["prot"])) if op == "mprotect" else "0")  # type: ignore[call-overload]
        elif op == "madvise":
            self._call(name, "OP_MADVISE", "0", int(a["start"]), int(a["length"]),  # type: ignore[call-overload]
                       MADV[str(a["advice"])])
        elif op == "write":
            for addr in a["addrs"]:  # type: ignore[attr-defined]
                self._call(name, "OP_WRITE" if a["writable"] else "OP_FORCE_WRITE", "0", addr)
        elif op == "mremap":
            flags = set(a["flags"])  # type: ignore[call-overload]
            if flags == {"maymove"} and int(a["new_len"]) > int(a["old_len"]):  # type: ignore[call-overload]
                # live steers get_unmapped_area() with placeholders (driver.do_mremap)
                raise Unsupported("a reproducer does not run mremap with MREMAP_MAYMOVE alone "
                                  "growing a mapping (where the kernel moves it is not steered "
                                  "there yet): use MREMAP_FIXED, or anondiff live")
            names = " | ".join(f"MREMAP_{f.upper()}" for f in sorted(flags)) or "0"
            self.lines.append(
                f"\tASSERT_EQ(0, request_mremap(self->proc, {self._idx(name)}, {a['addr']:#x}, "
                f"{a['old_len']:#x}, {a['new_len']:#x}, {names}, {a['to'] or 0:#x}));"
                f"\t/* {name} */")
            return {"ok": True, "addr": a["to"] if flags & {"fixed", "dontunmap"} else a["addr"]}
        elif op == "brk":
            raise Unsupported("a reproducer does not run brk steps (yet): anondiff live does "
                              "(prctl(PR_SET_MM_MAP) first)")
        else:  # pragma: no cover - _Live sends nothing else
            raise Unsupported(f"reproducer: unknown request {op!r}")
        return {"ok": True}

    def fork(self, parent: str, child: str) -> int:
        self._call(parent, "OP_FORK", str(self._idx(child)))
        self.lines[-1] += f"\t/* forks {child} */"
        self.pids[child] = 0
        return 0

    def exit(self, name: str) -> None:
        self._call(name, "OP_EXIT")
        self.lines.append(f"\tASSERT_EQ(0, wait_gone(self->proc, {self._idx(name)}));")
        self.pids.pop(name, None)


def _check(rec: _Recorder, pred: Topology, when: str, lo: int, hi: int, n: int) -> list[str]:
    out = []
    for i, p in enumerate(pred.processes):
        want = "".join(
            f"\t\t\t{{ {v.start:#x}, {v.end:#x}, \"{_perms(v.prot, 'shared' in v.flags)}\", "
            f"{_c_string(v.name)} }},\n" for v in p.vmas) or "\t\t\t{ 0 },\n"
        var = f"want_{n}_{i}"
        out.append(f"\t{{\n\t\tstatic const struct vma_want {var}[] = {{\n{want}\t\t}};\n")
        out.append(f"\t\tASSERT_TRUE(maps_match(self->proc[{rec._idx(p.name)}].pid, "
                   f"{_c_string(p.name)}, {_c_string(when)}, {lo:#x}, {hi:#x}, {var}, "
                   f"{len(p.vmas)}));\n\t}}")
    return out


def _perms(prot: tuple[str, ...], shared: bool) -> str:
    return "".join(c if b in prot else "-" for c, b in (("r", "read"), ("w", "write"),
                                                           ("x", "exec"))) + ("s" if shared else "p")


def _describe(sc: Scenario, step: Step) -> str:
    """The step as the scenario file writes it (its first line)."""
    try:
        text = Path(sc.path).read_text().splitlines()[step.line - 1].strip()
    except (OSError, IndexError):
        text = type(step).__name__.lower()
    return text.lstrip("- ").replace("*/", "* /")


def generate(sc: Scenario, policy: Policy) -> str:
    why = supported(sc)
    if why:
        raise Unsupported(why)
    preds = predictions(sc, policy)
    files = sorted({v.file for p in sc.processes for v in p.vmas if v.file}
                   | {s.vma.file for s in sc.steps if isinstance(s, Mmap) and s.vma.file})
    rec = _Recorder(files)
    lv = _Live(sc, policy, None, rec)  # type: ignore[arg-type]
    lo, hi = _range(sc, preds[0])
    body = ["\t/* the starting layout */"]
    lv.layout()
    body += rec.lines
    rec.lines = []
    body += _check(rec, preds[0], "layout", lo, hi, 0)
    for i, pred in enumerate(preds[1:], 1):
        step = sc.steps[i - 1]
        lv.step(preds[i - 1], step)
        if isinstance(step, Snapshot):
            continue
        body.append(f"\n\t/* step {i} (line {step.line}): {_describe(sc, step)} */")
        body += rec.lines
        rec.lines = []
        body += _check(rec, pred, f"step {i} (line {step.line})", lo, hi, i)
    name = re.sub(r"\W", "_", sc.name) or "scenario"
    if name[0].isdigit():
        name = "s_" + name
    nproc = len(rec.index)
    setup = ["FIXTURE(anon_vma) {"]
    if files:
        setup.append(f"\tint memfd[{len(files)}];")
    setup += [
        f"\tstruct proc proc[{nproc}];",
        "\tint nr_procs;",
        "};",
        "",
        "FIXTURE_SETUP(anon_vma)",
        "{",
        "\tint i;",
        "",
        f"\tself->nr_procs = {nproc};",
        "\tfor (i = 0; i < self->nr_procs; i++) {",
        "\t\tASSERT_EQ(0, pipe(self->proc[i].cmd));",
        "\t\tASSERT_EQ(0, pipe(self->proc[i].reply));",
        "\t}",
    ]
    for j, f in enumerate(files):
        setup += [f"\t/* {f}: mapped at offset = address */",
                  f"\tself->memfd[{j}] = memfd_create({_c_string(f)}, 0);",
                  f"\tASSERT_NE(-1, self->memfd[{j}]);",
                  f"\tASSERT_EQ(0, ftruncate(self->memfd[{j}], {file_size(sc):#x}));"]
    setup += [
        "}",
        "",
        "FIXTURE_TEARDOWN(anon_vma)",
        "{",
        "\tint i;",
        "",
        "\tfor (i = 0; i < self->nr_procs; i++)",
        "\t\tif (self->proc[i].pid > 0)",
        "\t\t\tkill(self->proc[i].pid, SIGKILL);",
        "}",
        "",
    ]
    head = [
        "/*",
        f" * Reproducer for {sc.path} (anondiff), checking the layout predicted by",
        f" * {policy.name}: {policy.cite}.",
        " * Build and run: gcc -Wall -Wextra THIS_FILE.c && ./a.out",
        " * Every step is performed by real processes; after each one /proc/PID/maps must show",
        " * exactly the VMAs (and so the merges and splits) the policy predicts.",
        " */",
        "",
    ]
    template = TEMPLATE.read_text()
    return "\n".join([template.rstrip("\n"), "", *head, *setup,
                      f"TEST_F(anon_vma, {name})", "{", *body, "}", ""])
