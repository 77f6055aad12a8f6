"""The controller's side of the driver processes: start them, send requests, fork, exit, and
always clean up (also on errors and Ctrl-C: :meth:`Processes.close` kills every process that is
still alive, by pid, and the drivers also exit when their socket closes)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from ..errors import AnondiffError
from . import driver

PAGE_SIZE = 4096


class DriverError(AnondiffError):
    pass


class Processes:
    def __init__(self, files: dict[str, int]) -> None:
        """``files``: file name -> memfd, inherited by the drivers (mapped at offset = address)."""
        self.files = files
        self.socks: dict[str, socket.socket] = {}
        self.pids: dict[str, int] = {}
        self.popen: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recv(self, name: str, sock: socket.socket, what: str) -> tuple[dict, list[int]]:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 1)
        except OSError as e:
            raise DriverError(f"process {name}: {what}: {e.strerror}") from None
        if not msg:
            raise DriverError(f"process {name} (pid {self.pids.get(name)}) died during {what}")
        reply = json.loads(msg)
        if "error" in reply:
            for fd in fds:
                os.close(fd)
            raise DriverError(f"process {name}: {reply['error']}")
        return reply, fds

    def start(self, name: str) -> int:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [theirs.fileno(), *self.files.values()]
        try:
            p = subprocess.Popen([sys.executable, "-I", "-S", driver.__file__,
                                  str(theirs.fileno()), json.dumps(self.files)],
                                 pass_fds=fds, stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            theirs.close()
        self.popen[name] = p
        self.socks[name] = ours
        self.pids[name] = p.pid
        self._recv(name, ours, "start")
        return p.pid

    def request(self, name: str, op: str, **args: object) -> dict:
        sock = self.socks[name]
        try:
            sock.send(json.dumps({"op": op, **args}).encode())
        except OSError as e:
            raise DriverError(f"process {name}: {op}: {e.strerror}") from None
        return self._recv(name, sock, op)[0]

    def fork(self, parent: str, child: str) -> int:
        reply, fds = self._recv(parent, self._send(parent, "fork"), "fork")
        if len(fds) != 1:
            raise DriverError(f"process {parent}: fork: no socket for the child")
        sock = socket.socket(fileno=fds[0])
        self.socks[child] = sock
        self.pids[child] = reply["pid"]
        hello, _ = self._recv(child, sock, "start")
        return int(hello["pid"])

    def _send(self, name: str, op: str) -> socket.socket:
        sock = self.socks[name]
        sock.send(json.dumps({"op": op}).encode())
        return sock

    def exit(self, name: str, timeout: float = 10.0) -> None:
        """A real exit; returns when the process is gone (reaped: its mm has been put)."""
        sock = self.socks.pop(name)
        pid = self.pids.pop(name)
        sock.send(json.dumps({"op": "exit"}).encode())
        sock.recv(16)                  # EOF: the process closed its end in do_exit
        sock.close()
        p = self.popen.pop(name, None)
        if p is not None:
            p.wait(timeout)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                raise DriverError(f"process {name} (pid {pid}) did not go away after exit")
            time.sleep(0.001)

    def close(self) -> None:
        for name, pid in list(self.pids.items()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for sock in self.socks.values():
            sock.close()
        for p in self.popen.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:   # pragma: no cover
                pass
        for pid in self.pids.values():
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.001)
        self.socks.clear()
        self.pids.clear()
        self.popen.clear()


def _alive(pid: int) -> bool:
    """True while the pid exists and is not a zombie (drivers' children are auto-reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return False
