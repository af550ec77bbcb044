"""Errors that carry their HTTP status; one handler in the app renders them all.

A client's mistake is never a 500: every way a request can be wrong maps to one of these.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base: `status` is the HTTP status, the message is shown to the client."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):  # noqa: N818 (named for what the client sent)
    """The body is not parseable as the content type says (malformed JSON or CSV)."""

    status = 400


class UnprocessableInput(ServingError):  # noqa: N818
    """The body parses, but does not fit the model: a feature missing, unknown, or of the wrong
    type, a wrong number of columns, NaN or infinity where not allowed."""

    status = 422


class NotFound(ServingError):  # noqa: N818
    status = 404


class MethodNotAllowed(ServingError):  # noqa: N818
    """The route exists; `allow` is what it takes (sent as the Allow header)."""

    status = 405

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class NotAcceptable(ServingError):  # noqa: N818
    status = 406


class RequestTimeout(ServingError):  # noqa: N818
    status = 408


class PayloadTooLarge(ServingError):  # noqa: N818
    status = 413


class UnsupportedMediaType(ServingError):  # noqa: N818
    status = 415


class ModelNotReady(ServingError):  # noqa: N818
    """Not loaded yet, or draining for shutdown."""

    status = 503


class ShuttingDown(ServingError):  # noqa: N818
    """The server stopped before the request was read and scored (its shutdown grace ended):
    the client may send it again, to another instance."""

    status = 503


class ClientGone(ServingError):  # noqa: N818
    """The client disconnected before its request was read: nothing to answer, and not the
    server's failure. Counted and logged as 499, nginx's status for it."""

    status = 499
