"""A C-aware cutter: find a function, a struct/enum/union definition or a top-level macro call
in a kernel source file by name, and return its text with the line it starts on.

Comments, string and character literals and preprocessor lines (with their continuations) are
masked before braces are counted, so a ``{`` in a comment or an ``#ifdef`` cannot derail it.
Each item records the ``#if`` stack it sits in; of several definitions of one name (a real one
and a ``!CONFIG_MMU`` stub) the one whose stack holds under :data:`CONFIG` is taken.
"""
from __future__ import annotations

import re
from typing import NamedTuple

#: The configuration the cut code is compiled for: options not listed are off.
CONFIG: dict[str, bool] = {
    "CONFIG_MMU": True,
    "CONFIG_DEBUG_VM": True,
    "CONFIG_PER_VMA_LOCK": True,
    # the kernel-only part of a header (5.10's include/linux/mm.h puts vma_pages() under
    # #ifdef __KERNEL__)
    "__KERNEL__": True,
}


class Cut(NamedTuple):
    name: str
    kind: str          # "function", "struct", "enum", "union", "macro"
    path: str          # the tree's file, e.g. "mm/rmap.c"
    line: int          # 1-based line of the item's first line
    text: str          # the item as written, comments included
    signature: str     # for a function: its header up to the closing parenthesis


