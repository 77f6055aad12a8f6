"""anondiff: simulate and diff Linux kernel anon_vma topologies across kernel and patch versions."""

__version__ = "0.1.0"

from . import _compiled

_compiled.install()          # the mypyc-compiled kernel model, if built from these sources
