"""A kernel source tree as an anon_vma policy.

A tree (a directory or a Debian linux-source tarball, optionally with patches on top: see
:mod:`anondiff.ktree.source`) is opened, its anon_vma and anon_vma_chain code is cut out by
name, compiled against anondiff's small shim and driven from Python through ctypes, so the
tree's own C code makes every anon_vma decision while anondiff keeps the mm.

- ``source``:  tree or tarball (+ patches) -> cached, patched files and a name (``Tree``)
- ``patches``: mbox series and unified diffs, applied in Python like ``git apply``
- ``debian``:  fetch and cache Debian's ``linux-source-*`` tarballs
- ``cutter``, ``recipe``, ``build``, ``binding``, ``policy``: cut, compile, drive (the C side)

No kernel code lives in this repository: it is read from the user's tree at run time.
"""
