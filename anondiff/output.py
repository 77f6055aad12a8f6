"""Writing the output the way a Unix tool does (``-o FILE``, ``-o -``, standard output).

* A regular file, or a path that does not exist yet, is written atomically: a temporary file
  beside it, renamed over it once everything is written.  An existing file keeps its mode (and,
  where permitted, its owner); a new one gets ``0666 & ~umask``, like the shell's ``>``.
* Anything else (a character device such as ``/dev/null``, a FIFO, a terminal, ``/dev/stdout``)
  is opened and written into, never replaced.  A symlink is followed, as ``>`` does.
* The temporary file is removed on every way out: an error, Ctrl-C (``KeyboardInterrupt``),
  SIGTERM/SIGHUP (turned into :class:`Terminated` by the CLI), a failing renderer.
* Content is a ``str``/``bytes``, or an iterable of ``str``/``bytes`` chunks (a renderer that
  streams): chunks are written as they come; the target only changes once the last one is in.
"""
from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Union

from .errors import AnondiffError

Content = Union[str, bytes, Iterable[str], Iterable[bytes]]

#: the name that means standard output for ``-o`` (and standard input for a scenario)
STDIO = "-"


class WriteError(AnondiffError):
    """The output cannot be written (full disk, no such directory, stdout closed, ...)."""


class BrokenPipe(Exception):
    """Standard output's reader went away (``anondiff ... | head``): not an error to report."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived; raised so that ``finally`` clauses clean up before exiting."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _chunks(content: Content) -> Iterator[bytes]:
    if isinstance(content, (str, bytes)):
        content = (content,)
    for chunk in content:
        yield chunk.encode("utf-8") if isinstance(chunk, str) else chunk


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file(path: str, content: Content) -> None:
    """Write *content* to *path*, atomically if it is (or will be) a regular file and straight
    into it otherwise.  Raises :class:`WriteError` naming *path*."""
    target = os.path.realpath(path)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise WriteError(f"{path}: cannot write: {e.strerror}") from None
    try:
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise WriteError(f"{path}: cannot write: Is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            _write_into(target, content, truncate=False)
        else:
            _write_atomically(target, content, st)
    except OSError as e:
        raise WriteError(f"{path}: cannot write: {e.strerror or e}") from None


def _write_into(target: str, content: Content, truncate: bool) -> None:
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0)
    fd = os.open(target, flags)
    with open(fd, "wb", buffering=0, closefd=True) as f:
        for chunk in _chunks(content):
            f.write(chunk)


def _write_atomically(target: str, content: Content, st: os.stat_result | None) -> None:
    directory = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".anondiff-", dir=directory)
    except PermissionError:
        if st is None:
            raise
        # the file may be written although its directory may not (no temporary file beside it)
        _write_into(target, content, truncate=True)
        return
    done = False
    try:
        with open(fd, "wb", closefd=True) as f:
            for chunk in _chunks(content):
                f.write(chunk)
            if st is None:
                os.fchmod(f.fileno(), 0o666 & ~umask())
            else:
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
                if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(f.fileno(), st.st_uid, st.st_gid)
                    except PermissionError:
                        pass
        os.replace(tmp, target)
        done = True
    finally:
        if not done:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def write_stdout(content: Content) -> None:
    """Write *content* to standard output and flush it.  Raises :class:`BrokenPipe` when the
    reader has gone, :class:`WriteError` ("cannot write standard output: ...") otherwise."""
    stream = sys.stdout
    if stream is None:          # started with stdout closed (``>&-``)
        raise WriteError(f"cannot write standard output: {os.strerror(errno.EBADF)}")
    try:
        for chunk in (content,) if isinstance(content, (str, bytes)) else content:
            if isinstance(chunk, bytes):
                stream.flush()
                stream.buffer.write(chunk)
            else:
                stream.write(chunk)
        stream.flush()
    except BrokenPipeError:
        _silence(stream)
        raise BrokenPipe() from None
    except OSError as e:
        _silence(stream)
        raise WriteError(f"cannot write standard output: {e.strerror or e}") from None


def _silence(stream: object) -> None:
    """Point the broken stdout at /dev/null, so that the interpreter's final flush of what is
    still buffered neither fails nor prints "Exception ignored"."""
    try:
        fileno = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return              # not a real file (click's test runner)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno)
    finally:
        os.close(devnull)


def write(content: Content, output: str | None) -> None:
    """``-o`` semantics: None or ``-`` is standard output, anything else a path."""
    if output is None or output == STDIO:
        write_stdout(content)
    else:
        write_file(output, content)
