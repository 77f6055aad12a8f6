"""``anondiff capture``: one running process's real topology, named in address order."""
from __future__ import annotations

import platform

from ..topology import Topology
from . import convert
from .reader import CaptureError, Reader


def capture_process(reader: Reader, pid: int, lo: int, hi: int) -> Topology:
    """VMAs are named by start address; anon_vmas AV0, AV1, ... in the order the engine would
    name them (first link, each chain from its oldest entry); pages pg0, pg1, ..."""
    task = reader.task(pid, lo, hi)
    if not task.vmas:
        raise CaptureError(f"pid {pid} has no VMA in {lo:#x}-{hi:#x}")
    name = f"pid{pid}"
    empty = Topology(f"pid {pid}", "", "final", 0, (), (), ())
    topo = convert.to_topology(empty, [name], [task], reader.anon_vmas([task]),
                               convert.Namer([]), (), f"live {platform.release()}")
    from ..topology import Finding
    found = tuple(Finding(*v, 0, 0, True) for v in convert.check(topo))
    return topo._replace(findings=found)
