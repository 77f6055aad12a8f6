"""``python -m anondiff`` and the ``anondiff`` command."""


def run() -> None:
    # Ctrl-C while the imports still run (click, yaml: a few hundred milliseconds on a loaded
    # machine) ends like any Ctrl-C: quiet, status 130, no traceback
    try:
        from .cli import EXIT_INTERRUPTED, main
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    try:
        main(prog_name="anondiff")
    except KeyboardInterrupt:       # one landing between main()'s own handlers
        raise SystemExit(EXIT_INTERRUPTED) from None


if __name__ == "__main__":
    run()
