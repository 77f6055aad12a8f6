"""A kernel source tree, optionally patched: where the anon_vma code is read from.

A tree is written where a policy name goes (``-p``)::

    ~/src/linux                                  a directory holding a kernel Makefile and mm/
    linux-source-7.2.tar.xz                      a kernel source tarball (.tar.xz/.gz/.bz2/.tar)
    ~/src/linux+v3.mbox                          ... with a patch series applied on top
    linux-source-7.2.tar.xz+a.diff+b.mbox        ... several patch files, applied in order
    linux-source-7.2.tar.xz+<(git diff)          ... a patch from a pipe (or +/dev/stdin)

``~`` is expanded; if the whole argument exists as a path it is the tree (so a directory may
have ``+`` in its name). Patches are mbox files or unified diffs (:mod:`.patches`): any path
that is not a directory, read once (a pipe cannot be read twice), its content kept for the
process's life when it is not a regular file.

Only the files the anon_vma code can be cut from are made available (:data:`AVAILABLE`):
the Makefile (for the version), ``mm/``, ``include/linux/``, ``include/asm-generic/``, the
rbtree and interval-tree library code, ``kernel/fork.c`` and checkpatch with its data files.
A tarball's are taken once (:mod:`.tarread`: of a Debian tarball, only the xz blocks holding
them are decompressed) into ``$XDG_CACHE_HOME/anondiff/trees/<sha256>/`` (default
``~/.cache``): the files the cut reads (:func:`recipe.files`) as files, all of them in one pack
(:mod:`.pack`: creating 3,000 small files costs more than decompressing them). Its (path, size,
mtime) is remembered so that a later open does not hash it again. A directory is read in place.
Patched files go to a private directory ``trees/patched/<key>/`` holding only the files the
patches change (and the list of those they delete), read before the tree under it: the user's
tree is never written to.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from anondiff.errors import AnondiffError

if TYPE_CHECKING:
    from . import patches as _patches
    from . import tarread as _tarread

# tarfile, subprocess and the patch reader (email) are imported where they are needed: parsing
# a -p argument must stay cheap, it runs for every policy name.

TARBALL_SUFFIXES: tuple[str, ...] = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")

#: The files made available: exact paths, and (directory, suffix) pairs taken recursively.
AVAILABLE_FILES: frozenset[str] = frozenset({
    "Makefile", "lib/rbtree.c", "lib/interval_tree.c", "kernel/fork.c",
    "scripts/checkpatch.pl", "scripts/spelling.txt", "scripts/const_structs.checkpatch",
})
AVAILABLE_DIRS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mm/", (".c", ".h")),
    ("include/linux/", (".h",)),
    ("include/asm-generic/", (".h",)),
)


def available(relpath: str) -> bool:
    """Whether ``relpath`` (relative to the tree's top) is one of the files made available."""
    if relpath in AVAILABLE_FILES:
        return True
    if ".." in relpath.split("/"):
        return False
    return any(relpath.startswith(d) and relpath.endswith(sfx) for d, sfx in AVAILABLE_DIRS)


class TreeSpecError(AnondiffError):
    """A tree argument that cannot be used: missing part, not a kernel tree, patch that does
    not apply (one line, exit 2)."""


class TreeSpec(NamedTuple):
    tree: Path
    patches: tuple[Path, ...]


# ---------------------------------------------------------------------------------------------
# Parsing the argument (cheap: only stat calls)

def _is_tarball(path: Path) -> bool:
    return path.name.endswith(TARBALL_SUFFIXES)


def _is_tree(path: Path) -> bool:
    if path.is_dir():
        return (path / "Makefile").is_file() and (path / "mm").is_dir()
    return path.is_file() and _is_tarball(path)


def _looks_like_path(text: str) -> bool:
    """A path meant as a tree (a policy file, ``x.py``, is left to the policy registry)."""
    if text.endswith(".py"):
        return False
    return "/" in text or text.startswith(("~", ".")) or text.endswith(TARBALL_SUFFIXES)


def _expand(text: str, folder: str = "") -> Path:
    """``text`` with ``~`` expanded, relative to ``folder`` (the current directory: "")."""
    return Path(os.path.join(folder, os.path.expanduser(text)))


def tree_prefix(parts: list[str], folder: str = "") -> int:
    """How many of the '+'-separated ``parts`` make the tree: the longest prefix that is one
    (read from ``folder``), 0 when none is."""
    for i in range(len(parts) - 1, 0, -1):
        if _is_tree(_expand("+".join(parts[:i]), folder)):
            return i
    return 0


def group_patches(parts: list[str], folder: str = "") -> tuple[list[Path], list[str]]:
    """The '+'-separated ``parts`` after the tree grouped into existing paths that are not
    directories (a file name may itself contain '+'), and the parts left after the last."""
    out: list[Path] = []
    pending: list[str] = []
    for part in parts:
        pending.append(part)
        candidate = _expand("+".join(pending), folder)
        if candidate.exists() and not candidate.is_dir():
            out.append(candidate)
            pending = []
    return out, pending


def parse_spec(arg: str) -> TreeSpec | None:
    """The tree and patches ``arg`` names, or None when ``arg`` is not a tree (a policy name).

    Raises TreeSpecError when ``arg`` clearly means a tree (a path) that is not usable, or when
    a ``+`` part does not exist."""
    whole = _expand(arg)
    if whole.exists():
        if _is_tree(whole):
            return TreeSpec(whole, ())
        if whole.is_dir():
            raise TreeSpecError(f"{arg}: not a kernel source tree (expected a directory with a "
                                "Makefile and mm/, or a .tar.xz/.tar.gz/.tar.bz2/.tar tarball)")
        if _is_tarball(whole):
            raise TreeSpecError(f"{arg}: not a regular file")
        return None
    parts = arg.split("+")
    # The tree is the longest '+'-joined prefix that is one; the rest are patch files.
    i = tree_prefix(parts)
    if i:
        return TreeSpec(_expand("+".join(parts[:i])), _patch_paths(arg, parts[i:]))
    tree_part = parts[0]
    if _looks_like_path(tree_part):
        if not _expand(tree_part).exists():
            raise TreeSpecError(f"{tree_part}: no such kernel tree or tarball")
        raise TreeSpecError(f"{tree_part}: not a kernel source tree (expected a directory with "
                            "a Makefile and mm/, or a .tar.xz/.tar.gz/.tar.bz2/.tar tarball)")
    return None


def _patch_paths(arg: str, parts: list[str]) -> tuple[Path, ...]:
    """Group '+'-separated parts into existing paths that are not directories: regular files,
    pipes (``<(git diff)``: ``/dev/fd/63``), ``/dev/stdin`` (a file name may itself contain
    '+')."""
    out, pending = group_patches(parts)
    if pending:
        missing = "+".join(pending)
        what = "no such patch file" if pending != [""] else "empty patch name after '+'"
        raise TreeSpecError(f"{arg}: {missing!r}: {what}")
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Opening

DELETED = ".anondiff-deleted"


class Naming(NamedTuple):
    """The parts of a tree's name, for two trees of one command that have the same name but
    differ (:func:`anondiff.policies.distinct_names`)."""
    version: str        # 7.2.13 (the Makefile), v6.13-rc1-12-gabcdef123456 (git describe)
    tree: str           # the tree's path as given
    tree_key: str       # the key of the tree without its patches
    patches: str        # the patches' subjects or file names, "" for none
    patch_paths: str    # the patch files' paths as given, "" for none
    patches_key: str    # a hash of the patches' content, "" for none

    def name(self, show_tree: bool = False, show_paths: bool = False) -> str:
        """``7.2.13 + fix.diff``; with the tree's path ``6.1.0 (/src/a/linux) + fix.diff``;
        with the patches' paths ``7.2.13 + v1/fix.diff``."""
        out = f"{self.version} ({self.tree})" if show_tree else self.version
        if self.patches:
            out += " + " + (self.patch_paths if show_paths else self.patches)
        return out


class Tree:
    """The (patched) files of a kernel tree.

    ``name`` says what it is (``6.1.176``, ``v6.13-rc1-12-gabcdef123456``, ``7.2.13 + [PATCH v3
    1/2] mm/rmap: ...``); ``key`` is a sha256 over everything that went in (the tree's content
    identity and the patches' bytes), a cache key for what is built from it; ``root`` is the
    directory holding its files, to be read and never written: the user's tree, an extraction
    (some files, and a pack of all: ``packed``), or a patched tree's changed files, read before
    those of ``base``. ``naming`` holds the parts of the name, to tell it apart from another
    tree of the same name."""

    def __init__(self, name: str, key: str, root: Path, *, packed: bool = False,
                 base: Tree | None = None, naming: Naming | None = None):
        self.name = name
        self.naming = naming
        self.key = key
        self.root = root
        self.base = base
        self._index: dict[str, tuple[int, int]] | None = None if packed else {}
        self._deleted: frozenset[str] | None = None if base is not None else frozenset()

    def read(self, relpath: str) -> str | None:
        """The text of ``relpath`` after the patches, None when absent or not made available."""
        if not available(relpath):
            return None
        data = self._bytes(relpath)
        return None if data is None else data.decode("utf-8", errors="surrogateescape")

    def _bytes(self, relpath: str) -> bytes | None:
        try:
            return (self.root / relpath).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        if self._index is None:
            from . import pack
            self._index = pack.read_index(self.root) or {}
        where = self._index.get(relpath)
        if where is not None:
            from . import pack
            return pack.read(self.root, where)
        if self.base is None:
            return None
        if self._deleted is None:
            try:
                self._deleted = frozenset((self.root / DELETED).read_text(
                    encoding="utf-8", errors="surrogateescape").splitlines())
            except FileNotFoundError:
                self._deleted = frozenset()
        return None if relpath in self._deleted else self.base._bytes(relpath)

    def __repr__(self) -> str:
        return f"Tree({self.name!r}, key={self.key[:12]}, root={str(self.root)!r})"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/anondiff`` (default ``~/.cache/anondiff``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "anondiff"


def trees_dir() -> Path:
    return cache_dir() / "trees"


def open_tree(spec: TreeSpec) -> Tree:
    """Extract (once) and patch (once per set of patches) the tree ``spec`` names."""
    if spec.tree.is_dir():
        identity = "dir:" + _dir_identity(spec.tree)
        base_name = _git_describe(spec.tree) or _makefile_version(spec.tree, spec.tree)
        base_key = hashlib.sha256(identity.encode()).hexdigest()
        base = Tree(base_name, base_key, spec.tree,
                    naming=Naming(base_name, str(spec.tree), base_key, "", "", ""))
    else:
        digest = _tarball_sha256(spec.tree)
        root = _extracted(spec.tree, digest)
        identity = "tarball:" + digest
        base_name = _makefile_version(root, spec.tree)
        base_key = hashlib.sha256(identity.encode()).hexdigest()
        base = Tree(base_name, base_key, root, packed=True,
                    naming=Naming(base_name, str(spec.tree), base_key, "", "", ""))
    if not spec.patches:
        return base

    h = hashlib.sha256(identity.encode())
    only_patches = hashlib.sha256()
    from . import patches as _patches
    series: list[_patches.Patch] = []
    labels: list[str] = []
    for path in spec.patches:
        blob, regular = _patch_bytes(path)
        part = b"\0patch\0" + hashlib.sha256(blob).digest()
        h.update(part)
        only_patches.update(part)
        try:
            read = _patches.read_patch_file(path, blob)
        except _patches.PatchError as e:
            raise TreeSpecError(str(e)) from None
        series += read
        labels += [p.subject or (path.name if regular else _stream_label(path)) for p in read]
    key = h.hexdigest()
    naming = Naming(base_name, str(spec.tree), base.key, _series_name(labels),
                    ", ".join(str(path) for path in spec.patches), only_patches.hexdigest())
    root = trees_dir() / "patched" / key
    if not root.is_dir():
        _make_patched(root, base, series)
    return Tree(naming.name(), key, root, base=base, naming=naming)


#: The content of each patch that is not a regular file (a pipe, /dev/stdin), by the (device,
#: inode) of what its path leads to: it can be read only once, and one command may open its
#: tree more than once (search does, and ``-p T+/dev/stdin`` may be given twice).
_STREAMED: dict[tuple[int, int], bytes] = {}


def _patch_bytes(path: Path) -> tuple[bytes, bool]:
    """The content of a patch, read once, and whether it is a regular file."""
    import stat

    try:
        st = path.stat()
        regular = stat.S_ISREG(st.st_mode)
        if not regular and (st.st_dev, st.st_ino) in _STREAMED:
            return _STREAMED[st.st_dev, st.st_ino], False
        data = path.read_bytes()
    except OSError as e:
        raise TreeSpecError(f"{path}: cannot read patch: {e.strerror}") from None
    if not regular:
        _STREAMED[st.st_dev, st.st_ino] = data
    return data, regular


def _stream_label(path: Path) -> str:
    """What a plain diff read from a pipe or device is called: ``stdin`` for standard input,
    else the path as given (``/dev/fd/63``: its last component alone says nothing)."""
    if str(path) in ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"):
        return "stdin"
    return str(path)


def _series_name(labels: list[str]) -> str:
    if len(labels) > 3:
        return f"{labels[0]}, ... {labels[-1]} ({len(labels)} patches)"
    return ", ".join(labels)


def _make_patched(root: Path, base: Tree, series: list[_patches.Patch]) -> None:
    """``root``: the files the patches change, and the list of those they delete."""
    from . import patches as _patches

    try:
        changed = _patches.apply(series, base.read, available)
    except _patches.PatchError as e:
        raise TreeSpecError(str(e)) from None
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name[:16]}."))
    try:
        for rel, text in sorted(changed.items()):
            if text is not None:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(text.encode("utf-8", errors="surrogateescape"))
        deleted = [rel + "\n" for rel, text in sorted(changed.items()) if text is None]
        (tmp / DELETED).write_text("".join(deleted), encoding="utf-8", errors="surrogateescape")
        _publish(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, final: Path) -> None:
    """Rename a finished directory into place; a concurrent run that got there first wins."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise


def _scan(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of the made-available files under ``root``, sorted: one
    scandir pass, since a directory tree is scanned on every open (3,200 files: about 30 ms)."""
    found: list[tuple[str, int, int]] = []

    def walk(directory: str, rel: str, suffixes: tuple[str, ...]) -> None:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.is_dir():
                walk(entry.path, f"{rel}{entry.name}/", suffixes)
            elif entry.name.endswith(suffixes) and entry.is_file():
                st = entry.stat()
                found.append((rel + entry.name, st.st_size, st.st_mtime_ns))

    for rel in AVAILABLE_FILES:
        try:
            st = (root / rel).stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        found.append((rel, st.st_size, st.st_mtime_ns))
    for top, suffixes in AVAILABLE_DIRS:
        walk(str(root / top), top, suffixes)
    found.sort()
    return found


def _available_files(root: Path) -> list[str]:
    """The made-available files present under ``root``, sorted, as relative paths."""
    return [rel for rel, _, _ in _scan(root)]


def _dir_identity(root: Path) -> str:
    """A digest of a directory tree's made-available files by (path, size, mtime): a user's
    edit to mm/rmap.c gives a new key, and only stat calls are needed."""
    h = hashlib.sha256(str(root.resolve()).encode())
    for rel, size, mtime in _scan(root):
        h.update(f"\0{rel}\0{size}\0{mtime}".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Naming

_MAKEVAR = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)[ \t]*=[ \t]*(.*?)[ \t]*$",
                      re.MULTILINE)


