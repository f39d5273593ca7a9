"""The one error type handlers raise, carrying a stable code (defined in channels/errors.py)."""

from __future__ import annotations

from channels.errors import HTTP_STATUS, CommandError, ErrorCode, RateLimited

__all__ = ["HTTP_STATUS", "CommandError", "ErrorCode", "RateLimited", "invalid"]


def invalid(field: str, message: str, kind: str = "invalid") -> CommandError:
    """An invalid_input error about one field, shaped like schema validation errors."""
    return CommandError(
        "invalid_input", message, {"fields": [{"field": field, "message": message, "type": kind}]}
    )
