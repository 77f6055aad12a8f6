"""The fast path of the scenario loader for large files: a process's ``vmas`` list written one
flow mapping a line (``- {name: v0, start: 0x7f0000000000, pages: 1, prot: rw, ...}``, as
large generated layouts are) is read line by line, without building a YAML node for every key
and value, which is where a 65,000-VMA file spent its load time.

The rest of the document still goes through the YAML parser: the lines of each such list are
blanked out (line numbers everywhere stay the same) and its ``vmas:`` key gets an empty flow
list, which :class:`FastVmas` then stands for, carrying the VMAs read from the lines.

The fast path is exact or absent.  Only the subset whose meaning is certain is read (plain
scalars of a few character classes, their YAML tags resolved by PyYAML's own resolver, the
values validated by :func:`vma_from_scalars`, which the node-by-node path uses too); a list
with any other line is left to the YAML parser.  If anything later goes wrong in a document
read this way (a duplicate VMA name, an overlap, any error at all), the whole document is read
again the careful way (:meth:`FastDocument.read`), so that every message is the one the careful
path gives.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Container, Iterable
from itertools import permutations, repeat
from operator import add, itemgetter, mod
from typing import TYPE_CHECKING, NamedTuple

import yaml

from .errors import ScenarioError
from .progress import EVERY, bar
from .scenario import MAX_FAULT_ALL_PAGES, PAGE_SIZE, TASK_SIZE, VMA_KEYS, VmaSpec
from .yamlnodes import _NAME_RE, TAG_BOOL, TAG_INT, TAG_MAP, TAG_NULL, TAG_SEQ, TAG_STR
from .yamlnodes import compose as compose_nodes

if TYPE_CHECKING:
    from .scenario import Scenario
    from .scenario_loader import Loader

PROT_LETTERS = {"r": "read", "w": "write", "x": "exec"}
DEFAULT_PROT = frozenset({"read", "write"})
#: every protection string the loader accepts, and what it means
PROTS = {"none": frozenset(), "": frozenset(), **{
    "".join(p): frozenset(PROT_LETTERS[c] for c in p)
    for n in (1, 2, 3) for p in permutations("rwx", n)}}
NO_FLAGS: frozenset[str] = frozenset()
#: the keys :func:`vma_from_scalars` reads (not ``flags``, a list; not ``offset``: both go the
#: careful way)
FAST_VMA_KEYS = frozenset(VMA_KEYS) - {"flags", "offset"}

_constructor = yaml.constructor.SafeConstructor()
_BOOLS = _constructor.bool_values
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")


class _Everything:
    def __contains__(self, item: object) -> bool:
        return True


_EVERYTHING = _Everything()


def yaml_int(text: str) -> int:
    """The value of a scalar tagged int, as PyYAML's SafeConstructor gives it."""
    if text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
        return int(text)
    if _HEX.match(text):
        return int(text[2:], 16)
    return _constructor.construct_yaml_int(yaml.ScalarNode(TAG_INT, text))


