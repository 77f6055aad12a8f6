"""Two BPF programs, assembled here and loaded through bpf(2) with ctypes (no compiler, no
libbpf; see README "Checking a kernel with anondiff live" for why):

* a ``task_vma`` iterator (BPF_TRACE_ITER on ``bpf_iter_task_vma``) that writes the kernel
  address of every VMA of one task to its seq_file: ``struct vm_area_struct *`` values;
* a BPF_PROG_TYPE_SYSCALL program, run with BPF_PROG_TEST_RUN, that copies up to
  ``READ_MAX`` bytes of kernel memory with bpf_probe_read_kernel() into an array map: every
  other field (the anon_vma_chain list, each anon_vma, struct page) is read through it, at
  offsets taken from BTF.

Only the addresses of the tasks anondiff started (or the pid the user named) are read.
"""
from __future__ import annotations

import ctypes
import os
import struct

from .btf import KIND_FUNC, Btf

NR_BPF = 321                       # x86-64
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_PROG_LOAD = 0, 1, 5
BPF_PROG_TEST_RUN, BPF_LINK_CREATE, BPF_ITER_CREATE = 10, 28, 33
BPF_MAP_TYPE_ARRAY = 2
BPF_PROG_TYPE_TRACING, BPF_PROG_TYPE_SYSCALL = 26, 31
BPF_TRACE_ITER = 28
BPF_F_SLEEPABLE = 1 << 4
BPF_FUNC_map_lookup_elem, BPF_FUNC_probe_read_kernel, BPF_FUNC_seq_write = 1, 113, 127
READ_MAX = 4096

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    pass


def _bpf(cmd: int, attr: bytearray, what: str) -> int:
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    ret = _libc.syscall(NR_BPF, cmd, buf, len(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"bpf({what}): {os.strerror(err)}")
    return int(ret)


# -- instruction encoding (include/uapi/linux/bpf.h, struct bpf_insn) ---------------------------
def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def mov_reg(dst: int, src: int) -> bytes:
    return _insn(0xBF, dst, src)


def mov_imm(dst: int, imm: int) -> bytes:
    return _insn(0xB7, dst, imm=imm)


def add_imm(dst: int, imm: int) -> bytes:
    return _insn(0x07, dst, imm=imm)


def ldx_dw(dst: int, src: int, off: int) -> bytes:
    return _insn(0x79, dst, src, off)


def stx_dw(dst: int, off: int, src: int) -> bytes:
    return _insn(0x7B, dst, src, off)


def st_w(dst: int, off: int, imm: int) -> bytes:
    return _insn(0x62, dst, off=off, imm=imm)


def jeq_imm(dst: int, imm: int, off: int) -> bytes:
    return _insn(0x15, dst, off=off, imm=imm)


def jgt_imm(dst: int, imm: int, off: int) -> bytes:
    return _insn(0x25, dst, off=off, imm=imm)


def call(func: int) -> bytes:
    return _insn(0x85, imm=func)


def exit_insn() -> bytes:
    return _insn(0x95)


def ld_map_fd(dst: int, fd: int) -> bytes:
    return _insn(0x18, dst, 1, 0, fd) + _insn(0, 0, 0, 0, 0)    # BPF_PSEUDO_MAP_FD


def _prog_load(prog_type: int, insns: bytes, name: bytes, flags: int = 0,
               attach_type: int = 0, attach_btf_id: int = 0) -> int:
    license = ctypes.create_string_buffer(b"GPL")
    code = ctypes.create_string_buffer(insns, len(insns))
    log = ctypes.create_string_buffer(1 << 16)
    attr = bytearray(128)
    struct.pack_into("<IIQQIIQII16sIIIIQIIQIII", attr, 0, prog_type, len(insns) // 8,
                     ctypes.addressof(code), ctypes.addressof(license), 1, len(log),
                     ctypes.addressof(log), 0, flags, name, 0, attach_type, 0, 0, 0, 0, 0, 0, 0,
                     attach_btf_id, 0)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "PROG_LOAD")
    except BpfError as e:
        text = log.value.decode(errors="replace").strip().splitlines()
        raise BpfError(e.errno, f"{e.strerror}; verifier: {text[-1] if text else '-'}") from None


