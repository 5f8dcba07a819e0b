"""Errors that reach the user as one-line messages (exit code 2), never as tracebacks."""

from __future__ import annotations


class InputError(Exception):
    """Bad user input (scenario field, file, option). ``lines`` are complete one-line messages."""

    def __init__(self, lines: list[str] | str):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))