def vma_from_scalars(items: Iterable[tuple[str, str, str]], line: int) -> VmaSpec | None:
    """One VMA of the starting layout from its keys and scalar values, ``(key, tag, text)`` in
    document order (keys are plain strings), for the common valid case: None when anything is
    unusual (an unknown or repeated key, a ``flags`` list, a value of the wrong type or out of
    range), and the careful path then reads it and says what is wrong."""
    values: dict[str, tuple[str, str] | None] = {}
    for key, tag, text in items:
        if key in values or key not in FAST_VMA_KEYS:
            return None
        if tag == TAG_NULL:
            if key in ("name", "start", "prot"):
                return None
            values[key] = None        # as if absent
            continue
        values[key] = (tag, text)
    name, start_v = values.get("name"), values.get("start")
    if name is None or start_v is None or name[0] != TAG_STR or not _NAME_RE.match(name[1]) \
            or start_v[0] != TAG_INT:
        return None
    try:
        start = yaml_int(start_v[1])
        pages_v, end_v = values.get("pages"), values.get("end")
        if (pages_v is None) == (end_v is None):
            return None
        if pages_v is not None:
            if pages_v[0] != TAG_INT:
                return None
            pages = yaml_int(pages_v[1])
            if pages < 1:
                return None
            end = start + pages * PAGE_SIZE
        else:
            assert end_v is not None
            if end_v[0] != TAG_INT:
                return None
            end = yaml_int(end_v[1])
            if end % PAGE_SIZE:
                return None
        if start < PAGE_SIZE or start % PAGE_SIZE or start > TASK_SIZE \
                or end > TASK_SIZE or end <= start:
            return None
        prot = DEFAULT_PROT
        if (prot_v := values.get("prot")) is not None:
            if prot_v[0] != TAG_STR or prot_v[1] not in PROTS:
                return None
            prot = PROTS[prot_v[1]]
        shared = faulted = False
        if (shared_v := values.get("shared")) is not None:
            if shared_v[0] != TAG_BOOL:
                return None
            shared = _BOOLS[shared_v[1].lower()]
        file = None
        if (file_v := values.get("file")) is not None:
            if file_v[0] != TAG_STR or not file_v[1].strip():
                return None
            file = file_v[1]
        if (faulted_v := values.get("faulted")) is not None:
            if faulted_v[0] != TAG_BOOL:
                return None
            faulted = _BOOLS[faulted_v[1].lower()]
            if faulted and (end - start) // PAGE_SIZE > MAX_FAULT_ALL_PAGES:
                return None
    except Exception:       # the careful path says what is wrong
        return None
    label = None
    if (label_v := values.get("anon_vma")) is not None:
        if label_v[0] != TAG_STR or not _NAME_RE.match(label_v[1]) or not faulted:
            return None
        label = label_v[1]
    if shared and faulted:
        return None
    return VmaSpec(name[1], start, end, prot, NO_FLAGS, shared, file, faulted, None, label, line)


# -- the line-oriented subset ---------------------------------------------------------------------

#: a plain scalar that cannot be anything else in a flow mapping: no indicator, no space, no
#: comma, colon, quote or bracket (its tag is still up to the resolver: ``true``, ``0x10``, ``~``)
_PLAIN = r"[A-Za-z0-9_.][A-Za-z0-9_.-]*"
_PAIR = r"[a-z_]+: +" + _PLAIN
#: one VMA: ``<indent>- {key: value, key: value}``, the whole mapping on its line
_ITEM = re.compile(r"( +)- \{ *(" + _PAIR + r"(?:, +" + _PAIR + r")*) *\} *(?:\n|\Z)")
_PAIRS = re.compile(r"([a-z_]+): +(" + _PLAIN + ")")
#: a line with nothing for the parser: blank, or a comment
_EMPTY = re.compile(r" *(?:#[^\n]*)?(?:\n|\Z)")
#: a ``vmas:`` key alone on its line (block style), the list on the lines below
_VMAS = re.compile(r"^( *)vmas: *$", re.M)
#: characters YAML takes as line breaks besides \n (line numbers would then differ)
_OTHER_BREAKS = ("\r", "\x85", "\u2028", "\u2029")

_resolver = yaml.resolver.Resolver()
#: the first characters for which PyYAML's resolver may give a plain scalar another tag than str
#: (it looks its implicit resolvers up by first character)
_TRIGGERS = frozenset(k for k in yaml.SafeLoader.yaml_implicit_resolvers if k)
_WILDCARD = None in yaml.SafeLoader.yaml_implicit_resolvers or bool(yaml.SafeLoader.yaml_path_resolvers)


def _tag(text: str, cache: dict[str, str]) -> str:
    """The tag PyYAML's resolver gives the plain scalar *text*."""
    if text[0] not in _TRIGGERS and not _WILDCARD:
        return TAG_STR
    tag = cache.get(text)
    if tag is None:
        if _HEX.match(text):      # an address: the int resolver's, and no other one's
            return TAG_INT
        tag = cache[text] = _resolver.resolve(yaml.ScalarNode, text, (True, False))
    return tag


