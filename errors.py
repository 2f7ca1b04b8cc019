"""One error model for mlrepo, as httpie's ``ExitStatus``: every error mlrepo raises is an ``MlrepoError`` whose
class says how the command ends. The CLI prints its message as one line; anything else is a bug in mlrepo or a
library, reported as such."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """The exit codes of every command (DESIGN.md)."""

    OK = 0
    FAILED = 1  # the work could not be done (a model could not be moved, another mlrepo holds the root...)
    USAGE = 2  # bad flag, unknown or ambiguous metric, bad --where, missing root
    REFUSED = 3  # a destructive command with no --yes and no terminal to ask on
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class MlrepoError(Exception):
    """Base of every error mlrepo raises on purpose; the message is written for the user."""

    exit_status = ExitStatus.FAILED


class UsageError(MlrepoError):
    """What the user asked for cannot be understood: the message says what to change."""

    exit_status = ExitStatus.USAGE


class RefusedError(MlrepoError):
    """A destructive step that was not confirmed, so nothing happened."""

    exit_status = ExitStatus.REFUSED


class FailedError(MlrepoError):
    """The work was attempted and (part of) it could not be done."""


class Busy(FailedError):
    """Another mlrepo process holds the root's lock."""


class ReadError(MlrepoError):
    """A file on disk could not be read as what it claims to be (kept inside readers: the model gets an error)."""


def in_words(exc: BaseException) -> str:
    """An unexpected exception (from a library, on hostile input) said in the user's words: what is wrong with
    the data, never a Python class name."""
    if isinstance(exc, MlrepoError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, OverflowError):
        return "holds a number too large to represent"
    if isinstance(exc, MemoryError):
        return "too large to read into memory"
    if isinstance(exc, UnicodeError):
        return "not valid UTF-8 text"
    if isinstance(exc, OSError):
        return f"cannot be read ({exc.strerror})" if exc.strerror else "cannot be read"
    if isinstance(exc, KeyError):
        return f"lacks the field {exc.args[0]!r}" if exc.args else "lacks a required field"
    if isinstance(exc, (ValueError, TypeError)) and str(exc):
        return f"holds a value of the wrong kind ({str(exc).splitlines()[0][:200]})"
    return "could not be read (unexpected content)"
