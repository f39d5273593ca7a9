"""@username mentions in a body: the one parser, for items and messages alike.

A mention is an @ followed by a username (3-30 letters, digits or underscores), not
inside a word or an e-mail address; it names whoever holds that username, matched
without regard to case.
"""

from __future__ import annotations

import re

MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,30})(?![\w])")


def mentioned_usernames(body: str | None) -> list[str]:
    """The distinct @usernames in a body, lower-cased, in order of appearance."""
    if not body:
        return []
    return list(dict.fromkeys(m.lower() for m in MENTION.findall(body)))
