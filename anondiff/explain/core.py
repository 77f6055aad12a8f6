"""``anondiff explain``: why each VMA got its anon_vma, decision by decision, in the kernel's
terms (the kernel's function names, the rule's condition, the policy and its commit).

Two layers, both active only while explaining, so a normal replay pays nothing:

* **observation**: the policy's class is subclassed on the fly and every public hook method
  (discovered, not listed: anon_vma_fork, anon_vma_clone, reusable, is_mergeable_anon_vma,
  maybe_reuse_anon_vma, ...) records its call, its arguments, its result and what changed under
  it: the VMA's anon_vma and chain, anon_vmas allocated or freed, kernel warnings.  Any Policy
  subclass gets this without a line of its own: a user's file, a compiled kernel tree.
* **reasons**: the built-in policies say *why* (counter values, which case of a rule, which
  condition failed) with ``if self.trace: self.trace.why(...)``; ``Policy.trace`` is None outside
  explain, and the arguments are formatted only when the step is done.
"""
from __future__ import annotations

import functools
import re
import textwrap
import types
from typing import Any, Callable, NamedTuple, Sequence

from ..engine import _Replayer
from ..kernel.objects import AnonVma, Vma, VmaOp
from ..kernel.state import Kernel
from ..policies.base import Policy
from ..scenario import (PROT_BITS, Exit, FailNth, Fault, Fork, Madvise, Merge, Mmap, Mprotect, Munmap,
                       Scenario, SetFlags, Snapshot, Split, Step, Target)
from ..topology import Replay


class Call(NamedTuple):
    """One call of a policy hook, frozen at the end of its step (names as the step left them)."""

    hook: str                     # "anon_vma_fork"
    args: str                     # "C/DST2, P/SRC2"
    why: tuple[str, ...]          # the policy's own reasons, in the order it gave them
    outcome: str                  # what the call did, observed: "C/DST2 uses AV1, chain [...]"
    rule: str                     # "v2, <157839239609...@buzz>": whose rule decided
    vmas: frozenset[str]          # "PROC/NAME" of every VMA among the arguments
    children: tuple["Call", ...]  # hooks called from inside this one

    def line(self) -> str:
        text = f"{self.hook}({self.args})"
        if self.why:
            text += ": " + "; ".join(self.why)
        return f"{text} => {self.outcome}"

    def walk(self) -> list["Call"]:
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out

    def involves(self, vma: str) -> bool:
        return any(_matches(ref, vma) for c in self.walk() for ref in c.vmas)


class ExplainedStep(NamedTuple):
    step: int                     # 0 = starting layout
    line: int                     # scenario line (0 for the layout)
    title: str                    # "fork P -> C"
    calls: tuple[Call, ...]       # top-level hook calls, in order


class Explanation(NamedTuple):
    replay: Replay
    steps: tuple[ExplainedStep, ...]

    def calls(self) -> list[Call]:
        """Every call, nested ones included, in call order."""
        return [c for s in self.steps for top in s.calls for c in top.walk()]


# -- observation -------------------------------------------------------------------------------

def hooks(cls: type) -> tuple[str, ...]:
    """The public methods a policy class has (its own and inherited from Policy subclasses)."""
    out = []
    for name in sorted(dir(cls)):
        if name.startswith("_") or not name.isascii():
            continue    # not ASCII: a mutation tool's copies (make mutation: xǁDegreeǁreusable__mutmut_1)
        owner = _owner(cls, name)
        if owner is None or not issubclass(owner, Policy):
            continue
        # a function, or a compiled policy's method (anondiff/_compiled.py: mypyc's descriptor)
        if isinstance(owner.__dict__[name], (types.FunctionType, types.MethodDescriptorType)):
            out.append(name)
    return tuple(out)


def _owner(cls: type, name: str) -> type | None:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


_TRACED: dict[type, type] = {}


