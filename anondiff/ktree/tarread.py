"""Reading the wanted members of a kernel tarball, most of all without decompressing it all.

Debian's ``linux-source-*.tar.xz`` is 1.3-1.6 GB of tar in 55-68 independently compressed xz
blocks of 24 MiB (``xz -T``), its members sorted by path. The files a tree policy needs
(``mm/``, ``include/linux/``, ... see :data:`source.AVAILABLE_FILES`) sit in 7 or 8 of those
blocks, so :func:`extract_xz` reads them for an eighth of a whole decompression:

1. the block index is read from the end of the file (where each block starts, compressed and
   uncompressed);
2. the start of every block is decompressed until the first tar header in it is found (the
   block's *boundary*: a position and a member name; a few KiB per block);
3. between two boundaries the members are in name order, so a stretch whose two names show
   that no needed path can lie between them is skipped; the others are decompressed (on two
   threads: liblzma releases the GIL) and their header chain walked from boundary to boundary.

Every guess is checked: a boundary is a chain of three valid headers, the chain walked from a
boundary must land on the next one exactly, and every member seen must lie between its two
boundaries in the order the boundaries follow (sorted paths as Debian's tarballs, GNU tar's
``--sort=name``, or git's tree order as ``git archive`` writes). When anything disagrees, or
the boundaries follow none of these orders, every block is decompressed (still on all cores)
and the whole chain walked. A member this reader does not handle (GNU sparse) or a file that is
not a multi-block single-stream xz gives None; :func:`extract_stream` then reads the tar in one
pass from a decompressor's output.

Only regular files, and symbolic or hard links, whose path ``wanted`` accepts are kept, in
memory (:class:`Found`: 24 MB for a 7.x tree); the caller writes them out.
"""
from __future__ import annotations

import bisect
import lzma
import os
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple

XZ_MAGIC = b"\xfd7zXZ\x00"
FOOTER_MAGIC = b"YZ"
TAR_BLOCK = 512
ZERO_BLOCK = bytes(TAR_BLOCK)
#: The first decompression of each block's start, taken 4 times larger until a boundary is
#: found, up to MAX_PROBE (a block that starts inside a large file has no boundary then: its
#: stretch joins the one before).
PROBE = 64 * 1024
MAX_PROBE = 1024 * 1024
#: Blocks decompressed ahead of the header walk (each holds 24 MiB in Debian's tarballs).
AHEAD = 3

_SPECIAL = {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
            tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
_FILE_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}


class XzBlock(NamedTuple):
    coff: int   # where the block starts in the file (its block header)
    csize: int  # its size in the file, padding and check included
    uoff: int   # where its data starts in the uncompressed stream
    usize: int


class TarReadError(Exception):
    """A tarball that is not valid xz or tar (the message says where)."""


class Unsupported(Exception):
    """Something this reader does not handle (a sparse member): the caller uses GNU tar."""


class _Disagree(Exception):
    """A guess about the tarball that the data contradicts: read every block instead."""


class _Short(Exception):
    """A probe needs more of its block decompressed."""


# ---------------------------------------------------------------------------------------------
# The xz container

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(9):
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ValueError("xz index: integer longer than 9 bytes")


def read_index(fd: int, size: int) -> tuple[bytes, list[XzBlock]] | None:
    """The stream header and the blocks of a single-stream xz file; None for anything else."""
    header = os.pread(fd, 12, 0)
    if len(header) < 12 or header[:6] != XZ_MAGIC or zlib.crc32(header[6:8]) != \
            struct.unpack("<I", header[8:12])[0]:
        return None
    end = size
    while end >= 36 and os.pread(fd, 4, end - 4) == b"\0\0\0\0":  # stream padding
        end -= 4
    footer = os.pread(fd, 12, end - 12)
    if len(footer) < 12 or footer[10:12] != FOOTER_MAGIC or footer[8:10] != header[6:8]:
        return None
    if zlib.crc32(footer[4:10]) != struct.unpack("<I", footer[:4])[0]:
        return None
    index_size = (struct.unpack("<I", footer[4:8])[0] + 1) * 4
    index_start = end - 12 - index_size
    if index_start < 12:
        return None
    index = os.pread(fd, index_size, index_start)
    if index[0] != 0 or zlib.crc32(index[:-4]) != struct.unpack("<I", index[-4:])[0]:
        return None
    try:
        count, pos = _varint(index, 1)
        blocks: list[XzBlock] = []
        coff, uoff = 12, 0
        for _ in range(count):
            unpadded, pos = _varint(index, pos)
            usize, pos = _varint(index, pos)
            csize = (unpadded + 3) & ~3
            blocks.append(XzBlock(coff, csize, uoff, usize))
            coff += csize
            uoff += usize
    except (ValueError, IndexError):
        return None
    if coff != index_start:  # several streams, or an index that does not add up
        return None
    return header, blocks