class KernelReader:
    """Reads kernel memory and lists a task's VMAs.  Needs root (CAP_BPF + CAP_PERFMON)."""

    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        attr = bytearray(72)
        struct.pack_into("<IIII", attr, 0, BPF_MAP_TYPE_ARRAY, 4, READ_MAX + 8, 1)
        self.map_fd = _bpf(BPF_MAP_CREATE, attr, "MAP_CREATE")
        self._fds = [self.map_fd]
        try:
            self.read_fd = self._load_read()
            self.iter_fd = self._load_iter()
        except BaseException:
            self.close()
            raise
        self._ctx = ctypes.create_string_buffer(16)
        self._value = ctypes.create_string_buffer(READ_MAX + 8)
        self._key = ctypes.c_uint32(0)

    def _load_read(self) -> int:
        insns = b"".join([
            mov_reg(6, 1),                       # r6 = ctx {u64 addr; u64 len}
            st_w(10, -4, 0),                     # key = 0
            ld_map_fd(1, self.map_fd),
            mov_reg(2, 10), add_imm(2, -4),
            call(BPF_FUNC_map_lookup_elem),
            jeq_imm(0, 0, 8),                    # -> out
            mov_reg(7, 0),
            ldx_dw(3, 6, 0),                     # r3 = addr
            ldx_dw(2, 6, 8),                     # r2 = len
            jgt_imm(2, READ_MAX, 4),             # -> out
            mov_reg(1, 7),
            call(BPF_FUNC_probe_read_kernel),
            stx_dw(7, READ_MAX, 0),              # the helper's return value after the bytes
            mov_imm(0, 0),                       # padding target keeps offsets simple
            mov_imm(0, 0),                       # out:
            exit_insn(),
        ])
        fd = _prog_load(BPF_PROG_TYPE_SYSCALL, insns, b"anondiff_read", BPF_F_SLEEPABLE)
        self._fds.append(fd)
        return fd

    def _load_iter(self) -> int:
        btf_id = self.btf.type_id(KIND_FUNC, "bpf_iter_task_vma")
        insns = b"".join([
            mov_reg(6, 1),                       # r6 = struct bpf_iter__task_vma *
            ldx_dw(7, 6, 16),                    # r7 = ctx->vma
            jeq_imm(7, 0, 7),                    # -> out
            ldx_dw(1, 6, 0),                     # r1 = ctx->meta
            ldx_dw(1, 1, 0),                     # r1 = meta->seq
            stx_dw(10, -8, 7),
            mov_reg(2, 10), add_imm(2, -8),
            mov_imm(3, 8),
            call(BPF_FUNC_seq_write),
            mov_imm(0, 0),                       # out:
            exit_insn(),
        ])
        fd = _prog_load(BPF_PROG_TYPE_TRACING, insns, b"anondiff_vmas", 0, BPF_TRACE_ITER, btf_id)
        self._fds.append(fd)
        return fd

    def read(self, addr: int, size: int) -> bytes:
        if not 0 < size <= READ_MAX:
            raise ValueError(size)
        struct.pack_into("<QQ", self._ctx, 0, addr, size)
        attr = bytearray(80)
        struct.pack_into("<IIIIQQIIIIQQ", attr, 0, self.read_fd, 0, 0, 0, 0, 0, 0, 0, 16, 0,
                         ctypes.addressof(self._ctx), 0)
        _bpf(BPF_PROG_TEST_RUN, attr, "PROG_TEST_RUN")
        attr = bytearray(32)
        struct.pack_into("<IIQQQ", attr, 0, self.map_fd, 0, ctypes.addressof(self._key),
                         ctypes.addressof(self._value), 0)
        _bpf(BPF_MAP_LOOKUP_ELEM, attr, "MAP_LOOKUP_ELEM")
        raw = self._value.raw
        ret = struct.unpack_from("<q", raw, READ_MAX)[0]
        if ret != 0:
            raise BpfError(-ret, f"cannot read kernel memory at {addr:#x}: {os.strerror(-ret)}")
        return raw[:size]

    def u64(self, addr: int) -> int:
        return int(struct.unpack("<Q", self.read(addr, 8))[0])

    def vmas(self, tid: int) -> list[int]:
        """Kernel addresses of the VMAs of task ``tid``, ascending."""
        info = bytearray(16)
        struct.pack_into("<I", info, 0, tid)
        ibuf = (ctypes.c_char * 16).from_buffer(info)
        attr = bytearray(64)
        struct.pack_into("<IIIIQI", attr, 0, self.iter_fd, 0, BPF_TRACE_ITER, 0,
                         ctypes.addressof(ibuf), 16)
        link = _bpf(BPF_LINK_CREATE, attr, "LINK_CREATE")
        try:
            attr = bytearray(8)
            struct.pack_into("<II", attr, 0, link, 0)
            it = _bpf(BPF_ITER_CREATE, attr, "ITER_CREATE")
            try:
                data = b""
                while True:
                    chunk = os.read(it, 1 << 16)
                    if not chunk:
                        break
                    data += chunk
            finally:
                os.close(it)
        finally:
            os.close(link)
        return [v for (v,) in struct.iter_unpack("<Q", data)]

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