def traced(policy: Policy, tracer: "Tracer") -> Policy:
    """A copy of ``policy`` whose every public hook reports to ``tracer``."""
    cls = type(policy)
    sub = _TRACED.get(cls)
    if sub is None:
        wrappers: dict[str, Any] = {name: _wrap(name, getattr(cls, name), _owner(cls, name))
                                    for name in hooks(cls)}
        wrappers["__module__"] = cls.__module__
        wrappers["__doc__"] = cls.__doc__
        sub = _TRACED[cls] = type(cls.__name__, (cls,), wrappers)
    twin = sub.__new__(sub)       # (object.__new__ refuses a compiled policy's subclass)
    twin.__dict__.update(getattr(policy, "__dict__", {}))
    twin.trace = tracer
    return twin


def _wrap(name: str, fn: Callable[..., Any], owner: type | None) -> Callable[..., Any]:
    @functools.wraps(fn)
    def hook(self: Policy, *args: Any, **kwargs: Any) -> Any:
        tracer = self.trace
        assert tracer is not None
        node = tracer.enter(name, owner, args + tuple(kwargs.values()))
        try:
            result = fn(self, *args, **kwargs)
        except BaseException as e:
            tracer.leave(node, None, e)
            raise
        tracer.leave(node, result, None)
        return result
    return hook


class _Node:
    __slots__ = ("hook", "owner", "args", "before", "after", "n_avs", "n_transient", "n_events",
                 "why", "children", "result", "error", "new", "freed", "events", "transient")

    def __init__(self, hook: str, owner: type | None, args: tuple[Any, ...]) -> None:
        self.hook, self.owner, self.args = hook, owner, args
        self.why: list[tuple[str, tuple[Any, ...], str | None]] = []
        self.children: list[_Node] = []
        self.result: Any = None
        self.error: BaseException | None = None
        self.before: list[tuple[Vma, AnonVma | None, tuple[AnonVma, ...]]] = []
        self.after: list[tuple[AnonVma | None, tuple[AnonVma, ...]]] = []
        self.new: list[AnonVma] = []
        self.freed: list[AnonVma] = []
        self.events: list[Any] = []
        self.transient = 0


def _vma_state(vma: Vma) -> tuple[AnonVma | None, tuple[AnonVma, ...]]:
    return vma.anon_vma, tuple(avc.anon_vma for avc in vma.same_vma())


class Tracer:
    """What the policy hooks did during one replay, step by step."""

    def __init__(self, policy: Policy) -> None:
        self.policy_name = policy.name
        self.policy_rule = _short_cite(policy.name, policy.cite)
        self.k: Kernel | None = None
        self.stack: list[_Node] = []
        self.top: list[_Node] = []
        self.steps: list[ExplainedStep] = []
        self.step: tuple[int, int, str] = (0, 0, "layout")
        self._freed: set[int] = set()

    # -- what a policy calls -------------------------------------------------------------------
    def why(self, fmt: str, *args: Any, cite: str | None = None) -> None:
        """A reason, ``%s``-formatted when the step is done (VMAs and anon_vmas by name)."""
        if self.stack:
            self.stack[-1].why.append((fmt, args, cite))

    # -- what the hook wrappers call -----------------------------------------------------------
    def enter(self, hook: str, owner: type | None, args: tuple[Any, ...]) -> _Node:
        node = _Node(hook, owner, args)
        node.before = [(a, *_vma_state(a)) for a in args if isinstance(a, Vma)]
        k = self.k
        if k is not None:
            node.n_avs = len(k.anon_vmas)
            node.n_transient = getattr(k, "transient_anon_vmas", 0)
            node.n_events = len(k.events)
            self._sync_freed(k)
        (self.stack[-1].children if self.stack else self.top).append(node)
        self.stack.append(node)
        return node

    def leave(self, node: _Node, result: Any, error: BaseException | None) -> None:
        popped = self.stack.pop()
        assert popped is node
        node.result, node.error = result, error
        node.after = [_vma_state(vma) for vma, _, _ in node.before]
        k = self.k
        if k is not None:
            node.new = list(k.anon_vmas[node.n_avs:])
            node.transient = getattr(k, "transient_anon_vmas", 0) - node.n_transient
            node.events = list(k.events[node.n_events:])
            if len(k.anon_vmas) - len(k.live) != len(self._freed):
                now = {id(av) for av in k.anon_vmas if av.freed}
                fresh = now - self._freed
                node.freed = [av for av in k.anon_vmas if id(av) in fresh]
                self._freed = now

    def _sync_freed(self, k: Kernel) -> None:
        if len(k.anon_vmas) - len(k.live) != len(self._freed):
            self._freed = {id(av) for av in k.anon_vmas if av.freed}

    # -- steps ---------------------------------------------------------------------------------
    def begin(self, step: int, line: int, title: str) -> None:
        self.step = (step, line, title)
        self.top = []
        self.stack = []

    def end(self) -> None:
        step, line, title = self.step
        self.steps.append(ExplainedStep(step, line, title, tuple(self._freeze(n, None) for n in self.top)))
        self.top = []

    def _freeze(self, node: _Node, parent_rule: str | None) -> Call:
        whys = []
        rule = self._rule(node.owner)
        for fmt, args, cite in node.why:
            text = fmt % tuple(_name(a) for a in args) if args else fmt
            if cite is not None:
                text += f" ({cite})"
            whys.append(text)
        shown_rule = rule if rule != parent_rule else ""
        outcome = _outcome(node)
        if shown_rule:
            outcome += f" ({shown_rule})"
        vmas = frozenset(_ref(v) for v, _, _ in node.before)
        return Call(node.hook, ", ".join(_name(a) for a in node.args if _shown(a)), tuple(whys),
                    outcome, rule, vmas, tuple(self._freeze(c, rule) for c in node.children))

    def _rule(self, owner: type | None) -> str:
        if owner is not None and "name" in owner.__dict__:
            return _short_cite(owner.name, getattr(owner, "cite", ""))
        return self.policy_rule