class FastVmas(yaml.SequenceNode):
    """The value of a ``vmas`` key whose list was read line by line: an empty flow list in the
    node tree, with the VMAs in :attr:`specs` (file order)."""

    def __init__(self, node: yaml.SequenceNode, specs: list[VmaSpec]) -> None:
        super().__init__(node.tag, [], node.start_mark, node.end_mark, node.flow_style)
        self.specs = specs


class FastDocument:
    """A document some of whose VMA lists were read line by line (see the module docstring)."""

    def __init__(self, root: yaml.Node, text: str, path: str) -> None:
        self.root = root
        self.text = text
        self.path = path

    def read(self, loader: Loader) -> Scenario:
        try:
            return loader.scenario(self.root)
        except ScenarioError:   # the careful path gives the message
            return loader.scenario(compose_nodes(self.text, self.path))


#: an item whose first two keys are a name (as NAME_PATTERN) and a start address (hex, or
#: decimal without a leading zero), the rest of it in group 4: ``, pages: 1, prot: rw`` (a
#: line :data:`_ITEM` matches too)
_NAME, _START = r"[A-Za-z_][A-Za-z0-9_.-]*", r"(?:0x[0-9a-fA-F]+|[1-9][0-9]*)"
_NAMED_TAIL = (r"- \{ *name: +(" + _NAME + r"), +start: +(" + _START + r")((?:, +" + _PAIR
               + r")*) *\} *(?:\n|\Z)")
_NAMED_ITEM = re.compile(r"( +)" + _NAMED_TAIL)
#: :data:`_NAMED_TAIL`'s name, start and rest, cut out loosely, each then held to its pattern
#: (see :class:`_Batch`)
_LOOSE_TAIL = r"- \{ *name: +([^,\n]*), +start: +([^,\n]*)(,[^\n]*)\n"


class _Checks(NamedTuple):
    """The patterns a :class:`_Batch` holds its pieces to (compiled at its first use: a small
    scenario never needs them)."""

    #: many names or starts, a line each: all of them as :data:`_NAMED_TAIL` has them
    names: Callable[[str], re.Match[str] | None]
    starts: Callable[[str], re.Match[str] | None]
    #: and names that are strings whatever the resolver (their first characters none it
    #: looks at)
    plain_names: Callable[[str], re.Match[str] | None]
    #: what follows the start up to the line break, as the pattern has it: group 1 is its
    #: group 4
    tail: Callable[[str], re.Match[str] | None]


@functools.cache
def _checks() -> _Checks:
    plain_first = "".join(sorted(set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
                                 - _TRIGGERS)) if not _WILDCARD else ""
    plain = r"[%s][A-Za-z0-9_.-]*" % plain_first if plain_first else r"(?!)"
    return _Checks(*(re.compile(r"(?:%s\n)*%s\Z" % (p, p)).match for p in (_NAME, _START, plain)),
                   re.compile(r"((?:, +" + _PAIR + r")*) *\} *\Z").match)


class _Shape(NamedTuple):
    """What the rest of a one-line VMA after its name and start says, the same for every line
    written alike (a generated layout has a handful of such rests): the VMA it makes at the
    lowest address, and its length."""

    spec: VmaSpec
    length: int


def _shape(rest: str, cache: dict[str, str], triggers: Container[str]) -> _Shape | None:
    """The :class:`_Shape` of a rest with ``pages`` (not ``end``, which is no offset from the
    start), made by :func:`vma_from_scalars` itself with a name and start that pass its checks;
    None if it has no such meaning (each line is then read on its own)."""
    items = [(k, TAG_STR if v[0] not in triggers else _tag(v, cache), v)
             for k, v in _PAIRS.findall(rest)]
    if "pages" not in {k for k, _, _ in items}:
        return None
    spec = vma_from_scalars([("name", TAG_STR, "a"), ("start", TAG_INT, str(PAGE_SIZE))] + items,
                            0)
    if spec is None:
        return None
    return _Shape(spec, spec.end - spec.start)


def _no_match(text: str, pos: int) -> None:
    return None


