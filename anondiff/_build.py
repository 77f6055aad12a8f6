"""``python -m anondiff._build``: compile the kernel model with mypyc (run by
``make .venv/.installed``; see anondiff/_compiled.py for how a build is picked).

Copies the package's sources to a scratch directory, compiles ``_compiled.MODULES`` there with
mypyc (mypy's compiler, the ``compiled`` extra) and gcc, and moves the extension modules into
the cache directory under the sources' key. Nothing to do when that directory exists. Without
mypyc or a C compiler, or if the build fails, it prints one line and exits 0: the package then
runs its pure-Python modules, the same model, slower. ``--force`` rebuilds; ``--jobs N``
compiles N C files at a time (default: the CPUs this process may use).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

from . import _compiled

SETUP = """\
import sys
from concurrent.futures import ThreadPoolExecutor
from setuptools import setup
from mypyc.build import mypycify
from distutils.ccompiler import CCompiler
modules = sys.argv[1].split(",")
jobs = int(sys.argv[2])

def compile(self, sources, output_dir=None, macros=None, include_dirs=None, debug=0,
            extra_preargs=None, extra_postargs=None, depends=None):
    # CCompiler.compile() with the C files of one extension (mypyc's multi_file: one per
    # module) compiled ``jobs`` at a time instead of one after another
    macros, objects, extra_postargs, pp_opts, build = self._setup_compile(
        output_dir, macros, include_dirs, sources, depends, extra_postargs)
    cc_args = self._get_cc_args(pp_opts, debug, extra_preargs)
    def one(obj):
        src, ext = build[obj]
        self._compile(obj, src, ext, cc_args, extra_postargs, pp_opts)
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, [obj for obj in objects if obj in build]))
    return objects

CCompiler.compile = compile
setup(name="anondiff-compiled", script_args=["build_ext", "--inplace"],
      ext_modules=mypycify(["--follow-imports=silent", "--ignore-missing-imports"]
                           + [m.replace(".", "/") + ".py" for m in modules],
                           opt_level="3", multi_file=True))
"""


def _notice(msg: str) -> int:
    print(f"anondiff: {msg}; the kernel model runs as pure Python (same results, slower)",
          file=sys.stderr)
    return 0


def _compiler() -> str | None:
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


def build(force: bool = False, jobs: int | None = None, quiet: bool = False) -> int:
    key = _compiled.key()
    dest = os.path.join(_compiled.cache_root(), key)
    if os.path.exists(os.path.join(dest, _compiled.MANIFEST)) and not force:
        return 0
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return _notice("mypyc is not installed (pip install -e '.[compiled]')")
    if _compiler() is None:
        return _notice("no C compiler (gcc) to build the compiled kernel model")
    jobs = jobs or len(os.sched_getaffinity(0))
    t0 = time.perf_counter()
    os.makedirs(_compiled.cache_root(), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=_compiled.cache_root()) as tmp:
        src = os.path.join(tmp, "src")
        shutil.copytree(os.path.join(_compiled.ROOT, "anondiff"), os.path.join(src, "anondiff"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.o"))
        if _compiled.key(src) != key:
            return _notice("the sources changed during the build; run it again")
        log = os.path.join(tmp, "build.log")
        with open(log, "w") as out:
            done = subprocess.run([sys.executable, "-c", SETUP, ",".join(_compiled.MODULES),
                                   str(jobs)], cwd=src, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        if done.returncode:
            with open(log) as f:
                tail = f.read().strip().splitlines()[-15:]
            print("\n".join(tail), file=sys.stderr)
            return _notice(f"the mypyc build failed (exit {done.returncode})")
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        staged = os.path.join(tmp, "out")
        lines = []
        for dirpath, _, files in os.walk(src):
            for name in files:
                if not name.endswith(suffix) or "build" in os.path.relpath(dirpath, src).split(os.sep)[:1]:
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), src)
                module = rel[:-len(suffix)].replace(os.sep, ".")
                os.makedirs(os.path.dirname(os.path.join(staged, rel)) or staged, exist_ok=True)
                shutil.copy2(os.path.join(src, rel), os.path.join(staged, rel))
                lines.append(f"{module} {rel}\n")
        if not set(_compiled.MODULES) <= {line.split()[0] for line in lines}:
            return _notice("the mypyc build did not produce every module")
        with open(os.path.join(staged, _compiled.MANIFEST), "w") as f:
            f.writelines(sorted(lines))
        if force and os.path.exists(dest):
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(staged, dest)
        except OSError:
            # another build of the same sources (another checkout) got there first: the same
            # key, the same code
            if not os.path.exists(os.path.join(dest, _compiled.MANIFEST)):
                raise
    if not quiet:
        print(f"anondiff: compiled the kernel model with mypyc ({len(_compiled.MODULES)} modules, "
              f"{time.perf_counter() - t0:.0f} s) into {dest}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    force = "--force" in argv
    jobs = int(argv[argv.index("--jobs") + 1]) if "--jobs" in argv else None
    return build(force=force, jobs=jobs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
