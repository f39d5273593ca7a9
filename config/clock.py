"""The wall clock, in UTC: the default every long-lived service takes as its `clock`.

Services and workers receive the clock as a parameter so tests can pass a fixed one;
this is what they get otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
