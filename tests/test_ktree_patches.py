"""anondiff.ktree.patches: mbox series and unified diffs applied like git apply (exact context,
nearest offset), on in-memory files."""
from __future__ import annotations

import subprocess
import shutil
from pathlib import Path

import pytest

from anondiff.ktree.patches import PatchError, apply, read_patch_file
from anondiff.ktree.source import available

RMAP = "".join(f"line {i}\n" for i in range(1, 31))


def run(tmp_path: Path, files: dict[str, str], *patches: tuple[str, str]) -> dict[str, str | None]:
    paths = []
    for name, text in patches:
        p = tmp_path / name
        p.write_text(text)
        paths.append(p)
    series = [p for path in paths for p in read_patch_file(path)]
    return apply(series, files.get, available)


def hunk_1_to_x(at: int = 5) -> str:
    return (f"@@ -{at - 1},3 +{at - 1},3 @@ static void fn(void)\n"
            f" line {at - 1}\n-line {at}\n+LINE {at}\n line {at + 1}\n")


def test_plain_diff_u_with_timestamps(tmp_path: Path) -> None:
    diff = ("--- linux.orig/mm/rmap.c\t2026-12-02 08:40:24.691417678 +0000\n"
            "+++ linux/mm/rmap.c\t2026-12-02 08:40:24.902548979 +0000\n" + hunk_1_to_x())
    out = run(tmp_path, {"mm/rmap.c": RMAP}, ("x.diff", diff))
    assert out == {"mm/rmap.c": RMAP.replace("line 5\n", "LINE 5\n")}


def test_p0_paths(tmp_path: Path) -> None:
    diff = "--- mm/rmap.c\n+++ mm/rmap.c\n" + hunk_1_to_x()
    out = run(tmp_path, {"mm/rmap.c": RMAP}, ("x.diff", diff))
    assert out["mm/rmap.c"] == RMAP.replace("line 5\n", "LINE 5\n")


MBOX = """\
From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: A Developer <dev@example.org>
Date: Tue, 1 Dec 2026 10:00:00 +0000
Subject: [PATCH v3 0/2] mm/rmap: a series

The cover letter has no diff; it is skipped.

--- a/mm/rmap.c
+++ b/mm/rmap.c
(not a diff: no hunk follows)

From 2222222222222222222222222222222222222222 Mon Sep 17 00:00:00 2001
From: A Developer <dev@example.org>
Subject: [PATCH v3 1/2] mm/rmap: first
 change

Commit message.

Signed-off-by: A Developer <dev@example.org>
---
 mm/rmap.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/mm/rmap.c b/mm/rmap.c
index 0123456..789abcd 100644
--- a/mm/rmap.c
+++ b/mm/rmap.c
@@ -4,3 +4,3 @@ static void fn(void)
 line 4
-line 5
+LINE 5
 line 6
--\x20
2.39.5

From 3333333333333333333333333333333333333333 Mon Sep 17 00:00:00 2001
From: A Developer <dev@example.org>
Subject: [PATCH v3 2/2] mm/rmap: second, on top of the first

---
diff --git a/mm/rmap.c b/mm/rmap.c
--- a/mm/rmap.c
+++ b/mm/rmap.c
@@ -5,2 +5,3 @@ static void fn(void)
 LINE 5
+inserted
 line 6
diff --git a/Documentation/mm/rmap.rst b/Documentation/mm/rmap.rst
--- a/Documentation/mm/rmap.rst
+++ b/Documentation/mm/rmap.rst
@@ -1,1 +1,1 @@
-old
+new
--\x20
2.39.5
"""


def test_mbox_series_in_order_cover_letter_skipped(tmp_path: Path) -> None:
    (tmp_path / "v3.mbox").write_text(MBOX)
    # The second message's hunk only applies after the first; Documentation/ is ignored.
    assert_the_two_patches(tmp_path / "v3.mbox")


def assert_the_two_patches(mbox: Path) -> None:
    """``mbox`` reads as MBOX's two patches, in order, and they apply."""
    series = read_patch_file(mbox)
    assert [p.subject for p in series] == [
        "[PATCH v3 1/2] mm/rmap: first change",
        "[PATCH v3 2/2] mm/rmap: second, on top of the first"]
    out = apply(series, {"mm/rmap.c": RMAP}.get, available)
    assert out == {"mm/rmap.c": RMAP.replace("line 5\n", "LINE 5\ninserted\n")}


def test_offset_hunk_nearest_match(tmp_path: Path) -> None:
    # 7 lines were added above since the patch was made, and "line 5" context appears twice:
    # once at the expected place + 7 and once far below; the nearest one is patched.
    moved = "".join(f"new {i}\n" for i in range(7)) + RMAP + "line 4\nline 5\nline 6\n"
    out = run(tmp_path, {"mm/rmap.c": moved}, ("x.diff", "--- a/mm/rmap.c\n+++ b/mm/rmap.c\n"
                                               + hunk_1_to_x()))
    text = out["mm/rmap.c"]
    assert text is not None
    assert text.count("LINE 5\n") == 1 and text.endswith("line 4\nline 5\nline 6\n")
    # offsets carry over: a second hunk 20 lines further down is found as well.
    diff = "--- a/mm/rmap.c\n+++ b/mm/rmap.c\n" + hunk_1_to_x(5) + hunk_1_to_x(25)
    out = run(tmp_path, {"mm/rmap.c": moved}, ("y.diff", diff))
    assert out["mm/rmap.c"] == moved.replace("line 5\n", "LINE 5\n", 1).replace(
        "line 25\n", "LINE 25\n")


