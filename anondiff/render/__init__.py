"""Renderers: each a pure function of frozen snapshots (never of live engine objects).

Every format module exposes::

    render_run(replays: Sequence[Replay], opts: RenderOptions) -> str | Iterable[str]
    render_compare(cmp: Comparison, opts: RenderOptions) -> str | Iterable[str]

Either returns the whole text, or an iterable of chunks whose concatenation is the text (a
renderer whose output can be large streams it: ``json`` does); :func:`text` joins them where
one string is needed.  :mod:`anondiff.output` writes both, replacing a file only once the last
chunk is in.

Modules are imported lazily so that ``anondiff run`` pays only for the format it prints.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import NamedTuple
from types import ModuleType

from ..errors import RenderError

FORMATS = {
    "table": "table",
    "json": "json_",
    "ascii": "ascii",
    "list": "listing",
    "dot": "dot",
}


class RenderOptions(NamedTuple):
    width: int = 72          # ascii/list: columns
    unicode: bool = False    # ascii: box-drawing characters
    chains: bool = False     # dot: dotted edge for every chain link
    snapshots: bool = True   # show labelled snapshots, not only the final state


def text(content: str | Iterable[str]) -> str:
    """A renderer's output as one string."""
    return content if isinstance(content, str) else "".join(content)


def formatter(name: str) -> ModuleType:
    try:
        module = FORMATS[name]
    except KeyError:
        raise RenderError(
            f"unknown format: {name!r} (must be one of {sorted(FORMATS)})") from None
    return importlib.import_module(f"{__name__}.{module}")