class _Blocks:
    """Decompressed blocks, whole or (probes) their first bytes, by uncompressed position."""

    def __init__(self, fd: int, header: bytes, blocks: list[XzBlock], pool: ThreadPoolExecutor):
        self.fd, self.header, self.blocks, self.pool = fd, header, blocks, pool
        self.starts = [b.uoff for b in blocks]
        self.total = blocks[-1].uoff + blocks[-1].usize if blocks else 0
        self.prefix: dict[int, bytes] = {}           # probe output (a block's first bytes)
        self._probing: dict[int, tuple[lzma.LZMADecompressor, int]] = {}
        self.whole: dict[int, Future[bytes]] = {}    # whole blocks, decompressing or done

    PROBE_INPUT = 16 * 1024

    def block_of(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos) - 1

    def _decompress(self, i: int) -> bytes:
        b = self.blocks[i]
        data = os.pread(self.fd, b.csize, b.coff)
        out = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(self.header + data)
        if len(out) != b.usize:
            raise lzma.LZMAError(f"block {i}: {len(out)} bytes instead of {b.usize}")
        return out

    def probe(self, i: int, want: int) -> bytes:
        """At least the first ``want`` bytes of block ``i`` (all of it when shorter), going on
        from where the last probe of the block stopped."""
        have = self.prefix.get(i, b"")
        b = self.blocks[i]
        if len(have) >= want or len(have) == b.usize:
            return have
        future = self.whole.get(i)
        if future is not None:
            return future.result()
        dec, taken = self._probing.get(i) or (lzma.LZMADecompressor(lzma.FORMAT_XZ), 0)
        parts = [have]
        size = len(have)
        while size < min(want, b.usize):
            if dec.needs_input:
                if taken >= b.csize:
                    raise lzma.LZMAError(f"block {i}: ends before its {b.usize} bytes")
                chunk = os.pread(self.fd, min(self.PROBE_INPUT, b.csize - taken), b.coff + taken)
                data = (self.header if taken == 0 else b"") + chunk
                taken += len(chunk)
            else:
                data = b""
            out = dec.decompress(data, max_length=want - size)
            parts.append(out)
            size += len(out)
        self._probing[i] = (dec, taken)
        self.prefix[i] = have = b"".join(parts)[:b.usize]
        return have

    def want(self, i: int) -> None:
        """Start decompressing block ``i`` in the pool."""
        if i not in self.whole:
            self.whole[i] = self.pool.submit(self._decompress, i)

    def drop_before(self, i: int) -> None:
        for k in [k for k in self.whole if k < i]:
            del self.whole[k]
        for k in [k for k in self.prefix if k < i]:
            del self.prefix[k]
            self._probing.pop(k, None)

    def get(self, pos: int, n: int) -> bytes:
        """The uncompressed bytes [pos, pos + n) (shorter at the end of the stream)."""
        out: list[bytes] = []
        end = min(pos + n, self.total)
        while pos < end:
            i = self.block_of(pos)
            b = self.blocks[i]
            lo, hi = pos - b.uoff, min(end, b.uoff + b.usize) - b.uoff
            have = self.prefix.get(i)
            if have is not None and hi <= len(have):
                out.append(have[lo:hi])
            else:
                self.want(i)
                out.append(self.whole[i].result()[lo:hi])
            pos = b.uoff + hi
        return b"".join(out)


