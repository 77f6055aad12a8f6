"""The process that performs a scenario's syscalls, one per scenario process.

Run as a script (``python driver.py FD``: no anondiff import, so the address space holds only
the interpreter's own mappings), it serves requests on a SOCK_SEQPACKET socket, one JSON object
each, and answers ``{"ok": ...}`` or ``{"error": "..."}``.  ``fork`` is a real fork(2): the
child closes its parent's socket and serves a new one, whose other end the parent passes back
to the controller (SCM_RIGHTS).  ``exit`` is a real _exit(2).  Every driver exits when its
controller goes away (EOF on its socket), so nothing outlives anondiff.
"""
import ctypes
import json
import os
import signal
import socket
import sys

MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MAP_NORESERVE, MAP_FIXED_NOREPLACE = 0x4000, 0x100000
MADV = {"dontneed": 4, "dontfork": 10, "dofork": 11, "dontdump": 16, "dodump": 17,
        "wipeonfork": 18, "keeponfork": 19}
PAGE_SIZE = 4096

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class Failed(Exception):
    pass


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise Failed(f"{what}: {os.strerror(err)}")


def do_mmap(req, memfds):
    start, length = req["start"], req["length"]
    flags = MAP_FIXED_NOREPLACE | (MAP_SHARED if req["shared"] else MAP_PRIVATE)
    fd, off = -1, 0
    if req["file"]:
        fd, off = memfds[req["file"]], start
    else:
        flags |= MAP_ANONYMOUS
    if req.get("noreserve"):
        flags |= MAP_NORESERVE
    got = libc.mmap(start, length, req["prot"], flags, fd, off)
    if got != start:
        err = ctypes.get_errno()
        if got in (None, ctypes.c_void_p(-1).value):
            raise Failed(f"mmap {start:#x}+{length:#x}: {os.strerror(err)}")
        libc.munmap(got, length)
        raise Failed(f"mmap {start:#x}: the kernel placed it at {got:#x}")


def do_write(req):
    # A real store where the page is writable; through /proc/self/mem (a FOLL_FORCE write, as
    # ptrace does) where it is not.  /proc/self/mem is opened anew every time: an open file
    # keeps the mm it was opened in, which after fork is the parent's.
    for addr in req["addrs"]:
        if req["writable"]:
            ctypes.memset(addr, 0x5A, 1)
            continue
        fd = os.open("/proc/self/mem", os.O_RDWR)
        try:
            if os.pwrite(fd, b"\x5a", addr) != 1:
                raise Failed(f"write {addr:#x}: short write to /proc/self/mem")
        except OSError as e:
            raise Failed(f"write {addr:#x} through /proc/self/mem: {e.strerror}") from None
        finally:
            os.close(fd)


def serve(sock, memfds):
    while True:
        try:
            msg = sock.recv(1 << 16)
        except InterruptedError:
            continue
        if not msg:
            os._exit(0)
        req = json.loads(msg)
        op = req["op"]
        reply = {"ok": True}
        fds = []
        try:
            if op == "mmap":
                do_mmap(req, memfds)
            elif op == "munmap":
                _check(libc.munmap(req["start"], req["length"]), "munmap")
            elif op == "mprotect":
                _check(libc.mprotect(req["start"], req["length"], req["prot"]), "mprotect")
            elif op == "madvise":
                _check(libc.madvise(req["start"], req["length"], MADV[req["advice"]]),
                       f"madvise({req['advice']})")
            elif op == "write":
                do_write(req)
            elif op == "fork":
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                pid = os.fork()
                if pid == 0:
                    sock.close()
                    ours.close()
                    sock = theirs
                    sock.send(json.dumps({"ok": True, "pid": os.getpid()}).encode())
                    continue
                theirs.close()
                reply["pid"] = pid
                fds = [ours.fileno()]
            elif op == "exit":
                os._exit(0)
            elif op != "ping":
                raise Failed(f"unknown request {op!r}")
        except Failed as e:
            reply = {"error": str(e)}
        socket.send_fds(sock, [json.dumps(reply).encode()], fds) if fds else \
            sock.send(json.dumps(reply).encode())
        if fds:
            ours.close()


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    memfds = json.loads(sys.argv[2])      # file name -> memfd, mapped at offset = address
    # children are reaped by the kernel at once; the controller waits for their pid to go
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the controller cleans up on Ctrl-C
    # Every scenario process on one CPU (forks inherit it): a page waiting in another CPU's
    # LRU batch holds a reference that wp_can_reuse_anon_folio()'s lru_add_drain() (local CPU
    # only) cannot drop, and the write then copies a page it would have reused.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sock.send(json.dumps({"ok": True, "pid": os.getpid()}).encode())
    serve(sock, memfds)


if __name__ == "__main__":
    main()