#: lines read by one :class:`_Batch` call at most; and the lines below a list's first
#: before batches are worth their regular expressions
BATCH_LINES, BATCH_MIN = 4096, 64

#: a VmaSpec's fields after its name, start and end, but for the line
_SHAPE_FIELDS = tuple(map(itemgetter, range(3, VmaSpec._fields.index("line"))))
_OFFSET = itemgetter(VmaSpec._fields.index("line") + 1)


class _Specs(list):  # type: ignore[type-arg]
    """The VMAs of a batch, and the characters of its lines (``size``)."""

    size = 0


class _Batch:
    """The common lines (see :func:`_read_list`) of a list at one column, up to
    :data:`BATCH_LINES` of them at a time, read by C loops: the batch's lines found by one
    regular expression and cut into name, start and rest by another (``findall``), every name
    and every start checked against :data:`_NAMED_TAIL`'s patterns at once (joined), the rests
    against the rest of it once each, the VMAs made column by column (``map``, ``zip``) from
    the shapes of the rests.

    All or nothing: the batch is the run of lines at the column starting with ``- `` and ending
    with a line break; unless every one of them is a line :data:`_NAMED_TAIL` matches whose
    name, start and shape pass the checks the one-line loop makes, the call gives nothing, and
    that loop reads them."""

    def __init__(self, column: int) -> None:
        self.run = re.compile("(?: {%d}- [^\\n]*\\n){1,%d}" % (column, BATCH_LINES)).match
        # looser than _NAMED_TAIL (a name or start is anything up to a comma, the rest anything
        # up to the line break), then held to it piece by piece
        self.items = re.compile("^ {%d}" % column + _LOOSE_TAIL, re.M).findall
        #: the end of the last batch tried
        self.tried = 0

    def __call__(self, text: str, pos: int, line: int, shapes: dict[str, _Shape | None],
                 cache: dict[str, str], triggers: Container[str]) -> _Specs | None:
        if pos < self.tried:
            return None
        run = self.run(text, pos)
        if run is None:
            return None
        # a batch that fails is not tried again, line after line (a list with an odd line
        # every few lines would be read over and over): the one-line loops read it
        stop = self.tried = run.end()
        found = self.items(text, pos, stop)
        n = len(found)
        # each item is one whole line (from a line's start to its break), so as many items as
        # lines is every line
        if n != text.count("\n", pos, stop):
            return None
        names, start_texts, tails = zip(*found)
        checks = _checks()
        if checks.starts("\n".join(start_texts)) is None:
            return None
        # each distinct tail's shape: the VMA it makes (its fields after name, start and end
        # are the line's) and its length
        protos: dict[str, VmaSpec] = {}
        lengths: dict[str, int] = {}
        for tail in set(tails):
            m = checks.tail(tail)
            if m is None:
                return None
            rest = m.group(1)
            shape = shapes.get(rest)
            if shape is None:
                if rest in shapes:
                    return None
                shape = shapes[rest] = _shape(rest, cache, triggers)
                if shape is None:
                    return None
            protos[tail], lengths[tail] = shape
        if checks.plain_names(joined := "\n".join(names)) is None and (
                checks.names(joined) is None
                or any([_tag(name, cache) != TAG_STR for name in names if name[0] in triggers])):
            return None
        # hex with 0x, or decimal without a leading zero: base 0 reads both as the one-line
        # loop does
        starts = list(map(int, start_texts, repeat(0, n)))
        stops = list(map(add, starts, map(lengths.__getitem__, tails)))
        if min(starts) < PAGE_SIZE or any(map(mod, starts, repeat(PAGE_SIZE, n))) \
                or max(stops) > TASK_SIZE:
            return None
        specs = list(map(protos.__getitem__, tails))
        # a field the shapes of the batch all agree on is repeated, not looked up line by line
        shaped = set(protos.values())
        first = specs[0]
        out = _Specs(map(tuple.__new__, repeat(VmaSpec, n), zip(
            names, starts, stops,
            *[repeat(field(first)) if len({field(spec) for spec in shaped}) == 1
              else map(field, specs) for field in _SHAPE_FIELDS],
            range(line, line + n),
            repeat(_OFFSET(first)) if len({_OFFSET(spec) for spec in shaped}) == 1
            else map(_OFFSET, specs))))
        out.size = stop - pos
        return out