def mask(src: str) -> str:
    """``src`` with comments, literals and directive lines blanked (newlines kept), so that
    offsets and line numbers stay valid."""
    out = list(src)
    i, n = 0, len(src)
    at_line_start = True
    while i < n:
        c = src[i]
        if at_line_start and c in " \t":
            i += 1
            continue
        if at_line_start and c == "#":
            j = i
            while j < n:
                if src[j] == "\n" and src[j - 1] != "\\":
                    break
                j += 1
            _blank(out, i, j)
            i = j
            continue
        at_line_start = c == "\n"
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            _blank(out, i, j)
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            _blank(out, i, j)
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            _blank(out, i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _blank(out: list[str], i: int, j: int) -> None:
    for k in range(i, min(j, len(out))):
        if out[k] != "\n":
            out[k] = " "


_DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")


def if_stacks(src: str) -> list[tuple[str, ...]]:
    """For each line (0-based), the conditions of the ``#if`` blocks around it, each as the
    text that must hold (``!X`` for an ``#else`` branch of X)."""
    stack: list[list[str]] = []
    out: list[tuple[str, ...]] = []
    lines = src.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        full = line
        while full.endswith("\\") and i + 1 < len(lines):
            out.append(tuple(" && ".join(f) for f in stack))
            i += 1
            full = full[:-1] + lines[i]
        m = _DIRECTIVE.match(full)
        if m:
            word, rest = m.group(1), _strip_comment(m.group(2)).strip()
            if word == "ifdef":
                stack.append([f"defined({rest})"])
            elif word == "ifndef":
                stack.append([f"!defined({rest})"])
            elif word == "if":
                stack.append([f"({rest})"])
            elif word in ("elif", "else") and stack:
                prior = [f"!{c}" if not c.startswith("!") else c[1:] for c in stack[-1][-1:]]
                stack[-1] = [*stack[-1][:-1], *prior]
                if word == "elif":
                    stack[-1].append(f"({rest})")
            elif word == "endif" and stack:
                stack.pop()
        out.append(tuple(" && ".join(f) for f in stack))
        i += 1
    return out


def _strip_comment(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text)
    return text.split("//")[0]


def holds(condition: str, config: dict[str, bool] = CONFIG) -> bool:
    """Evaluate a preprocessor condition of CONFIG_ names (unknown names are off)."""
    expr = condition
    expr = re.sub(r"IS_ENABLED\s*\(\s*(\w+)\s*\)", r"defined(\1)", expr)
    expr = re.sub(r"IS_BUILTIN\s*\(\s*(\w+)\s*\)", r"defined(\1)", expr)
    expr = re.sub(r"defined\s*\(\s*(\w+)\s*\)", lambda m: str(config.get(m.group(1), False)), expr)
    expr = re.sub(r"defined\s+(\w+)", lambda m: str(config.get(m.group(1), False)), expr)
    expr = re.sub(r"\b(CONFIG_\w+)\b", lambda m: str(config.get(m.group(1), False)), expr)
    expr = expr.replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    if not re.fullmatch(r"[\sA-Za-z0-9_()<>=]*", expr) or re.search(
            r"\b(?!and\b|or\b|not\b|True\b|False\b)[A-Za-z_]\w*", expr):
        return True   # not a CONFIG_ test (an arch or version macro): assume the usual branch
    try:
        return bool(eval(expr, {"__builtins__": {}}, {}))   # only True/False/and/or/not left
    except Exception:
        return True


class Source:
    """One file of the tree, masked once, searched many times."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.masked = mask(text)
        self.stacks = if_stacks(text)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._depth = self._depths()

    def _depths(self) -> list[int]:
        """Brace depth before each character of the masked text."""
        depth, out = 0, []
        for c in self.masked:
            out.append(depth)
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
        return out

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self._line_starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if self._line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def _item_start(self, pos: int) -> int:
        """Where the top-level item containing ``pos`` begins: after the previous top-level
        ``;`` or ``}``, a directive, or an upper-case macro call ending a line."""
        m = self.masked
        j = pos
        while j > 0:
            c = m[j - 1]
            if (c == ";" and self._depth[j - 1] == 0) or (c == "}" and self._depth[j - 1] == 1):
                break
            if c == "\n" and self._depth[j - 1] == 0:
                if self._ends_macro_call(j - 1):
                    break
                if self.text[m.rfind("\n", 0, j - 1) + 1:j - 1].lstrip().startswith("#"):
                    break
            j -= 1
        while j < pos and m[j] in " \t\n":
            j += 1
        return j

    def _ends_macro_call(self, end: int) -> bool:
        """Does the masked text before ``end`` end with an upper-case macro call that began at
        the start of a line (``INTERVAL_TREE_DEFINE(...)`` has no ``;``)?"""
        m = self.masked
        k = end
        while k > 0 and m[k - 1] in " \t\n":
            k -= 1
        if k == 0 or m[k - 1] != ")":
            return False
        depth = 0
        for i in range(k - 1, -1, -1):
            if m[i] == ")":
                depth += 1
            elif m[i] == "(":
                depth -= 1
                if depth == 0:
                    line_start = m.rfind("\n", 0, i) + 1
                    return re.fullmatch(r"[A-Z_][A-Z0-9_]*\s*", m[line_start:i]) is not None
        return False

    def _close(self, open_pos: int, opener: str, closer: str) -> int:
        depth = 0
        m = self.masked
        for k in range(open_pos, len(m)):
            if m[k] == opener:
                depth += 1
            elif m[k] == closer:
                depth -= 1
                if depth == 0:
                    return k
        return -1

    def _cut(self, name: str, kind: str, start: int, end: int, signature: str = "") -> Cut:
        line = self.line_of(start)
        return Cut(name, kind, self.path, line, self.text[start:end], signature)

    def _usable(self, start: int) -> bool:
        stack = self.stacks[self.line_of(start) - 1]
        return all(holds(c) for c in stack)

    def function(self, name: str) -> Cut | None:
        """The definition ``name(...) {...}`` at depth 0."""
        for m in re.finditer(r"\b%s\s*\(" % re.escape(name), self.masked):
            pos = m.start()
            if self._depth[pos] != 0:
                continue
            close = self._close(m.end() - 1, "(", ")")
            if close < 0:
                continue
            rest = self.masked[close + 1:]
            after = len(rest) - len(rest.lstrip())
            if not rest[after:after + 1] == "{":
                continue
            body_open = close + 1 + after
            body_close = self._close(body_open, "{", "}")
            start = self._item_start(pos)
            if body_close < 0 or not self._usable(start):
                continue
            sig = self.text[start:close + 1]
            return self._cut(name, "function", start, body_close + 1, sig)
        return None

    def functions(self) -> list[tuple[int, int, str]]:
        """(first line, last line, name) of every top-level function definition, in order."""
        m, found = self.masked, []
        for b in re.finditer(r"\)\s*\{", m):
            body_open = b.end() - 1
            if self._depth[body_open] != 0:
                continue
            depth, k = 0, b.start()
            while k >= 0:               # the ``(`` of the parameter list
                if m[k] == ")":
                    depth += 1
                elif m[k] == "(":
                    depth -= 1
                    if depth == 0:
                        break
                k -= 1
            name = re.search(r"(\w+)\s*$", m[max(0, k - 200):k]) if k > 0 else None
            body_close = self._close(body_open, "{", "}")
            if name is None or body_close < 0:
                continue
            start = self._item_start(k - len(name.group(0)))
            found.append((self.line_of(start), self.line_of(body_close), name.group(1)))
        return found

    def define(self, name: str) -> Cut | None:
        """``#define name ...`` (with its continuation lines) outside any function."""
        for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+%s\b" % re.escape(name), self.text,
                             re.M):
            if self._depth[m.start()] != 0 or not self._usable(m.start()):
                continue
            end = m.start()
            while True:
                nl = self.text.find("\n", end)
                if nl < 0:
                    end = len(self.text)
                    break
                end = nl
                if not self.text[:nl].endswith("\\"):
                    break
                end += 1
            return self._cut(name, "macro", m.start(), end)
        return None

    def definition(self, kind: str, name: str) -> Cut | None:
        """``struct name { ... };`` (or enum, union) at depth 0."""
        for m in re.finditer(r"\b%s\s+%s\s*\{" % (kind, re.escape(name)), self.masked):
            if self._depth[m.start()] != 0 or not self._usable(m.start()):
                continue
            close = self._close(m.end() - 1, "{", "}")
            semi = self.masked.find(";", close)
            return self._cut(name, kind, m.start(), semi + 1)
        return None

    def macro_call(self, macro: str, first_arg: str) -> Cut | None:
        """A top-level call such as ``INTERVAL_TREE_DEFINE(struct anon_vma_chain, ...)``."""
        for m in re.finditer(r"^%s\s*\(\s*%s\b" % (re.escape(macro), re.escape(first_arg)),
                             self.masked, re.M):
            if self._depth[m.start()] != 0 or not self._usable(m.start()):
                continue
            close = self._close(self.masked.index("(", m.start()), "(", ")")
            return self._cut(f"{macro}({first_arg})", "macro", m.start(), close + 1)
        return None

    def has_field(self, struct_cut: Cut, field: str) -> bool:
        return re.search(r"\b%s\s*;" % re.escape(field), mask(struct_cut.text)) is not None
