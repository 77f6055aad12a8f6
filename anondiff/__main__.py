"""``python -m anondiff`` and the ``anondiff`` command."""
import os
import sys


def run() -> None:
    # Ctrl-C while the imports still run (click, yaml: a few hundred milliseconds on a loaded
    # machine) ends like any Ctrl-C: quiet, status 130, no traceback
    try:
        from . import cli
        from .cli import EXIT_INTERRUPTED, main
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    cli.LEFT_FOR_EXIT = []
    try:
        main(prog_name="anondiff")
    except KeyboardInterrupt:       # one landing between main()'s own handlers
        raise SystemExit(EXIT_INTERRUPTED) from None
    except SystemExit as e:
        exit_now(e.code)
        raise


def exit_now(code: object) -> None:
    """End the process with *code* as the interpreter would, without its finalization.

    What the interpreter does at exit that a command can see is done: standard output and
    standard error are flushed.  Tearing down every module and freeing every object one by one
    (a sixth of ``anondiff run`` of a small scenario, issue 8; more after a large one) is left
    to the kernel, which frees the whole address space at once.  Only when there is nothing
    else to do at exit: no atexit function (coverage, logging and multiprocessing register
    one), no other thread, a status that is a number; otherwise this returns and the
    interpreter exits the usual way (so does a flush that fails, to report it as always)."""
    import atexit
    if code is None:
        code = 0
    if not isinstance(code, int):
        return                      # a message: printed by the usual exit
    pending = getattr(atexit, "_ncallbacks", None)
    if pending is None or pending():
        return
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:               # noqa: BLE001  (reported by the usual exit)
        return
    os._exit(code & 0xFF)


if __name__ == "__main__":
    run()