def _short_cite(name: str, cite: str) -> str:
    """'v2, <157839239609...@buzz>' / 'degree, commit 7a3ef208e662' / just the name."""
    m = re.search(r"commit ([0-9a-f]{12})", cite)
    if m:
        return f"{name}, commit {m.group(1)}"
    m = re.search(r"<([^<>@\s]+)@([^<>\s]+)>", cite)
    if m:
        local = m.group(1)
        return f"{name}, <{local[:12]}{'...' if len(local) > 12 else ''}@{m.group(2)}>"
    return name


def _ref(vma: Vma) -> str:
    return f"{vma.mm.name}/{vma.name}"


def _name(a: Any) -> str:
    if a is None:
        return "NULL"
    if isinstance(a, Vma):
        return _ref(a)
    if isinstance(a, AnonVma):
        return a.name or "(unnamed)"
    if isinstance(a, VmaOp):
        return a.name
    if isinstance(a, bool):
        return "true" if a else "false"
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(_name(x) for x in a) + "]"
    return str(a)


def _shown(a: Any) -> bool:
    """Arguments worth printing: not the kernel, not dup_mmap's context."""
    return not isinstance(a, Kernel) and type(a).__name__ != "ForkContext"


def _chain(chain: tuple[AnonVma, ...]) -> str:
    return "[" + ", ".join(_name(a) for a in chain) + "]"


