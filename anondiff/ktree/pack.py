"""The files taken from a tarball, in one file: ``.anondiff-pack`` (their bytes, one after the
other) and ``.anondiff-index`` (``offset size path`` per line, sorted by path).

Creating a file is the slow part of extracting a few thousand small ones (3 ms each on an ext4
disk shared with other work, more than decompressing them); one pack is written in one go and
read with one ``pread`` per file.
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path

PACK = ".anondiff-pack"
INDEX = ".anondiff-index"


class PackWriter:
    """Collects files (and links to them) for :meth:`close` to write into ``directory``."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.out = open(directory / PACK, "wb")
        self.offset = 0
        self.entries: dict[str, tuple[int, int]] = {}
        self.links: dict[str, str] = {}

    def add(self, rel: str, data: bytes) -> None:
        self.out.write(data)
        self.entries[rel] = (self.offset, len(data))
        self.links.pop(rel, None)
        self.offset += len(data)

    def symlink(self, rel: str, target: str) -> None:
        """A symbolic link: reads give the file ``target`` (relative to ``rel``'s directory)
        names when that file is packed, as reading through the link would."""
        self.links[rel] = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        self.entries.pop(rel, None)

    def hardlink(self, rel: str, target: str) -> None:
        self.links[rel] = target
        self.entries.pop(rel, None)

    def close(self) -> dict[str, tuple[int, int]]:
        self.out.close()
        for rel in self.links:
            seen = {rel}
            target = self.links[rel]
            while target in self.links and target not in seen:
                seen.add(target)
                target = self.links[target]
            if target in self.entries:
                self.entries[rel] = self.entries[target]
        lines = [f"{off} {size} {rel}\n" for rel, (off, size) in sorted(self.entries.items())]
        (self.directory / INDEX).write_text("".join(lines), encoding="utf-8",
                                            errors="surrogateescape")
        return self.entries

    def abort(self) -> None:
        self.out.close()


def read_index(directory: Path) -> dict[str, tuple[int, int]] | None:
    """The index of ``directory``'s pack, None when it has none."""
    try:
        text = (directory / INDEX).read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    index: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        off, size, rel = line.split(" ", 2)
        index[rel] = (int(off), int(size))
    return index


def read(directory: Path, where: tuple[int, int]) -> bytes:
    fd = os.open(directory / PACK, os.O_RDONLY)
    try:
        return os.pread(fd, where[1], where[0])
    finally:
        os.close(fd)
