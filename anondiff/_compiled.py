"""Picks the mypyc-compiled kernel model when one was built from exactly these sources.

``make .venv/.installed`` runs ``python -m anondiff._build``, which compiles MODULES with mypyc
into ``$XDG_CACHE_HOME/anondiff/mypyc/<key>/`` (default ``~/.cache/anondiff/mypyc/``). The key
is a hash of the Python version and the bytes of every file in HASHED as they are now, so a
build is used only by sources identical to the ones it was compiled from: an edited file, a
mutation tool's mutant copy (make mutation) or another interpreter finds no directory under its
key and imports the pure-Python modules, which stay the reference. ``ANONDIFF_PURE=1`` forces
the pure-Python path. Costs a few milliseconds at import (reading and hashing about 200 KB:
4 ms at a load average of 8).
"""
from __future__ import annotations

import os
import sys

#: compiled by mypyc (the rest of the package, and these under ANONDIFF_PURE=1, stay Python);
#: the search's scenario generator with the model: a search draws a scenario per replay pair
MODULES = (
    "anondiff.engine",
    "anondiff.kernel.checks",
    "anondiff.kernel.counters",
    "anondiff.kernel.expand",
    "anondiff.kernel.fork",
    "anondiff.kernel.merge",
    "anondiff.kernel.mm",
    "anondiff.kernel.mremap",
    "anondiff.kernel.objects",
    "anondiff.kernel.rmap",
    "anondiff.kernel.snapshot",
    "anondiff.kernel.state",
    "anondiff.ktree.readback",
    "anondiff.policies.always_new",
    "anondiff.policies.base",
    "anondiff.policies.clone_rework_2026",
    "anondiff.policies.degree",
    "anondiff.policies.eras",
    "anondiff.policies.kk_v1",
    "anondiff.policies.kk_v2",
    "anondiff.policies.mirror_parent",
    "anondiff.policies.split_counters",
    "anondiff.policies.wei_4e4a9eb92133",
    "anondiff.policies.wei_intended",
    "anondiff.search.generate",
)

#: what the compiled code was built from: MODULES and the modules whose types they use (mypyc
#: bakes in class layouts and constants of what it compiles; these others it reads as Python
#: objects, but a changed signature there must not meet a stale build either)
HASHED = tuple(m.replace(".", "/") + ".py" for m in MODULES) + (
    "anondiff/__init__.py",
    "anondiff/_compiled.py",
    "anondiff/errors.py",
    "anondiff/kernel/__init__.py",
    "anondiff/kernel/ops.py",
    "anondiff/ktree/__init__.py",
    "anondiff/progress.py",
    "anondiff/search/__init__.py",
    "anondiff/search/budget.py",
    "anondiff/scenario.py",
    "anondiff/topology.py",
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = "modules.txt"


def cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "anondiff", "mypyc")


def key(root: str = ROOT) -> str:
    """Hash of the Python build and of HASHED's bytes under ``root``."""
    try:
        from _blake2 import blake2b          # built in: no OpenSSL load at start-up
    except ImportError:                      # pragma: no cover
        from hashlib import blake2b
    h = blake2b(digest_size=16)
    h.update(f"{sys.implementation.cache_tag} {sys.version} {sys.platform}\n".encode())
    for rel in HASHED:
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
        h.update(f"{rel} {len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()


class _Finder:
    """A meta path finder for the compiled modules (and mypyc's shared library) of one build."""

    def __init__(self, where: str, paths: dict[str, str]) -> None:
        self.where = where
        self.paths = paths

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        rel = self.paths.get(fullname)
        if rel is None:
            return None
        from importlib.machinery import ExtensionFileLoader
        from importlib.util import spec_from_file_location
        file = os.path.join(self.where, rel)
        return spec_from_file_location(fullname, file, loader=ExtensionFileLoader(fullname, file))


#: the build in use, if any (its directory); None = pure Python
active: str | None = None


def install() -> None:
    """Put the matching build, if there is one, in front of the package's Python modules."""
    global active
    if os.environ.get("ANONDIFF_PURE", "") not in ("", "0"):
        return
    try:
        where = os.path.join(cache_root(), key())
        with open(os.path.join(where, MANIFEST)) as f:
            paths = dict(line.split(None, 1) for line in f.read().splitlines() if line)
    except OSError:
        return                               # no build for these sources: pure Python
    if not set(MODULES) <= paths.keys():
        return
    paths = {name: rel.strip() for name, rel in paths.items()}
    sys.meta_path.insert(0, _Finder(where, paths))
    active = where


def mypyc_attr(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    """mypy_extensions.mypyc_attr for the pure-Python path (mypyc reads the real one)."""
    return lambda cls: cls


def compiled(module: object) -> bool:
    """Is this module mypyc's extension (not the Python source)?"""
    return not str(getattr(module, "__file__", "")).endswith(".py")
