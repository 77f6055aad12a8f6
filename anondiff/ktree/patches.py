"""Patches on top of a kernel tree: mbox series and unified diffs, applied like ``git apply``.

A patch file is either

- an **mbox** (``git format-patch`` or ``b4 am`` output, a whole series): one or more messages,
  each ``Subject: [PATCH v3 1/2] ...`` with the diff after the ``---`` line. The ``0/N`` cover
  letter is skipped whatever it holds (``--interdiff`` puts a diff there); a message whose
  subject is another patch tag (``[PATCH v3 2/2]``, ``[PATCH]``) must hold a diff; other
  messages (replies) without one are skipped; or
- a **plain unified diff** (``diff -u``, ``git diff``).

A file header (``---`` and ``+++`` lines) with no ``@@`` hunk after it is an error: it is what a
patch cut short looks like (git writes no such header for a rename, a mode change or a binary
file).

Hunks must match exactly (no fuzz); a hunk whose context moved is looked for at the nearest
offset, up or down, as ``git apply`` does. New files (``--- /dev/null``), deleted files
(``+++ /dev/null``), ``\\ No newline at end of file``, ``a/`` ``b/`` prefixes and paths relative to
the tree or to its parent directory (-p1 or -p0 style) are understood.

Only the files the anon_vma code can be cut from are looked at (``wanted``, see
:data:`anondiff.ktree.source.AVAILABLE`): hunks for any other file (``Documentation/``,
``arch/``, ``tools/testing/``, ...) are ignored, since they cannot change what is compiled.

A hunk that does not apply is a :class:`PatchError` naming the patch file (and line), the message
subject for an mbox, the file and the hunk (number and ``@@`` header).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from anondiff.errors import AnondiffError


class PatchError(AnondiffError):
    """A patch that cannot be read or applied (one line)."""


@dataclass
class Hunk:
    header: str                      # the whole ``@@ -a,b +c,d @@ context`` line
    number: int                      # 1-based within its file
    line: int | None                 # line of the @@ header in the patch file, when known
    old_start: int
    old: list[str] = field(default_factory=list)   # context and removed lines, with endings
    new: list[str] = field(default_factory=list)   # context and added lines, with endings


@dataclass
class FilePatch:
    old_path: str | None             # as written after ``---`` (None for /dev/null)
    new_path: str | None             # as written after ``+++`` (None for /dev/null)
    hunks: list[Hunk] = field(default_factory=list)


@dataclass
class Patch:
    """One diff: a whole plain diff file, or one message of an mbox."""
    source: Path
    subject: str | None              # ``[PATCH v3 1/2] mm/rmap: ...`` for a message
    files: list[FilePatch]

    def where(self, line: int | None = None) -> str:
        at = f"{self.source}:{line}" if line is not None else str(self.source)
        return f"{at}: {self.subject}" if self.subject else at


# ---------------------------------------------------------------------------------------------
# Reading

_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_HEADER_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*:[ \t]")
_MBOX_FROM = re.compile(rb"From \S+ ")
#: the tag a patch message's subject starts with: ``[PATCH v3 1/2]``, ``[RFC PATCH 0/5]``
_SUBJECT_TAG = re.compile(r"\[([^\]]*)\]")
_SERIES_NUMBER = re.compile(r"(?:^|\s)(\d+)/(\d+)$")


def _lines(text: str) -> list[str]:
    """Split keeping ``\\n`` endings; unlike str.splitlines(), a form feed is not a line end."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def read_patch_file(path: Path, data: bytes | None = None) -> list[Patch]:
    """The diffs of one patch file, in order (several for an mbox series); ``data`` is its
    content when the caller has read it already (a pipe cannot be read twice)."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise PatchError(f"{path}: cannot read patch: {e.strerror}") from None
    first = data.lstrip(b"\n").split(b"\n", 1)[0]
    if _MBOX_FROM.match(first) or _HEADER_LINE.match(first):
        patches = _read_mbox(path, data)
    else:
        files = parse_diff(path, _decode(data), first_line=1, subject=None)
        patches = [Patch(path, None, files)] if files else []
    if not patches:
        raise PatchError(f"{path}: no diff found (expected an mbox from git format-patch or b4, "
                         "or a unified diff)")
    return patches


def _read_mbox(path: Path, data: bytes) -> list[Patch]:
    import email
    import email.policy

    raw = data.split(b"\n")
    starts = [i for i, line in enumerate(raw)
              if _MBOX_FROM.match(line) and (i == 0 or raw[i - 1] == b"")]
    if not starts or raw[:starts[0]] and any(raw[:starts[0]]):
        starts = [0] + starts  # a single message saved without the mbox "From " line
    patches: list[Patch] = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(raw)
        chunk = raw[start:end]
        if chunk and _MBOX_FROM.match(chunk[0]):
            chunk, start = chunk[1:], start + 1
        msg = email.message_from_bytes(b"\n".join(chunk), policy=email.policy.compat32)
        subject = _subject(msg.get("Subject"))
        kind = _patch_kind(subject)
        if kind == "cover":
            continue
        body_line = start + 1 + (chunk.index(b"") + 1 if b"" in chunk else len(chunk))
        files: list[FilePatch] = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            if part.get_content_maintype() != "text":
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            plain = part is msg and part.get("Content-Transfer-Encoding", "8bit").lower() in (
                "7bit", "8bit", "binary")
            files += parse_diff(path, _decode(payload), first_line=body_line if plain else None,
                                subject=subject)
        if files:
            patches.append(Patch(path, subject, files))
        elif kind == "patch":
            at = start + 1 + next((j for j, line in enumerate(chunk)
                                   if line[:8].lower() == b"subject:"), 0)
            raise PatchError(f"{Patch(path, subject, []).where(at)}: no diff in this patch "
                             "message (only the 0/N cover letter may have none)")
    return patches


def _patch_kind(subject: str | None) -> str | None:
    """``"cover"`` for the 0/N cover letter of a series, ``"patch"`` for a subject starting
    with another patch tag (``[PATCH v3 1/2]``, ``[RFC PATCH]``, ``[2/5]``), None otherwise (a
    reply, ``Re: [PATCH ...]``, or no subject)."""
    m = _SUBJECT_TAG.match(subject or "")
    if m is None:
        return None
    tag = m.group(1).strip()
    number = _SERIES_NUMBER.search(tag)
    if number is not None:
        return "cover" if int(number.group(1)) == 0 else "patch"
    return "patch" if re.search(r"\bPATCH", tag, re.IGNORECASE) else None


def _subject(raw: str | None) -> str | None:
    if raw is None:
        return None
    import email.header

    text = str(email.header.make_header(email.header.decode_header(raw)))
    return " ".join(text.split())


def _strip_name(raw: str) -> str | None:
    """The path of a ``---``/``+++`` line: drop the tab and timestamp diff(1) appends."""
    name = raw.split("\t", 1)[0].rstrip("\r")
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1]
    if name == "/dev/null":
        return None
    # diff -u without tabs: "file 2024-01-01 12:00:00.000000000 +0100"
    m = re.match(r"(.*?) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", name)
    return m.group(1) if m else name


def parse_diff(source: Path, text: str, first_line: int | None,
               subject: str | None) -> list[FilePatch]:
    """The file patches of a unified diff (anything around them, such as a commit message,
    a diffstat or a signature, is skipped)."""
    lines = _lines(text)
    where = Patch(source, subject, []).where
    files: list[FilePatch] = []
    i = 0
    while i < len(lines):
        if not (lines[i].startswith("--- ") and i + 1 < len(lines)
                and lines[i + 1].startswith("+++ ")):
            i += 1
            continue
        if not (i + 2 < len(lines) and _HUNK.match(lines[i + 2])):
            at = first_line + i if first_line is not None else None
            raise PatchError(f"{where(at)}: file header without any hunk (expected an '@@ -a,b "
                             f"+c,d @@' line after {lines[i + 1].rstrip()[:60]!r})")
        fp = FilePatch(_strip_name(lines[i][4:].rstrip("\n")),
                       _strip_name(lines[i + 1][4:].rstrip("\n")))
        i += 2
        while i < len(lines) and (m := _HUNK.match(lines[i])):
            header = lines[i].rstrip("\n").rstrip("\r")
            lineno = first_line + i if first_line is not None else None
            hunk = Hunk(header, len(fp.hunks) + 1, lineno, int(m.group(1)))
            old_left = int(m.group(2)) if m.group(2) is not None else 1
            new_left = int(m.group(4)) if m.group(4) is not None else 1
            i += 1
            last: str | None = None
            while old_left > 0 or new_left > 0 or (
                    i < len(lines) and lines[i].startswith("\\")):
                if i >= len(lines):
                    raise PatchError(f"{where(lineno)}: {header}: hunk ends early "
                                     f"(expected {old_left} more old and {new_left} more new "
                                     "lines)")
                line = lines[i]
                tag, body = line[:1], line[1:]
                if line == "\n":  # some mailers strip the space of an empty context line
                    tag, body = " ", "\n"
                if tag == "\\":
                    # "\ No newline at end of file": the line before it has no newline.
                    if last in (" ", "-") and hunk.old:
                        hunk.old[-1] = hunk.old[-1].rstrip("\n")
                    if last in (" ", "+") and hunk.new:
                        hunk.new[-1] = hunk.new[-1].rstrip("\n")
                    i += 1
                    continue
                if tag == " " and old_left > 0 and new_left > 0:
                    hunk.old.append(body)
                    hunk.new.append(body)
                    old_left -= 1
                    new_left -= 1
                elif tag == "-" and old_left > 0:
                    hunk.old.append(body)
                    old_left -= 1
                elif tag == "+" and new_left > 0:
                    hunk.new.append(body)
                    new_left -= 1
                else:
                    at = first_line + i if first_line is not None else lineno
                    raise PatchError(f"{where(at)}: {header}: unexpected line in hunk "
                                     f"{hunk.number}: {line.rstrip()[:60]!r}")
                last = tag
                i += 1
            fp.hunks.append(hunk)
        files.append(fp)
    return files


# ---------------------------------------------------------------------------------------------
# Applying

def _candidates(raw: str) -> list[str]:
    """``raw`` as it is (-p0) and without its first component (-p1: ``a/``, ``linux.orig/``);
    stripping more would let ``arch/x86/mm/fault.c`` pass for ``mm/fault.c``."""
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    return ["/".join(parts[k:]) for k in range(min(2, len(parts)))]


def resolve_path(raw: str, exists: Callable[[str], bool],
                 wanted: Callable[[str], bool]) -> str | None:
    """The tree-relative path a patch means by ``raw``: the least-stripped one that names a
    file of the tree, else the least-stripped wanted one, else None (not a wanted file)."""
    cands = [c for c in _candidates(raw) if ".." not in c.split("/")]
    for c in cands:
        if wanted(c) and exists(c):
            return c
    for c in cands:
        if wanted(c):
            return c
    return None


def _find(lines: list[str], old: list[str], expected: int) -> int | None:
    """The start closest to ``expected`` where ``old`` matches ``lines`` exactly."""
    n = len(old)
    limit = len(lines) - n
    if limit < 0:
        return None
    expected = min(max(expected, 0), limit)
    for delta in range(0, max(expected, limit - expected) + 1):
        for pos in (expected - delta, expected + delta) if delta else (expected,):
            if 0 <= pos <= limit and lines[pos:pos + n] == old:
                return pos
    return None


def apply(patches: list[Patch], read: Callable[[str], str | None],
          wanted: Callable[[str], bool]) -> dict[str, str | None]:
    """Apply ``patches`` in order to the files ``read`` returns (None: absent); the result maps
    each changed path to its new text, or None when the patches delete it."""
    state: dict[str, list[str] | None] = {}
    original: dict[str, list[str] | None] = {}

    def current(path: str) -> list[str] | None:
        if path not in state:
            text = read(path)
            original[path] = state[path] = _lines(text) if text is not None else None
        return state[path]

    def exists(path: str) -> bool:
        return current(path) is not None

    for patch in patches:
        for fp in patch.files:
            old = resolve_path(fp.old_path, exists, wanted) if fp.old_path else None
            new = resolve_path(fp.new_path, exists, wanted) if fp.new_path else None
            if old is None and new is None:
                continue  # outside the files the anon_vma code is cut from
            _apply_file(patch, fp, old, new, current, state)
    return {path: "".join(lines) if lines is not None else None
            for path, lines in state.items() if lines != original[path]}


def _apply_file(patch: Patch, fp: FilePatch, old: str | None, new: str | None,
                current: Callable[[str], list[str] | None],
                state: dict[str, list[str] | None]) -> None:
    """Apply one file's hunks; ``old``/``new`` are None for /dev/null (creation, deletion)
    and differ for a rename."""
    creating = fp.old_path is None
    deleting = fp.new_path is None
    path = old if old is not None else new
    assert path is not None
    lines = current(path)
    at = fp.hunks[0].line if fp.hunks else None
    if creating:
        if lines is not None:
            raise PatchError(f"{patch.where(at)}: {path}: creates a file that already exists")
        lines = []
    elif lines is None:
        raise PatchError(f"{patch.where(at)}: {path}: no such file in the tree")
    lines = list(lines)
    offset = 0
    for hunk in fp.hunks:
        # "-10,0 +11,2": insert after line 10; otherwise the old lines start at line old_start.
        origin = hunk.old_start - 1 if hunk.old else hunk.old_start
        pos = _find(lines, hunk.old, origin + offset)
        if pos is None:
            raise PatchError(
                f"{patch.where(hunk.line)}: {path}: hunk #{hunk.number} does not apply "
                f"({hunk.header}: its {len(hunk.old)} context and removed lines are not "
                "in the file)")
        lines[pos:pos + len(hunk.old)] = hunk.new
        offset = pos - origin + len(hunk.new) - len(hunk.old)
    if deleting:
        if lines:
            raise PatchError(f"{patch.where(at)}: {path}: deletes the file but {len(lines)} "
                             "lines of it are not in the patch")
        state[path] = None
        return
    if new is not None and new != path:  # a rename
        if current(new) is not None:
            raise PatchError(f"{patch.where(at)}: {path}: renamed onto {new}, which exists")
        state[path] = None
        path = new
    state[path] = lines
