"""Read the real anon_vma topology of running tasks: their VMAs in a range, each VMA's
anon_vma and anon_vma_chain list, every anon_vma reachable from them (root, parent, counters,
refcount), and the anonymous pages mapped (PFN from /proc/PID/pagemap, then ``struct page``
through the vmemmap).

Everything is read through :class:`~anondiff.live.bpf.KernelReader` at offsets from BTF.  The
result is raw: kernel addresses, no names (:mod:`anondiff.live.convert` names them).
"""
from __future__ import annotations

import mmap
import os
import struct
from typing import NamedTuple

from ..errors import AnondiffError
from .btf import BtfError, load_vmlinux

BTF_PATH = "/sys/kernel/btf/vmlinux"
LOCKDOWN_PATH = "/sys/kernel/security/lockdown"
PAGE_SIZE = 4096
# include/linux/mm.h (6.18)
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8
VM_DONTCOPY, VM_ACCOUNT, VM_WIPEONFORK = 0x20000, 0x100000, 0x2000000
PAGE_MAPPING_ANON, PAGE_MAPPING_KSM = 0x1, 0x3
#: x86-64 vmemmap bases without memory-layout KASLR (4- and 5-level paging); the one in use is
#: verified on a page whose anon_vma is known before any page is believed
VMEMMAP_CANDIDATES = (0xFFFFEA0000000000, 0xFFD4000000000000)


class CaptureError(AnondiffError):
    """Capture is impossible here: which check failed, and what to try."""


class RawPage(NamedTuple):
    addr: int
    pfn: int
    anon_vma: int           # page->mapping without PAGE_MAPPING_ANON; 0 if not anonymous
    pgindex: int            # page->__folio_index


class RawVma(NamedTuple):
    addr: int               # struct vm_area_struct *
    start: int
    end: int
    pgoff: int
    flags: int              # vm_flags
    file: bool
    anon_vma: int           # 0 = NULL
    chain: tuple[int, ...]  # anon_vma of each anon_vma_chain on vma->anon_vma_chain, head first
    pages: tuple[RawPage, ...]


class RawAnonVma(NamedTuple):
    addr: int
    root: int
    parent: int
    refcount: int
    num_children: int
    num_active_vmas: int


class RawTask(NamedTuple):
    pid: int
    mm: int                 # struct mm_struct * (0 if no VMA in range)
    vmas: tuple[RawVma, ...]


def preflight() -> None:
    """Raise :class:`CaptureError` naming the first check that fails."""
    if os.geteuid() != 0:
        raise CaptureError(f"capture needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN for "
                           f"pagemap PFNs); running as euid {os.geteuid()}")
    if not os.path.exists(BTF_PATH):
        raise CaptureError(f"{BTF_PATH} is missing: the kernel has no BTF "
                           "(CONFIG_DEBUG_INFO_BTF=n), so no field offsets")
    try:
        with open(LOCKDOWN_PATH) as f:
            mode = f.read()
    except OSError:
        mode = ""
    if "[confidentiality]" in mode:
        raise CaptureError(f"{LOCKDOWN_PATH}: lockdown is 'confidentiality', which refuses "
                           "bpf_probe_read_kernel()")