def _read_list(text: str, pos: int, indent: int, line: int,
               cache: dict[str, str]) -> tuple[list[VmaSpec], int] | None:
    """The VMAs of the block list starting at *pos*, the line after a ``vmas:`` key at column
    *indent*; *line* is the (1-based) number of the line at *pos*.  Gives the VMAs and the
    position of the first line after the list; None unless every item is a one-line VMA
    :func:`vma_from_scalars` accepts, all at one column deeper than the key, and the list
    clearly ends (at the end of the text or at a line no deeper than the key).

    A line whose rest after its name and start was seen before (:data:`_NAMED_ITEM`) is read
    by that rest's :class:`_Shape`: only the checks on its name and start are made for it.
    Not with resolvers of one's own (:data:`_WILDCARD`): the tags of the name and start would
    no longer be certain."""
    specs: list[VmaSpec] = []
    item_match, empty_match, pairs = _ITEM.match, _EMPTY.match, _PAIRS.findall
    named_match = _NAMED_ITEM.match if not _WILDCARD else _no_match
    shapes: dict[str, _Shape | None] = {}
    # a plain scalar is a string unless its first character is one the resolver looks at
    triggers = _TRIGGERS if not _WILDCARD else _EVERYTHING
    new_spec = tuple.__new__         # a VmaSpec as the tuple it is, as its __new__ makes it
    end = len(text)
    column = -1
    progress = None
    #: the common line once the column is known: named, at that column, its rest's shape seen
    fast_match = _no_match
    #: and a batch of such lines at a time
    batch: _Batch | None = None
    while pos < end:
        # the common lines a batch at a time, then one at a time (the general loop below
        # reads the others)
        while batch is not None and (got := batch(text, pos, line, shapes, cache, triggers)):
            specs += got
            pos = pos + got.size
            line += len(got)
            if progress:
                progress.update(len(specs))
        while fast := fast_match(text, pos):
            name, start_text, rest = fast.groups()
            shape = shapes.get(rest)
            if shape is None or (name[0] in triggers and _tag(name, cache) != TAG_STR):
                break
            start = int(start_text[2:], 16) if start_text[1:2] == "x" else int(start_text)
            stop = start + shape.length
            if start < PAGE_SIZE or start % PAGE_SIZE or stop > TASK_SIZE:
                break
            if progress and not len(specs) % EVERY:
                progress.update(len(specs))
            proto = shape.spec
            specs.append(new_spec(VmaSpec, (name, start, stop, proto.prot, proto.flags,
                                            proto.shared, proto.file, proto.faulted, proto.pages,
                                            proto.anon_vma, line, proto.offset)))
            pos = fast.end()
            line += 1
        if pos >= end:
            break
        named = named_match(text, pos)
        m = named if named is not None else item_match(text, pos)
        if m is None:
            e = empty_match(text, pos)
            if e is None:
                break
            pos = e.end()
            line += 1
            continue
        if column < 0:
            column = len(m.group(1))
            if column <= indent:
                return None
            below = text.count("\n", pos)
            progress = bar("reading the VMAs", below + 1)
            if not _WILDCARD:
                fast_match = re.compile(" {%d}" % column + _NAMED_TAIL).match
                if below >= BATCH_MIN:
                    batch = _Batch(column)
        elif len(m.group(1)) != column:
            return None
        if progress and not len(specs) % EVERY:
            progress.update(len(specs))
        spec = None
        if named is not None:
            name, start_text, rest = named.group(2, 3, 4)
            shape = shapes.get(rest)
            if shape is None and rest not in shapes:
                shape = shapes[rest] = _shape(rest, cache, triggers)
            # vma_from_scalars's checks on the name (a string as the resolver has it) and the
            # start (the address checks; an int, as the pattern says)
            if shape is not None and (name[0] not in triggers or _tag(name, cache) == TAG_STR):
                start = int(start_text[2:], 16) if start_text[1:2] == "x" else int(start_text)
                stop = start + shape.length
                if start >= PAGE_SIZE and not start % PAGE_SIZE and stop <= TASK_SIZE:
                    proto = shape.spec
                    spec = new_spec(VmaSpec, (name, start, stop, proto.prot, proto.flags,
                                              proto.shared, proto.file, proto.faulted,
                                              proto.pages, proto.anon_vma, line, proto.offset))
        if spec is None:
            body = (m if named is None else item_match(text, pos)).group(2)  # type: ignore[union-attr]
            spec = vma_from_scalars([(k, TAG_STR if v[0] not in triggers else _tag(v, cache), v)
                                     for k, v in pairs(body)], line)
            if spec is None:
                return None
        specs.append(spec)
        pos = m.end()
        line += 1
    if progress:
        progress.close()
    if not specs:
        return None
    head = text[pos:pos + indent + 1]
    if len(head) - len(head.lstrip(" ")) > indent:
        return None
    return specs, pos


