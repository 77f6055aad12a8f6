"""Where the output goes: -o FILE, -o -, devices, FIFOs, symlinks, pipes, signals.

Never against the real /dev/null: device nodes are made with mknod in a temporary directory.
"""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from anondiff.cli import main
from anondiff.output import WriteError, write_file

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios" / "seed-thread.yaml")


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def expected_table() -> str:
    r = invoke("run", SEED, "-p", "v2", "--final-only")
    assert r.exit_code == 0
    return r.output


def mknod_char(path: Path, major: int, minor: int) -> None:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    except PermissionError:
        pytest.skip("mknod needs root (CAP_MKNOD)")
    os.chmod(path, 0o666)


def test_character_device_is_written_into_not_replaced(tmp_path: Path) -> None:
    null = tmp_path / "null"
    mknod_char(null, 1, 3)
    r = invoke("run", SEED, "-p", "v2", "--final-only", "-o", str(null))
    assert r.exit_code == 0 and r.output == ""
    st = os.stat(null)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert os.listdir(tmp_path) == ["null"]


def test_full_device_reports_the_error_and_stays(tmp_path: Path) -> None:
    full = tmp_path / "full"
    mknod_char(full, 1, 7)
    r = CliRunner().invoke(main, ["run", SEED, "-p", "v2", "-o", str(full)])
    assert r.exit_code == 2
    assert r.output.strip() == f"anondiff: {full}: cannot write: No space left on device"
    assert stat.S_ISCHR(os.stat(full).st_mode)
    assert os.listdir(tmp_path) == ["full"]


def test_symlink_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old\n")
    os.chmod(real, 0o640)
    link = tmp_path / "link.txt"
    link.symlink_to("real.txt")
    r = invoke("run", SEED, "-p", "v2", "--final-only", "-o", str(link))
    assert r.exit_code == 0
    assert link.is_symlink() and os.readlink(link) == "real.txt"
    assert real.read_text() == expected_table()
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["link.txt", "real.txt"]


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to("new.txt")
    assert invoke("run", SEED, "-p", "v2", "--final-only", "-o", str(link)).exit_code == 0
    assert link.is_symlink() and (tmp_path / "new.txt").read_text() == expected_table()


def test_fifo_is_written_into(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = invoke("run", SEED, "-p", "v2", "--final-only", "-o", str(fifo))
    reader.join(timeout=30)
    assert r.exit_code == 0
    assert got == [expected_table().encode()]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.listdir(tmp_path) == ["fifo"]


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old")
    os.chmod(out, 0o604)
    assert invoke("run", SEED, "-p", "v2", "--final-only", "-o", str(out)).exit_code == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o604 and out.read_text() == expected_table()


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_file_honours_the_umask(tmp_path: Path, mask: int) -> None:
    out = tmp_path / "out.txt"
    old = os.umask(mask)
    try:
        assert invoke("run", SEED, "-p", "v2", "-o", str(out)).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~mask


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old")

    def chunks():  # type: ignore[no-untyped-def]
        yield "x" * 100_000
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_file(str(out), chunks())
    assert os.listdir(tmp_path) == ["out.txt"] and out.read_text() == "old"


def test_chunks_and_text_write_the_same(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_file(str(a), "héllo\nworld\n")
    write_file(str(b), iter(["hé", "llo\n", "", "world\n"]))
    assert a.read_bytes() == b.read_bytes() == "héllo\nworld\n".encode()


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WriteError) as err:
        write_file(str(tmp_path / "nope" / "out.txt"), "x")
    assert str(err.value) == f"{tmp_path / 'nope' / 'out.txt'}: cannot write: No such file or directory"
    assert os.listdir(tmp_path) == []
