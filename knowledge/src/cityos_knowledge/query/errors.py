"""The error the query package raises for a malformed request parameter.

It is a :class:`~cityos_knowledge.errors.BadRequestDataError`, so the API answers 400
``BadRequestData``; its message names the parameter, the 1-based character position and what
was expected there, so a user can fix the request without reading the grammar.
"""

from __future__ import annotations

from cityos_knowledge.errors import BadRequestDataError

#: How much of the offending input is quoted back in a message.
_EXCERPT = 24


class InvalidQueryError(BadRequestDataError):
    """A query parameter (``q``, ``scopeQ``, ``type``, ``georel``…) does not parse or validate.

    ``position`` is the 0-based index in ``text`` where the problem was found, or ``None``
    when it concerns the parameter as a whole (e.g. a missing companion parameter).
    """

    def __init__(
        self, parameter: str, reason: str, *, text: str = "", position: int | None = None
    ) -> None:
        self.parameter = parameter
        self.reason = reason
        self.text = text
        self.position = position
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.position is None:
            return f"invalid {self.parameter}: {self.reason}"
        near = self.text[self.position : self.position + _EXCERPT]
        where = f" near {near!r}" if near else " at the end"
        return f"invalid {self.parameter} at character {self.position + 1}{where}: {self.reason}"
