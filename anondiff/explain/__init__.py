"""``anondiff explain``: why each VMA got its anon_vma (:mod:`.core`; the command: :mod:`.command`)."""
