"""Exceptions raised by the grammar, the architecture value and the sampler."""

from __future__ import annotations


class ArchitectureSyntaxError(ValueError):
    """Architecture text that does not parse: names the character position and the offending token."""

    def __init__(self, message: str, position: int, token: str, text: str | None = None) -> None:
        self.position = position
        self.token = token
        self.text = text
        where = f" at position {position}"
        shown = f" (token {token!r})" if token else " (end of text)"
        context = ""
        if text is not None:
            lo = max(0, position - 30)
            snippet = text[lo : position + 30].replace("\n", " ")
            context = f"\n  {snippet}\n  {' ' * (position - lo)}^"
        super().__init__(f"{message}{where}{shown}{context}")


class InvalidArchitectureError(ValueError):
    """A well-formed tree that breaks a rule of the grammar (shapes, arity, unknown op at a level)."""

    def __init__(self, message: str, path: tuple[int, ...] = (), op: str | None = None) -> None:
        self.path = path
        self.op = op
        super().__init__(message)


class SamplingError(RuntimeError):
    """The sampler could not produce an architecture within the budgets."""


class MutationError(RuntimeError):
    """No valid, in-budget, different child could be produced from the parent(s)."""
