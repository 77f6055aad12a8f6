"""anondiff: simulate and diff Linux kernel anon_vma topologies across kernel and patch versions."""

__version__ = "0.1.0"
