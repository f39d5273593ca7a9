"""The refusal every layer above storage raises: a stable code, a message, optional details.

handlers.errors re-exports it as the one error type handlers raise; it is defined here so
that channels (rate limits, typing) refuse with the same type and codes without importing
handlers. The transport maps it to an HTTP status or a socket ack in one place.
"""

from __future__ import annotations

from typing import Any, Literal

ErrorCode = Literal[
    "invalid_input",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "rate_limited",
    "payload_too_large",
    "unknown_command",
    "unavailable",
    "internal",
]

# The HTTP status each code maps to; the socket ack carries the code alone.
HTTP_STATUS: dict[str, int] = {
    "invalid_input": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "unknown_command": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}


class CommandError(Exception):
    """A refusal with a code, a human message and optional structured details."""

    def __init__(self, code: ErrorCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


class RateLimited(CommandError):
    """Too many attempts; retry_after says when to try again, in whole seconds."""

    def __init__(self, retry_after: int, message: str = "too many requests") -> None:
        retry_after = max(1, retry_after)
        super().__init__("rate_limited", message, {"retry_after": retry_after})
        self.retry_after = retry_after
