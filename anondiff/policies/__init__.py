"""The registry of policies: one module per kernel or patch version.

A user's own policy is a Python file defining a subclass of :class:`~.base.Policy` (usually of
one of the classes here); pass its path where a policy name is expected.
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import re
import traceback
from collections.abc import Sequence
from pathlib import Path

from ..errors import UnknownPolicyError
from ..kernel.fork import ABSENT
from .always_new import AlwaysNew
from .base import Policy
from .clone_rework_2026 import CloneRework2026
from .degree import Degree
from .eras import ERA_VARIANTS
from .kk_v1 import KkV1
from .kk_v2 import KkV2
from .mirror_parent import MirrorParent
from .split_counters import SplitCountersPolicy
from .wei_4e4a9eb92133 import Wei4e4a9eb92133
from .wei_intended import WeiIntended

#: in history order; `anondiff run` without --policy runs them all in this order
POLICIES: tuple[type[Policy], ...] = (
    AlwaysNew, Degree, Wei4e4a9eb92133, WeiIntended, KkV1, KkV2, SplitCountersPolicy,
    CloneRework2026, MirrorParent,
)

_BY_NAME: dict[str, type[Policy]] = {}
for _cls in POLICIES + ERA_VARIANTS:
    _BY_NAME[_cls.name] = _cls
    for _alias in _cls.aliases:
        _BY_NAME[_alias] = _cls


#: what a kernel tree as a policy looks like (anondiff.ktree.source.parse_spec), in the help of
#: every command taking -p and in the error for a policy that is none of them
TREE_FORM = ("a kernel source tree (a directory with a Makefile and mm/, or a "
             ".tar.xz/.tar.gz/.tar.bz2/.tar tarball) followed by +PATCH for each patch to "
             "apply, an mbox or a unified diff (~/linux+v3.mbox)")


def names() -> list[str]:
    """The main policies, in history order (era variants are selected by version)."""
    return [cls.name for cls in POLICIES]


def get(name: str) -> Policy:
    """A policy by name, version alias, kernel version inside a documented range (``v6.12``,
    ``v5.15.100``: see :func:`resolve_version`), or path to a ``.py`` file defining one."""
    cls = _BY_NAME.get(name)
    if cls is not None:
        return cls()
    if name.endswith(".py"):
        return _load_file(name)
    from ..ktree.source import parse_spec      # a kernel tree: anondiff.ktree (lazily)
    if (spec := parse_spec(name)) is not None:
        from ..ktree.policy import tree_policy
        return tree_policy(spec)
    resolved = resolve_version(name)
    if resolved is not None:
        return resolved[0]()
    raise UnknownPolicyError(
        f"unknown policy: {name!r} (must be one of {names()}, a kernel version from "
        f"v2.6.34 to v{_NEWEST[0]}.{_NEWEST[1]} such as v4.19 or v6.12 (see 'anondiff "
        f"policies'), a .py file, or {TREE_FORM})")


def in_folder(name: str, folder: str) -> str:
    """*name* as written in a file in *folder* (a scenario's ``policies:``), for :func:`get`:
    a relative .py file, kernel tree or patch is read from *folder*, like an #include; policy
    names, versions, absolute paths and ``~/`` stay as they are, and so
    does everything when *folder* is "" (a scenario from standard input: the current
    directory).  ``in_folder("l72.tar.xz+fix.diff", "/s") == "/s/l72.tar.xz+/s/fix.diff"``."""
    if not folder or name in _BY_NAME or _VERSION.fullmatch(name):
        return name
    if name.endswith(".py"):
        return os.path.join(folder, os.path.expanduser(name))
    from ..ktree.source import _looks_like_path, group_patches, tree_prefix

    def at(part: str) -> str:
        return os.path.join(folder, os.path.expanduser(part)) if part else part

    if os.path.exists(at(name)):
        return at(name)
    # which '+' part the tree, which the patches (a file name may contain '+'): as parse_spec
    # finds them in the current directory
    parts = name.split("+")
    i = tree_prefix(parts, folder)
    if i:
        found, pending = group_patches(parts[i:], folder)
        return "+".join([at("+".join(parts[:i]))] + [str(p) for p in found]
                        + [at(part) for part in pending])    # a missing one: get says so
    # no tree there: get says so if the entry reads as a path or is one here (never the tree
    # of the current directory), else it is a name get does not know
    if _looks_like_path(parts[0]) or any(os.path.exists(os.path.expanduser("+".join(parts[:i])))
                                         for i in range(1, len(parts) + 1)):
        return "+".join(at(part) for part in parts)
    return name


def get_each(names: Sequence[str]) -> list[Policy]:
    """The policies ``names`` name (:func:`get`), two different ones never under one name
    (:func:`distinct_names`)."""
    pols = [get(name) for name in names]
    distinct_names(pols, names)
    return pols


def distinct_names(pols: Sequence[Policy], specs: Sequence[str]) -> None:
    """Rename the policies of one command that share a name but are different policies (two
    trees or patch sets with different keys, two policy files), ``specs`` being how each was
    given. Among trees, the part that differs is shown by its path as given: the patches
    (``7.2.13 + fix.diff`` twice becomes ``7.2.13 + v1/fix.diff`` and ``7.2.13 +
    v2/fix.diff``), the tree (``6.1.0 (/src/a/linux)`` and ``6.1.0 (/src/b/linux)``), or both;
    a policy file gets its path after its name; ``#1``, ``#2``, ... if that is not enough.
    Names that are not shared, and one policy given twice, keep their names."""
    by_name: dict[str, list[int]] = {}
    for i, pol in enumerate(pols):
        by_name.setdefault(pol.name, []).append(i)
    for name, group in by_name.items():
        ids = [_identity(pols[i], specs[i]) for i in group]
        if len(set(ids)) < 2:
            continue
        namings = [getattr(getattr(pols[i], "tree", None), "naming", None) for i in group]
        trees = [n for n in namings if n is not None]
        show_tree = len({n.tree_key for n in trees}) > 1
        show_paths = len({n.patches_key for n in trees}) > 1
        chosen = [n.name(show_tree, show_paths) if n is not None else f"{name} ({specs[i]})"
                  for i, n in zip(group, namings)]
        if any(chosen[a] == chosen[b] and ids[a] != ids[b]
               for a in range(len(group)) for b in range(a)):
            order = list(dict.fromkeys(ids))
            chosen = [f"{c} #{order.index(ident) + 1}" for c, ident in zip(chosen, ids)]
        for i, new in zip(group, chosen):
            _rename(pols[i], new)


def _identity(pol: Policy, spec: str) -> object:
    """What makes two policies the same: a tree's key, a policy file's real path, a class."""
    tree = getattr(pol, "tree", None)
    if tree is not None and isinstance(getattr(tree, "key", None), str):
        return ("tree", tree.key)
    if spec.endswith(".py"):
        return ("file", os.path.realpath(spec))
    return ("class", type(pol))


def _rename(pol: Policy, name: str) -> None:
    rename = getattr(pol, "rename", None)
    if rename is not None:
        rename(name)
    else:
        pol.name = name  # type: ignore[misc]


# -- kernel versions --------------------------------------------------------------------------

_FINAL = 1 << 30    # sorts a release after its release candidates

#: The first mainline version of each policy (``(major, minor, sublevel, rc)``, where sublevel
#: counts only in 2.6.x and rc is _FINAL for a release), from the ``versions`` of the policy
#: classes (spec section 10's table).  A version resolves to the last entry at or before it.
RELEASES: tuple[tuple[tuple[int, int, int, int], str, str], ...] = (
    # commit 5beb49305251 ("mm: change anon_vma linking to fix multi-process server
    # scalability issue"), v2.6.34-rc1
    ((2, 6, 34, 1), "always-new", ""),
    # commit 7a3ef208e662 ("mm: prevent endless growth of anon_vma hierarchy"), after v3.19-rc3
    ((3, 19, 0, 4), "v3.19", ""),
    # commit d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK"), v4.14-rc1
    ((4, 14, 0, 1), "degree", ""),
    # commit 4e4a9eb92133 in the v5.5 merge window, reverted after v5.6-rc2
    ((5, 5, 0, 1), "wei-4e4a9eb92133", ""),
    ((5, 6, 0, 3), "v5.10", ""),
    # commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity leading to double-reuse")
    ((6, 0, 0, 4), "v6.1", ""),
    # commit 9b9143298585 ("mm/mprotect: allow unfaulted VMAs to be unaccounted on
    # mprotect()"), v6.7-rc1
    ((6, 7, 0, 1), "v6.12", ""),
    # the 2025 fix "mm/vma: fix incorrectly disallowed anonymous VMA merges" (spec 1.5: the
    # release is recalled, not checked against tags; v6.13's mm/vma.c still has the old rule)
    ((6, 16, 0, 1), "split-counters", "the release of the 2025 merge fix (taken as v6.16) "
                                      "is unverified"),
    # the 2026 anon_vma rework (reportedly v7.0; linux-source-7.2 carries it)
    ((7, 0, 0, 1), "clone-rework-2026", ""),
)
#: the newest release modelled: later versions may have changed again
_NEWEST = (7, 2)

#: stable branches took 2555283eb40d (Cc: stable, 4.9 up) and 7a3ef208e662 (Cc: stable
#: 2.6.34+) at point releases the spec does not record (2.6.34.y .. 3.18.y had no VM_WIPEONFORK
#: either: after 7a3ef208e662 they are era v3.19, not degree)
_BACKPORTED = {"always-new": ("7a3ef208e662", "v3.19", (2, 6, 34)),
               "v3.19": ("2555283eb40d", "split-counters", (4, 9, 0)),
               "degree": ("2555283eb40d", "split-counters", (4, 9, 0)),
               "v5.10": ("2555283eb40d", "split-counters", (4, 9, 0))}
#: a stable branch whose post-backport era has a policy of its own (the 5.10 mm around the
#: split counters: anondiff.policies.eras.SplitCountersV510)
_BACKPORT_ERA = {"5.10": "v5.10-stable"}

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-rc(\d+))?")


def resolve_version(text: str) -> tuple[type[Policy], str] | None:
    """``("v6.12") -> (SplitCountersV61, "v6.12: policy v6.1 (v6.0-rc4 .. ...)")``: the policy of
    a kernel version inside a documented range, and a line saying what it resolved to.  None if
    *text* is not a version; UnknownPolicyError if it is one outside every range."""
    m = _VERSION.fullmatch(text)
    if m is None:
        return None
    major, minor = int(m[1]), int(m[2])
    sub, extra, rc = m[3], m[4], m[5]
    if (major, minor) == (2, 6):
        if sub is None:
            return None
        key, stable = (2, 6, int(sub), int(rc) if rc else _FINAL), extra is not None
        branch = f"2.6.{sub}"
    else:
        if extra is not None:
            return None
        key, stable = (major, minor, 0, int(rc) if rc else _FINAL), sub is not None
        branch = f"{major}.{minor}"
    if rc and stable:
        return None
    if key < RELEASES[0][0]:
        raise UnknownPolicyError(f"unknown policy: {text!r} (before v2.6.34 there is no "
                                 "anon_vma_chain to model; always-new starts at v2.6.34)")
    if (major, minor) > _NEWEST:
        raise UnknownPolicyError(f"unknown policy: {text!r} (newer than the newest release "
                                 f"modelled, v{_NEWEST[0]}.{_NEWEST[1]}: clone-rework-2026)")
    first, pname, doubt = [entry for entry in RELEASES if entry[0] <= key][-1]
    cls = _BY_NAME[pname]
    note = f"{text}: policy {cls.name} ({cls.versions})"
    if doubt:
        note += f"; {doubt}"
    if stable and pname in _BACKPORTED and key[:3] >= _BACKPORTED[pname][2]:
        commit, later, _ = _BACKPORTED[pname]
        later = _BACKPORT_ERA.get(branch, later)
        note += (f"; {branch}.y took the backport of {commit} at a stable release not recorded "
                 f"here: after it, use -p {later}")
        if cls.dup_mmap.wipeonfork == ABSENT and _BY_NAME[later].dup_mmap.wipeonfork != ABSENT:
            # 4.9.y: no post-backport era without VM_WIPEONFORK is modelled
            note += (f" (which has VM_WIPEONFORK, v4.14+; {branch}.y has not: there a "
                     "wipeonfork VMA is copied like any other)")
    return cls, note


def release_table() -> list[tuple[str, str, str]]:
    """RELEASES as text: (first version, policy name, doubt)."""
    out = []
    for (major, minor, sub, rc), name, doubt in RELEASES:
        version = f"v{major}.{minor}" + (f".{sub}" if (major, minor) == (2, 6) else "")
        out.append((version + (f"-rc{rc}" if rc != _FINAL else ""), name, doubt))
    last = out[-1]
    out[-1] = (last[0], last[1] + f" (up to v{_NEWEST[0]}.{_NEWEST[1]})", last[2])
    return out


def explain(name: str) -> str | None:
    """What a policy name given by version resolved to (None for names, aliases and files)."""
    if name in _BY_NAME or name.endswith(".py"):
        return None
    resolved = resolve_version(name)
    return resolved[1] if resolved else None


# -- a user's policy file ---------------------------------------------------------------------

#: the policy files loaded (resolved path -> the path as given), to name them when their code
#: fails later
USER_FILES: dict[str, str] = {}


def _load_file(path: str) -> Policy:
    p = Path(path)
    if not p.is_file():
        raise UnknownPolicyError(f"{path}: no such policy file")
    real = os.path.realpath(p)
    spec = importlib.util.spec_from_file_location(f"anondiff_user_policy_{p.stem}", real)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    USER_FILES[real] = path
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UnknownPolicyError(f"{path}:{e.lineno}: cannot load policy: SyntaxError: "
                                 f"{e.msg}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # a user's file: any error is theirs to see, in one line
        raise UnknownPolicyError(user_error(e, path, "cannot load policy")) from None
    found = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
             if issubclass(obj, Policy) and obj.__module__ == module.__name__]
    named = [obj for obj in found if isinstance(obj.__dict__.get("name"), str)]
    if len(named) != 1:
        unnamed = [obj.__name__ for obj in found if obj not in named]
        hint = (f" ({', '.join(unnamed)} must set its own 'name'; it would otherwise show "
                "under its base class's)") if unnamed and not named else ""
        raise UnknownPolicyError(f"{path}: expected exactly one Policy subclass setting its "
                                 f"own 'name', found {len(named)}{hint}")
    cls = named[0]
    taken = _BY_NAME.get(cls.name)
    if taken is not None:
        raise UnknownPolicyError(f"{path}: {cls.__name__}.name {cls.name!r} is taken by the "
                                 f"built-in policy {taken.name}: choose another name")
    try:
        return cls()
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        raise UnknownPolicyError(user_error(e, path, "cannot create the policy")) from None


def user_frame(e: BaseException) -> tuple[str, int] | None:
    """The innermost line of a user's policy file in *e*'s traceback, if any."""
    hit = None
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename in USER_FILES:
            hit = (USER_FILES[frame.filename], frame.lineno or 0)
    return hit


def user_error(e: BaseException, path: str | None = None, what: str = "policy failed") -> str:
    """One line for an exception raised by (or through) a user's policy file."""
    where = user_frame(e)
    name = path if path is not None else (where[0] if where else "<policy>")
    if where is not None and path is not None and path != where[0]:
        name = where[0]
    line = f":{where[1]}" if where else ""
    if isinstance(e, SystemExit):
        detail = f"called sys.exit({e.code!r})"
    elif isinstance(e, RecursionError):
        detail = "RecursionError: recursion too deep"
    else:
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return f"{name}{line}: {what}: {detail}"
