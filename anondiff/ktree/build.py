"""Cut a tree's anon_vma code into one C unit, compile it with the shim, cache the library.

The unit holds, in order: ``#include "ktshim.h"``, the cut types, the slab cache pointers, a
prototype for every cut function, the header inline functions, the interval-tree cut, the
rmap cut, the merge cut, then the glue (shim/glue.c).  One unit, so the glue's entry point can
call the tree's static functions unchanged.  ``#line`` before each cut makes gcc's messages and
the WARN/BUG events name the tree's file and line.

The shared library is cached in ``$XDG_CACHE_HOME/anondiff/build/`` under the hash of the tree
(:attr:`Tree.key`: the tarball or files and every patch), the shim and the compiler, so only the
first run of a tree pays for cutting and gcc.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple, Protocol

from ..errors import AnondiffError
from . import recipe
from .cutter import Cut, Source

SHIM_DIR = Path(__file__).resolve().parent / "shim"
#: Bump when the unit's layout changes in a way the shim's text does not show.
UNIT_FORMAT = "5"
#: -O2 with the kernel's own -fno-strict-aliasing and -fno-delete-null-pointer-checks (its
#: Makefile's: the tree's code is written for them; a NULL dereference must stay one)
GCC_FLAGS = ("-O2", "-fno-strict-aliasing", "-fno-delete-null-pointer-checks", "-g", "-fPIC",
             "-shared", "-std=gnu11", "-Wall", "-Wno-unused-function", "-Wno-unused-variable",
             "-Werror=implicit-function-declaration", "-Werror=implicit-int")


class TreeLike(Protocol):
    name: str
    key: str
    root: Path

    def read(self, relpath: str) -> str | None: ...


class KtreeError(AnondiffError):
    """A tree that cannot be turned into a policy (one line, exit 2)."""


class NotFoundError(KtreeError):
    pass


class CompileError(KtreeError):
    pass


class ShimMissingError(KtreeError):
    pass


class UnsupportedTreeError(KtreeError):
    pass


class Built(NamedTuple):
    library: Path
    features: recipe.Features
    #: where the patches change code that is not compiled (:func:`uncompiled_changes`)
    uncompiled: tuple[str, ...] = ()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "anondiff" / "build"


def _compiler() -> tuple[str, str]:
    gcc = shutil.which(os.environ.get("CC", "gcc"))
    if gcc is None:
        raise KtreeError("gcc: not found; a kernel tree as a policy needs a C compiler "
                         "(Debian package gcc)")
    real = os.path.realpath(gcc)
    st = os.stat(real)
    return gcc, f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _shim_digest() -> str:
    h = hashlib.sha256(UNIT_FORMAT.encode())
    for p in sorted(SHIM_DIR.rglob("*.[ch]")):
        h.update(str(p.relative_to(SHIM_DIR)).encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(repr((recipe.SECTIONS, recipe.VARIABLES, GCC_FLAGS)).encode())
    return h.hexdigest()


def build(tree: TreeLike) -> Built:
    """The compiled library of ``tree`` (from the cache when it is there)."""
    gcc, gcc_id = _compiler()
    key = hashlib.sha256(f"{tree.key}\0{_shim_digest()}\0{gcc_id}".encode()).hexdigest()
    out = cache_root() / key[:32]
    lib, feat_file, unc_file = out / "ktree.so", out / "features", out / "uncompiled"
    if lib.is_file() and feat_file.is_file() and unc_file.is_file():
        values = feat_file.read_text().split()
        return Built(lib, recipe.Features(*(v == "1" for v in values)),
                     tuple(unc_file.read_text(encoding="utf-8",
                                              errors="surrogateescape").splitlines()))
    sources = Sources(tree)
    cuts = cut(tree, sources)
    feats = _features(tree, cuts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
    try:
        inc = tmp / "include" / "linux"
        inc.mkdir(parents=True)
        for rel in recipe.HEADER_COPIES + recipe.EXTRA_UNITS:
            text = tree.read(rel)
            if text is None and rel in recipe.OPTIONAL_HEADERS:
                continue
            if text is None:
                raise NotFoundError(f"{rel}: not found in tree {tree.name}")
            dest = inc / Path(rel).name if rel.startswith("include/") else tmp / Path(rel).name
            dest.write_text(text)
        cmd = [gcc, *GCC_FLAGS, *feats.defines(), "-I", str(tmp / "include"), "-I",
               str(SHIM_DIR), "-o", str(tmp / "ktree.so"), str(tmp / "unit.c"),
               *(str(tmp / Path(rel).name) for rel in recipe.EXTRA_UNITS)]
        helpers: dict[str, Cut] = {}
        while True:
            unit, spans = generate(cuts, tuple(helpers.values()))
            (tmp / "unit.c").write_text(unit)
            returncode, stderr = _gcc(cmd, tmp)
            if returncode == 0:
                break
            stderr = stderr.replace(f"{tmp}/include/", "include/").replace(f"{tmp}/", "")
            found = _helpers(sources, stderr, spans, cuts, helpers)
            if not found:
                raise _gcc_error(stderr, spans, tree)
            helpers.update(found)
        uncompiled = uncompiled_changes(tree, {**cuts, **helpers}, feats.maple, sources)
        (tmp / "features").write_text(" ".join("1" if v else "0" for v in feats) + "\n")
        (tmp / "uncompiled").write_text("".join(u + "\n" for u in uncompiled),
                                        encoding="utf-8", errors="surrogateescape")
        try:
            tmp.rename(out)
        except OSError:             # another process built it meanwhile
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Built(lib, feats, uncompiled)


def _gcc(cmd: list[str], tmp: Path) -> tuple[int, str]:
    """Run gcc in ``tmp``: its exit status and messages.  Its own temporary files (cc1's
    assembler, as's object) go to ``tmp`` too (TMPDIR), and gcc runs in a process group of its
    own that an interrupt kills whole: a Ctrl-C or a kill of anondiff in the middle of a build
    leaves nothing behind, where killing the gcc driver alone left cc1 writing a /tmp/cc*.s."""
    env = {**os.environ, "LC_ALL": "C", "TMPDIR": str(tmp)}
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          cwd=tmp, env=env, start_new_session=True) as proc:
        try:
            _, stderr = proc.communicate()
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            raise
    return proc.returncode, stderr


class Sources:
    """A tree's files as :class:`Source`, each read and masked once for one build (the cut,
    the patch's helpers, the changes not compiled)."""

    def __init__(self, tree: TreeLike) -> None:
        self.tree = tree
        self.read: dict[str, Source | None] = {}

    def __call__(self, rel: str) -> Source | None:
        if rel not in self.read:
            text = self.tree.read(rel)
            self.read[rel] = None if text is None else Source(rel, text)
        return self.read[rel]


def cut(tree: TreeLike, source: Sources | None = None) -> dict[str, Cut]:
    if source is None:
        source = Sources(tree)
    cuts: dict[str, Cut] = {}
    for section in recipe.SECTIONS + (recipe.PROBES,):
        for item in section:
            found = None
            for rel in item.files:
                src = source(rel)
                if src is None:
                    continue
                if item.kind == "function":
                    found = src.function(item.name)
                elif item.kind == "macro":
                    found = src.macro_call(item.name, item.arg)
                else:
                    found = src.definition(item.kind, item.name)
                if found is not None:
                    break
            if found is not None:
                cuts[item.name] = found
            elif item.required:
                what = f"{item.kind} {item.name}" if item.kind in ("struct", "enum") else item.name
                if all(source(rel) is None for rel in item.files):
                    raise NotFoundError(f"{what}: tree {tree.name} has no "
                                        f"{' or '.join(item.files)}: not a whole kernel "
                                        f"source tree?")
                raise NotFoundError(f"{what}: not found in {', '.join(item.files)} of tree "
                                    f"{tree.name}")
    return cuts


def _features(tree: TreeLike, cuts: dict[str, Cut]) -> recipe.Features:
    try:
        return recipe.features(cuts)
    except recipe.TreeUnsupported as e:
        raise UnsupportedTreeError(f"tree {tree.name}: {e}") from None


class Span(NamedTuple):
    path: str
    first: int
    last: int
    name: str


def generate(cuts: dict[str, Cut], helpers: tuple[Cut, ...] = ()) -> tuple[str, list[Span]]:
    """The unit's text, and which tree lines each cut covers (to name gcc's errors).
    ``helpers``: macros and functions the cut code calls that are not in the recipe (a patch's
    new helper: :func:`_helpers`); the macros go after the types, the functions before the
    rmap cut, each with a prototype beside the others."""
    parts = ['#include "ktshim.h"\n']
    spans: list[Span] = []

    def emit(c: Cut) -> None:
        parts.append(f'#line {c.line} "{c.path}"\n{c.text}\n')
        spans.append(Span(c.path, c.line, c.line + c.text.count("\n"), c.name))

    types, inlines, interval, rmap, merge = recipe.SECTIONS
    for item in types:
        if item.name in cuts:
            emit(cuts[item.name])
    for h in helpers:
        if h.kind == "macro":
            emit(h)
    parts.append('#line 1 "<anondiff unit>"\n' + "\n".join(recipe.VARIABLES) + "\n")
    for section in (inlines, interval, rmap, merge):
        for item in section:
            c = cuts.get(item.name)
            if c is not None and c.kind == "function":
                parts.append(_prototype(c))
    for h in helpers:
        if h.kind == "function":
            parts.append(_prototype(h))
    for item in inlines:
        if item.name in cuts:
            emit(cuts[item.name])
    parts.append("".join(f"#define {n} kt_cut_{n}\n" for n in recipe.WRAPPED))
    for item in interval:
        emit(cuts[item.name])
    parts.append("".join(f"#undef {n}\n" for n in recipe.WRAPPED))
    for h in helpers:
        if h.kind == "function":
            emit(h)
    for section in (rmap, merge):
        for item in section:
            if item.name in cuts:
                emit(cuts[item.name])
    parts.append('#include "glue.c"\n')
    return "".join(parts), spans


#: :func:`uncompiled_changes`' answer when the patches change no file the cut reads
UNCHANGED = "-"
#: gcc's words for a name the unit uses and nobody defined
_UNDEFINED = re.compile(r"implicit declaration of function '(\w+)'|'(\w+)' undeclared")
#: the most helpers a tree may need (each costs a gcc run)
MAX_HELPERS = 32


def _helpers(source: Sources, stderr: str, spans: list[Span], cuts: dict[str, Cut],
             have: dict[str, Cut]) -> dict[str, Cut]:
    """The definitions of the names gcc found undefined in the cut code, where the tree has
    one: a function or a ``#define`` of the file that uses the name (a patch's new helper
    beside the function it changes), else of another file the cut reads.  Empty when none of
    the names has one, or too many were taken already: the error is then gcc's."""
    found: dict[str, Cut] = {}
    files = sorted({f for section in recipe.SECTIONS for item in section for f in item.files})
    for m in _DIAG.finditer(stderr):
        u = _UNDEFINED.search(m.group("msg"))
        if u is None:
            continue
        name = u.group(1) or u.group(2)
        path, line = m.group("file"), int(m.group("line"))
        user = next((s for s in spans if s.path == path and s.first <= line <= s.last), None)
        if user is None or name in found or name in have or name in cuts:
            continue
        if len(have) + len(found) >= MAX_HELPERS:
            return {}
        for rel in [user.path] + [f for f in files if f != user.path]:
            src = source(rel)
            c = src and (src.function(name) or src.define(name))
            if c:
                found[name] = c
                break
    return found


def uncompiled_changes(tree: TreeLike, cuts: dict[str, Cut], maple: bool,
                       source: Sources | None = None) -> tuple[str, ...]:
    """Where a patched tree differs from its base outside the code that is compiled: a line
    each, ``mm/mmap.c:1768 (in dup_mmap)``, once per function.  anondiff runs its own model of
    the rest of mm (dup_mmap()'s loop, the VMA splits and merges, the page tables), so a
    change there has no effect on the policy, and a reviewer must be told.  Comment-only and
    blank lines are not changes; nor is a file the cut does not read (it is not patched); nor
    is dup_mmap() or vm_area_dup() when the change alters what :func:`recipe.fork_rules`
    reads from them.  (:data:`UNCHANGED` alone: the patches change no file the cut reads.)"""
    import difflib
    base = getattr(tree, "base", None)
    if base is None:
        return ()
    if source is None:
        source = Sources(tree)
    try:
        rules = recipe.fork_rules(tree.read, maple) != recipe.fork_rules(base.read, maple)
    except recipe.TreeUnsupported:
        rules = True
    whole = set(recipe.HEADER_COPIES) | set(recipe.EXTRA_UNITS)
    out: list[str] = []
    changed = False
    for rel in sorted(set(recipe.files()) | set(recipe.FORK_FILES)):
        new, old = tree.read(rel), base.read(rel)
        if new == old:
            continue
        changed = True
        if rel in whole or rel == "Makefile" or new is None or old is None:
            continue
        new_lines = new.splitlines()
        cut_lines = [(c.line, c.line + c.text.count("\n")) for c in cuts.values()
                     if c.path == rel]
        src = source(rel)
        assert src is not None
        masked = src.masked.splitlines()
        functions = src.functions()
        seen: set[str] = set()
        ops = difflib.SequenceMatcher(None, old.splitlines(), new_lines,
                                      autojunk=False).get_opcodes()
        for tag, _, _, j1, j2 in ops:
            if tag == "equal":
                continue
            for ln in range(j1 + 1, j2 + 1) if j2 > j1 else [min(j1 + 1, len(new_lines))]:
                code = ln <= len(masked) and (masked[ln - 1].strip()
                                              or new_lines[ln - 1].lstrip().startswith("#"))
                if not code or any(a <= ln <= b for a, b in cut_lines):
                    continue
                inside = next((f[2] for f in functions if f[0] <= ln <= f[1]), None)
                if rules and inside in ("dup_mmap", "vm_area_dup"):
                    continue
                what = inside or f"line {ln}"
                if what not in seen:
                    seen.add(what)
                    out.append(f"{rel}:{ln}" + (f" (in {inside})" if inside else ""))
    return tuple(out) if changed else (UNCHANGED,)


def _prototype(c: Cut) -> str:
    sig = re.sub(r"\s+", " ", c.signature).strip()
    return f'#line {c.line} "{c.path}"\n{sig};\n'


_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*)$", re.M)
_MISSING = re.compile(r"implicit declaration of function '(\w+)'|'(\w+)' undeclared|"
                      r"unknown type name '(\w+)'|storage size of '\w+' isn't known|"
                      r"has no member named '(\w+)'")


def _gcc_error(stderr: str, spans: list[Span], tree: TreeLike) -> KtreeError:
    m = _DIAG.search(stderr)
    if m is None:
        first = next((ln for ln in stderr.splitlines() if ln.strip()), "gcc failed")
        return CompileError(f"tree {tree.name}: gcc: {first}")
    path, line, msg = m.group("file"), int(m.group("line")), m.group("msg")
    where = f"{path}:{line}"
    inside = next((s.name for s in spans if s.path == path and s.first <= line <= s.last), None)
    if inside:
        where += f" (in {inside})"
    miss = _MISSING.search(msg)
    if miss and inside:
        symbol = next(g for g in miss.groups() if g) if any(miss.groups()) else msg
        return ShimMissingError(
            f"tree {tree.name}: {symbol}: used by {where} but not supplied by the shim; "
            f"define it in {SHIM_DIR / 'ktshim.h'} (or cut it from the tree in "
            f"anondiff/ktree/recipe.py)")
    return CompileError(f"tree {tree.name}: gcc: {where}: error: {msg}")