def _outcome(node: _Node) -> str:
    parts = []
    for av in node.new:
        if av.parent is None:
            lineage = f"root {_name(av.root)}" if av.root is not av else "a root"
        elif av.parent is av:
            lineage = "a root"
        else:
            lineage = f"child of {_name(av.parent)}"
        parts.append(f"allocated {_name(av)} ({lineage})")
    if node.transient > 0:
        parts.append("allocated an anon_vma and freed it unused" if node.transient == 1 else
                     f"allocated {node.transient} anon_vmas and freed them unused")
    for (vma, av0, ch0), (av1, ch1) in zip(node.before, node.after):
        if ch0 and not ch1:
            parts.append(f"{_ref(vma)} unlinked from {_chain(ch0)}")
            if av1 is not av0:
                parts.append(f"{_ref(vma)}->anon_vma = {_name(av1)}")
        elif av1 is not None and (ch1 != ch0 or av1 is not av0):
            verb = "uses" if av1 is av0 or av1 in node.new else "reuses"
            parts.append(f"{_ref(vma)} {verb} {_name(av1)}" +
                         (f", chain {_chain(ch1)}" if ch1 != ch0 else ""))
        elif av1 is not av0:
            parts.append(f"{_ref(vma)}->anon_vma = {_name(av1)}")
        elif ch1 != ch0:
            parts.append(f"{_ref(vma)} chain {_chain(ch1)}, no anon_vma yet")
    for av in node.freed:
        parts.append(f"freed {_name(av)}")
    for ev in node.events:
        parts.append(f"{ev.kind} {_name(ev.where)}: {ev.detail}")
    if node.error is not None:
        inner = [c for c in node.children if c.error is node.error]
        if inner:
            parts.append(f"crashed in {inner[-1].hook}()")
        else:
            parts.append(f"CRASH: {node.error}" if type(node.error).__name__ == "KernelCrash"
                         else f"raised {type(node.error).__name__}")
    elif isinstance(node.result, bool):
        parts.append("true" if node.result else "false")
    elif node.result is not None:
        parts.append(f"returns {_name(node.result)}")
    return ", ".join(parts) if parts else "no change"


# -- replay with observation -------------------------------------------------------------------

class _ExplainReplayer(_Replayer):
    def __init__(self, scenario: Scenario, policy: Policy, tracer: Tracer) -> None:
        super().__init__(scenario, traced(policy, tracer))
        self.tracer = tracer
        tracer.k = self.k

    def layout(self) -> None:
        self.tracer.begin(0, 0, "starting layout")
        try:
            super().layout()
        finally:
            self.tracer.end()

    def do(self, step: Step) -> None:
        self.tracer.begin(self.step_no, self.line, describe(step))
        try:
            super().do(step)
        finally:
            self.tracer.end()


def explain(scenario: Scenario, policy: Policy | str) -> Explanation:
    """Replay ``scenario`` under ``policy``, recording every policy hook call."""
    if isinstance(policy, str):
        from ..policies import get
        policy = get(policy)
    tracer = Tracer(policy)
    rep = _ExplainReplayer(scenario, policy, tracer).run()
    return Explanation(rep, tuple(tracer.steps))


def _target(t: Target) -> str:
    if t.vma is None:
        return f"{t.process} [{t.first:#x}, {t.end:#x})"
    if t.first == 0 and t.end is None:
        return f"{t.process}/{t.vma}"
    end = "end" if t.end is None else str(t.end)
    return f"{t.process}/{t.vma} pages [{t.first}, {end})"


def describe(step: Step) -> str:
    """A step in a few words: 'fork P -> C', 'mprotect P/B r', 'exit G0'."""
    if isinstance(step, Fork):
        return f"fork {step.process} -> {step.child}"
    if isinstance(step, Exit):
        return f"exit {step.process}"
    if isinstance(step, Fault):
        if step.vma is None:
            return f"{step.kind} {step.process} at {step.addr:#x}"
        pages = step.pages if isinstance(step.pages, str) else "pages " + ",".join(map(str, step.pages))
        return f"{step.kind} {step.process}/{step.vma} ({pages})"
    if isinstance(step, Mprotect):
        prot = ",".join(b for b in PROT_BITS if b in step.prot) or "none"
        return f"mprotect {_target(step.target)} {prot}"
    if isinstance(step, Munmap):
        return f"munmap {_target(step.target)}"
    if isinstance(step, Madvise):
        return f"madvise {_target(step.target)} {step.advice}"
    if isinstance(step, Mmap):
        return f"mmap {step.process}/{step.vma.name} at {step.vma.start:#x}"
    if isinstance(step, Split):
        return f"split {step.process}/{step.vma} at page {step.at} -> {step.new}"
    if isinstance(step, SetFlags):
        return f"setflags {step.process}/{step.vma}"
    if isinstance(step, Merge):
        return f"merge {step.process}/{step.hi} into {step.lo}"
    if isinstance(step, Snapshot):
        return f"snapshot {step.label}"
    if isinstance(step, FailNth):
        return f"{describe(step.step)}, enomem {step.nth}"
    # any other kind (mremap, brk, ...): its name and the fields that say what it does
    words = [type(step).__name__.lower()]
    target = getattr(step, "target", None)
    if isinstance(target, Target):
        words.append(_target(target))
    elif isinstance(getattr(step, "process", None), str):
        words.append(step.process)  # type: ignore[union-attr]
    for field in ("new_pages", "to", "start", "end"):
        value = getattr(step, field, None)
        if isinstance(value, int) and not isinstance(value, bool):
            words.append(f"{field} {value if field == 'new_pages' else hex(value)}")
    flags = getattr(step, "flags", None)
    if flags:
        words.append("(" + ", ".join(sorted(flags)) + ")")
    return " ".join(words)