def kernel_version(makefile_text: str) -> str | None:
    """``KERNELVERSION`` as the top Makefile computes it, ``$(VERSION)$(if $(PATCHLEVEL),
    .$(PATCHLEVEL)$(if $(SUBLEVEL),.$(SUBLEVEL)))$(EXTRAVERSION)``: 6.1.176, 6.13.0-rc2."""
    head = makefile_text[:4096]
    found: dict[str, str] = {}
    for m in _MAKEVAR.finditer(head):
        found.setdefault(m.group(1), m.group(2))
    version = found.get("VERSION")
    if not version:
        return None
    out = version
    if found.get("PATCHLEVEL"):
        out += "." + found["PATCHLEVEL"]
        if found.get("SUBLEVEL"):
            out += "." + found["SUBLEVEL"]
    return out + found.get("EXTRAVERSION", "")


def _makefile_version(root: Path, shown: Path) -> str:
    try:
        text = (root / "Makefile").read_text(errors="replace")
    except FileNotFoundError:
        raise TreeSpecError(f"{shown}: not a kernel source tree (no top-level Makefile)") \
            from None
    version = kernel_version(text)
    if version is None:
        raise TreeSpecError(f"{shown}: Makefile: no 'VERSION = N' line: not a kernel Makefile")
    return version


