"""Cursor pagination shared by every list: opaque cursors over (timestamp, id) positions.

A cursor is the position of the last row of a page, base64url-encoded; the next page
starts strictly after it in the list's order. Clients treat it as opaque. Lists page
newest first unless their command says otherwise; a page one longer than asked tells
whether there is a next page, without a count query.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import Field

from handlers.commands import Input
from handlers.errors import invalid

T = TypeVar("T")

# Page lengths for social lists and feeds (docs/limits.md).
PAGE_DEFAULT = 20
PAGE_MAX = 40


class PageInput(Input):
    """The paging fields of a list command; a list's input subclasses it."""

    cursor: str | None = Field(default=None, min_length=1, max_length=200,
                               description="next_cursor of the previous page")
    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)


@dataclass(frozen=True)
class Position:
    """Where a page ends: the sort timestamp and id of its last row."""

    at: datetime
    id: uuid.UUID


def encode_cursor(position: Position) -> str:
    raw = f"{position.at.isoformat()}|{position.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, list_name: str) -> Position | None:
    """The position a cursor names, or invalid_input (field "cursor") if it is not one."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, row_id = raw.partition("|")
        at = datetime.fromisoformat(when)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return Position(at, uuid.UUID(row_id))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid("cursor", f"not a cursor from {list_name}", "cursor_invalid") from None


def page_of(rows: Sequence[T], limit: int, position: Callable[[T], Position]) -> tuple[list[T], str | None]:
    """Cut rows fetched with limit + 1 to one page, and the cursor of the next page (or None)."""
    page = list(rows[:limit])
    more = len(rows) > limit
    return page, encode_cursor(position(page[-1])) if more and page else None