# -- text --------------------------------------------------------------------------------------

def _matches(ref: str, wanted: str) -> bool:
    """``--vma DST2`` matches any process's DST2; ``--vma C/DST2`` only that one."""
    return ref == wanted or ("/" not in wanted and ref.split("/", 1)[1] == wanted)


def _wrap_line(text: str, width: int, indent: str) -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "    ",
                         break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]


def shown(call: Call) -> bool:
    """Calls that changed nothing observable and gave no reason (re-keying an interval tree,
    a prepare of a VMA that has its anon_vma) are left out of the text."""
    return bool(call.why or call.children) or not call.outcome.startswith("no change")


def _call_lines(call: Call, width: int, indent: str) -> list[str]:
    if not shown(call):
        return []
    out = _wrap_line(call.line(), width, indent)
    for c in call.children:
        out.extend(_call_lines(c, width, indent + "  "))
    return out


def _step_heading(s: ExplainedStep) -> str:
    if s.step == 0:
        return s.title
    return f"step {s.step} (line {s.line}) {s.title}"


def render(expl: Explanation, width: int = 72, vma: str | None = None,
           step: int | None = None) -> str:
    rep = expl.replay
    out = _wrap_line(f"== explain {rep.scenario} under {rep.policy}: {rep.policy_cite}", width, "")
    n_shown = 0
    for s in expl.steps:
        if step is not None and s.step != step:
            continue
        calls = [c for c in s.calls if shown(c) and (vma is None or c.involves(vma))]
        if vma is not None and not calls:
            continue
        if step is None and vma is None and s.step == 0 and not calls:
            continue
        out.append("")
        out.extend(_wrap_line(_step_heading(s), width, ""))
        if not calls:
            out.append("  no policy decision")
        for c in calls:
            out.extend(_call_lines(c, width, "  "))
        n_shown += 1
    if not n_shown:
        what = []
        if step is not None:
            what.append(f"step {step}")
        if vma is not None:
            what.append(f"VMA {vma}")
        out.append("")
        out.append(f"no policy decision at {' about '.join(what)}")
    return "\n".join(out) + "\n"


# -- where two policies parted -----------------------------------------------------------------

class Parting(NamedTuple):
    vma: str
    step: ExplainedStep | None
    a: Call | None
    b: Call | None


def _decisions(expl: Explanation, vma: str) -> list[tuple[ExplainedStep, Call]]:
    return [(s, c) for s in expl.steps for c in s.calls if shown(c) and c.involves(vma)]


def partings(a: Explanation, b: Explanation, vmas: Sequence[str]) -> list[Parting]:
    """For each VMA, the first decision about it where the two policies did not do the same
    (same hook, arguments and observed outcome)."""
    out = []
    for ref in vmas:
        da, db = _decisions(a, ref), _decisions(b, ref)
        found = None
        for i in range(max(len(da), len(db))):
            ca = da[i] if i < len(da) else None
            cb = db[i] if i < len(db) else None
            if ca is None or cb is None or _key(ca) != _key(cb):
                step = (ca or cb)[0] if (ca or cb) else None  # type: ignore[index]
                found = Parting(ref, step, ca[1] if ca else None, cb[1] if cb else None)
                break
        if found is None:
            found = Parting(ref, None, None, None)
        out.append(found)
    return out


