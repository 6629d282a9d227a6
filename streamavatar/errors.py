"""Exceptions that mean "the user gave us something we cannot use" (CLI exit status 2, one line)."""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from a user: a file, a flag, an array shape. The message says what was expected and what came."""


class SessionClosedError(UserInputError):
    """Work asked of a streaming ``Session`` after its ``close()``."""
