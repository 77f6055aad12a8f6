"""The live kernel: replay a scenario as real processes, read the real anon_vma topology with
BPF, and compare it with a policy (``anondiff live``, ``capture``, ``reproducer``)."""
