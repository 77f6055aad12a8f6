"""``python -m anondiff`` and the ``anondiff`` command."""


def run() -> None:
    # Ctrl-C while the imports still run (click, yaml: a few hundred milliseconds on a loaded
    # machine) ends like any Ctrl-C: quiet, status 130, no traceback
    try:
        from . import cli
        from .cli import EXIT_INTERRUPTED, main
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    # the process ends with the command: its objects are not freed one by one
    cli.QUICK_EXIT = True
    try:
        main(prog_name="anondiff")
    except KeyboardInterrupt:       # one landing between main()'s own handlers
        raise SystemExit(EXIT_INTERRUPTED) from None
    except SystemExit as e:
        cli.end_process(e.code)
        raise


if __name__ == "__main__":
    run()
