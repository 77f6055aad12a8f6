"""A progress bar on standard error for the long phases of a large run (reading a scenario
with tens of thousands of VMAs, laying it out, a fork, the checks, the snapshot), shown only
when standard error is a terminal: never in a pipe, a file, a test or CI."""
from __future__ import annotations

import sys
import time

#: below this many items a phase is over before a bar would help
THRESHOLD = 20_000
#: how often the bar is redrawn, in items (the clock is looked at only then) and in seconds
EVERY = 4096
INTERVAL = 0.2
WIDTH = 30


class Progress:
    """``what [#########.....] done/total``, redrawn in place, erased by :meth:`close`."""

    def __init__(self, what: str, total: int) -> None:
        self.what = what
        self.total = total
        self.last = 0.0
        self.shown = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < INTERVAL:
            return
        self.last = now
        filled = WIDTH * done // max(self.total, 1)
        stream = sys.stderr
        stream.write(f"\r{self.what} [{'#' * filled}{'.' * (WIDTH - filled)}] "
                     f"{done:,}/{self.total:,}\x1b[K")
        stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def bar(what: str, total: int) -> Progress | None:
    """A bar for ``total`` items, or None when it would not be seen (small, or not a tty).
    Callers update it every :data:`EVERY` items: ``if bar and not i % EVERY: bar.update(i)``."""
    if total < THRESHOLD:
        return None
    stream = sys.stderr
    try:
        if stream is None or not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return Progress(what, total)