def test_new_and_deleted_files_and_no_newline_at_eof(tmp_path: Path) -> None:
    diff = ("diff --git a/mm/new.c b/mm/new.c\nnew file mode 100644\n"
            "--- /dev/null\n+++ b/mm/new.c\n@@ -0,0 +1,2 @@\n+int a;\n+int b;\n"
            "\\ No newline at end of file\n"
            "diff --git a/mm/old.h b/mm/old.h\ndeleted file mode 100644\n"
            "--- a/mm/old.h\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-gone\n"
            "--- a/include/linux/rmap.h\n+++ b/include/linux/rmap.h\n@@ -1,2 +1,2 @@\n"
            " keep\n-last\n\\ No newline at end of file\n+last\n")
    out = run(tmp_path, {"mm/old.h": "gone\n", "include/linux/rmap.h": "keep\nlast"},
              ("x.diff", diff))
    assert out == {"mm/new.c": "int a;\nint b;", "mm/old.h": None,
                   "include/linux/rmap.h": "keep\nlast\n"}


def test_files_outside_the_cut_set_are_ignored(tmp_path: Path) -> None:
    diff = ("--- a/arch/x86/mm/fault.c\n+++ b/arch/x86/mm/fault.c\n@@ -1,1 +1,1 @@\n-a\n+b\n"
            "--- a/tools/testing/vma/vma.c\n+++ b/tools/testing/vma/vma.c\n@@ -1 +1 @@\n-a\n+b\n")
    assert run(tmp_path, {}, ("x.diff", diff)) == {}


def test_failing_hunk_names_patch_subject_file_and_hunk(tmp_path: Path) -> None:
    bad = MBOX.replace("-line 5\n+LINE 5\n line 6\n", "-line 5\n+LINE 5\n line 99\n")
    (tmp_path / "v3.mbox").write_text(bad)
    series = read_patch_file(tmp_path / "v3.mbox")
    with pytest.raises(PatchError) as e:
        apply(series, {"mm/rmap.c": RMAP}.get, available)
    line = bad.splitlines().index("@@ -4,3 +4,3 @@ static void fn(void)") + 1
    assert str(e.value) == (
        f"{tmp_path / 'v3.mbox'}:{line}: [PATCH v3 1/2] mm/rmap: first change: mm/rmap.c: "
        "hunk #1 does not apply (@@ -4,3 +4,3 @@ static void fn(void): its 3 context and "
        "removed lines are not in the file)")


def test_missing_file_and_existing_new_file(tmp_path: Path) -> None:
    diff = "--- a/mm/rmap.c\n+++ b/mm/rmap.c\n" + hunk_1_to_x()
    with pytest.raises(PatchError, match=r"x\.diff:3: mm/rmap\.c: no such file in the tree$"):
        run(tmp_path, {}, ("x.diff", diff))
    diff = "--- /dev/null\n+++ b/mm/rmap.c\n@@ -0,0 +1 @@\n+x\n"
    with pytest.raises(PatchError, match=r"mm/rmap\.c: creates a file that already exists$"):
        run(tmp_path, {"mm/rmap.c": RMAP}, ("y.diff", diff))


