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
UNIT_FORMAT = "4"
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
    lib, feat_file = out / "ktree.so", out / "features"
    if lib.is_file() and feat_file.is_file():
        values = feat_file.read_text().split()
        return Built(lib, recipe.Features(*(v == "1" for v in values)))
    cuts = cut(tree)
    feats = _features(tree, cuts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
    try:
        unit, spans = generate(cuts)
        (tmp / "unit.c").write_text(unit)
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
        returncode, stderr = _gcc(cmd, tmp)
        if returncode != 0:
            raise _gcc_error(stderr.replace(f"{tmp}/include/", "include/")
                             .replace(f"{tmp}/", ""), spans, tree)
        (tmp / "features").write_text(" ".join("1" if v else "0" for v in feats) + "\n")
        try:
            tmp.rename(out)
        except OSError:             # another process built it meanwhile
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Built(lib, feats)


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


def cut(tree: TreeLike) -> dict[str, Cut]:
    sources: dict[str, Source | None] = {}

    def source(rel: str) -> Source | None:
        if rel not in sources:
            text = tree.read(rel)
            sources[rel] = None if text is None else Source(rel, text)
        return sources[rel]

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


def generate(cuts: dict[str, Cut]) -> tuple[str, list[Span]]:
    """The unit's text, and which tree lines each cut covers (to name gcc's errors)."""
    parts = ['#include "ktshim.h"\n']
    spans: list[Span] = []

    def emit(c: Cut) -> None:
        parts.append(f'#line {c.line} "{c.path}"\n{c.text}\n')
        spans.append(Span(c.path, c.line, c.line + c.text.count("\n"), c.name))

    types, inlines, interval, rmap, merge = recipe.SECTIONS
    for item in types:
        if item.name in cuts:
            emit(cuts[item.name])
    parts.append('#line 1 "<anondiff unit>"\n' + "\n".join(recipe.VARIABLES) + "\n")
    for section in (inlines, interval, rmap, merge):
        for item in section:
            c = cuts.get(item.name)
            if c is not None and c.kind == "function":
                parts.append(_prototype(c))
    for item in inlines:
        if item.name in cuts:
            emit(cuts[item.name])
    parts.append("".join(f"#define {n} kt_cut_{n}\n" for n in recipe.WRAPPED))
    for item in interval:
        emit(cuts[item.name])
    parts.append("".join(f"#undef {n}\n" for n in recipe.WRAPPED))
    for section in (rmap, merge):
        for item in section:
            if item.name in cuts:
                emit(cuts[item.name])
    parts.append('#include "glue.c"\n')
    return "".join(parts), spans


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
