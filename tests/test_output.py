"""Where the output goes: -o FILE, -o -, devices, FIFOs, symlinks, pipes, signals.

Never against the real /dev/null: device nodes are made with mknod in a temporary directory.
"""
from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
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


# -- standard output, stdin, signals: real processes ------------------------------------------

def anondiff(*args: str, **kwargs):  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "anondiff", *args], cwd=ROOT,
                          capture_output=kwargs.pop("capture", True), timeout=120, **kwargs)


def test_dash_output_is_standard_output(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["run", SEED, "-p", "v2", "--final-only", "-o", "-"])
    assert r.exit_code == 0 and r.stdout == expected_table()
    assert not (ROOT / "-").exists()


def test_dash_scenario_is_standard_input() -> None:
    text = Path(SEED).read_text()
    r = CliRunner().invoke(main, ["run", "-", "-p", "v2", "--final-only"], input=text)
    assert r.exit_code == 0 and r.stdout == expected_table().replace("seed-thread", "<stdin>")
    bad = CliRunner().invoke(main, ["run", "-"], input="description: x\nprocesses: 3\n")
    assert bad.exit_code == 2 and bad.output.startswith("anondiff: <stdin>:2")


def test_broken_pipe_is_quiet() -> None:
    for extra in ((), ("--check",)):
        r_fd, w_fd = os.pipe()
        os.close(r_fd)          # the reader is gone before anything is written
        try:
            r = anondiff("run", SEED, *extra, capture=False, stdout=w_fd,
                         stderr=__import__("subprocess").PIPE)
        finally:
            os.close(w_fd)
        assert r.returncode == 141, r.stderr
        assert r.stderr == b""


def test_write_error_on_standard_output(tmp_path: Path) -> None:
    full = tmp_path / "full"
    mknod_char(full, 1, 7)
    with open(full, "wb") as f:
        r = anondiff("run", SEED, capture=False, stdout=f, stderr=__import__("subprocess").PIPE)
    assert r.returncode == 2
    assert r.stderr.decode() == "anondiff: cannot write standard output: No space left on device\n"


def test_closed_standard_output_is_trouble() -> None:
    r = anondiff("run", SEED, capture=False, stderr=__import__("subprocess").PIPE,
                 preexec_fn=lambda: os.close(1))
    assert r.returncode == 2
    assert r.stderr.decode() == "anondiff: cannot write standard output: Bad file descriptor\n"


def interrupted(args: list[str], signame: str, ready: Callable[[int], bool],
                env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """``python -m anondiff ARGS``, sent the signal ``signame`` once ``ready(pid)`` (or after
    60 s): its status, output and errors.  It never outlives this."""
    import signal
    import subprocess
    import sys
    import time
    # (a shell that runs pytest in the background ignores SIGINT, and an ignored signal stays
    # ignored across exec: the child gets the default disposition a terminal's user has)
    p = subprocess.Popen([sys.executable, "-m", "anondiff", *args], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.poll() is None and not ready(p.pid):
            time.sleep(0.02)
        p.send_signal(getattr(signal, signame))
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, err


@pytest.mark.parametrize("signame,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupt_exits_128_plus_signal_and_leaves_nothing(tmp_path: Path, signame: str,
                                                            code: int) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def blocked(pid: int) -> bool:
        """Blocked opening the FIFO (no reader): its output is rendered by then."""
        with open(f"/proc/{pid}/wchan") as f:
            return f.read() == "wait_for_partner"

    status, out, err = interrupted(["run", SEED, "-o", str(fifo)], signame, blocked)
    assert status == code, err
    assert b"Aborted" not in err and b"Traceback" not in err
    assert os.listdir(tmp_path) == ["fifo"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


# -- the exit without the interpreter's finalization (anondiff.__main__.exit_now) ----------------

def _entry(prelude: str, *args: str):  # type: ignore[no-untyped-def]
    """``python -m anondiff ARGS`` with *prelude* run first in the same interpreter."""
    import subprocess
    import sys
    code = (prelude + "\nimport runpy, sys\nsys.argv = ['anondiff'] + sys.argv[1:]\n"
            "runpy.run_module('anondiff', run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          timeout=120)


def test_quick_exit_keeps_the_output_and_the_status() -> None:
    """Standard output is flushed before the process ends, large or not, and the status is the
    command's (1: an expectation failed; 2: trouble)."""
    r = _entry("", "run", "scenarios/cve-2022-42703.yaml", "--format", "json")
    from anondiff.render import formatter, text
    from anondiff.render import RenderOptions
    from anondiff.engine import replay
    from anondiff.policies import POLICIES
    from anondiff.scenario import load
    sc = load(str(ROOT / "scenarios" / "cve-2022-42703.yaml"))
    want = text(formatter("json").render_run([replay(sc, cls()) for cls in POLICIES],
                                             RenderOptions()))
    assert (r.returncode, r.stdout.decode()) == (0, want)
    bad = _entry("", "run", "scenarios/no-such-file.yaml")
    assert bad.returncode == 2 and bad.stderr.startswith(b"anondiff: scenarios/no-such-file")


def test_quick_exit_leaves_atexit_functions_and_threads_to_the_usual_exit() -> None:
    """An atexit function (coverage's, logging's) still runs; a thread still running is
    waited for, as the interpreter does."""
    r = _entry("import atexit, sys\natexit.register(lambda: print('atexit ran', file=sys.stderr))",
               "run", SEED, "-p", "v2", "--final-only")
    assert (r.returncode, r.stderr) == (0, b"atexit ran\n") and b"process C" in r.stdout
    r = _entry("import sys, threading, time\n"
               "def late():\n    time.sleep(0.5)\n    print('thread done', file=sys.stderr)\n"
               "threading.Thread(target=late).start()",
               "run", SEED, "-p", "v2", "--final-only")
    assert (r.returncode, r.stderr) == (0, b"thread done\n")


def test_quick_exit_leaves_the_garbage_collector_off() -> None:
    """Switched back on after the command, the collector would walk everything the command
    allocated (its youngest generation) at the next allocation, just before the process ends
    (a command run by CliRunner switches it back on: test_cli)."""
    r = _entry("import gc, os, sys\nruns = []\n"
               "real_disable = gc.disable\n"     # the command's start: collections from there
               "def count(phase, info):\n    runs.append(phase)\n"
               "def disable():\n    if count not in gc.callbacks:\n"
               "        gc.callbacks.append(count)\n"
               "    real_disable()\n"
               "gc.disable = disable\n"
               "real_exit = os._exit\n"
               "def _exit(code):\n    print('collections', len(runs), file=sys.stderr)\n"
               "    real_exit(code)\n"
               "os._exit = _exit",
               "run", SEED, "-p", "v2", "--final-only")
    assert (r.returncode, r.stderr) == (0, b"collections 0\n") and b"process C" in r.stdout
