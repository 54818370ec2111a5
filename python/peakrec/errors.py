"""Exceptions raised by peakrec. Input mistakes subclass ``ValueError``."""


class PeakrecError(Exception):
    """Base class of every peakrec error."""


class InvalidInputError(PeakrecError, ValueError):
    """The caller's input is wrong: a bad value, shape, dtype, range or format.

    From ``peakrec.Client``: ``field_violations`` lists (field, description) pairs the server sent
    as google.rpc.BadRequest details (empty when it sent none)."""

    field_violations: list[tuple[str, str]] = []  # set per instance by peakrec.Client


class NotFoundError(PeakrecError, KeyError):
    """An id (item, user, bundle) that does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class BundleError(PeakrecError):
    """A bundle is missing, corrupt, or of an unsupported schema version."""


class UsageError(PeakrecError):
    """A command line that cannot work as given (flags that contradict each other); exit code 2."""