def _key(sc: tuple[ExplainedStep, Call]) -> tuple[int, str, str, str]:
    s, c = sc
    bare = c.outcome
    if bare.endswith(")") and c.rule and bare.endswith(f" ({c.rule})"):
        bare = bare[: -len(c.rule) - 3]
    return s.step, c.hook, c.args, bare


def differing_vmas(a: Replay, b: Replay) -> list[str]:
    from ..diff import compare
    seen: list[str] = []
    for snap in compare(a, b).snapshots:
        for d in snap.vmas:
            if d.ref not in seen:
                seen.append(d.ref)
    return seen


def render_partings(a: Explanation, b: Explanation, width: int = 72,
                    vma: str | None = None) -> str:
    pa, pb = a.replay.policy, b.replay.policy
    refs = differing_vmas(a.replay, b.replay)
    if vma is not None:
        refs = [r for r in refs if _matches(r, vma)]
    out = _wrap_line(f"== where {pa} and {pb} parted ({a.replay.scenario})", width, "")
    if not refs:
        out.append("")
        out.append("no VMA differs" + (f" matching {vma}" if vma else ""))
    for p in partings(a, b, refs):
        out.append("")
        if p.step is None:
            out.append(f"{p.vma}: no policy decision about it differs; it differs through others")
            continue
        out.extend(_wrap_line(f"{p.vma}: first at {_step_heading(p.step)}", width, ""))
        for name, call, expl in ((pa, p.a, a), (pb, p.b, b)):
            if call is None:
                crashed = " (its replay stopped at a crash)" if expl.replay.final.crashed else ""
                out.extend(_wrap_line(f"{name}: no further decision involves {p.vma}{crashed}",
                                      width, "  "))
            else:
                out.extend(_wrap_line(f"{name}: {call.line()}", width, "  "))
                for c in call.children:
                    out.extend(_call_lines(c, width, "    "))
    return "\n".join(out) + "\n"


# -- JSON --------------------------------------------------------------------------------------

def _call_json(c: Call) -> dict[str, Any]:
    return {"hook": c.hook, "args": c.args, "why": list(c.why), "outcome": c.outcome,
            "rule": c.rule, "vmas": sorted(c.vmas), "calls": [_call_json(x) for x in c.children]}


def to_json(expl: Explanation, vma: str | None = None, step: int | None = None) -> dict[str, Any]:
    """Every call (those the text leaves out included), nested as they were made."""
    rep = expl.replay
    steps = []
    for s in expl.steps:
        if step is not None and s.step != step:
            continue
        calls = [c for c in s.calls if vma is None or c.involves(vma)]
        if vma is not None and not calls:
            continue
        steps.append({"step": s.step, "line": s.line, "title": s.title,
                      "calls": [_call_json(c) for c in calls]})
    return {"scenario": rep.scenario, "policy": rep.policy, "cite": rep.policy_cite,
            "steps": steps}


def partings_json(a: Explanation, b: Explanation, vma: str | None = None) -> dict[str, Any]:
    refs = differing_vmas(a.replay, b.replay)
    if vma is not None:
        refs = [r for r in refs if _matches(r, vma)]
    return {"scenario": a.replay.scenario, "a": a.replay.policy, "b": b.replay.policy,
            "partings": [{"vma": p.vma,
                          "step": None if p.step is None else p.step.step,
                          "a": None if p.a is None else _call_json(p.a),
                          "b": None if p.b is None else _call_json(p.b)}
                         for p in partings(a, b, refs)]}


def add_partings(text: Any, fmt: str, scenario: Scenario, a: Policy, b: Policy,
                 width: int) -> str:
    """``compare --explain``: the partings after the comparison (JSON: an ``"explain"`` key)."""
    import json
    if not isinstance(text, str):
        text = "".join(text)
    ea, eb = explain(scenario, a), explain(scenario, b)
    if fmt == "json":
        doc = json.loads(text)
        doc["explain"] = partings_json(ea, eb)
        return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
    return text + "\n" + render_partings(ea, eb, width)