# ---------------------------------------------------------------------------------------------
# The tar header chain

class Member(NamedTuple):
    start: int      # position of its first header (a GNU long name or pax header included)
    name: str
    info: Header
    data: int       # position of its data
    size: int
    next: int       # position of the next member's first header


class Header(NamedTuple):
    name: str
    mode: int
    size: int
    mtime: float
    type: bytes
    linkname: str


def _octal(field: bytes) -> int:
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _header(buf: bytes) -> Header | None:
    """The header in ``buf`` (512 bytes), None for the end-of-archive zero block.

    The usual header (octal numbers, unsigned checksum) is read here; anything else by
    :meth:`tarfile.TarInfo.frombuf`, whose reading this follows (a ustar prefix is joined to
    the name unless the type is a GNU one, a V7 directory is a name ending in '/')."""
    if len(buf) < TAR_BLOCK:
        raise _Short
    if buf == ZERO_BLOCK:
        return None
    try:
        if buf[124] & 0x80 or _octal(buf[148:156]) != sum(buf) - sum(buf[148:156]) + 256:
            raise ValueError
        name = buf[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        kind = buf[156:157]
        prefix = buf[345:500].split(b"\0", 1)[0]
        if prefix and kind not in tarfile.GNU_TYPES:
            name = prefix.decode("utf-8", "surrogateescape") + "/" + name
        if kind == tarfile.AREGTYPE and name.endswith("/"):
            kind = tarfile.DIRTYPE
        if kind == tarfile.DIRTYPE:
            name = name.rstrip("/")
        return Header(name, _octal(buf[100:108]), _octal(buf[124:136]), _octal(buf[136:148]),
                      kind, buf[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape"))
    except ValueError:
        pass
    try:
        info = tarfile.TarInfo.frombuf(buf, "utf-8", "surrogateescape")
    except tarfile.HeaderError as e:
        raise _Disagree(f"not a tar header: {e}") from None
    return Header(info.name, info.mode, info.size, info.mtime, info.type, info.linkname)


def _pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise _Disagree("pax record without a length") from None
        if length <= 0:
            raise _Disagree("pax record of length 0")
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _padded(size: int) -> int:
    return (size + TAR_BLOCK - 1) // TAR_BLOCK * TAR_BLOCK


def member_at(get: Callable[[int, int], bytes], pos: int) -> Member | None:
    """The member whose first header is at ``pos`` (None at the end of the archive)."""
    start = pos
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        info = _header(get(pos, TAR_BLOCK))
        if info is None:
            if pos != start:
                raise _Disagree("archive ends after a long-name or pax header")
            return None
        size = info.size
        data = pos + TAR_BLOCK
        if info.type in _SPECIAL:
            payload = get(data, size)
            if len(payload) < size:
                raise _Short
            if info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = payload.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                pax.update(_pax(payload))
            pos = data + _padded(size)
            continue
        if info.type == tarfile.GNUTYPE_SPARSE or "GNU.sparse.major" in pax:
            raise Unsupported("a GNU sparse member")
        name = pax.get("path") or long_name or info.name
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise _Disagree(f"{name}: pax size {pax['size']!r}") from None
        if "linkpath" in pax:
            info = info._replace(linkname=pax["linkpath"])
        if "mtime" in pax:
            try:
                info = info._replace(mtime=float(pax["mtime"]))
            except ValueError:
                raise _Disagree(f"{name}: pax mtime {pax['mtime']!r}") from None
        stored = 0 if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
                                    tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE) else size
        return Member(start, name, info, data, size, data + _padded(stored))


# ---------------------------------------------------------------------------------------------
# Name order

Key = tuple[bytes, ...]


def _parts(name: str) -> list[bytes]:
    return [c.encode("utf-8", "surrogateescape") for c in name.rstrip("/").split("/")]


class Order(NamedTuple):
    """An order members can be in: ``key(name, isdir)`` of a member, ``under(dir)`` the key
    every member below ``dir`` starts with (the keys starting with it form one range)."""
    name: str
    key: Callable[[str, bool], Key]
    under: Callable[[str], Key]


ORDERS: tuple[Order, ...] = (
    # sorted full paths, as `find | LC_ALL=C sort | tar -T -` gives (Debian's linux-source)
    Order("path", lambda n, d: (n.rstrip("/").encode("utf-8", "surrogateescape"),),
          lambda n: ((n.rstrip("/") + "/").encode("utf-8", "surrogateescape"),)),
    # GNU tar --sort=name: each directory's entries by name, depth first
    Order("tar", lambda n, d: tuple(_parts(n)), lambda n: tuple(_parts(n))),
    # git's tree order (git archive): a directory's name compared with a '/' after it
    Order("git", lambda n, d: tuple(c + b"/" for c in _parts(n)[:-1]) + (
        _parts(n)[-1] + (b"/" if d else b""),), lambda n: tuple(c + b"/" for c in _parts(n))),
)


def _starts(key: Key, prefix: Key) -> bool:
    """Whether ``key`` is in the range of keys starting with ``prefix``."""
    n = len(prefix)
    return key[:n - 1] == prefix[:n - 1] and key[n - 1:n] != () and \
        key[n - 1].startswith(prefix[n - 1])


def _member_key(order: Order, m: Member) -> Key:
    return order.key(m.name, m.info.type == tarfile.DIRTYPE)


class _Needed:
    """The needed paths (files, and directories taken whole) as keys in one order."""

    def __init__(self, order: Order, prefix: str, files: Iterable[str], dirs: Iterable[str]):
        self.files = [order.key(prefix + f, False) for f in files]
        self.dirs = [order.under(prefix + d) for d in dirs]

    def between(self, lo: Key | None, hi: Key | None) -> bool:
        """Whether a needed member can have a key in [lo, hi]."""
        for k in self.files:
            if (lo is None or lo <= k) and (hi is None or k <= hi):
                return True
        for p in self.dirs:
            # the keys starting with p are one range, from p up
            if (hi is None or hi >= p) and (lo is None or lo <= p or _starts(lo, p)):
                return True
        return False


# ---------------------------------------------------------------------------------------------
# Finding boundaries

def _boundary(blocks: _Blocks, i: int) -> Member | None:
    """The first member of block ``i`` whose name can be trusted, None when none does.

    The first header found may carry a truncated name whose GNU long-name or pax header lies in
    the block before: it is trusted only when it is such a header itself; else the member after
    it is taken. Only block ``i`` is read (the probes run in the pool's threads)."""
    b = blocks.blocks[i]
    skip = (-b.uoff) % TAR_BLOCK  # the first 512-aligned position of the stream in the block
    want = PROBE
    while True:
        buf = blocks.probe(i, want)
        whole = len(buf) == b.usize

        def get(pos: int, n: int) -> bytes:
            if pos + n <= b.uoff + len(buf):
                return buf[pos - b.uoff:pos - b.uoff + n]
            raise _PastBlock if whole else _Short

        try:
            for k in range(skip, len(buf) - TAR_BLOCK + 1, TAR_BLOCK):
                if buf[k + 257:k + 262] != b"ustar":
                    continue
                try:
                    first = member_at(get, b.uoff + k)
                except _Disagree:
                    continue
                except _PastBlock:  # its name or its header is in the next block
                    return None
                if first is None:
                    continue
                try:
                    trusted = first if buf[k + 156:k + 157] in (b"L", b"x", b"X", b"g") \
                        else member_at(get, first.next)
                except _Disagree:
                    continue
                except _PastBlock:
                    return None
                if trusted is None or trusted.start >= b.uoff + b.usize:
                    return None
                try:  # one more header where there is one: three valid headers in a chain
                    member_at(get, trusted.next)
                except _Disagree:
                    continue
                except (_PastBlock, _Short):
                    pass
                return trusted
            if whole:
                return None
        except _Short:
            pass
        if want >= MAX_PROBE:
            return None
        want *= 4


class _PastBlock(Exception):
    """A probe reached the end of its block."""


# ---------------------------------------------------------------------------------------------
# Extracting

class Found:
    """The wanted members read: files by relative path, and links (to a relative path)."""

    def __init__(self, prefix: str, wanted: Callable[[str], bool]):
        self.prefix, self.wanted = prefix, wanted
        self.files: dict[str, bytes] = {}
        self.symlinks: dict[str, str] = {}    # rel -> the link's text
        self.hardlinks: dict[str, str] = {}   # rel -> the rel of the file it links to

    def relpath(self, name: str) -> str | None:
        if not name.startswith(self.prefix):
            return None
        rel = name[len(self.prefix):]
        return rel if rel and self.wanted(rel) else None

    def take(self, m: Member, rel: str, get: Callable[[int, int], bytes]) -> None:
        t = m.info.type
        if t in _FILE_TYPES:
            data = get(m.data, m.size)
            if len(data) != m.size:
                raise _Disagree(f"{m.name}: the archive ends inside it")
            self.files[rel] = data
        elif t == tarfile.SYMTYPE:
            self.symlinks[rel] = m.info.linkname
        elif t == tarfile.LNKTYPE and m.info.linkname.startswith(self.prefix):
            self.hardlinks[rel] = m.info.linkname[len(self.prefix):]

    def clear(self) -> None:
        self.files.clear()
        self.symlinks.clear()
        self.hardlinks.clear()

    def add(self, m: Member, get: Callable[[int, int], bytes]) -> None:
        rel = self.relpath(m.name)
        if rel is not None:
            self.take(m, rel, get)


def extract_xz(tarball: Path, prefix: str, files: Iterable[str], dirs: Iterable[str],
               wanted: Callable[[str], bool]) -> Found | None:
    """The members ``prefix + rel`` with ``wanted(rel)`` of a multi-block xz tarball; ``files``
    and ``dirs`` (relative; every wanted path is one of them or under one of them) say where
    the needed members can be. None when ``tarball`` is not a multi-block single-stream xz or
    holds members this reader does not handle (:func:`extract_stream` reads those)."""
    files, dirs = list(files), list(dirs)
    found = Found(prefix, wanted)
    fd = os.open(tarball, os.O_RDONLY)
    try:
        index = read_index(fd, os.fstat(fd).st_size)
        if index is None or len(index[1]) < 2:
            return None
        header, xzblocks = index
        workers = max(2, min(4, os.cpu_count() or 2))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tarread")
        try:
            try:
                _sparse(fd, header, xzblocks, pool, found, files, dirs)
            except (_Disagree, _Short):
                found.clear()
                _everything(fd, header, xzblocks, pool, found)
        except Unsupported:
            return None
        except _Disagree as e:
            raise TarReadError(f"not a valid tar archive: {e}") from None
        except _Short:
            raise TarReadError("not a valid tar archive: it ends inside a header") from None
        except lzma.LZMAError as e:
            raise TarReadError(f"xz: {e}") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return found
    finally:
        os.close(fd)


class _Stream:
    """Sequential reads of a file object as :func:`member_at` asks for them (positions only
    grow), keeping nothing before the last position asked for."""

    CHUNK = 1 << 20

    def __init__(self, f: BinaryIO):
        self.f = f
        self.base = 0
        self.buf = b""
        self.eof = False

    def get(self, pos: int, n: int) -> bytes:
        i = pos - self.base
        if i < 0:
            raise AssertionError("a stream read went backwards")
        if i + n > len(self.buf):  # refill: keep what is left from pos on, read the rest
            keep = self.buf[i:]
            self.base += min(i, len(self.buf))
            skip = pos - self.base
            while skip > 0 and not self.eof:  # data nobody asked for is not kept
                chunk = self.f.read(min(self.CHUNK, skip))
                if not chunk:
                    self.eof = True
                self.base += len(chunk)
                skip -= len(chunk)
            parts, have = [keep], len(keep)
            while have < n and not self.eof:
                chunk = self.f.read(max(self.CHUNK, n - have))
                if not chunk:
                    self.eof = True
                parts.append(chunk)
                have += len(chunk)
            self.buf = b"".join(parts)
            i = pos - self.base
        return self.buf[i:i + n]


def extract_stream(f: BinaryIO, prefix: str, wanted: Callable[[str], bool]) -> Found:
    """The wanted members of the uncompressed tar read from ``f``, in one pass."""
    found = Found(prefix, wanted)
    stream = _Stream(f)
    pos = 0
    try:
        while True:
            m = member_at(stream.get, pos)
            if m is None:
                return found
            found.add(m, stream.get)
            pos = m.next
    except Unsupported as e:
        raise TarReadError(f"{e}: not supported") from None
    except _Disagree as e:
        raise TarReadError(f"not a valid tar archive: {e}") from None
    except _Short:
        raise TarReadError("not a valid tar archive: it ends inside a header") from None


def _sparse(fd: int, header: bytes, xzblocks: list[XzBlock], pool: ThreadPoolExecutor,
            found: Found, files: list[str], dirs: list[str]) -> None:
    """Only the stretches between boundaries that can hold a needed member, in the first name
    order that the boundaries and then every member walked agree with."""
    blocks = _Blocks(fd, header, xzblocks, pool)
    probed = list(pool.map(lambda i: _boundary(blocks, i), range(1, len(xzblocks))))
    bounds: list[Member] = []
    for m in probed:
        if m is not None and (not bounds or m.start > bounds[-1].start):
            bounds.append(m)
    why = "the blocks' first members are in no known name order"
    for order in ORDERS:
        keys = [_member_key(order, m) for m in bounds]
        if all(a < b for a, b in zip(keys, keys[1:])):
            try:
                _walk(blocks, order, bounds, keys, _Needed(order, found.prefix, files, dirs),
                      found)
                return
            except _Disagree as e:
                why = f"{order.name} order: {e}"
                found.clear()
    raise _Disagree(why)


def _walk(blocks: _Blocks, order: Order, bounds: list[Member], keys: list[Key],
          needed: _Needed, found: Found) -> None:
    # stretches [start, stop) between boundaries; the first starts at the archive's start
    edges: list[tuple[int, Key | None]] = [(0, None)]
    edges += [(m.start, k) for m, k in zip(bounds, keys)]
    stretches = []
    for (start, lo), (stop, hi) in zip(edges, edges[1:] + [(blocks.total, None)]):
        if needed.between(lo, hi):
            stretches.append((start, stop, lo, hi))
    for start, stop, _, _ in stretches:  # decompress ahead what the probes did not cover
        for i in range(blocks.block_of(start), blocks.block_of(max(start, stop - 1)) + 1):
            if stop > blocks.blocks[i].uoff + len(blocks.prefix.get(i, b"")):
                blocks.want(i)
    for start, stop, lo, hi in stretches:
        pos = start
        last = lo
        while pos < stop:
            m = member_at(blocks.get, pos)
            if m is None:
                if hi is not None:
                    raise _Disagree("the archive ends before a block's first member")
                break
            key = _member_key(order, m)
            if last is not None and (key < last or (key == last and pos != start)) \
                    or hi is not None and key >= hi:
                raise _Disagree(f"{m.name}: out of order")
            last = key
            found.add(m, blocks.get)
            pos = m.next
            blocks.drop_before(blocks.block_of(pos))
        if hi is not None and pos != stop:
            raise _Disagree("a header chain misses the next block's first member")


def _everything(fd: int, header: bytes, xzblocks: list[XzBlock], pool: ThreadPoolExecutor,
                found: Found) -> None:
    """Every block, decompressed ahead on all workers, and the whole header chain."""
    blocks = _Blocks(fd, header, xzblocks, pool)
    for m in _chain(blocks, 0):
        found.add(m, blocks.get)


def _chain(blocks: _Blocks, pos: int) -> Iterator[Member]:
    while True:
        i = blocks.block_of(min(pos, blocks.total - 1))
        for k in range(i, min(i + AHEAD + 1, len(blocks.blocks))):
            blocks.want(k)
        blocks.drop_before(i)
        m = member_at(blocks.get, pos)
        if m is None:
            return
        yield m
        pos = m.next