def _git_describe(root: Path) -> str | None:
    """``git describe --tags --always`` of a git checkout, ``-dirty`` when files that are made
    available differ from HEAD; None when ``root`` is not the top of a git checkout."""
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    import subprocess
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    described = subprocess.run(["git", "-C", str(root), "describe", "--tags", "--always"],
                               capture_output=True, text=True, env=env)
    if described.returncode != 0 or not described.stdout.strip():
        return None
    paths = sorted(AVAILABLE_FILES) + [d for d, _ in AVAILABLE_DIRS]
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                             "--untracked-files=no", "--", *paths],
                            capture_output=True, text=True, env=env)
    dirty = "-dirty" if status.returncode == 0 and status.stdout.strip() else ""
    return described.stdout.strip() + dirty


# ---------------------------------------------------------------------------------------------
# Tarballs

def _tarball_sha256(path: Path) -> str:
    """The sha256 of a tarball, remembered by (resolved path, size, mtime)."""
    st = path.stat()
    real = str(path.resolve())
    memo = trees_dir() / "by-stat" / hashlib.sha256(real.encode()).hexdigest()
    stamp = f"{st.st_size} {st.st_mtime_ns}"
    try:
        size_mtime, digest = memo.read_text().rsplit(" ", 1)
        if size_mtime == stamp and len(digest) == 64:
            return digest
    except (FileNotFoundError, ValueError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = h.hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(memo.name + f".{os.getpid()}")
    tmp.write_text(f"{stamp} {digest}")
    os.replace(tmp, memo)
    return digest


def _extracted(tarball: Path, digest: str) -> Path:
    """The made-available files of ``tarball``, taken once into trees/<sha256>/: a pack of all
    of them, and those the cut reads as files."""
    final = trees_dir() / digest
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{digest[:16]}."))
    try:
        prefix = _tar_prefix(tarball)
        found = _read_members(tarball, prefix)
        if "Makefile" not in found.files or not any(r.startswith("mm/") for r in found.files):
            raise TreeSpecError(f"{tarball}: not a kernel source tarball (no Makefile and mm/ "
                                f"under {prefix or 'its top'})")
        _write_extraction(tmp, found)
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _read_members(tarball: Path, prefix: str) -> _tarread.Found:
    from . import tarread
    try:
        if tarball.name.endswith(".tar.xz"):
            found = tarread.extract_xz(tarball, prefix, AVAILABLE_FILES,
                                       [d for d, _ in AVAILABLE_DIRS], available)
            if found is not None:
                return found
        return _extract_stream(tarball, prefix)
    except tarread.TarReadError as e:
        raise TreeSpecError(f"{tarball}: cannot extract: {e}") from None
    except OSError as e:
        raise TreeSpecError(f"{tarball}: cannot extract: {e.strerror or e}") from None


#: Decompressors run as a second process (the tar is read on one core, decompressed on another).
_DECOMPRESSORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (".tar.xz", ("xz", "-dc")), (".tar.gz", ("gzip", "-dc")), (".tgz", ("gzip", "-dc")),
    (".tar.bz2", ("bzip2", "-dc")))