def compose(text: str, path: str) -> yaml.Node | FastDocument:
    """The node tree of *text* (see :func:`anondiff.yamlnodes.compose`), the VMA lists that
    can be read line by line read so (a :class:`FastDocument`), if there are any."""
    if "vmas:" not in text or any(b in text for b in _OTHER_BREAKS):
        return compose_nodes(text, path)
    cache: dict[str, str] = {}
    pieces: list[str] = []
    lists: dict[int, list[VmaSpec]] = {}      # 0-based line of the vmas: key -> its VMAs
    done = 0                                  # text[:done] is in pieces
    seen, line = 0, 0                         # line: the 0-based line number of text[seen]
    at = 0      # where the next key is searched for: after the last one, or the list read
    # (finditer would scan every line of a list read, 6 MB for 65,000 VMAs)
    while (m := _VMAS.search(text, at)) is not None:
        line += text.count("\n", seen, m.start())
        seen = at = m.start()
        after = m.end() + 1
        if after > len(text):
            break
        got = _read_list(text, after, len(m.group(1)), line + 2, cache)
        if got is None:
            at = m.end()
            continue
        specs, stop = got
        lists[line] = specs
        breaks = text.count("\n", m.end(), stop)
        pieces += [text[done:m.end()], " []", "\n" * breaks]
        done, seen, at, line = stop, stop, stop, line + breaks
    if not lists:
        return compose_nodes(text, path)
    pieces.append(text[done:])
    short = "".join(pieces)
    try:
        root = compose_nodes(short, path)
    except ScenarioError:
        return compose_nodes(text, path)
    if not _attach(root, lists):
        return compose_nodes(text, path)
    return FastDocument(root, text, path)


def _attach(root: yaml.Node, lists: dict[int, list[VmaSpec]]) -> bool:
    """Put each list read line by line in place of its empty list: the value of ``vmas`` in a
    block-style process mapping of the top-level ``processes`` list.  False if any is not there
    (the line was not what it looked like, e.g. inside a block scalar)."""
    if type(root) is not yaml.MappingNode or root.tag != TAG_MAP:
        return False
    found = 0
    processes = [v for k, v in root.value if type(k) is yaml.ScalarNode and k.value == "processes"]
    if len(processes) != 1 or type(processes[0]) is not yaml.SequenceNode:
        return False
    for item in processes[0].value:
        if type(item) is not yaml.MappingNode or item.flow_style:
            continue
        for i, (knode, vnode) in enumerate(item.value):
            if type(knode) is yaml.ScalarNode and knode.tag == TAG_STR \
                    and knode.value == "vmas" and type(vnode) is yaml.SequenceNode \
                    and vnode.tag == TAG_SEQ and vnode.flow_style and not vnode.value \
                    and vnode.start_mark.line in lists:
                item.value[i] = (knode, FastVmas(vnode, lists[vnode.start_mark.line]))
                found += 1
    return found == len(lists)
