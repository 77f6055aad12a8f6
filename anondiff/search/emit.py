"""Scenario records as YAML that :func:`anondiff.scenario.loads` reads back as the same records:
flow-style VMAs, steps and expectations, one a line, with the keys of
docs/scenario-format.md."""
from __future__ import annotations

import re
import textwrap
from typing import Iterable

from ..scenario import (MREMAP_FLAGS, PAGE_SIZE, PROT_BITS, Exit, Expectation, Fault, Fork,
                        Madvise, Mmap, Mprotect, Mremap, Munmap, Scenario, Snapshot, Step, Target,
                        VmaSpec)

_PLAIN = re.compile(r"[A-Za-z_./~][A-Za-z0-9_./~+-]*\Z")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def scalar(s: str) -> str:
    """A name as a YAML scalar: plain when it reads back as the same string, else quoted."""
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prot_text(prot: Iterable[str]) -> str:
    letters = "".join(letter for bit, letter in zip(PROT_BITS, "rwx") if bit in prot)
    return letters or "none"


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _vma(v: VmaSpec) -> str:
    out = (f"name: {scalar(v.name)}, start: {v.start:#x}, pages: {(v.end - v.start) // PAGE_SIZE}, "
           f"prot: {prot_text(v.prot)}")
    if v.flags:
        out += f", flags: {_flow(sorted(v.flags))}"
    if v.shared:
        out += ", shared: true"
    if v.file is not None:
        out += f", file: {scalar(v.file)}"
    if v.faulted:
        size = (v.end - v.start) // PAGE_SIZE
        whole = v.pages is None or v.pages == tuple(range(size))
        out += ", faulted: " + ("true" if whole else _flow([str(o) for o in v.pages or ()]))
    if v.anon_vma is not None:
        out += f", anon_vma: {scalar(v.anon_vma)}"
    return out


def _target(t: Target) -> str:
    if t.vma is None:
        assert t.end is not None
        return f"{scalar(t.process)}, start: {t.first:#x}, end: {t.end:#x}"
    out = scalar(f"{t.process}/{t.vma}")
    if t.first:
        out += f", offset: {t.first}"
    if t.end is not None:
        out += f", pages: {t.end - t.first}"
    return out


def _names(names: tuple[str, ...]) -> str:
    return f", names: {_flow([scalar(n) for n in names])}" if names else ""


def _step(s: Step) -> str:
    if isinstance(s, Fork):
        out = f"fork: {scalar(s.process)}, child: {scalar(s.child)}"
        if s.names:
            pairs = ", ".join(f"{scalar(a)}: {scalar(b)}" for a, b in s.names)  # type: ignore[misc]
            out += f", names: {{{pairs}}}"
        return out
    if isinstance(s, Exit):
        return f"exit: {scalar(s.process)}"
    if isinstance(s, Fault):
        if s.vma is None:
            assert s.addr is not None
            return f"{s.kind}: {scalar(s.process)}, addr: {s.addr:#x}"
        pages = s.pages if isinstance(s.pages, str) else _flow([str(p) for p in s.pages])
        return f"{s.kind}: {scalar(s.process + '/' + s.vma)}, pages: {pages}"
    if isinstance(s, Mprotect):
        return f"mprotect: {_target(s.target)}, prot: {prot_text(s.prot)}{_names(s.names)}"
    if isinstance(s, Munmap):
        return f"munmap: {_target(s.target)}{_names(s.names)}"
    if isinstance(s, Madvise):
        return f"madvise: {_target(s.target)}, advice: {s.advice}{_names(s.names)}"
    if isinstance(s, Mmap):
        return f"mmap: {scalar(s.process)}, {_vma(s.vma)}"
    if isinstance(s, Mremap):
        out = f"mremap: {_target(s.target)}"
        if s.new_pages is not None:
            out += f", new_pages: {s.new_pages}"
        if s.flags:
            out += f", flags: {_flow([f for f in MREMAP_FLAGS if f in s.flags])}"
        if s.to is not None:
            out += f", to: {s.to:#x}"
        if s.name is not None:
            out += f", name: {scalar(s.name)}"
        return out + _names(s.names)
    if isinstance(s, Snapshot):
        return f"snapshot: {scalar(s.label)}"
    raise TypeError(f"not a step the search makes: {s!r}")


def _expectation(e: Expectation) -> str:
    assert e.policies is not None
    who = (f"policy: {scalar(e.policies[0])}" if len(e.policies) == 1
           else f"policies: {_flow([scalar(p) for p in e.policies])}")
    v = e.value
    if e.kind in ("same_anon_vma", "different_anon_vma", "findings", "freed"):
        body = _flow([scalar(str(x)) for x in v])  # type: ignore[union-attr]
    elif e.kind == "anon_vma":
        body = "{" + ", ".join(f"{scalar(r)}: {'null' if a is None else scalar(a)}"
                               for r, a in v) + "}"  # type: ignore[union-attr]
    elif e.kind == "chain":
        body = "{" + ", ".join(f"{scalar(r)}: {_flow([scalar(a) for a in c])}"
                               for r, c in v) + "}"  # type: ignore[union-attr]
    else:
        body = "true"
    return f"{{{who}, {e.kind}: {body}}}"


def to_yaml(sc: Scenario, policies: list[str] | None = None) -> str:
    lines = ["description: |"]
    for para in sc.description.split("\n"):
        # (a path or a command is never cut at its hyphens or inside a long word)
        lines.extend("  " + ln for ln in (textwrap.wrap(para, 76, break_on_hyphens=False,
                                                        break_long_words=False) or [""]))
    if policies:
        lines.append(f"policies: {_flow([scalar(p) for p in policies])}")
    lines.append("processes:")
    for p in sc.processes:
        lines.append(f"  - name: {scalar(p.name)}")
        lines.append("    vmas:" if p.vmas else "    vmas: []")
        lines.extend(f"      - {{{_vma(v)}}}" for v in p.vmas)
    lines.append("steps:" if sc.steps else "steps: []")
    lines.extend(f"  - {{{_step(s)}}}" for s in sc.steps)
    if sc.expectations:
        lines.append("expect:")
        lines.extend(f"  - {_expectation(e)}" for e in sc.expectations)
    return "\n".join(lines) + "\n"
