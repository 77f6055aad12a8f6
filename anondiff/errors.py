"""Small typed exceptions raised by the core; the CLI turns them into messages and exit codes."""
from __future__ import annotations


class AnondiffError(Exception):
    """Any trouble the user should see as one line (exit status 2)."""


class ScenarioError(AnondiffError):
    """A scenario file that cannot be loaded: names the file, line and what was expected."""

    def __init__(self, path: str, line: int | None, message: str, column: int | None = None):
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class UnknownPolicyError(AnondiffError):
    pass


class RenderError(AnondiffError):
    pass


class ReplayError(ScenarioError):
    """A step that cannot be replayed (names a VMA that does not exist at that point, asks for
    something the kernel would refuse with an error code, ...): same form as a load error."""
