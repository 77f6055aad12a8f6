"""Reading a YAML node tree in which every value keeps its line: parsing (libyaml when it is
safe, else pure Python), where-am-I locations for messages, and typed reads that raise
ScenarioError naming the file, the line and what was expected."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import yaml

from .errors import ScenarioError
from .scenario import NAME_PATTERN, PAGE_SIZE, TASK_SIZE

_NAME_RE = re.compile(NAME_PATTERN + r"\Z")

_TAG = "tag:yaml.org,2002:"
TAG_STR, TAG_INT, TAG_BOOL, TAG_NULL = _TAG + "str", _TAG + "int", _TAG + "bool", _TAG + "null"
TAG_MAP, TAG_SEQ = _TAG + "map", _TAG + "seq"
#: Scalar tags we can turn into a value; anything else (``!foo``, ``!!python/...``) is refused.
_SCALAR_TAGS = {TAG_STR, TAG_INT, TAG_BOOL, TAG_NULL,
                _TAG + "float", _TAG + "timestamp", _TAG + "binary"}
_TYPE_NAMES = {TAG_STR: "a string", TAG_INT: "an integer", TAG_BOOL: "a boolean",
               TAG_NULL: "null", _TAG + "float": "a float", _TAG + "timestamp": "a timestamp",
               _TAG + "binary": "binary data"}


#: libyaml's parser when PyYAML has it: several times faster on a valid file.  Its composer
#: recurses in C without a limit, so it only gets documents whose nesting is surely shallow.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
_FAST_MAX_DEPTH = 500


def _nesting_bound(text: str) -> int:
    """An upper bound of the document's nesting depth: the deepest flow nesting ([ and {
    outside quotes and comments) plus, for block style, the deepest indentation plus the
    "- ", ": " and "? " indicators on one line.

    A line without quotes or comments, outside a quoted scalar, whose closing brackets cannot
    take the flow depth below zero (none, or all after its opening ones), is counted with
    string methods (the bound is then at most a little higher than the character scan's); any
    other line is scanned character by character."""
    flow = deepest = 0
    quote = ""
    for line in text.split("\n"):
        if not line:
            continue        # adds nothing (and the fast loader leaves many)
        stripped = line.lstrip(" ")
        block = len(line) - len(stripped) + 1
        if not quote and "'" not in stripped and '"' not in stripped and "#" not in stripped:
            opens = stripped.count("[") + stripped.count("{")
            closes = stripped.count("]") + stripped.count("}")
            if closes and closes <= flow + opens:
                first_close = min(i for i in (stripped.find("]"), stripped.find("}")) if i >= 0)
                safe = max(stripped.rfind("["), stripped.rfind("{")) < first_close
            else:
                safe = not closes
            if safe:
                block += (stripped.count("- ") + stripped.count(": ") + stripped.count("? ")
                          + stripped.endswith(("-", ":", "?")))
                deepest = max(deepest, flow + opens + block)
                flow += opens - closes
                continue
        prev = " "
        i = 0
        while i < len(stripped):
            c = stripped[i]
            if quote:
                if c == "\\" and quote == '"':
                    i += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "#" and prev in " \t":
                break
            elif c in "[{":
                flow += 1
                deepest = max(deepest, flow + block)
            elif c in "]}":
                flow = max(flow - 1, 0)
            elif c in "-:?" and stripped[i + 1:i + 2] in (" ", ""):
                block += 1
            prev = c
            i += 1
        deepest = max(deepest, flow + block)
    return deepest


#: the depth a "nested too deeply" error names the line of (a scenario needs about 6)
_REPORTED_DEPTH = 100


def _too_deep_line(text: str, limit: int) -> int | None:
    """The first line where the flow nesting ([ and {, outside quotes and comments) or the block
    indentation (two columns a level, at least) goes past *limit* levels."""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip(" ")
        if (len(line) - len(stripped)) // 2 > limit:
            return number
        quote = ""
        for ch in line:
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                break
            elif ch in "[{":
                depth += 1
                if depth > limit:
                    return number
            elif ch in "]}":
                depth -= 1
    return None


def compose(text: str, path: str) -> yaml.Node:
    if _FAST_LOADER is not None and _nesting_bound(text) <= _FAST_MAX_DEPTH:
        try:
            node = yaml.compose(text, Loader=_FAST_LOADER)
        except (yaml.YAMLError, RecursionError):
            pass    # report it as the pure-Python parser does: the same message everywhere
        else:
            if node is not None:
                return node
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = " ".join(filter(None, (e.context, e.problem)))
        if mark is None:
            raise ScenarioError(path, None, f"YAML syntax error: {_oneline(message)}") from None
        raise ScenarioError(path, mark.line + 1, f"YAML syntax error: {_oneline(message)}",
                            mark.column + 1) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise ScenarioError(path, line, f"unacceptable character U+{e.character:04X} "
                            "(YAML allows only printable characters)", column) from None
    except yaml.YAMLError as e:
        raise ScenarioError(path, None, f"YAML error: {_oneline(str(e))}") from None
    except RecursionError:
        line = _too_deep_line(text, _REPORTED_DEPTH)
        raise ScenarioError(path, line, f"YAML nested too deeply (more than {_REPORTED_DEPTH} "
                            "levels of lists and mappings)") from None
    if node is None:
        raise ScenarioError(path, 1, "empty file: expected a mapping with at least "
                            "'description' and 'processes'")
    return node


def _oneline(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int = 40) -> str:
    if len(text) > limit:
        text = text[:limit] + "..."
    return text if text.isprintable() else repr(text)[1:-1]


def quote(value: str) -> str:
    return repr(_clip(value, 60)) if value.isprintable() else repr(value[:60])


def num(value: int) -> str:
    """An integer for a message (hex when huge: str() refuses more than 4300 digits)."""
    return str(value) if value.bit_length() < 64 else hexaddr(value)


def hexaddr(value: int) -> str:
    """An address for a message; absurdly large ones are abbreviated."""
    if value.bit_length() <= 128:
        return f"{value:#x}"
    return f"{'-' if value < 0 else ''}0x{abs(value):x}"[:24] + f"... ({value.bit_length()} bits)"


def _looks_like_int(text: str) -> bool:
    return re.fullmatch(r"[-+]?(?:0x[0-9a-fA-F_]+|0b[01_]+|[0-9][0-9_]*)", text) is not None


def choices(values: Iterable[str]) -> str:
    return ", ".join(values)


@dataclass(frozen=True)
class Loc:
    """Where a value sits, for messages: ``where`` is the enclosing node (``processes[0]``),
    ``key`` the key inside it, if any."""

    where: str
    key: str | None = None

    def say(self, predicate: str) -> str:
        subject = f"{quote(self.key)} " if self.key is not None else ""
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}{subject}{predicate}"

    def path(self) -> str:
        if self.key is None:
            return self.where
        key = _clip(self.key, 60)
        return f"{self.where}.{key}" if self.where else key

    def at(self, key: str) -> Loc:
        """The value of *key* in the mapping found here."""
        return Loc(self.path(), key)

    def item(self, index: int) -> Loc:
        return Loc(f"{self.path()}[{index}]")


Entries = dict[str, tuple[yaml.Node, yaml.Node]]   # key -> (key node, value node)


class NodeReader:
    """Typed reads of a YAML node tree; every problem raises ScenarioError with the file,
    the line of the offending node and what was expected."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._constructor = yaml.constructor.SafeConstructor()

    # -- primitives ----------------------------------------------------------------------------

    def fail(self, node: yaml.Node | None, message: str) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        raise ScenarioError(self.path, line, message)

    def value(self, node: yaml.ScalarNode, loc: Loc) -> object:
        if node.tag not in _SCALAR_TAGS:
            self.fail(node, loc.say(f"has unsupported YAML tag {quote(node.tag)}"))
        try:
            return self._constructor.construct_object(node)
        except Exception as e:   # PyYAML raises ValueError, KeyError, ... on bad !!int etc.
            self.fail(node, loc.say(f"is not a valid {node.tag.rsplit(':', 1)[-1]} "
                                    f"({type(e).__name__})"))

    def describe(self, node: yaml.Node) -> str:
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            what = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
            return what if node.tag in (TAG_MAP, TAG_SEQ) else f"{what} tagged {quote(node.tag)}"
        name = _TYPE_NAMES.get(node.tag, f"a value tagged {quote(node.tag)}")
        if node.tag == TAG_NULL:
            return name
        if node.tag == TAG_STR:
            return f"{name} ({quote(node.value)})"
        return f"{name} ({_clip(node.value)})"

    def wrong(self, node: yaml.Node, loc: Loc, expected: str, text: bool = False) -> NoReturn:
        """Report a value of the wrong type; *text*: a string was expected."""
        hint = ""
        if text and isinstance(node, yaml.ScalarNode) and not node.style \
                and node.tag in (TAG_INT, TAG_BOOL, _TAG + "float"):
            hint = "; quote it to make it a string"
        elif expected.startswith("an integer") and isinstance(node, yaml.ScalarNode) \
                and node.tag == TAG_STR and node.style in ("'", '"') and _looks_like_int(node.value):
            hint = "; remove the quotes"
        self.fail(node, loc.say(f"must be {expected}, got {self.describe(node)}{hint}"))

    def entries(self, node: yaml.Node, loc: Loc, what: str = "a mapping") -> Entries:
        if not isinstance(node, yaml.MappingNode) or node.tag != TAG_MAP:
            self.wrong(node, loc, what)
        out: Entries = {}
        for knode, vnode in node.value:
            if knode.tag == _TAG + "merge":
                self.fail(knode, loc.say("merge keys ('<<') are not supported"))
            if not isinstance(knode, yaml.ScalarNode) or knode.tag != TAG_STR:
                self.fail(knode, Loc(loc.path()).say(
                    f"keys must be strings, got {self.describe(knode)}"))
            key = knode.value
            if key in out:
                first = out[key][0].start_mark.line + 1
                self.fail(knode, Loc(loc.path()).say(
                    f"duplicate key {quote(key)} (first at line {first})"))
            out[key] = (knode, vnode)
        return out

    def check_keys(self, node: yaml.Node, entries: Entries, loc: Loc, allowed: Sequence[str],
                   required: Sequence[str] = ()) -> None:
        for key, (knode, _) in entries.items():
            if key not in allowed:
                self.fail(knode, Loc(loc.path()).say(
                    f"unknown key {quote(key)} (expected one of: {choices(allowed)})"))
        for key in required:
            if key not in entries:
                self.fail(node, Loc(loc.path()).say(f"missing required key '{key}'"))

    def mapping(self, node: yaml.Node, loc: Loc, allowed: Sequence[str],
                required: Sequence[str] = ()) -> Entries:
        entries = self.entries(node, loc)
        self.check_keys(node, entries, loc, allowed, required)
        return entries

    @staticmethod
    def get(entries: Entries, key: str) -> yaml.Node | None:
        """The value node of an optional key; None when absent or null."""
        if key not in entries:
            return None
        node = entries[key][1]
        if isinstance(node, yaml.ScalarNode) and node.tag == TAG_NULL:
            return None
        return node

    def sequence(self, node: yaml.Node, loc: Loc, what: str = "a list") -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode) or node.tag != TAG_SEQ:
            self.wrong(node, loc, what)
        return list(node.value)

    def string(self, node: yaml.Node, loc: Loc, what: str = "a string") -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != TAG_STR:
            if isinstance(node, yaml.ScalarNode):
                self.value(node, loc)   # report a bad tag before a wrong type
            self.wrong(node, loc, what, text=True)
        value = self.value(node, loc)
        assert isinstance(value, str)
        return value

    def nonempty(self, node: yaml.Node, loc: Loc) -> str:
        value = self.string(node, loc, "a non-empty string")
        if not value.strip():
            self.fail(node, loc.say("must be a non-empty string"))
        return value

    def name(self, node: yaml.Node, loc: Loc, what: str = "name") -> str:
        value = self.string(node, loc, f"{'an' if what[0] in 'aeiou' else 'a'} {what}")
        self.check_name(node, loc, value, what)
        return value

    def check_name(self, node: yaml.Node, loc: Loc, value: str, what: str) -> None:
        if not _NAME_RE.match(value):
            self.fail(node, loc.say(f"{quote(value)} is not a valid {what} "
                                    f"(expected letters, digits, '_', '.', '-', "
                                    f"not starting with a digit, '.' or '-')"))

    def integer(self, node: yaml.Node, loc: Loc, minimum: int | None = None,
                address: bool = False) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != TAG_INT:
            if isinstance(node, yaml.ScalarNode):
                self.value(node, loc)
            self.wrong(node, loc, "an integer")
        value = self.value(node, loc)
        assert isinstance(value, int) and not isinstance(value, bool)
        if minimum is not None and value < minimum:
            shown = f"{hexaddr(value)}" if address else num(value)
            limit = f"{hexaddr(minimum)}" if address else num(minimum)
            self.fail(node, loc.say(f"{shown} must be >= {limit}"))
        return value

    def address(self, node: yaml.Node, loc: Loc, minimum: int = 0) -> int:
        """A page-aligned byte address in [minimum, TASK_SIZE]."""
        value = self.integer(node, loc, minimum, address=True)
        if value % PAGE_SIZE:
            self.fail(node, loc.say(f"{hexaddr(value)} is not page aligned ({PAGE_SIZE})"))
        if value > TASK_SIZE:
            self.fail(node, loc.say(f"{hexaddr(value)} is beyond TASK_SIZE ({hexaddr(TASK_SIZE)})"))
        return value

    def boolean(self, node: yaml.Node, loc: Loc) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != TAG_BOOL:
            if isinstance(node, yaml.ScalarNode):
                self.value(node, loc)
            self.wrong(node, loc, "a boolean (true or false)")
        value = self.value(node, loc)
        assert isinstance(value, bool)
        return value

    def names(self, node: yaml.Node, loc: Loc, what: str) -> tuple[str, ...]:
        """A list of distinct names."""
        out: list[str] = []
        for i, item in enumerate(self.sequence(node, loc, f"a list of {what}s")):
            value = self.name(item, loc.item(i), what)
            if value in out:
                self.fail(item, loc.item(i).say(f"{what} {quote(value)} is listed twice"))
            out.append(value)
        return tuple(out)