def test_not_a_patch(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("just some text\n")
    with pytest.raises(PatchError, match=r"notes\.txt: no diff found"):
        read_patch_file(tmp_path / "notes.txt")
    (tmp_path / "short.diff").write_text("--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1,3 +1,3 @@\n a\n")
    with pytest.raises(PatchError, match=r"short\.diff:3: @@ -1,3 \+1,3 @@: hunk ends early"):
        read_patch_file(tmp_path / "short.diff")


def test_form_feed_is_not_a_line_end(tmp_path: Path) -> None:
    text = "a\n\x0c\nb\x0cc\nd\n"
    diff = "--- a/mm/x.c\n+++ b/mm/x.c\n@@ -2,3 +2,3 @@\n \x0c\n-b\x0cc\n+B\n d\n"
    assert run(tmp_path, {"mm/x.c": text}, ("x.diff", diff)) == {"mm/x.c": "a\n\x0c\nB\nd\n"}


@pytest.mark.skipif(shutil.which("diff") is None, reason="needs diff(1)")
def test_round_trip_with_diff_u(tmp_path: Path) -> None:
    """Whatever diff -u says between two versions of a file turns the first into the second."""
    old = "".join(f"int f{i}(void) {{ return {i}; }}\n" for i in range(200))
    lines = old.splitlines(keepends=True)
    lines[10:12] = ["changed\n"]
    lines.insert(100, "added\n")
    del lines[150]
    new = "".join(lines) + "tail without newline"
    (tmp_path / "a/mm").mkdir(parents=True)
    (tmp_path / "b/mm").mkdir(parents=True)
    (tmp_path / "a/mm/x.c").write_text(old)
    (tmp_path / "b/mm/x.c").write_text(new)
    res = subprocess.run(["diff", "-u", "a/mm/x.c", "b/mm/x.c"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 1
    out = run(tmp_path, {"mm/x.c": old}, ("x.diff", res.stdout))
    assert out == {"mm/x.c": new}


def test_quoted_printable_message(tmp_path: Path) -> None:
    """Some mailers send patches quoted-printable: decoded before parsing (no line numbers)."""
    mbox = ("From b4 Thu Jan  1 00:00:00 1970\nFrom: d <d@example.org>\n"
            "Subject: [PATCH] mm: qp\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n\n---\n"
            "--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1,2 +1,2 @@\n a =3D 1;\n-b =3D 2;\n+b =3D 3; /* =\n"
            "caf=C3=A9 */\n")
    out = run(tmp_path, {"mm/x.c": "a = 1;\nb = 2;\n"}, ("qp.mbox", mbox))
    assert out == {"mm/x.c": "a = 1;\nb = 3; /* café */\n"}
    bad = mbox.replace("a =3D 1", "a =3D 9")
    with pytest.raises(PatchError, match=r"^\S+qp2\.mbox: \[PATCH\] mm: qp: mm/x\.c: hunk #1 "):
        run(tmp_path, {"mm/x.c": "a = 1;\nb = 2;\n"}, ("qp2.mbox", bad))


def test_series_cut_short_inside_a_patch_is_an_error(tmp_path: Path) -> None:
    """A series saved or pasted incompletely, ending right after a later patch's ---/+++ lines:
    that patch is not left out, the series is refused where it stops."""
    cut = MBOX[:MBOX.index("+++ b/mm/rmap.c\n@@ -5,2") + len("+++ b/mm/rmap.c\n")]
    (tmp_path / "cut.mbox").write_text(cut)
    line = cut.count("\n") - 1  # the --- line
    with pytest.raises(PatchError) as e:
        read_patch_file(tmp_path / "cut.mbox")
    assert str(e.value) == (
        f"{tmp_path / 'cut.mbox'}:{line}: [PATCH v3 2/2] mm/rmap: second, on top of the first: "
        "file header without any hunk (expected an '@@ -a,b +c,d @@' line after "
        "'+++ b/mm/rmap.c')")
    # the same in a plain diff, after a first complete file
    diff = "--- a/mm/rmap.c\n+++ b/mm/rmap.c\n" + hunk_1_to_x() + "--- a/mm/x.c\n+++ b/mm/x.c\n"
    (tmp_path / "cut.diff").write_text(diff)
    with pytest.raises(PatchError, match=r"cut\.diff:8: file header without any hunk "):
        read_patch_file(tmp_path / "cut.diff")


def test_patch_message_without_a_diff_is_an_error(tmp_path: Path) -> None:
    """Only the 0/N cover letter may lack a diff; 2/2 with its diff lost is refused, naming the
    line of its subject."""
    start = MBOX.index("From 3333")
    lost = MBOX[:MBOX.index("diff --git", start)]
    (tmp_path / "lost.mbox").write_text(lost)
    line = lost[:lost.index("Subject: [PATCH v3 2/2]")].count("\n") + 1
    with pytest.raises(PatchError) as e:
        read_patch_file(tmp_path / "lost.mbox")
    assert str(e.value) == (
        f"{tmp_path / 'lost.mbox'}:{line}: [PATCH v3 2/2] mm/rmap: second, on top of the first: "
        "no diff in this patch message (only the 0/N cover letter may have none)")
    (tmp_path / "one.mbox").write_text("From: d <d@example.org>\nSubject: [RFC PATCH] mm: x\n\n"
                                       "The diff was left out.\n")
    with pytest.raises(PatchError, match=r"one\.mbox:2: \[RFC PATCH\] mm: x: no diff in this "):
        read_patch_file(tmp_path / "one.mbox")


def test_cover_letter_skipped_whatever_it_holds_and_replies_without_diff(
        tmp_path: Path) -> None:
    """git format-patch --interdiff puts a whole diff in the cover letter: it is not a patch of
    the series. A reply without a diff (b4 mbox of a thread) is skipped."""
    interdiff = ("Interdiff against v2:\ndiff --git a/mm/rmap.c b/mm/rmap.c\n--- a/mm/rmap.c\n"
                 "+++ b/mm/rmap.c\n@@ -1,1 +1,1 @@\n-line 1\n+LINE 1\n")
    reply = ("From 4444444444444444444444444444444444444444 Mon Sep 17 00:00:00 2001\n"
             "From: R <r@example.org>\nSubject: Re: [PATCH v3 1/2] mm/rmap: first change\n\n"
             "> +LINE 5\nLooks good.\n\n")
    mbox = MBOX.replace("(not a diff: no hunk follows)\n", interdiff).replace(
        "From 3333", reply + "From 3333")
    (tmp_path / "v3.mbox").write_text(mbox)
    assert_the_two_patches(tmp_path / "v3.mbox")
