"""User-facing errors: printed one line per problem (``FILE:LINE: message``) with exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input (data, flags, paths). ``problems`` holds one line per problem."""

    def __init__(self, *problems: str):
        super().__init__(problems[0] if problems else "invalid input")
        self.problems = list(problems) or ["invalid input"]

    def lines(self) -> list[str]:
        return self.problems
