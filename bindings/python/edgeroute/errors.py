"""Exceptions raised for the C ABI's status codes (absl::StatusCode)."""

from __future__ import annotations

from typing import Dict, List, Optional, Type

from edgeroute.diagnostic import Diagnostic


class EdgerouteError(Exception):
    """Base of every edgeroute error. `code` is the status code number."""

    code: int = 2  # UNKNOWN

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Cancelled(EdgerouteError):
    code = 1


class Unknown(EdgerouteError):
    code = 2


class InvalidArgument(EdgerouteError):
    """Bad input: a malformed message, option or argument."""

    code = 3


class RouteError(InvalidArgument):
    """A route, condition or manifest that does not compile.

    `diagnostics` holds every error and warning; `line`, `column` and
    `route_name` are those of the first error.
    """

    def __init__(self, message: str, diagnostics: List[Diagnostic]) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.is_error]
        first = errors[0] if errors else None
        self.line: int = first.line if first else 0
        self.column: int = first.column if first else 0
        self.route_name: str = first.route_name if first else ""


class DeadlineExceeded(EdgerouteError):
    code = 4


class NotFound(EdgerouteError):
    code = 5


class AlreadyExists(EdgerouteError):
    code = 6


class PermissionDenied(EdgerouteError):
    code = 7


class ResourceExhausted(EdgerouteError):
    """Full: the router's admission queue or the store. Retry later."""

    code = 8


class FailedPrecondition(EdgerouteError):
    """Wrong state, e.g. a call on a closed router."""

    code = 9


class Aborted(EdgerouteError):
    code = 10


class OutOfRange(EdgerouteError):
    code = 11


class Unimplemented(EdgerouteError):
    code = 12


class Internal(EdgerouteError):
    code = 13


class Unavailable(EdgerouteError):
    """A transient failure (e.g. the store's disk, or a locked store)."""

    code = 14


class DataLoss(EdgerouteError):
    code = 15


class Unauthenticated(EdgerouteError):
    code = 16


_BY_CODE: Dict[int, Type[EdgerouteError]] = {
    cls.code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded,
                NotFound, AlreadyExists, PermissionDenied, ResourceExhausted,
                FailedPrecondition, Aborted, OutOfRange, Unimplemented,
                Internal, Unavailable, DataLoss, Unauthenticated)
}


def error_for(code: int, message: str) -> EdgerouteError:
    """The exception for a status code (Unknown for numbers not listed)."""
    cls = _BY_CODE.get(code, Unknown)
    return cls(message, code)
