"""Just enough of a BTF reader (Documentation/bpf/btf.rst) to find, in the running kernel's
/sys/kernel/btf/vmlinux, the byte offset of a struct member (looking through anonymous unions
and structs, as the C compiler does), a struct's size, and the type id of a function.

The live reader takes every field offset from here, never from a header or a constant: the
layout of ``struct vm_area_struct`` and ``struct anon_vma`` changes between versions and configs.
"""
from __future__ import annotations

import struct
from functools import cached_property

BTF_MAGIC = 0xEB9F
KIND_STRUCT, KIND_UNION, KIND_TYPEDEF, KIND_FUNC = 4, 5, 8, 12
#: bytes following the common 12-byte header, per kind: (fixed, per vlen entry)
_EXTRA = {1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
          8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0),
          15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12)}


class BtfError(Exception):
    pass


class Btf:
    """The types of one BTF blob (type id 0 is void; ids start at 1)."""

    def __init__(self, data: bytes) -> None:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from("<HBBIIIII", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError("not BTF (bad magic)")
        self._strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        #: id -> (kind, name, size_or_type, kind_flag, members [(name, type, bit offset)])
        self.types: list[tuple[int, str, int, bool, list[tuple[str, int, int]]]] = [
            (0, "", 0, False, [])]
        pos = 0
        while pos < len(types):
            name_off, info, size_type = struct.unpack_from("<III", types, pos)
            pos += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
            if kind not in _EXTRA:
                raise BtfError(f"unknown BTF kind {kind}")
            members = []
            if kind in (KIND_STRUCT, KIND_UNION):
                for i in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", types, pos + 12 * i)
                    members.append((self._str(m_name), m_type, m_off & 0xFFFFFF if kflag else m_off))
            fixed, per = _EXTRA[kind]
            pos += fixed + per * vlen
            self.types.append((kind, self._str(name_off), size_type, kflag, members))

    def _str(self, off: int) -> str:
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode()

    @cached_property
    def _by_name(self) -> dict[tuple[int, str], int]:
        out: dict[tuple[int, str], int] = {}
        for i, (kind, name, _s, _f, members) in enumerate(self.types):
            # a full definition wins over a forward declaration (which has no members)
            if name and ((kind, name) not in out or members):
                out[(kind, name)] = i
        return out

    def type_id(self, kind: int, name: str) -> int:
        try:
            return self._by_name[(kind, name)]
        except KeyError:
            raise BtfError(f"no {name!r} in BTF") from None

    def _resolve(self, tid: int) -> int:
        while self.types[tid][0] in (KIND_TYPEDEF, 9, 10, 11, 18):   # typedef, qualifiers
            tid = self.types[tid][2]
        return tid

    def size(self, struct_name: str) -> int:
        return self.types[self.type_id(KIND_STRUCT, struct_name)][2]

    def offset(self, struct_name: str, member: str) -> int:
        """Byte offset of ``member`` ("a.b" for nested members) in ``struct struct_name``."""
        tid = self.type_id(KIND_STRUCT, struct_name)
        total = 0
        for part in member.split("."):
            found = self._find(tid, part)
            if found is None:
                raise BtfError(f"no member {part!r} in struct {struct_name}")
            bits, tid = found
            total += bits
        if total % 8:
            raise BtfError(f"struct {struct_name}.{member} is a bitfield")
        return total // 8

    def _find(self, tid: int, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of a member, looking into anonymous structs and unions."""
        tid = self._resolve(tid)
        kind, _n, _s, _f, members = self.types[tid]
        if kind not in (KIND_STRUCT, KIND_UNION):
            return None
        for m_name, m_type, m_off in members:
            if m_name == name:
                return m_off, m_type
        for m_name, m_type, m_off in members:
            if not m_name:
                inner = self._find(m_type, name)
                if inner is not None:
                    return m_off + inner[0], inner[1]
        return None


def load_vmlinux(path: str = "/sys/kernel/btf/vmlinux") -> Btf:
    with open(path, "rb") as f:
        return Btf(f.read())
