"""The registry of policies: one module per kernel or patch version.

A user's own policy is a Python file defining a subclass of :class:`~.base.Policy` (usually of
one of the classes here); pass its path where a policy name is expected.
"""
from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from ..errors import UnknownPolicyError
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


def names() -> list[str]:
    """The main policies, in history order (era variants are selected by version)."""
    return [cls.name for cls in POLICIES]


def get(name: str) -> Policy:
    """A policy by name, version alias, or path to a ``.py`` file defining one."""
    cls = _BY_NAME.get(name)
    if cls is not None:
        return cls()
    if name.endswith(".py"):
        return _load_file(name)
    from ..ktree.source import parse_spec      # a kernel tree: anondiff.ktree (lazily)
    if (spec := parse_spec(name)) is not None:
        from ..ktree.policy import tree_policy
        return tree_policy(spec)
    raise UnknownPolicyError(
        f"unknown policy: {name!r} (must be one of {names()}, a version alias "
        f"such as v4.19 or v6.18 (see 'anondiff policies'), or a .py file)")


def _load_file(path: str) -> Policy:
    p = Path(path)
    if not p.is_file():
        raise UnknownPolicyError(f"{path}: no such policy file")
    spec = importlib.util.spec_from_file_location(f"anondiff_user_policy_{p.stem}", p)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # a user's file: any error is theirs to see, in one line
        raise UnknownPolicyError(f"{path}: cannot load policy: {type(e).__name__}: {e}") from None
    found = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
             if issubclass(obj, Policy) and obj.__module__ == module.__name__
             and isinstance(getattr(obj, "name", None), str)]
    if len(found) != 1:
        raise UnknownPolicyError(
            f"{path}: expected exactly one Policy subclass with a 'name', found {len(found)}")
    return found[0]()
