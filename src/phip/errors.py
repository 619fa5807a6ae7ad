"""The one base of every error PHIP reports to a person: a stable ``code`` (hospitals and
scripts program against it), a Chinese ``message``, and the ``field`` it concerns, if any.

Each area subclasses it (``IngestError``, ``MappingError``, ``EmpiError``…) and keeps its own
constructor; the top layers translate classes, never codes: ``phip.api.errors.HTTP_STATUS``
maps classes to HTTP statuses and ``phip.cli.EXIT_CODES`` to exit codes, one table each.

Errors cross process boundaries (the validation and reader processes re-raise them in the
parent), so every subclass pickles through :func:`_rebuild` whatever its constructor takes.
This module imports nothing from PHIP: every package may raise its errors."""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[PhipError], args: tuple[Any, ...], state: dict[str, Any]) -> PhipError:
    """Unpickle without calling ``__init__`` (subclasses' signatures differ)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class PhipError(Exception):
    """An error with a stable code and a Chinese message. Subclasses with one code per class
    set ``code`` on the class and may take only the message."""

    code: str = "ERROR"
    field: str | None = None

    def __init__(self, code: str | None, message: str, field: str | None = None, *, text: str | None = None):
        # ``text`` is what str() shows; a few classes show "[code] message" to stay as they were
        super().__init__(message if text is None else text)
        if code is not None:
            self.code = code
        self.message = message
        if field is not None:
            self.field = field

    def as_dict(self) -> dict[str, Any]:
        """The shape every API error body carries (``{"error": as_dict()}``)."""
        return {"code": self.code, "message": self.message, "field": self.field}

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, dict(self.__dict__))


class CommandError(PhipError):
    """A command-line value a command refuses after Typer accepted it (an unknown institution,
    a bad date); ``phip.cli.main`` says it like every other error."""