class Reader:
    """One BTF parse and one pair of BPF programs, reused for every capture."""

    def __init__(self) -> None:
        from .bpf import BpfError, KernelReader
        preflight()
        try:
            self.btf = load_vmlinux(BTF_PATH)
        except (OSError, BtfError) as e:
            raise CaptureError(f"{BTF_PATH}: cannot parse: {e}") from None
        try:
            self.k = KernelReader(self.btf)
        except BpfError as e:
            raise CaptureError(f"BPF is not usable: {e.strerror}") from None
        except BtfError as e:
            raise CaptureError(f"{BTF_PATH}: {e}") from None
        o = self.btf.offset
        try:
            self.off = {
                "vm_start": o("vm_area_struct", "vm_start"),
                "vm_end": o("vm_area_struct", "vm_end"),
                "vm_mm": o("vm_area_struct", "vm_mm"),
                "vm_flags": o("vm_area_struct", "vm_flags"),
                "vm_pgoff": o("vm_area_struct", "vm_pgoff"),
                "vm_file": o("vm_area_struct", "vm_file"),
                "vma_anon_vma": o("vm_area_struct", "anon_vma"),
                "vma_chain": o("vm_area_struct", "anon_vma_chain"),
                "avc_anon_vma": o("anon_vma_chain", "anon_vma"),
                "avc_same_vma": o("anon_vma_chain", "same_vma"),
                "av_root": o("anon_vma", "root"),
                "av_parent": o("anon_vma", "parent"),
                "av_refcount": o("anon_vma", "refcount"),
                "av_children": o("anon_vma", "num_children"),
                "av_active": o("anon_vma", "num_active_vmas"),
                "mm_users": o("mm_struct", "mm_users"),
                "pg_head": o("page", "compound_head"),
                "pg_mapping": o("page", "mapping"),
                "pg_index": self._page_index(),
            }
            self.page_size = self.btf.size("page")
            self.vma_size = self.btf.size("vm_area_struct")
        except BtfError as e:
            self.k.close()
            raise CaptureError(f"{BTF_PATH}: {e} (a kernel without split anon_vma counters?)") from None
        self.vmemmap = 0

    def _page_index(self) -> int:
        # page->index became page->__folio_index in v6.16 (commit acc53a0b4c15 ("mm: rename
        # page->index to page->__folio_index"))
        try:
            return self.btf.offset("page", "__folio_index")
        except BtfError:
            return self.btf.offset("page", "index")

    def close(self) -> None:
        self.k.close()

    # -- the pieces ------------------------------------------------------------------------
    def vma(self, addr: int, pid: int) -> RawVma:
        raw = self.k.read(addr, self.vma_size)
        q = lambda name: struct.unpack_from("<Q", raw, self.off[name])[0]  # noqa: E731
        head = addr + self.off["vma_chain"]
        chain: list[int] = []
        pos = q("vma_chain")
        while pos != head:
            if len(chain) > 10000:
                raise CaptureError(f"VMA {addr:#x}: anon_vma_chain list does not end")
            avc = pos - self.off["avc_same_vma"]
            chain.append(self.k.u64(avc + self.off["avc_anon_vma"]))
            pos = self.k.u64(pos)
        start, end = q("vm_start"), q("vm_end")
        return RawVma(addr, start, end, q("vm_pgoff"), q("vm_flags"), q("vm_file") != 0,
                      q("vma_anon_vma"), tuple(chain), self.pages(pid, start, end))

    def anon_vma(self, addr: int) -> RawAnonVma:
        raw = self.k.read(addr, max(self.off[k] for k in
                                    ("av_root", "av_parent", "av_refcount", "av_children",
                                     "av_active")) + 8)
        q = lambda name: struct.unpack_from("<Q", raw, self.off[name])[0]  # noqa: E731
        i = lambda name: struct.unpack_from("<i", raw, self.off[name])[0]  # noqa: E731
        return RawAnonVma(addr, q("av_root"), q("av_parent"), i("av_refcount"),
                          i("av_children"), i("av_active"))

    def pages(self, pid: int, start: int, end: int) -> tuple[RawPage, ...]:
        n = (end - start) // PAGE_SIZE
        try:
            with open(f"/proc/{pid}/pagemap", "rb") as f:
                f.seek(start // PAGE_SIZE * 8)
                entries = f.read(8 * n)
        except OSError as e:
            raise CaptureError(f"/proc/{pid}/pagemap: {e.strerror}") from None
        out = []
        for i, (pme,) in enumerate(struct.iter_unpack("<Q", entries)):
            if not pme >> 63 & 1 or pme >> 61 & 1:  # not present, or file page / shared anon
                continue
            pfn = pme & ((1 << 55) - 1)
            if pfn == 0:
                raise CaptureError(f"/proc/{pid}/pagemap shows no PFNs (needs CAP_SYS_ADMIN)")
            mapping, index = self.page_mapping(pfn)
            if mapping & PAGE_MAPPING_KSM == PAGE_MAPPING_ANON:
                out.append(RawPage(start + i * PAGE_SIZE, pfn, mapping & ~PAGE_MAPPING_KSM, index))
        return tuple(out)

    def page_mapping(self, pfn: int, base: int | None = None) -> tuple[int, int]:
        """(page->mapping, index) of the folio holding ``pfn``."""
        base = self.vmemmap if base is None else base
        if not base:
            base = self.vmemmap = self.find_vmemmap()
        page = base + pfn * self.page_size
        raw = self.k.read(page, self.page_size)
        head = struct.unpack_from("<Q", raw, self.off["pg_head"])[0]
        if head & 1:                            # a tail page: the folio's head has the mapping
            raw = self.k.read(head - 1, self.page_size)
        return (struct.unpack_from("<Q", raw, self.off["pg_mapping"])[0],
                struct.unpack_from("<Q", raw, self.off["pg_index"])[0])

    def find_vmemmap(self) -> int:
        """The vmemmap base, checked on a page of our own whose anon_vma we read from its VMA."""
        buf = mmap.mmap(-1, PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            buf[0:1] = b"x"
            addr = _address_of(buf)
            with open("/proc/self/pagemap", "rb") as f:
                f.seek(addr // PAGE_SIZE * 8)
                (e,) = struct.unpack("<Q", f.read(8))
            pfn = e & ((1 << 55) - 1)
            if not e >> 63 or not pfn:
                raise CaptureError("/proc/self/pagemap shows no PFN for a page just written")
            want = None
            for v in self.k.vmas(os.getpid()):
                # the mapping may have merged with a neighbour: the VMA holding it
                if self.k.u64(v + self.off["vm_start"]) <= addr < self.k.u64(v + self.off["vm_end"]):
                    want = self.k.u64(v + self.off["vma_anon_vma"])
            if not want:
                raise CaptureError("cannot find the anon_vma of a page just written")
            for base in VMEMMAP_CANDIDATES:
                try:
                    mapping, _index = self.page_mapping(pfn, base)
                except OSError:
                    continue
                if mapping == want | PAGE_MAPPING_ANON:
                    return base
            raise CaptureError("cannot locate the vmemmap (memory-layout KASLR?): no candidate "
                               "base gives a known page's anon_vma")
        finally:
            buf.close()

    # -- a whole task ----------------------------------------------------------------------
    def task(self, pid: int, lo: int = 0, hi: int = 1 << 64) -> RawTask:
        vmas = []
        mm = 0
        try:
            addrs = self.k.vmas(pid)
        except OSError as e:
            raise CaptureError(f"pid {pid}: cannot iterate its VMAs: {e.strerror}") from None
        for addr in addrs:
            start = self.k.u64(addr + self.off["vm_start"])
            end = self.k.u64(addr + self.off["vm_end"])
            if end <= lo or start >= hi:
                continue
            mm = self.k.u64(addr + self.off["vm_mm"])
            vmas.append(self.vma(addr, pid))
        if not addrs and not os.path.exists(f"/proc/{pid}"):
            raise CaptureError(f"no process {pid}")
        return RawTask(pid, mm, tuple(vmas))

    def anon_vmas(self, tasks: list[RawTask]) -> dict[int, RawAnonVma]:
        """Every anon_vma reachable from the tasks' VMAs, pages, and their roots and parents."""
        out: dict[int, RawAnonVma] = {}
        todo = [a for t in tasks for v in t.vmas
                for a in (v.anon_vma, *v.chain, *(p.anon_vma for p in v.pages)) if a]
        while todo:
            a = todo.pop()
            if a in out:
                continue
            av = out[a] = self.anon_vma(a)
            todo.extend(x for x in (av.root, av.parent) if x and x not in out)
        return out

    def mm_users(self, mm: int) -> int:
        return struct.unpack("<i", self.k.read(mm + self.off["mm_users"], 4))[0]


def _address_of(buf: mmap.mmap) -> int:
    import ctypes
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))
