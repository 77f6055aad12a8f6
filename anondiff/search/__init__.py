"""``anondiff search``: find the smallest scenario where two policies differ, or where one
breaks an invariant.

generate.py draws random scenarios the kernel accepts, judge.py replays them and says what is a
finding, shrink.py makes a finding small, writer.py makes it readable and writes it (emit.py:
the YAML) as an ordinary scenario file with a description and expectations, runner.py spreads
seed ranges over worker processes or a Dask cluster, cli.py is the click command.  This module holds only the constants the command
line needs, so that ``anondiff`` starts without importing the rest.
"""
from __future__ import annotations

#: Every event the generator can make, as ``--events`` names them.
EVENTS = ("fork", "exit", "write", "mprotect", "madvise", "munmap", "mmap", "mremap")

#: What a difference can be in: the VMA fields ``compare`` reports, the findings only one
#: policy reports, and the totals (anon_vmas allocated, chain links, ...) when nothing else
#: differs.
FIELDS = ("present", "anon_vma", "chain", "sharing", "pages", "findings", "totals")

#: The default budget: processes ever, starting VMAs, steps, fork generations.
PROCESSES, VMAS, STEPS, GENERATIONS = 8, 4, 30, 6
