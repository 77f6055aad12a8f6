"""The scenario loader: the YAML node tree of a scenario file validated into the immutable
records of :mod:`anondiff.scenario`.  Every problem raises ScenarioError with the file, the
line and what was expected."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import product
from operator import itemgetter, le, lt
from pathlib import Path

import yaml

from .progress import EVERY, bar
from .scenario import (
    ADVICE, Brk, FailNth, Spawn, EXPECT_KEYS, EXPECT_KINDS, Exit, Expectation, Fault, Fork, MAX_FAULT_ALL_PAGES,
    MREMAP_FLAGS, Madvise, Merge, Mmap, Mprotect, Mremap, Munmap, PAGE_SIZE, PROCESS_KEYS,
    PROT_BITS, ProcessSpec, STEP_KEYS, STEP_KINDS, Scenario, SetFlags, Snapshot, Split,
    Step, TASK_SIZE, TOP_KEYS, Target, VMA_FLAGS, VMA_KEYS, VmaSpec,
)

from .scenario_lines import (DEFAULT_PROT as _DEFAULT_PROT, FastDocument, FastVmas,
                             PROT_LETTERS as _PROT_LETTERS, compose, vma_from_scalars)
from .yamlnodes import (_NAME_RE, TAG_BOOL, TAG_INT, TAG_MAP, TAG_NULL, TAG_STR, Entries, Loc,
                        NodeReader, choices, hexaddr, num, quote)

__all__ = ["Loader", "compose"]


#: VmaSpec fields by position, for C loops over a list of 65,000 (``map(_START, specs)``)
_NAME, _START, _END, _LABEL, _FILE = (itemgetter(VmaSpec._fields.index(f))
                                      for f in ("name", "start", "end", "anon_vma", "file"))
_LABEL_FILE = itemgetter(VmaSpec._fields.index("anon_vma"), VmaSpec._fields.index("file"))


def _sound_vmas(specs: list[VmaSpec], process: str,
                labels: dict[str, _LabelUse]) -> tuple[VmaSpec, ...] | None:
    """What :meth:`Loader.vmas` gives for VMAs read line by line when nothing is wrong with
    them (names unique, labels used as :meth:`Loader.label` allows, no overlap), checked a list
    at a time by C loops; None if anything is (the VMAs are then checked one by one, to say
    what)."""
    if len(set(map(_NAME, specs))) != len(specs):
        return None
    # a label's first use (an earlier list's, else this one's first VMA with it), and every
    # VMA with it in the same process and file as that one: checked once per (label, file)
    firsts: dict[str | None, VmaSpec] | None = None
    new: dict[str, _LabelUse] = {}
    files = set(map(_FILE, specs))
    # (label, file) pairs: with one file (anonymous VMAs: None) every label goes with it
    pairs = (product(set(map(_LABEL, specs)), files) if len(files) == 1
             else set(map(_LABEL_FILE, specs)))
    for label, file in pairs:
        if label is None:
            continue
        first = new.get(label) or labels.get(label)
        if first is None:
            if firsts is None:      # each label's first VMA (the last one written wins)
                firsts = dict(zip(map(_LABEL, reversed(specs)), reversed(specs)))
            first = new[label] = _LabelUse(process, firsts[label])
        if first.process != process or first.vma.file != file:
            return None
    starts = list(map(_START, specs))
    if all(map(lt, starts, starts[1:])):         # in address order already (a C loop)
        ordered = specs
    else:
        ordered = sorted(specs, key=_START)
        starts = list(map(_START, ordered))
    # each VMA's end against the next one's start (map stops at the shorter list)
    if not all(map(le, map(_END, ordered), starts[1:])):
        return None
    labels.update(new)
    return tuple(ordered)


class Loader(NodeReader):
    def policy_list(self, node: yaml.Node, loc: Loc) -> tuple[str, ...]:
        out: list[str] = []
        items = self.sequence(node, loc, "a list of policy names")
        if not items:
            self.fail(node, loc.say("must not be empty (leave it out to mean every policy)"))
        for i, item in enumerate(items):
            value = self.nonempty(item, loc.item(i))
            if value in out:
                self.fail(item, loc.item(i).say(f"policy {quote(value)} is listed twice"))
            out.append(value)
        return tuple(out)

    def prot(self, entries: Entries, loc: Loc) -> frozenset[str]:
        if "prot" not in entries:
            return _DEFAULT_PROT
        node = entries["prot"][1]
        expected = "a string of r, w, x or none"
        if isinstance(node, yaml.ScalarNode) and node.tag == TAG_NULL:
            self.fail(node, loc.say(f"must be {expected}, got null (write 'none' for no access)"))
        value = self.string(node, loc, expected)
        if value in ("none", ""):
            return frozenset()
        bits = [_PROT_LETTERS.get(c) for c in value]
        if None in bits or len(set(bits)) != len(bits):
            self.fail(node, loc.say(f"{quote(value)} is not a protection (expected the letters "
                                    "r, w, x, each at most once, or 'none')"))
        return frozenset(b for b in bits if b is not None)

    def process_ref(self, node: yaml.Node, loc: Loc, alive: Mapping[str, int],
                    gone: Mapping[str, int], value: str | None = None,
                    when: str = "at this step") -> str:
        """Check that *value* (or the name in *node*) names a live process."""
        if value is None:
            value = self.name(node, loc, "process name")
        else:
            self.check_name(node, loc, value, "process name")
        if value not in alive:
            if value in gone:
                why = f"it exited at line {gone[value]}"
            else:
                why = f"processes {when}: {choices(sorted(alive)) or 'none'}"
            self.fail(node, loc.say(f"{quote(value)} is not a process {when} ({why})"))
        return value

    # -- the document --------------------------------------------------------------------------

    def scenario(self, root: yaml.Node | FastDocument) -> Scenario:
        if isinstance(root, FastDocument):      # VMA lists read line by line (scenario_lines)
            return root.read(self)
        top = Loc("")
        if not isinstance(root, yaml.MappingNode) or root.tag != TAG_MAP:
            self.fail(root, "the top level must be a mapping with keys "
                      f"{choices(TOP_KEYS)}, got {self.describe(root)}")
        entries = self.mapping(root, top, TOP_KEYS, ("description", "processes"))
        # a "|" block keeps its final newline; renderers add their own
        description = self.nonempty(entries["description"][1], top.at("description")).strip()
        policies = None
        if (node := self.get(entries, "policies")) is not None:
            policies = self.policy_list(node, top.at("policies"))
        processes = self.processes(entries["processes"][1], top.at("processes"))
        alive = {p.name: p.line for p in processes}
        gone: dict[str, int] = {}
        steps: tuple[Step, ...] = ()
        if (node := self.get(entries, "steps")) is not None:
            steps = self.steps(node, top.at("steps"), alive, gone)
        expectations: tuple[Expectation, ...] = ()
        if (node := self.get(entries, "expect")) is not None:
            expectations = self.expectations(node, top.at("expect"), alive, gone)
        return Scenario(path=self.path, description=description, processes=processes,
                        steps=steps, policies=policies, expectations=expectations,
                        name=Path(self.path).stem)

    def processes(self, node: yaml.Node, loc: Loc) -> tuple[ProcessSpec, ...]:
        items = self.sequence(node, loc, "a non-empty list of processes")
        if not items:
            self.fail(node, loc.say("must list at least one process"))
        out: list[ProcessSpec] = []
        labels: dict[str, _LabelUse] = {}
        for i, item in enumerate(items):
            ploc = loc.item(i)
            entries = self.mapping(item, ploc, PROCESS_KEYS, ("name",))
            name_node = entries["name"][1]
            name = self.name(name_node, ploc.at("name"), "process name")
            for other in out:
                if other.name == name:
                    self.fail(name_node, ploc.say(f"process name {quote(name)} is already "
                                                  f"used at line {other.line}"))
            vmas: tuple[VmaSpec, ...] = ()
            if (vnode := self.get(entries, "vmas")) is not None:
                vmas = self.vmas(vnode, ploc.at("vmas"), name, labels)
            out.append(ProcessSpec(name=name, vmas=vmas, line=item.start_mark.line + 1))
        return tuple(out)

    def vmas(self, node: yaml.Node, loc: Loc, process: str,
             labels: dict[str, _LabelUse]) -> tuple[VmaSpec, ...]:
        specs: list[VmaSpec] = []
        where: dict[str, tuple[int, int]] = {}      # name -> (index, line)
        if isinstance(node, FastVmas):          # read line by line: nodes only for messages
            if (done := _sound_vmas(node.specs, process, labels)) is not None:
                return done
            got: list = [(spec, None, None, None) for spec in node.specs]
            progress = None
        else:
            items = self.sequence(node, loc, "a list of VMAs")
            got = items
            progress = bar(f"reading the VMAs of {process}", len(items))
        fast = self._fast_vma
        for i, item in enumerate(got):
            if progress and not i % EVERY:
                progress.update(i)
            if type(item) is tuple:
                spec, name_node, label_node, item = item
            elif (read := fast(item)) is not None:
                spec, name_node, label_node = read
            else:
                vloc = loc.item(i)
                entries = self.mapping(item, vloc, VMA_KEYS, ("name", "start"))
                spec = self.vma(item, entries, vloc)
                name_node, label_node = entries["name"][1], entries.get("anon_vma", (None, None))[1]
            if spec.name in where:
                self.fail(name_node or _At(spec.line), loc.item(i).say(
                    f"VMA name {quote(spec.name)} is already used in process "
                    f"{quote(process)} at line {where[spec.name][1]}"))
            if spec.anon_vma is not None:
                first = labels.get(spec.anon_vma)
                if first is None:
                    labels[spec.anon_vma] = _LabelUse(process, spec)
                elif first.process != process or first.vma.file != spec.file:
                    self.label(label_node or _At(spec.line), loc.item(i), spec, process, labels)
            specs.append(spec)
            where[spec.name] = (i, spec.line)
        if progress:
            progress.close()
        ordered = sorted(specs, key=lambda v: v.start)
        for a, b in zip(ordered, ordered[1:]):
            if b.start < a.end:
                # name both; point at the one that comes later in the file
                later, other = (a, b) if a.line > b.line else (b, a)
                self.fail(_At(later.line), loc.item(where[later.name][0]).say(
                    f"VMA {quote(later.name)} {_span(later)} overlaps VMA "
                    f"{quote(other.name)} {_span(other)} (line {other.line})"))
        return tuple(ordered)

    def _fast_vma(self, node: yaml.Node) -> tuple[VmaSpec, yaml.Node, yaml.Node | None] | None:
        """:meth:`vma` for the common, valid case (plain keys and scalars, no ``flags`` list,
        no list of faulted pages), without building a location for every value; None when
        anything is unusual, and :meth:`vma` then reads it (and reports what is wrong)."""
        if type(node) is not yaml.MappingNode or node.tag != TAG_MAP:
            return None
        items = []
        name_node = label_node = None
        for knode, vnode in node.value:
            if type(knode) is not yaml.ScalarNode or knode.tag != TAG_STR \
                    or type(vnode) is not yaml.ScalarNode:
                return None
            key = knode.value
            items.append((key, vnode.tag, vnode.value))
            if key == "name":
                name_node = vnode
            elif key == "anon_vma":
                label_node = vnode
        spec = vma_from_scalars(items, node.start_mark.line + 1)
        if spec is None:
            return None
        return spec, name_node, label_node   # type: ignore[return-value]

    def vma(self, node: yaml.Node, entries: Entries, loc: Loc,
            mmap: bool = False) -> VmaSpec:
        """One VMA of the starting layout, or the new VMA of an ``mmap`` step."""
        name = self.name(entries["name"][1], loc.at("name"), "VMA name")
        start = self.address(entries["start"][1], loc.at("start"), PAGE_SIZE)
        end = self.extent(node, entries, loc, start)
        prot = self.prot(entries, loc.at("prot"))
        flags: list[str] = []
        if (fnode := self.get(entries, "flags")) is not None:
            floc = loc.at("flags")
            for i, item in enumerate(self.sequence(fnode, floc, "a list of VMA flags")):
                flag = self.string(item, floc.item(i))
                if flag not in VMA_FLAGS:
                    self.fail(item, floc.item(i).say(
                        f"unknown flag {quote(flag)} (expected one of: "
                        f"{choices(VMA_FLAGS)})"))
                if flag in flags:
                    self.fail(item, floc.item(i).say(f"flag {quote(flag)} is listed twice"))
                flags.append(flag)
        shared = False
        if (snode := self.get(entries, "shared")) is not None:
            shared = self.boolean(snode, loc.at("shared"))
        file = None
        if (fnode := self.get(entries, "file")) is not None:
            file = self.nonempty(fnode, loc.at("file"))
        offset = None
        if (onode := self.get(entries, "offset")) is not None:
            offset = self.address(onode, loc.at("offset"))
            if file is None:
                self.fail(onode, loc.say("'offset' needs 'file': an anonymous mapping's pgoff "
                                         "is its address"))
        faulted, pages, label = False, None, None
        if not mmap:
            faulted, pages = self.faulted(entries, loc, (end - start) // PAGE_SIZE)
            if (lnode := self.get(entries, "anon_vma")) is not None:
                label = self.name(lnode, loc.at("anon_vma"), "anon_vma label")
                if not faulted:
                    self.fail(lnode, loc.say(
                        f"'anon_vma' {quote(label)} needs 'faulted': a VMA gets its anon_vma "
                        "at its first anonymous fault"))
            if shared and faulted:
                what = "anon_vma" if label is not None else "faulted"
                self.fail(entries[what][1], loc.say(
                    f"{what!r} is not possible on a shared VMA: shared mappings never get "
                    "an anon_vma"))
        return VmaSpec(name=name, start=start, end=end, prot=prot, flags=frozenset(flags),
                       shared=shared, file=file, faulted=faulted, pages=pages, anon_vma=label,
                       line=node.start_mark.line + 1, offset=offset)

    def extent(self, node: yaml.Node, entries: Entries, loc: Loc, start: int) -> int:
        """The end of a VMA given by exactly one of ``pages`` and ``end``."""
        pnode, enode = self.get(entries, "pages"), self.get(entries, "end")
        if pnode is not None and enode is not None:
            self.fail(enode, loc.say("'end' and 'pages' both given: give exactly one of them"))
        if pnode is not None:
            pages = self.integer(pnode, loc.at("pages"), 1)
            end = start + pages * PAGE_SIZE
            if end > TASK_SIZE:
                self.fail(pnode, loc.at("pages").say(
                    f"{num(pages)} from 'start' {hexaddr(start)} would end at {hexaddr(end)}, beyond "
                    f"TASK_SIZE ({hexaddr(TASK_SIZE)})"))
            return end
        if enode is not None:
            end = self.address(enode, loc.at("end"))
            if end <= start:
                self.fail(enode, loc.at("end").say(f"{hexaddr(end)} must be above 'start' "
                                                   f"{hexaddr(start)}"))
            return end
        self.fail(node, loc.say("needs one of 'pages' (a count) and 'end' (an address)"))

    def faulted(self, entries: Entries, loc: Loc,
                npages: int) -> tuple[bool, tuple[int, ...] | None]:
        node = self.get(entries, "faulted")
        if node is None:
            return False, None
        floc = loc.at("faulted")
        if isinstance(node, yaml.SequenceNode):
            offsets: set[int] = set()
            for i, item in enumerate(self.sequence(node, floc)):
                off = self.integer(item, floc.item(i), 0)
                if off >= npages:
                    self.fail(item, floc.item(i).say(
                        f"page offset {num(off)} is outside the VMA ({npages} pages)"))
                if off in offsets:
                    self.fail(item, floc.item(i).say(f"page offset {off} is listed twice"))
                offsets.add(off)
            return True, tuple(sorted(offsets))
        if isinstance(node, yaml.ScalarNode) and node.tag == TAG_BOOL:
            faulted = self.boolean(node, floc)
            if faulted and npages > MAX_FAULT_ALL_PAGES:
                self.fail(node, floc.say(
                    f"true: faulting all {npages} pages is not supported (at most "
                    f"{MAX_FAULT_ALL_PAGES}); list the page offsets to fault"))
            return faulted, None
        self.wrong(node, floc, "a boolean or a list of page offsets")

    def label(self, node: yaml.Node, loc: Loc, spec: VmaSpec, process: str,
              labels: dict[str, _LabelUse]) -> None:
        """Check that an anon_vma label describes a state the kernel can reach."""
        assert spec.anon_vma is not None
        first = labels.get(spec.anon_vma)
        if first is None:
            labels[spec.anon_vma] = _LabelUse(process, spec)
            return
        label = quote(spec.anon_vma)
        if first.process != process:
            self.fail(node, loc.say(
                f"anon_vma label {label} is used in processes {first.process} and {process}: "
                "anon_vmas are never shared across processes in a starting layout; describe "
                "the fork as a step"))
        if first.vma.file != spec.file:
            def mapped(v: VmaSpec) -> str:
                return f"maps {quote(v.file)}" if v.file is not None else "is anonymous"
            self.fail(node, loc.say(
                f"VMAs sharing anon_vma label {label} must agree on 'file': "
                f"{quote(spec.name)} {mapped(spec)} but {quote(first.vma.name)} "
                f"(line {first.vma.line}) {mapped(first.vma)}"))

    # -- steps ---------------------------------------------------------------------------------

    def steps(self, node: yaml.Node, loc: Loc, alive: dict[str, int],
              gone: dict[str, int]) -> tuple[Step, ...]:
        out: list[Step] = []
        snapshots: dict[str, int] = {}
        for i, item in enumerate(self.sequence(node, loc, "a list of steps")):
            sloc = loc.item(i)
            entries = self.entries(item, sloc, "a mapping with one of the keys "
                                   f"{choices(STEP_KINDS)}")
            kinds = [k for k in entries if k in STEP_KINDS]
            if not kinds:
                unknown = [k for k in entries if k not in STEP_KINDS]
                extra = f"; unknown key {quote(unknown[0])}" if unknown else ""
                self.fail(item, sloc.say(
                    f"step has no kind (expected exactly one of: {choices(STEP_KINDS)}){extra}"))
            if len(kinds) > 1:
                self.fail(entries[kinds[1]][0], sloc.say(
                    f"step has more than one kind: {choices(kinds)} (expected exactly one of: "
                    f"{choices(STEP_KINDS)})"))
            kind = kinds[0]
            kloc = Loc(f"{sloc.path()}.{kind}")
            allowed = STEP_KEYS[kind] + (kind,)
            for key, (knode, _) in entries.items():
                if key not in allowed:
                    hint = ""
                    if kind == "mmap" and key in ("faulted", "anon_vma"):
                        hint = "; mmap makes an unfaulted VMA: add a fault step"
                    self.fail(knode, kloc.say(f"unknown key {quote(key)} (expected one of: "
                                              f"{choices(allowed)}){hint}"))
            step = self.step(kind, item, entries, kloc, alive, gone, snapshots)
            if (enode := self.get(entries, "enomem")) is not None:
                nth = self.integer(enode, kloc.at("enomem"), 1)
                step = FailNth(step=step, nth=nth, line=step.line)
            out.append(step)
        return tuple(out)

    def step(self, kind: str, node: yaml.Node, entries: Entries, loc: Loc,
             alive: dict[str, int], gone: dict[str, int], snapshots: dict[str, int]) -> Step:
        line = node.start_mark.line + 1
        arg = entries[kind][1]
        aloc = loc                  # "steps[3].fork: 'P' is not a process ..."
        if kind == "snapshot":
            label = self.name(arg, aloc, "snapshot label")
            if label == "final":
                self.fail(arg, aloc.say("'final' is reserved for the state after the last "
                                        "step; pick another label"))
            if label in snapshots:
                self.fail(arg, aloc.say(f"label {quote(label)} is already used at line "
                                        f"{snapshots[label]}"))
            snapshots[label] = line
            return Snapshot(label=label, line=line)
        if kind == "spawn":
            self.check_keys(node, entries, loc, STEP_KEYS["spawn"] + ("spawn",))
            name = self.name(arg, aloc, "process name")
            if name in alive:
                self.fail(arg, aloc.say(f"{quote(name)} is already a process (since line "
                                        f"{alive[name]})"))
            gone.pop(name, None)
            alive[name] = line
            return Spawn(process=name, line=line)
        if kind in ("fork", "exit", "mmap", "merge", "brk"):
            process = self.process_ref(arg, aloc, alive, gone)
            if kind == "brk":
                return self.brk(node, entries, loc, process, line)
            if kind == "merge":
                self.check_keys(node, entries, loc, STEP_KEYS["merge"] + ("merge",), ("lo", "hi"))
                lo = self.name(entries["lo"][1], loc.at("lo"), "VMA name")
                hi = self.name(entries["hi"][1], loc.at("hi"), "VMA name")
                if lo == hi:
                    self.fail(entries["hi"][1], loc.at("hi").say("must differ from 'lo'"))
                return Merge(process=process, lo=lo, hi=hi, line=line)
            if kind == "exit":
                del alive[process]
                gone[process] = line
                return Exit(process=process, line=line)
            if kind == "mmap":
                self.check_keys(node, entries, loc, STEP_KEYS["mmap"] + ("mmap",),
                                ("name", "start"))
                merge = True
                if (mnode := self.get(entries, "vma_merge")) is not None:
                    merge = self.boolean(mnode, loc.at("vma_merge"))
                return Mmap(process=process, vma=self.vma(node, entries, loc, mmap=True),
                            line=line, merge=merge)
            return self.fork(node, entries, loc, process, alive, gone, line)
        target = self.string(arg, aloc, "a string 'PROCESS' or 'PROCESS/VMA'")
        process, _, vma = target.partition("/")
        self.process_ref(arg, aloc, alive, gone, value=process)
        if "/" in target:
            self.check_name(arg, aloc, vma, "VMA name")
        if kind in ("fault", "write"):
            return self.fault(kind, node, entries, loc, process, vma or None, line)
        if kind in ("split", "setflags"):
            if not vma:
                self.fail(arg, aloc.say(f"{kind} needs a VMA: '{process}/VMA'"))
            return self.split(node, entries, loc, process, vma, line) if kind == "split" \
                else self.setflags(node, entries, loc, process, vma, line)
        range_ = self.target(node, entries, loc, process, vma or None)
        names: tuple[str, ...] = ()
        if (nnode := self.get(entries, "names")) is not None:
            names = self.names(nnode, loc.at("names"), "VMA name")
        if kind == "mprotect":
            self.check_keys(node, entries, loc, STEP_KEYS[kind] + (kind,), ("prot",))
            return Mprotect(target=range_, prot=self.prot(entries, loc.at("prot")), names=names,
                            line=line)
        if kind == "madvise":
            self.check_keys(node, entries, loc, STEP_KEYS[kind] + (kind,), ("advice",))
            anode = entries["advice"][1]
            advice = self.string(anode, loc.at("advice"))
            if advice not in ADVICE:
                self.fail(anode, loc.at("advice").say(
                    f"{quote(advice)} is not known (expected one of: {choices(ADVICE)})"))
            return Madvise(target=range_, advice=advice, names=names, line=line)
        if kind == "mremap":
            return self.mremap(node, entries, loc, range_, names, line)
        return Munmap(target=range_, names=names, line=line)

    def brk(self, node: yaml.Node, entries: Entries, loc: Loc, process: str, line: int) -> Brk:
        self.check_keys(node, entries, loc, STEP_KEYS["brk"] + ("brk",), ("from", "to"))
        start = self.address(entries["from"][1], loc.at("from"), PAGE_SIZE)
        end = self.address(entries["to"][1], loc.at("to"), PAGE_SIZE)
        name = None
        if (nnode := self.get(entries, "name")) is not None:
            name = self.name(nnode, loc.at("name"), "VMA name")
        return Brk(process=process, start=start, end=end, name=name, line=line)

    def mremap(self, node: yaml.Node, entries: Entries, loc: Loc, range_: Target,
               names: tuple[str, ...], line: int) -> Mremap:
        new_pages = None
        if (pnode := self.get(entries, "new_pages")) is not None:
            new_pages = self.integer(pnode, loc.at("new_pages"), 1)
            if new_pages > TASK_SIZE // PAGE_SIZE:
                self.fail(pnode, loc.at("new_pages").say(
                    f"{num(new_pages)} pages do not fit below TASK_SIZE ({hexaddr(TASK_SIZE)})"))
        flags: list[str] = []
        if (fnode := self.get(entries, "flags")) is not None:
            floc = loc.at("flags")
            for i, item in enumerate(self.sequence(fnode, floc, "a list of mremap flags")):
                flag = self.string(item, floc.item(i))
                if flag not in MREMAP_FLAGS:
                    self.fail(item, floc.item(i).say(
                        f"{quote(flag)} is not known (expected one of: {choices(MREMAP_FLAGS)})"))
                if flag in flags:
                    self.fail(item, floc.item(i).say(f"{quote(flag)} is listed twice"))
                flags.append(flag)
        to = None
        tnode = self.get(entries, "to")
        if tnode is not None:
            to = self.address(tnode, loc.at("to"), PAGE_SIZE)
        einval = "(the kernel returns EINVAL)"
        for flag in ("fixed", "dontunmap"):
            if flag in flags and "maymove" not in flags:
                self.fail(fnode, loc.at("flags").say(f"{quote(flag)} needs 'maymove' {einval}"))
            if flag in flags and tnode is None:
                self.fail(node, loc.say(f"{quote(flag)} needs 'to', the destination address"))
        if tnode is not None and "maymove" not in flags:
            self.fail(tnode, loc.at("to").say("is only used with flags: [maymove, ...] (without "
                                              "it the mapping never moves)"))
        if "dontunmap" in flags and new_pages is not None and range_.end is not None:
            old = (range_.end - range_.first) // (PAGE_SIZE if range_.vma is None else 1)
            if old != new_pages:
                self.fail(pnode, loc.at("new_pages").say(
                    f"{new_pages} differs from the {old} pages moved: 'dontunmap' keeps the "
                    f"size {einval}"))
        name = None
        if (nnode := self.get(entries, "name")) is not None:
            name = self.name(nnode, loc.at("name"), "VMA name")
            if name in names:
                self.fail(nnode, loc.at("name").say(f"{quote(name)} is also in 'names'"))
        return Mremap(target=range_, new_pages=new_pages, flags=frozenset(flags), to=to,
                      name=name, names=names, line=line)

    def split(self, node: yaml.Node, entries: Entries, loc: Loc, process: str, vma: str,
              line: int) -> Split:
        self.check_keys(node, entries, loc, STEP_KEYS["split"] + ("split",), ("at", "new"))
        at = self.integer(entries["at"][1], loc.at("at"), 1)
        if at >= TASK_SIZE // PAGE_SIZE:
            self.fail(entries["at"][1], loc.at("at").say(f"{num(at)} pages is beyond TASK_SIZE"))
        new = self.name(entries["new"][1], loc.at("new"), "VMA name")
        if new == vma:
            self.fail(entries["new"][1], loc.at("new").say(f"must differ from {quote(vma)}"))
        below = False
        if (bnode := self.get(entries, "new_below")) is not None:
            below = self.boolean(bnode, loc.at("new_below"))
        return Split(process=process, vma=vma, at=at, new=new, new_below=below, line=line)

    def setflags(self, node: yaml.Node, entries: Entries, loc: Loc, process: str, vma: str,
                 line: int) -> SetFlags:
        known = PROT_BITS + VMA_FLAGS
        out: dict[str, frozenset[str]] = {}
        for key in ("set", "clear"):
            values: set[str] = set()
            if (fnode := self.get(entries, key)) is not None:
                floc = loc.at(key)
                for i, item in enumerate(self.sequence(fnode, floc)):
                    flag = self.string(item, floc.item(i))
                    if flag not in known:
                        self.fail(item, floc.item(i).say(
                            f"{quote(flag)} is not known (expected one of: {choices(known)})"))
                    values.add(flag)
            out[key] = frozenset(values)
        if not out["set"] and not out["clear"]:
            self.fail(node, loc.say("needs 'set' or 'clear' (lists of: "
                                    f"{choices(known)})"))
        both = out["set"] & out["clear"]
        if both:
            self.fail(node, loc.say(f"{quote(sorted(both)[0])} is both set and cleared"))
        return SetFlags(process=process, vma=vma, set=out["set"], clear=out["clear"], line=line)

    def fork(self, node: yaml.Node, entries: Entries, loc: Loc, process: str,
             alive: dict[str, int], gone: dict[str, int], line: int) -> Fork:
        self.check_keys(node, entries, loc, STEP_KEYS["fork"] + ("fork",), ("child",))
        cnode = entries["child"][1]
        child = self.name(cnode, loc.at("child"), "process name")
        if child in alive:
            self.fail(cnode, loc.at("child").say(
                f"{quote(child)} is already a process (since line {alive[child]})"))
        gone.pop(child, None)           # a name is free again once its process exited
        names: tuple[tuple[str, str], ...] | tuple[str, ...] | None = None
        if (nnode := self.get(entries, "names")) is not None:
            nloc = loc.at("names")
            if isinstance(nnode, yaml.MappingNode):
                pairs: list[tuple[str, str]] = []
                for key, (knode, vnode) in self.entries(nnode, nloc).items():
                    self.check_name(knode, nloc, key, "VMA name")
                    new = self.name(vnode, nloc.at(key), "VMA name")
                    for old, other in pairs:
                        if other == new:
                            self.fail(vnode, nloc.at(key).say(
                                f"child name {quote(new)} is also given to {quote(old)}"))
                    pairs.append((key, new))
                names = tuple(pairs) or None
            elif isinstance(nnode, yaml.SequenceNode):
                names = self.names(nnode, nloc, "VMA name") or None
            else:
                self.wrong(nnode, nloc, "a list of child VMA names or a mapping "
                           "{parent VMA: child VMA}")
        alive[child] = line
        return Fork(process=process, child=child, names=names, line=line)

    def fault(self, kind: str, node: yaml.Node, entries: Entries, loc: Loc, process: str,
              vma: str | None, line: int) -> Fault:
        anode = self.get(entries, "addr")
        pnode = self.get(entries, "pages")
        if vma is None:
            if anode is None:
                self.fail(node, loc.say(f"a {kind} on {quote(process)} needs 'addr' "
                                        f"(or name the VMA: '{process}/VMA')"))
            if pnode is not None:
                self.fail(pnode, loc.say("'pages' needs a VMA target "
                                         f"('{process}/VMA'); with 'addr' one page is written"))
            addr = self.integer(anode, loc.at("addr"), 0, address=True)
            if addr >= TASK_SIZE:
                self.fail(anode, loc.at("addr").say(f"{hexaddr(addr)} is beyond TASK_SIZE "
                                                    f"({hexaddr(TASK_SIZE)})"))
            return Fault(process=process, vma=None, pages=(), addr=addr, kind=kind, line=line)
        if anode is not None:
            self.fail(anode, loc.say(f"'addr' is only for a process target "
                                     f"({quote(process)}); for a VMA use 'pages'"))
        pages: str | tuple[int, ...] = "all"
        if pnode is not None:
            ploc = loc.at("pages")
            expected = "'all', 'none' or a list of page offsets"
            if isinstance(pnode, yaml.SequenceNode):
                offsets: dict[int, None] = {}     # ordered: pages are written in this order
                for i, item in enumerate(self.sequence(pnode, ploc)):
                    off = self.integer(item, ploc.item(i), 0)
                    if off >= TASK_SIZE // PAGE_SIZE:
                        self.fail(item, ploc.item(i).say(f"page offset {num(off)} is beyond "
                                                         "TASK_SIZE"))
                    if off in offsets:
                        self.fail(item, ploc.item(i).say(f"page offset {off} is listed twice"))
                    offsets[off] = None
                pages = tuple(offsets) or "none"
            else:
                pages = self.string(pnode, ploc, expected)
                if pages not in ("all", "none"):
                    self.fail(pnode, ploc.say(f"must be {expected}, got {quote(pages)}"))
        return Fault(process=process, vma=vma, pages=pages, kind=kind, line=line)

    def target(self, node: yaml.Node, entries: Entries, loc: Loc, process: str,
               vma: str | None) -> Target:
        pnode = self.get(entries, "pages")
        count = None
        if pnode is not None:
            count = self.integer(pnode, loc.at("pages"), 1)
            if count > TASK_SIZE // PAGE_SIZE:
                self.fail(pnode, loc.at("pages").say(f"{num(count)} pages do not fit below "
                                                     f"TASK_SIZE ({hexaddr(TASK_SIZE)})"))
        if vma is not None:
            for key in ("start", "end"):
                if key in entries:
                    self.fail(entries[key][0], loc.say(
                        f"'{key}' is for a process target ({quote(process)}); inside VMA "
                        f"{quote(vma)} use 'offset' and 'pages'"))
            first = 0
            if (onode := self.get(entries, "offset")) is not None:
                first = self.integer(onode, loc.at("offset"), 0)
                if first >= TASK_SIZE // PAGE_SIZE:
                    self.fail(onode, loc.at("offset").say(f"{num(first)} pages is beyond "
                                                          "TASK_SIZE"))
            return Target(process=process, vma=vma, first=first,
                          end=first + count if count is not None else None)
        if "offset" in entries:
            self.fail(entries["offset"][0], loc.say(
                f"'offset' is for a VMA target ('{process}/VMA'); for {quote(process)} "
                "use 'start'"))
        snode, enode = self.get(entries, "start"), self.get(entries, "end")
        if snode is None:
            self.fail(node, loc.say(f"a range of process {quote(process)} needs 'start' and "
                                    f"one of 'end' and 'pages' (or name a VMA: "
                                    f"'{process}/VMA')"))
        start = self.address(snode, loc.at("start"))
        if enode is not None and pnode is not None:
            self.fail(enode, loc.say("'end' and 'pages' both given: give exactly one of them"))
        if enode is not None:
            end = self.address(enode, loc.at("end"))
            if end <= start:
                self.fail(enode, loc.at("end").say(f"{hexaddr(end)} must be above 'start' "
                                                   f"{hexaddr(start)}"))
        elif count is not None:
            end = start + count * PAGE_SIZE
            if end > TASK_SIZE:
                assert pnode is not None
                self.fail(pnode, loc.at("pages").say(
                    f"{num(count)} from 'start' {hexaddr(start)} would end at {hexaddr(end)}, beyond "
                    f"TASK_SIZE ({hexaddr(TASK_SIZE)})"))
        else:
            self.fail(node, loc.say("needs one of 'end' and 'pages' with 'start'"))
        return Target(process=process, vma=None, first=start, end=end)

    # -- expectations --------------------------------------------------------------------------

    def expectations(self, node: yaml.Node, loc: Loc, alive: Mapping[str, int],
                     gone: Mapping[str, int]) -> tuple[Expectation, ...]:
        out: list[Expectation] = []
        for i, item in enumerate(self.sequence(node, loc, "a list of expectations")):
            eloc = loc.item(i)
            entries = self.mapping(item, eloc, EXPECT_KEYS)
            kinds = [k for k in entries if k in EXPECT_KINDS]
            if len(kinds) != 1:
                which = "none" if not kinds else choices(kinds)
                self.fail(entries[kinds[1]][0] if kinds else item, eloc.say(
                    f"an expectation needs exactly one of: {choices(EXPECT_KINDS)} "
                    f"(got {which})"))
            kind = kinds[0]
            kloc = eloc
            policies = None
            if "policies" in entries and "policy" in entries:
                self.fail(entries["policy"][0], kloc.say("give 'policy' or 'policies', "
                                                         "not both"))
            if (pnode := self.get(entries, "policies")) is not None:
                policies = self.policy_list(pnode, kloc.at("policies"))
            if (pnode := self.get(entries, "policy")) is not None:
                policies = (self.nonempty(pnode, kloc.at("policy")),)
            value = self.expected(kind, entries[kind][1], kloc.at(kind), alive, gone)
            out.append(Expectation(kind=kind, value=value, policies=policies,
                                   line=item.start_mark.line + 1))
        return tuple(out)

    def expected(self, kind: str, node: yaml.Node, loc: Loc, alive: Mapping[str, int],
                 gone: Mapping[str, int]) -> object:
        def ref(n: yaml.Node, where: Loc, value: str | None = None) -> str:
            if value is None:
                value = self.string(n, where, "a string 'PROCESS/VMA'")
            process, slash, vma = value.partition("/")
            if not slash:
                self.fail(n, where.say(f"{quote(value)} must be 'PROCESS/VMA'"))
            self.process_ref(n, where, alive, gone, value=process,
                             when="after the last step")
            self.check_name(n, where, vma, "VMA name")
            return value

        def distinct(n: yaml.Node, minimum: int, what: str,
                     convert: Callable[[yaml.Node, Loc], str]) -> tuple[str, ...]:
            items = self.sequence(n, loc, f"a list of {what}s")
            if len(items) < minimum:
                self.fail(n, loc.say(f"must list at least {minimum} {what}s"))
            out: list[str] = []
            for i, item in enumerate(items):
                value = convert(item, loc.item(i))
                if value in out:
                    self.fail(item, loc.item(i).say(f"{quote(value)} is listed twice"))
                out.append(value)
            return tuple(out)

        def av_name(n: yaml.Node, where: Loc) -> str:
            return self.name(n, where, "anon_vma name")

        if kind in ("same_anon_vma", "different_anon_vma"):
            return distinct(node, 2, "'PROCESS/VMA' reference", ref)
        if kind == "findings":
            return distinct(node, 1, "finding id",
                            lambda n, where: self.name(n, where, "finding id"))
        if kind == "freed":
            return distinct(node, 1, "anon_vma name", av_name)
        if kind == "no_findings":
            if self.boolean(node, loc) is not True:
                self.fail(node, loc.say("only takes true (leave the expectation out instead)"))
            return True
        entries = self.entries(node, loc, "a mapping {'PROCESS/VMA': ...}")
        if not entries:
            self.fail(node, loc.say("must map at least one 'PROCESS/VMA'"))
        pairs: list[tuple[str, object]] = []
        for key, (knode, vnode) in entries.items():
            vloc = loc.at(key)
            ref(knode, loc, key)
            if kind == "anon_vma":
                pairs.append((key, None if self.get(entries, key) is None
                              else av_name(vnode, vloc)))
            else:
                chain = self.sequence(vnode, vloc, "a list of anon_vma names, head first")
                pairs.append((key, tuple(av_name(item, vloc.item(i))
                                         for i, item in enumerate(chain))))
        return tuple(pairs)


class _At:
    """Where a VMA read line by line is, for :meth:`Loader.fail` (its value nodes, all on the
    VMA's line, are never built)."""

    def __init__(self, line: int) -> None:
        self.start_mark = yaml.Mark("", 0, line - 1, 0, None, None)


@dataclass(frozen=True)
class _LabelUse:
    """The first VMA that carries an anon_vma label."""

    process: str
    vma: VmaSpec


def _span(vma: VmaSpec) -> str:
    return f"[{hexaddr(vma.start)}, {hexaddr(vma.end)})"
