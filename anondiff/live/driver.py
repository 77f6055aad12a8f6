"""The process that performs a scenario's syscalls, one per scenario process.

Run as a script (``python driver.py FD``: no anondiff import, so the address space holds only
the interpreter's own mappings), it serves requests on a SOCK_SEQPACKET socket, one JSON object
each, and answers ``{"ok": ...}`` or ``{"error": "..."}``.  ``fork`` is a real fork(2): the
child closes its parent's socket and serves a new one, whose other end the parent passes back
to the controller (SCM_RIGHTS).  ``exit`` is a real _exit(2).  Every driver exits when its
controller goes away (EOF on its socket), so nothing outlives anondiff.
"""
import ctypes
import errno
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
libc.syscall.restype = ctypes.c_long
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                       ctypes.c_ulong]
SYS_BRK, SYS_MREMAP = 12, 25                        # x86-64
MREMAP = {"maymove": 1, "fixed": 2, "dontunmap": 4}
PR_SET_MM, PR_SET_MM_MAP = 35, 14
#: the top-down search never looks above mm->mmap_base, which is at least 128 MiB below the
#: stack's lowest possible start (mmap_base(): the gap is the stack rlimit clamped to 128 MiB or
#: more); placeholders stop this far below the stack, clear of its guard gap
STACK_CLEARANCE = 64 << 20


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
        fd, off = memfds[req["file"]], req["offset"]
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


def _gaps(lo, hi):
    """The free ranges of this process between lo and hi."""
    out, at = [], lo
    with open("/proc/self/maps") as f:
        for line in f:
            a, b = (int(x, 16) for x in line.split()[0].split("-"))
            if b <= at:
                continue
            if a >= hi:
                break
            if a > at:
                out.append((at, a))
            at = max(at, b)
    if at < hi:
        out.append((at, hi))
    return out


def _placeholders(keep):
    """Map a placeholder over every free range of the address space that get_unmapped_area()
    would search, except the ranges in ``keep``: then the one place the kernel can find for a
    mapping that must move is the scenario's.  Each is MAP_SHARED|MAP_ANONYMOUS (its own shmem
    file: it never merges with a neighbour), PROT_NONE and MAP_NORESERVE (nothing charged)."""
    with open("/proc/sys/vm/mmap_min_addr") as f:
        lo = max(int(f.read()), PAGE_SIZE)
    with open("/proc/self/maps") as f:
        stack = next(int(line.split("-")[0], 16) for line in f if line.rstrip().endswith("[stack]"))
    free = []
    for a, b in _gaps(lo, stack - STACK_CLEARANCE):
        cuts = sorted((max(a, x), min(b, y)) for x, y in keep if x < b and a < y)
        for x, y in cuts:
            if x > a:
                free.append((a, x))
            a = max(a, y)
        if a < b:
            free.append((a, b))
    done = []
    for a, b in free:
        got = libc.mmap(a, b - a, 0, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                        -1, 0)
        if got != a:
            for x, y in done:
                libc.munmap(x, y - x)
            if got not in (None, ctypes.c_void_p(-1).value):
                libc.munmap(got, b - a)
            raise Failed(f"placeholder {a:#x}-{b:#x}: {os.strerror(ctypes.get_errno())}")
        done.append((a, b))
    return done


def do_mremap(req):
    """mremap(2) as the scenario says.  With MREMAP_MAYMOVE alone the kernel chooses where a
    mapping that cannot grow in place goes (get_unmapped_area() with no hint: the highest free
    range below mmap_base that fits): placeholders leave it only the scenario's ``to`` (and the
    range an in-place growth would take, so that the kernel's choice to grow in place or to
    move is its own).  Returns the address mremap() returned."""
    addr, old_len, new_len = req["addr"], req["old_len"], req["new_len"]
    flags = sum(MREMAP[f] for f in req["flags"])
    to = req["to"]
    held = []
    if flags == MREMAP["maymove"] and new_len > old_len:
        keep = [(addr + old_len, addr + new_len)]
        if to is not None:
            keep.append((to, to + new_len))
        held = _placeholders(keep)
    try:
        got = libc.syscall(SYS_MREMAP, ctypes.c_ulong(addr), ctypes.c_ulong(old_len),
                           ctypes.c_ulong(new_len), ctypes.c_ulong(flags),
                           ctypes.c_ulong(to or 0))
        err = ctypes.get_errno()
    finally:
        for a, b in held:
            libc.munmap(a, b - a)
    if got == -1:
        return {"errno": errno.errorcode.get(err, str(err))}
    return {"addr": got}


class PrctlMmMap(ctypes.Structure):
    """struct prctl_mm_map (include/uapi/linux/prctl.h)."""
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
        "arg_start", "arg_end", "env_start", "env_end", "auxv")] + \
        [("auxv_size", ctypes.c_uint32), ("exe_fd", ctypes.c_uint32)]


#: /proc/PID/stat fields (proc_pid_stat(), counted from 1) of struct prctl_mm_map's members
STAT_FIELDS = {"start_code": 26, "end_code": 27, "start_stack": 28, "start_data": 45,
               "end_data": 46, "start_brk": 47, "arg_start": 48, "arg_end": 49,
               "env_start": 50, "env_end": 51}


def _mm_map():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()        # from field 3 on
    m = PrctlMmMap(**{k: int(fields[n - 3]) for k, n in STAT_FIELDS.items()})
    m.brk = libc.syscall(SYS_BRK, ctypes.c_ulong(0))
    m.exe_fd = 0xFFFFFFFF                                  # (u32)-1: keep /proc/PID/exe
    return m


def _set_mm_map(m):
    """prctl(PR_SET_MM, PR_SET_MM_MAP, ...), as CRIU restores a task's mm fields: it needs no
    capability without exe_fd (PR_SET_MM_START_BRK alone needs CAP_SYS_RESOURCE, which a
    container may lack); validate_prctl_map_addr() wants start_brk <= brk."""
    if libc.prctl(PR_SET_MM, PR_SET_MM_MAP, ctypes.addressof(m), ctypes.sizeof(m), 0) != 0:
        err = ctypes.get_errno()
        raise Failed(f"prctl(PR_SET_MM, PR_SET_MM_MAP, start_brk {m.start_brk:#x}, "
                     f"brk {m.brk:#x}): {os.strerror(err)}")


def do_brk(req):
    """brk(2) from ``start`` to ``end``: the break is first put at ``start`` (start_brk one
    page below the lower of the two, so that a VMA ending at ``start`` is the brk VMA that
    do_brk_flags() may expand), brk() is called, and the interpreter's own break is put back
    (its malloc keeps using it).  Returns the break brk() returned."""
    start, end = req["start"], req["end"]
    saved = _mm_map()
    m = _mm_map()
    low = min(start, end)
    m.start_brk = low - PAGE_SIZE if low - PAGE_SIZE >= 0x10000 else low
    m.brk = start
    _set_mm_map(m)
    try:
        got = libc.syscall(SYS_BRK, ctypes.c_ulong(end))
    finally:
        _set_mm_map(saved)
    return {"brk": got}


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
            elif op == "mremap":
                reply.update(do_mremap(req))
            elif op == "brk":
                reply.update(do_brk(req))
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