def _extract_stream(tarball: Path, prefix: str) -> _tarread.Found:
    """The whole tar in one pass: from a decompressor process, or Python's own modules."""
    import subprocess

    from . import tarread
    command = next((cmd for sfx, cmd in _DECOMPRESSORS if tarball.name.endswith(sfx)), None)
    if command is not None and shutil.which(command[0]) is not None:
        proc = subprocess.Popen([*command, str(tarball)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            found = tarread.extract_stream(proc.stdout, prefix, available)
            while proc.stdout.read(1 << 16):  # the rest (padding): the check comes last
                pass
            why = proc.stderr.read().decode(errors="replace").strip()
            if proc.wait() != 0:
                raise tarread.TarReadError(f"{command[0]}: {why.splitlines()[-1] if why else ''}"
                                           f" (exit status {proc.returncode})")
            return found
        finally:
            proc.stdout.close()
            proc.stderr.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    import bz2
    import gzip
    import lzma
    opener = {".xz": lzma.open, ".gz": gzip.open, ".tgz": gzip.open, ".bz2": bz2.open}.get(
        tarball.suffix, open)
    try:
        with opener(tarball, "rb") as f:  # type: ignore[operator]
            found = tarread.extract_stream(f, prefix, available)
            while f.read(1 << 16):
                pass
            return found
    except (lzma.LZMAError, EOFError, gzip.BadGzipFile, OSError) as e:
        raise tarread.TarReadError(str(e)) from None


def _write_extraction(into: Path, found: _tarread.Found) -> None:
    from . import pack, recipe
    writer = pack.PackWriter(into)
    try:
        for rel in sorted(found.files):
            writer.add(rel, found.files[rel])
        for rel, target in found.symlinks.items():
            writer.symlink(rel, target)
        for rel, target in found.hardlinks.items():
            writer.hardlink(rel, target)
    finally:
        entries = writer.close()
    for rel in recipe.files():
        where = entries.get(rel)
        if where is not None:
            (into / rel).parent.mkdir(parents=True, exist_ok=True)
            (into / rel).write_bytes(pack.read(into, where))


def _tar_prefix(tarball: Path) -> str:
    """The directory every member is under (``linux-source-7.2/``), read from the first member."""
    import tarfile
    try:
        with tarfile.open(tarball, "r|*") as tf:
            first = tf.next()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise TreeSpecError(f"{tarball}: cannot read tarball: {e}") from None
    if first is None:
        raise TreeSpecError(f"{tarball}: empty tarball")
    lead = "./" if first.name.startswith("./") else ""
    name = first.name[len(lead):]
    top = name.split("/", 1)[0]
    if top in ("Makefile", "mm", "include", "") or (not first.isdir() and "/" not in name):
        return lead
    return f"{lead}{top}/"
